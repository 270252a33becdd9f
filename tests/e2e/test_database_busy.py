"""A database locked by another process: readers answer, writers say "busy", never "cannot connect".

The other process is simulated by a second connection in the middle of a write transaction, as
the nightly run is between two of its batches: on SQLite it holds the file's write lock
(BEGIN IMMEDIATE and a write); on PostgreSQL it holds the tables in SHARE ROW EXCLUSIVE mode,
which blocks every writer and no reader. The lock is held for the whole test, so a command that
waited for it would run into its lock timeout and fail.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from shelflife.adapters.db.engine import BUSY
from shelflife.entrypoints.cli import app
from tests.support.builders import T0, days, lines, order

NR = "302-1234567-1234567"
LOCK_TIMEOUT = "2"
"""Seconds: a command that waited for the lock would fail after this, long before the test
ends; short enough to keep the busy tests quick."""


def cli(home: Path, database_url: str, *args: str, input: str | None = None) -> Result:
    env = {
        "SHELFLIFE_HOME": str(home),
        "SHELFLIFE_DATABASE_URL": database_url,
        "SHELFLIFE_ARCHIVE_URL": None,
        "SHELFLIFE_MASTER_KEY_FILE": None,
        "SHELFLIFE_DEBUG": None,
        "SHELFLIFE_LOCK_TIMEOUT": LOCK_TIMEOUT,
    }
    result = CliRunner().invoke(app, list(args), input=input, env=env)
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


EVERY_TABLE_WRITTEN = (
    "shops, shop_feature_changes, customers, orders, addresses, order_items, invoices, "
    "retention_runs"
)


@contextmanager
def another_process_writing(database_url: str, tables: str = EVERY_TABLE_WRITTEN) -> Iterator[None]:
    """A second connection holding the write lock until the block ends (on PostgreSQL, of
    `tables`; SQLite's lock is the whole file)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = sqlite3.connect(url.database or "", isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE shops SET time_zone = time_zone")
            yield
            db.execute("ROLLBACK")
        finally:
            db.close()
        return
    with psycopg.connect(
        dbname=url.database,
        user=url.username,
        host=str(url.query["host"]),
        port=int(str(url.query["port"])),
    ) as pg:
        pg.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        yield
        pg.rollback()


@pytest.fixture
def home(database_url: str, tmp_path: Path) -> Path:
    """An installation with one shipped Amazon order in shop `main`, retention off."""
    home = tmp_path / "home"
    shipped = order(NR, shipped_at=T0, invoiced_at=T0 + days(0.1))
    for args, stdin in ((["init"], None), (["import", "-"], "\n".join(lines(shipped)) + "\n")):
        result = cli(home, database_url, *args, input=stdin)
        assert result.exit_code == 0, result.output
    return home


@pytest.mark.parametrize(
    ("args", "shows"),
    [
        pytest.param(["show", NR], NR, id="show"),
        pytest.param(["show", NR, "--json"], NR, id="show-json"),
        pytest.param(["compliance", "--as-of", (T0 + days(5)).isoformat()], "", id="compliance"),
        pytest.param(["shop", "list"], "main", id="shop-list"),
    ],
)
def test_read_only_commands_answer_while_another_process_holds_the_write_lock(
    home: Path, database_url: str, args: list[str], shows: str
) -> None:
    with another_process_writing(database_url):
        result = cli(home, database_url, *args)
    assert (result.exit_code, result.stderr) == (0, "")
    assert shows in result.stdout
    assert result.stdout.strip() != ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["feature", "enable", "--shop", "main"], id="feature-enable"),
        pytest.param(["import", "-"], id="import"),
        pytest.param(["run", "--as-of", (T0 + days(40)).isoformat()], id="run"),
    ],
)
def test_write_commands_on_a_locked_database_say_busy_not_cannot_connect(
    home: Path, database_url: str, args: list[str]
) -> None:
    stdin = "\n".join(lines(order("302-7654321-7654321", shipped_at=T0))) + "\n"
    with another_process_writing(database_url):
        result = cli(home, database_url, *args, input=stdin)
    assert (result.exit_code, result.stderr) == (1, f"error: {BUSY}\n")
    after = cli(home, database_url, *args, input=stdin)
    assert after.exit_code == 0, after.output  # nothing was half-written: it simply works now


@pytest.mark.postgres
def test_a_run_stopped_by_a_lock_records_why_as_the_command_line_says_it(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The run starts and records itself, then waits in vain to write the buyers' rows: its
    record in `shelflife runs` says "busy" as the command line does, not the library's error
    type (nor its text, which can quote PII). PostgreSQL only: there another process can hold
    the buyers' table alone, while SQLite's write lock is the whole file and no run starts."""
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("run_stopped_by_a_lock")
    home = tmp_path / "home"
    stdin = "\n".join(lines(order(NR, shipped_at=T0, invoiced_at=T0 + days(0.1)))) + "\n"
    for args in (["init"], ["import", "-"], ["feature", "enable", "--shop", "main"]):
        assert cli(home, url, *args, input=stdin).exit_code == 0
    with another_process_writing(url, tables="customers"):
        result = cli(home, url, "run", "--as-of", (T0 + days(40)).isoformat())
    assert (result.exit_code, result.stderr) == (1, f"error: {BUSY}\n")
    runs = json.loads(cli(home, url, "runs", "--json").stdout)
    assert [run["error"] for run in runs] == [BUSY]
