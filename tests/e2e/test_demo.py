"""`shelflife demo` never touches real data, and the commands it suggests show what it described.

The demo runs in-process through Typer's CliRunner; "real" homes are made the way an operator
makes them (`shelflife init` + `shelflife import`), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from shelflife.entrypoints.cli import app
from shelflife.entrypoints.terminal import printable
from shelflife.services.demo import MARKER
from tests.support.builders import T0, days, lines, order

VARIABLES = (
    "SHELFLIFE_HOME",
    "SHELFLIFE_DATABASE_URL",
    "SHELFLIFE_ARCHIVE_URL",
    "SHELFLIFE_MASTER_KEY_FILE",
    "SHELFLIFE_BATCH_SIZE",
    "SHELFLIFE_ARCHIVE_WORKERS",
    "SHELFLIFE_DEBUG",
)
NR = "302-1234567-1234567"
SMALL = ("--customers", "10", "--nights", "31")
"""The quickest tour: enough to create, import and run, not to mask."""
TOUR = ("--customers", "40", "--nights", "35")
"""Long enough that buyers are masked and one order is retrieved."""


def _env(**values: str) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(VARIABLES)
    env.update(values)
    return env


def _cli(
    *args: str, env: Mapping[str, str | None] | None = None, input: str | None = None
) -> Result:
    result = CliRunner().invoke(app, list(args), env=env or _env(), input=input)
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _snapshot(folder: Path, but: Path | None = None) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under `folder` (except those under `but`) with its mode and its bytes."""
    entries: dict[str, tuple[int, bytes | None]] = {".": (folder.stat().st_mode, None)}
    for path in sorted(folder.rglob("*")):
        if but is not None and path.is_relative_to(but):
            continue
        content = path.read_bytes() if path.is_file() else None
        entries[str(path.relative_to(folder))] = (path.lstat().st_mode, content)
    return entries


def _real_home(home: Path, database_url: str) -> dict[str, str | None]:
    """An installation as an operator makes it: init, import an order, enable the shop."""
    env = _env(SHELFLIFE_HOME=str(home), SHELFLIFE_DATABASE_URL=database_url)
    imported = "\n".join(lines(order(NR, shipped_at=T0 + days(1)))) + "\n"
    assert _cli("init", env=env).exit_code == 0
    assert _cli("import", "-", env=env, input=imported).exit_code == 0
    assert _cli("feature", "enable", "--shop", "main", env=env).exit_code == 0
    return env


def _refusal(home: Path) -> str:
    return (
        f"error: {home} is not empty and was not made by the demo (it has no {MARKER} file); "
        "the demo only uses a new or empty folder, so that it never touches real data. "
        "Choose another folder\n"
    )


# -- it refuses every folder that may hold real data ------------------------------------------


@pytest.mark.parametrize("fresh", [False, True], ids=["plain", "fresh"])
def test_demo_refuses_a_real_home_and_changes_nothing(
    database_url: str, tmp_path: Path, fresh: bool
) -> None:
    home = tmp_path / "real"
    env = _real_home(home, database_url)
    shown_before = _cli("show", NR, "--json", env=env).stdout
    before = _snapshot(tmp_path)  # the home and, on SQLite, the database file beside it

    result = _cli("demo", "--home", str(home), *(["--fresh"] if fresh else []), *SMALL)

    assert (result.exit_code, result.stdout, result.stderr) == (2, "", _refusal(home))
    assert _snapshot(tmp_path) == before
    assert _cli("show", NR, "--json", env=env).stdout == shown_before
    assert json.loads(_cli("shop", "list", "--json", env=env).stdout)[0]["name"] == "main"


@pytest.mark.parametrize("fresh", [False, True], ids=["plain", "fresh"])
def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, fresh: bool) -> None:
    home = tmp_path / "photos"
    home.mkdir()
    (home / "holiday.jpg").write_bytes(b"\xff\xd8 not really a photo")
    (home / "nested").mkdir()
    (home / "nested" / "notes.txt").write_text("keep me\n")
    before = _snapshot(home)

    result = _cli("demo", "--home", str(home), *(["--fresh"] if fresh else []), *SMALL)

    assert (result.exit_code, result.stderr) == (2, _refusal(home))
    assert _snapshot(home) == before


@pytest.mark.parametrize("fresh", [False, True], ids=["plain", "fresh"])
def test_demo_refuses_a_file_in_place_of_the_folder(tmp_path: Path, fresh: bool) -> None:
    home = tmp_path / "file"
    home.write_text("not a folder\n")

    result = _cli("demo", "--home", str(home), *(["--fresh"] if fresh else []), *SMALL)

    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {home} is not a folder; the demo needs a new or empty folder\n",
    )
    assert home.read_text() == "not a folder\n"


def test_demo_with_a_bad_setting_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "demo"

    result = _cli("demo", "--home", str(home), *SMALL, env=_env(SHELFLIFE_BATCH_SIZE="0"))

    assert (result.exit_code, result.stderr) == (
        2,
        "error: SHELFLIFE_BATCH_SIZE: must be a whole number from 1 to 100000\n",
    )
    assert not home.exists()


