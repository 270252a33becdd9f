"""`init` and the master key, and the instants commands accept, through the command line on
SQLite and PostgreSQL: what an operator sees and which exit code monitoring gets."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import Base, RetentionRun, ShopFeatureChange
from tests.e2e.test_cli import AFTER_MASK_DUE, NR, SHIPPED, Cli, _stdin
from tests.support.builders import order

Dump = dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home", database_url)


@pytest.fixture
def ready(cli: Cli) -> Cli:
    cli.ok("init")
    return cli


def _dump(url: str) -> Dump:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    tuple(row)
                    for row in conn.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _archived(cli: Cli) -> None:
    """One buyer archived (not yet masked) under the installation's key."""
    cli.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    cli.ok("feature", "enable", "--shop", "main")
    assert cli.json("run", "--as-of", "2026-04-01T02:00:00+02:00")["archived"] == 1


# -- init and the master key -------------------------------------------------------------------


def test_init_after_the_key_file_was_lost_exits_1_and_says_to_restore_it(ready: Cli) -> None:
    _archived(ready)
    key_file = ready.home / "master.key"
    key_id = json.loads(key_file.read_text())["key_id"]
    key_file.unlink()
    before = _dump(ready.database_url)

    result = ready("init")

    assert (result.exit_code, result.stdout.count("ok master key")) == (1, 0)
    assert result.stderr == (
        f"error: master key file {key_file} is missing, and this database's data is sealed "
        f"under master key {key_id}; restore the file from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to where it is); a new key is not created, because the "
        "existing archive could never be read with it\n"
    )
    assert not key_file.exists()
    assert _dump(ready.database_url) == before


def test_commands_with_another_key_file_exit_1_and_write_nothing(
    ready: Cli, tmp_path: Path
) -> None:
    _archived(ready)
    recorded = json.loads((ready.home / "master.key").read_text())["key_id"]
    other_home = tmp_path / "other"
    assert ready("init", "--home", str(other_home), env=ready.env(database_url=None)).exit_code == 0
    other_key = other_home / "master.key"
    other = ready.env(master_key_file=str(other_key))
    before = _dump(ready.database_url)
    archive = sorted((ready.home / "archive").rglob("*"))
    message = (
        f"error: master key file {other_key} holds key "
        f"{json.loads(other_key.read_text())['key_id']}, but this database's data is sealed "
        f"under master key {recorded}; restore that key from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to it)\n"
    )

    results = [
        ready("import", "-", input=_stdin(order("303-1234567-1234567")), env=other),
        ready("run", "--as-of", AFTER_MASK_DUE, env=other),
        ready("init", env=other),
    ]

    assert [(r.exit_code, r.stderr) for r in results] == [(1, message)] * 3
    assert _dump(ready.database_url) == before
    assert sorted((ready.home / "archive").rglob("*")) == archive


@pytest.mark.parametrize("file_mode", [0o640, 0o644, 0o606], ids=lambda m: f"{m:04o}")
def test_a_key_file_others_can_read_or_write_is_refused_by_every_command_that_loads_it(
    ready: Cli, file_mode: int
) -> None:
    _archived(ready)
    ready.json("run", "--as-of", AFTER_MASK_DUE)
    key_file = ready.home / "master.key"
    key_file.chmod(file_mode)
    before = _dump(ready.database_url)
    message = (
        f"error: master key file {key_file} can be read or written by other users (mode "
        f"{file_mode:04o}); run `chmod 600 {key_file}`\n"
    )

    results = [
        ready("init"),
        ready("import", "-", input=_stdin(order("303-1234567-1234567"))),
        ready("run", "--as-of", AFTER_MASK_DUE),
        ready("retrieve", NR, "--reason", "Rückgabe", "--user", "anna"),
    ]

    assert [(r.exit_code, r.stderr) for r in results] == [(1, message)] * 4
    assert _dump(ready.database_url) == before
    key_file.chmod(0o600)
    assert ready("retrieve", NR, "--reason", "Rückgabe", "--user", "anna").exit_code == 0