def test_demo_never_uses_the_database_archive_or_key_named_in_the_environment(
    database_url: str, tmp_path: Path
) -> None:
    """An operator's shell exports the real installation's settings; the demo must not follow
    them into the real database, archive and key."""
    real = tmp_path / "real"
    real_env = _real_home(real, database_url)
    shown_before = _cli("show", NR, "--json", env=real_env).stdout
    demo_home = tmp_path / "demo"
    before = _snapshot(tmp_path, but=demo_home)
    exported = _env(
        SHELFLIFE_HOME=str(real),
        SHELFLIFE_DATABASE_URL=database_url,
        SHELFLIFE_ARCHIVE_URL=(real / "archive").as_uri(),
        SHELFLIFE_MASTER_KEY_FILE=str(real / "master.key"),
    )

    result = _cli("demo", "--home", str(demo_home), *SMALL, env=exported)

    assert result.exit_code == 0, result.output
    assert _snapshot(tmp_path, but=demo_home) == before
    assert _cli("show", NR, "--json", env=real_env).stdout == shown_before
    assert [s["name"] for s in json.loads(_cli("shop", "list", "--json", env=real_env).stdout)] == [
        "main"
    ]
    assert {"shelflife.db", "master.key", "archive", MARKER} <= {
        p.name for p in demo_home.iterdir()
    }
    assert (
        "SHELFLIFE_DATABASE_URL and SHELFLIFE_ARCHIVE_URL and SHELFLIFE_MASTER_KEY_FILE set in "
        "this environment would win over the demo folder's settings: unset them before pasting "
        "these.\n"
    ) in result.stdout


# -- it works in a new, an empty or its own folder ---------------------------------------------


def test_demo_starts_over_in_a_folder_it_made_and_tells_the_same_tour(tmp_path: Path) -> None:
    """What `make demo` does twice in a row; the folder's name is hostile on purpose."""
    home = tmp_path / "demo [bold]x :smile: \x1b[31m\u202e"

    first = _cli("demo", "--home", str(home), *SMALL)
    (home / "left-over.txt").write_text("from the first tour\n")
    second = _cli("demo", "--home", str(home), "--fresh", *SMALL)

    assert (first.exit_code, second.exit_code) == (0, 0)
    key_id = re.compile(r"key id mk-[0-9a-f]{8}")  # each fresh start makes a new master key
    assert key_id.sub("key id …", second.stdout) == key_id.sub("key id …", first.stdout)
    assert not (home / "left-over.txt").exists()
    assert (home / MARKER).read_text().startswith("Made by `shelflife demo`")
    assert re.search(
        rf"ok master key {re.escape(printable(str(home)))}/master\.key \(created, mode 0600, "
        r"key id mk-[0-9a-f]{8}\)\n",
        second.stdout,
    )
    assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", second.stdout) is None