def test_init_makes_an_existing_home_folder_private(cli: Cli) -> None:
    cli.home.mkdir(mode=0o755)
    cli.home.chmod(0o755)

    cli.ok("init")

    assert _mode(cli.home) == 0o700


def test_init_makes_the_sqlite_database_files_private(tmp_path: Path) -> None:
    """The database file is 0600 (also one an earlier version left 0644), and the -wal and
    -shm files SQLite creates beside it later take its mode."""
    home = tmp_path / "home"
    database = home / "shelflife.db"
    cli = Cli(home, f"sqlite:///{database}")
    cli.ok("init")
    database.chmod(0o644)

    cli.ok("init")

    engine = make_engine(cli.database_url)
    try:
        with engine.begin() as conn:  # a writing connection keeps -wal and -shm open
            conn.execute(delete(ShopFeatureChange))
            modes = [_mode(Path(f"{database}{suffix}")) for suffix in ("", "-wal", "-shm")]
    finally:
        engine.dispose()
    assert modes == [0o600] * 3


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://nobody@127.0.0.1:1/nodb?connect_timeout=5",
        "sqlite:////proc/no-such-folder/shelflife.db",
    ],
    ids=["unreachable-postgresql", "sqlite-folder-cannot-be-created"],
)
def test_a_failed_init_writes_no_config_json(tmp_path: Path, url: str) -> None:
    cli = Cli(tmp_path / "home", url)

    result = cli("init")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert not (cli.home / "config.json").exists()
    assert not (cli.home / "master.key").exists()


# -- instants ------------------------------------------------------------------------------------


def test_ship_in_the_future_exits_2_and_changes_nothing(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR)))

    result = ready("ship", NR, "--at", "2099-01-01T00:00:00+00:00")

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: the shipping time 2099-01-01T00:00:00+00:00 is in the future (now is "
    )
    assert result.stderr.endswith("); give an instant that has happened\n")
    assert ready.show()["shipped_at"] is None


def test_retrieve_dated_in_the_future_exits_2_and_changes_nothing(ready: Cli) -> None:
    """Observed: `retrieve --as-of 2099-…` exited 0; the re-mask was due in 2099."""
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    ready.json("run", "--as-of", AFTER_MASK_DUE)
    before = _dump(ready.database_url)

    result = ready(
        "retrieve", NR, "--reason", "Rückgabe", "--user", "anna", "--as-of", "2099-01-01T00:00Z"
    )

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: the retrieval time 2099-01-01T00:00:00+00:00 is in the future (now is "
    )
    assert _dump(ready.database_url) == before


def test_run_with_as_of_records_its_real_start_and_end_times(ready: Cli) -> None:
    """`--as-of` says which day's rules apply; the runs table still says when it ran."""
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    before = datetime.now(UTC)

    ready.json("run", "--as-of", AFTER_MASK_DUE)

    after = datetime.now(UTC)
    (run,) = _dump(ready.database_url)["retention_runs"]
    columns = [c.name for c in RetentionRun.__table__.columns]
    row = dict(zip(columns, run, strict=True))
    assert row["as_of"] == datetime.fromisoformat(AFTER_MASK_DUE)
    assert before <= row["started_at"] <= row["finished_at"] <= after


def test_feature_changes_are_recorded_at_the_real_time(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR)))
    before = datetime.now(UTC)

    ready.ok("feature", "enable", "--shop", "main")

    after = datetime.now(UTC)
    changes = _dump(ready.database_url)["shop_feature_changes"]
    columns = [c.name for c in ShopFeatureChange.__table__.columns]
    (change,) = [dict(zip(columns, c, strict=True)) for c in changes]
    assert before <= change["changed_at"] <= after


def test_operations_doc_shows_what_the_first_init_prints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = Cli(home, f"sqlite:///{home}/shelflife.db")
    printed = cli.ok("init").stdout
    key_id = json.loads((home / "master.key").read_text())["key_id"]
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()

    key_lines = [line for line in printed.splitlines() if "master.key" in line]

    assert len(key_lines) == 2
    for line in key_lines:
        documented = line.replace(str(home), "/srv/shelflife").replace(key_id, "mk-1a2b3c4d")
        assert f"\n{documented}\n" in doc