def test_demo_without_fresh_reuses_the_folder_it_made(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    home.mkdir()  # an empty folder is as good as a new one

    first = _cli("demo", "--home", str(home), *SMALL)
    again = _cli("demo", "--home", str(home), *SMALL)

    assert (first.exit_code, again.exit_code) == (0, 0), again.output
    assert re.search(
        rf"ok master key {re.escape(str(home))}/master\.key \(kept, key id ", again.stdout
    )


# -- what it suggests shows what it said -------------------------------------------------------


def _indented_after(lines: list[str], heading: str) -> list[str]:
    """The indented lines of the block that follows `heading` (its prose lines skipped)."""
    block: list[str] = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("  "):
            block.append(line.strip())
        elif block:
            break
    return block


def test_the_commands_the_demo_suggests_show_what_it_described(tmp_path: Path) -> None:
    home = tmp_path / "demo [bold]x :smile: ü"

    tour = _cli("demo", "--home", str(home), *TOUR)

    assert tour.exit_code == 0, tour.output
    out = tour.stdout.splitlines()
    retrieved = re.search(
        r"^Retrieved order (\S+): state retrieved, read-only, masked again on (\S+)$",
        tour.stdout,
        flags=re.MULTILINE,
    )
    assert retrieved is not None, tour.stdout
    order_nr, remask_due = retrieved.groups()
    overdue = Counter(
        {
            reason: int(count)
            for count, reason in (
                line.split(maxsplit=1)
                for line in _indented_after(
                    out, "Still overdue at the end, and why (see `shelflife compliance`):"
                )
            )
        }
    )
    assert sum(overdue.values()) > 0
    shops = re.search(r"shops ([^)]*)\)", tour.stdout)
    assert shops is not None
    ended = re.search(r"^The demo's calendar ended at (\S+);", tour.stdout, flags=re.MULTILINE)
    assert ended is not None
    as_of = ended.group(1)
    suggested = [
        shlex.split(line, comments=True) for line in _indented_after(out, "What to look at next")
    ]
    assert [words[:2] for words in suggested] == [
        ["shelflife", "--help"],
        ["shelflife", "shop"],
        ["shelflife", "compliance"],
        ["shelflife", "show"],
        ["find", str(home / "archive")],
    ]
    ran: dict[str, Result] = {}
    for words in suggested[:-1]:
        ran[words[1]] = _cli(*words[1:])
    compliance_json = _cli(*suggested[2][1:], "--json")
    show_json = _cli(*suggested[3][1:], "--json")

    assert suggested[2] == ["shelflife", "compliance", "--home", str(home), "--as-of", as_of]
    assert suggested[3] == ["shelflife", "show", order_nr, "--home", str(home), "--as-of", as_of]
    assert ran["--help"].exit_code == 0
    assert "Usage: shelflife" in ran["--help"].stdout
    assert ran["shop"].exit_code == 0
    assert [s["name"] for s in json.loads(_cli(*suggested[1][1:], "--json").stdout)] == (
        shops.group(1).split(", ")
    )
    found = json.loads(compliance_json.stdout)
    expected_code = 1 if found["violations"] else 0  # holds alone are no alarm
    assert (ran["compliance"].exit_code, compliance_json.exit_code) == (expected_code,) * 2
    listed = found["violations"] + found["holds"]
    blockers = [  # a reason names its order, document or date after the blocker itself
        {re.sub(r"(: .*| since .*)$", "", reason) for reason in row["reasons"]} for row in listed
    ]
    assert Counter(b for row in blockers for b in row) == overdue
    assert ran["show"].exit_code == 0
    assert ran["show"].stdout.splitlines()[0].endswith(" state retrieved")
    shown = json.loads(show_json.stdout)
    assert (shown["order_nr_external"], shown["retention"]["state"]) == (order_nr, "retrieved")
    assert shown["retention"]["remask_due"] == remask_due
    assert shown["customer_history"][-1]["text"] == "Demo: buyer returned an item"
    assert {p.suffix for p in (home / "archive").rglob("*") if p.is_file()} == {".sls"}


def test_the_suggested_commands_carry_the_demos_calendar_not_today(tmp_path: Path) -> None:
    """Without --as-of, `compliance` of the demo's data today would report what the demo never
    said (every buyer left open months ago): the date is what makes the commands true."""
    home = tmp_path / "demo"

    tour = _cli("demo", "--home", str(home), *SMALL)

    assert tour.exit_code == 0
    assert (
        f"  shelflife compliance --home {home} --as-of 2026-02-01T02:00:00+01:00\n" in tour.stdout
    )
    assert (
        _cli("compliance", "--home", str(home), "--as-of", "2026-02-01T02:00:00+01:00").exit_code
        == 0
    )


def test_cli_doc_names_the_marker_the_demo_writes() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    demo_section = text[text.index("## shelflife demo") :]

    assert f"`{MARKER}`" in demo_section
    assert "refused with exit 2 and" in demo_section


# -- `make demo`: the tour, then a login per role and the web app ----------------------------


def _printed_logins(output: str) -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\s*(agent|admin|support)\s+(\S+)\s+(\S{16})\s*$", output, re.M)
    return {role: (name, password) for role, name, password in rows}


def test_demo_serve_prints_a_working_login_per_role_and_serves_the_demo_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn.run is replaced: the test checks what would be served, not that it blocks."""
    import uvicorn
    from argon2 import PasswordHasher

    from shelflife.adapters.auth import secrets as auth_secrets
    from shelflife.bootstrap import build_app
    from shelflife.config import settings_for_folder
    from shelflife.services.accounts import sign_in

    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )
    served: list[tuple[str, int, Path]] = []

    def fake_run(web: FastAPI, host: str, port: int, **_: object) -> None:
        served.append((host, port, Path(web.state.shelflife.settings.home)))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    home = tmp_path / "demo"

    first = _cli("demo", "--home", str(home), *SMALL, "--serve", "--port", "8123")
    again = _cli("demo", "--home", str(home), *SMALL, "--serve", "--port", "8123")

    assert (first.exit_code, again.exit_code) == (0, 0), again.output
    assert "Web app: http://127.0.0.1:8123  (Ctrl-C stops)" in first.stdout
    assert [(host, port) for host, port, _ in served] == [("127.0.0.1", 8123)] * 2
    assert {folder for _, _, folder in served} == {home.resolve()}
    logins, renewed = _printed_logins(first.stdout), _printed_logins(again.stdout)
    assert {role: name for role, (name, _) in logins.items()} == {
        "agent": "agent",
        "admin": "admin",
        "support": "support",
    }
    assert all(renewed[role][1] != logins[role][1] for role in logins)  # new passwords
    app = build_app(settings_for_folder(home))
    try:
        for role, (name, password) in renewed.items():
            assert sign_in(app, name, password).role.value == role
    finally:
        app.close()


def test_demo_without_serve_adds_no_login_and_serves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from shelflife.bootstrap import build_app
    from shelflife.config import settings_for_folder
    from shelflife.services.accounts import list_users

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the demo served without --serve")

    monkeypatch.setattr(uvicorn, "run", refuse)
    home = tmp_path / "demo"
    result = _cli("demo", "--home", str(home), *SMALL)
    assert result.exit_code == 0
    assert "Web app:" not in result.stdout
    app = build_app(settings_for_folder(home))
    try:
        assert list_users(app) == []
    finally:
        app.close()
