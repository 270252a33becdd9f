"""No PII leaks: after masking, none of the buyers' PII is left in the SQLite files, the archive
folder or any table; and logs, error messages and CLI output never show PII, not even when
something fails.

Only distinctive PII strings (at least 6 characters) are searched, so that short values like a
house number cannot match binary data by chance.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, LargeBinary, MetaData, Text, cast, select
from typer.testing import CliRunner

from shelflife.adapters.archive.store import ArchiveStore
from shelflife.adapters.db.tables import Customer
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveUnavailable, KeyUnavailable
from shelflife.entrypoints.cli import app as cli
from shelflife.services.importing import ImportReport, import_lines
from shelflife.services.inspection import compliance_report, show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, lines, make_app, order, pii_strings
from tests.support.fakes import UnreachableArchive

BUYERS = 4
MASK_AS_OF = T0 + days(31)


def buyer_orders(version: str = "") -> list[dict[str, Any]]:
    """One shipped, invoiced Amazon order per buyer; `version` changes every PII value."""
    return [
        order(
            f"30{i}-7654321-765432{i}",
            shipped_at=T0,
            invoiced_at=T0 + days(0.1),
            suffix=f"-{i}{version}",
        )
        for i in range(BUYERS)
    ]


def distinctive(orders: list[dict[str, Any]]) -> set[str]:
    return {s for o in orders for s in pii_strings(o) if len(s) >= 6}


FIRST, EDITED = buyer_orders(), buyer_orders("x")
PII = distinctive(FIRST) | distinctive(EDITED)
"""Everything imported, including the values an edit replaced before masking."""


def found_in(text: str | bytes) -> set[str]:
    if isinstance(text, bytes):
        return {p for p in PII if p.encode() in text}
    return {p for p in PII if p in text}


def import_edit_and_mask(app: App) -> None:
    """Import every buyer, re-import with changed PII, enable the feature, mask everyone."""
    for batch in (FIRST, EDITED):
        report = import_lines(app, lines(*batch))
        assert report.refused == []
    set_feature(app.ports(), "main", True, "test")
    assert run_retention(app.ports(), MASK_AS_OF).masked == BUYERS


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file below `root`: the SQLite database with its -wal and -shm files, the home
    folder with the archive objects, config and key."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def leaks_in_files(root: Path) -> dict[str, set[str]]:
    return {name: hits for name, data in file_bytes(root).items() if (hits := found_in(data))}


def leaks_in_tables(engine: Engine) -> dict[str, set[str]]:
    """PII found in any value of any table, every column read as text (binary columns raw)."""
    meta = MetaData()
    meta.reflect(engine)
    leaks: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            columns = [
                c if isinstance(c.type, LargeBinary) else cast(c, Text).label(c.name)
                for c in table.columns
            ]
            for row in conn.execute(select(*columns)):
                for value in row:
                    if value is None:
                        continue
                    hits = found_in(
                        bytes(value) if isinstance(value, bytes | memoryview) else value
                    )
                    if hits:
                        leaks.setdefault(table.name, set()).update(hits)
    return leaks


# -- raw files and table contents ----------------------------------------------------------------


def test_masked_pii_is_in_no_byte_of_the_sqlite_files_or_the_archive_folder(
    sqlite_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(sqlite_url, tmp_path / "home", T0)
    try:
        for batch in (FIRST, EDITED):
            import_lines(app, lines(*batch))
        before = leaks_in_files(tmp_path)
        # The search works: the current values are there in plain text before masking.
        assert distinctive(EDITED) <= set().union(*before.values())
        set_feature(app.ports(), "main", True, "test")
        assert run_retention(app.ports(), MASK_AS_OF).masked == BUYERS
        names = set(file_bytes(tmp_path))
        assert {"shelflife.db", "shelflife.db-wal", "shelflife.db-shm", "home/master.key"} <= names
        # One batch, one segment holding every buyer's record.
        assert len([n for n in names if n.startswith("home/archive/segments/")]) == 1
        assert len([n for n in names if n.startswith("home/archive/")]) == 1
        assert leaks_in_files(tmp_path) == {}
    finally:
        app.close()
    assert leaks_in_files(tmp_path) == {}


def test_masked_pii_is_in_no_table_value(database_url: str, tmp_path: Path) -> None:
    app, _clock = make_app(database_url, tmp_path / "home", T0)
    try:
        for batch in (FIRST, EDITED):
            import_lines(app, lines(*batch))
        before = leaks_in_tables(app.engine)
        assert distinctive(EDITED) <= set().union(*before.values())
        assert {"customers", "addresses", "address_history", "orders", "invoices"} <= set(before)
        set_feature(app.ports(), "main", True, "test")
        assert run_retention(app.ports(), MASK_AS_OF).masked == BUYERS
        assert leaks_in_tables(app.engine) == {}
    finally:
        app.close()


# -- logs and error messages ---------------------------------------------------------------------


def bad_lines() -> list[str]:
    """Refused lines whose wrong values are PII; their messages must name fields, not values."""
    base = order("302-1111111-1111111", suffix="-bad")
    wrong: list[dict[str, Any]] = []
    for section, key, value in (
        ("customer", "first_name", ["Geheimname-Erika"]),
        ("customer", "email", 4915112345678),
        ("customer", "birth_date", "Geheimdatum"),
        ("billing_address", "street", {"name": "Geheimweg 12"}),
        ("payment", "iban", 4000123412341234),
    ):
        line = json.loads(json.dumps(base))
        line[section][key] = value
        wrong.append(line)
    shipped = json.loads(json.dumps(base))
    shipped["shipped_at"] = "Heidestraße 99, Köln-bad"
    priced = json.loads(json.dumps(base))
    priced["items"] = [{"sku": "S", "title": "T", "qty": "Erika Geheim", "price": "Erika Geheim"}]
    raw = lines(*wrong, shipped, priced)
    return [*raw, '{"shop": "main", "customer": {"first_name": "Erika-Abgeschnitten"']


BAD_PII = {
    "Geheimname-Erika",
    "4915112345678",
    "Geheimdatum",
    "Geheimweg 12",
    "4000123412341234",
    "Heidestraße 99, Köln-bad",
    "Erika Geheim",
    "Erika-Abgeschnitten",
} | distinctive([order("302-1111111-1111111", suffix="-bad")])


def pii_in(text: str) -> set[str]:
    """Which imported (or refused) PII strings occur in `text`."""
    return {p for p in PII | BAD_PII if p in text}


def report_messages(report: ImportReport) -> str:
    return "\n".join(p.message for p in report.refused + report.notices)


def capture_everything_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG for the root logger and every logger that exists, restored after the test.

    SQLAlchemy's loggers keep SQLAlchemy's own default (WARNING): at DEBUG it dumps fetched rows,
    an explicit opt-in to seeing data. Its statement logging is checked separately below.
    """
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] != "sqlalchemy":
            caplog.set_level(logging.DEBUG, logger=name)


def test_logs_and_error_messages_never_contain_pii(
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capture_everything_at_debug(caplog)
    messages: list[str] = []
    app, clock = make_app(database_url, tmp_path / "home", T0)
    try:
        report = import_lines(app, [*lines(*FIRST), *bad_lines()])
        assert (report.created, [p.line for p in report.refused]) == (
            BUYERS,
            list(range(BUYERS + 1, BUYERS + 9)),
        )
        messages.append(report_messages(report))
        report = import_lines(app, lines(*EDITED))
        assert report.updated == BUYERS
        set_feature(app.ports(), "main", True, "test")

        real_archive: ArchiveStore = app.archive
        app.archive = UnreachableArchive()
        failed = run_retention(app.ports(), MASK_AS_OF)
        assert (failed.archive_failed, failed.masked) == (BUYERS, 0)
        app.archive = real_archive
        clock.instant = MASK_AS_OF + days(1.1)
        assert run_retention(app.ports(), clock.instant).masked == BUYERS

        nr = EDITED[0]["order_nr_external"]
        shown = show_order(app.ports(), nr).model_dump(mode="json")
        messages.append(json.dumps(shown))  # masked: the document shows no PII
        app.archive = UnreachableArchive()
        with pytest.raises(ArchiveUnavailable) as unreachable:
            retrieve_order(app.ports(), nr, "Rücksendung", "anna")
        messages.append(str(unreachable.value))
        app.archive = real_archive
        retrieve_order(app.ports(), nr, "Rücksendung", "anna")
        show_order(app.ports(), nr)  # shows the restored PII on purpose: only its logs are checked
        report = import_lines(app, lines(*buyer_orders("y")))
        assert (report.pii_ignored_masked, len(report.refused)) == (BUYERS - 1, 1)
        messages.append(report_messages(report))
        compliance_report(app.ports(), clock.instant + days(40))
        assert run_retention(app.ports(), clock.instant + days(40)).remasked == 1

        keyless = replace(app, key_path=tmp_path / "missing.key", _keys=None)
        with pytest.raises(KeyUnavailable) as no_key:
            retrieve_order(keyless.ports(), EDITED[1]["order_nr_external"], "Rücksendung", "anna")
        messages.append(str(no_key.value))
        with app.engine.connect() as conn:
            messages += [r or "" for r in conn.execute(select(Customer.archive_failure)).scalars()]
    finally:
        app.close()

    captured = capsys.readouterr()
    assert any(r.name.startswith("shelflife") for r in caplog.records)
    assert pii_in("\n".join(r.getMessage() for r in caplog.records)) == set()
    assert pii_in(caplog.text) == set()
    assert pii_in(captured.out + captured.err) == set()
    assert pii_in("\n".join(messages)) == set()


def test_sql_statement_logging_never_shows_pii(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator debugging SQL turns on SQLAlchemy's statement log (INFO). The statements may
    be logged, their parameters (the PII being written) must not be."""
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    app, _clock = make_app(database_url, tmp_path / "home", T0)
    try:
        import_edit_and_mask(app)
    finally:
        app.close()
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    assert pii_in(caplog.text) == set()


def test_overlong_pii_value_is_refused_by_line_without_echoing_it(
    database_url: str, tmp_path: Path
) -> None:
    """A value longer than its column (card_exp holds 10 characters) is a bad line like any
    other: refused with its line number and field, the other lines imported, no PII shown."""
    too_long = order("302-2222222-2222222", suffix="-long")
    too_long["payment"]["card_exp"] = "12/29 Erika Mustermann-long"
    app, _clock = make_app(database_url, tmp_path / "home", T0)
    try:
        report = import_lines(app, lines(FIRST[0], too_long, FIRST[1]))
        assert report.created == 2
        assert [p.line for p in report.refused] == [2]
        assert "payment.card_exp" in report.refused[0].message
        assert found_long(report.refused[0].message) == set()
    finally:
        app.close()


def test_pii_with_a_nul_character_is_refused_by_line_without_echoing_it(
    database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL cannot store NUL in text; such a value must be a refused line (the same on
    both backends), never a database error that aborts the import with the PII in its text."""
    with_nul = order("302-3333333-3333333", suffix="-nul")
    with_nul["gift_message"] = "Alles Gute\u0000Erika Mustermann-nul"
    app, _clock = make_app(database_url, tmp_path / "home", T0)
    try:
        report = import_lines(app, lines(FIRST[0], with_nul, FIRST[1]))
        assert report.created == 2
        assert [p.line for p in report.refused] == [2]
        assert "gift_message" in report.refused[0].message
        assert "Erika Mustermann-nul" not in report.refused[0].message
    finally:
        app.close()


def found_long(text: str) -> set[str]:
    long_pii = distinctive([order("302-2222222-2222222", suffix="-long")])
    return {p for p in long_pii | {"12/29 Erika Mustermann-long"} if p in text}


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_home(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    """A home set up through the CLI, with every buyer masked; returns the CLI environment."""
    env: dict[str, str | None] = {
        "SHELFLIFE_HOME": str(tmp_path / "home"),
        "SHELFLIFE_DATABASE_URL": database_url,
        "SHELFLIFE_ARCHIVE_URL": None,
        "SHELFLIFE_MASTER_KEY_FILE": None,
        "SHELFLIFE_DEBUG": None,
    }
    orders_file = tmp_path / "orders.jsonl"
    orders_file.write_text("\n".join(lines(*FIRST)) + "\n", encoding="utf-8")
    runner = CliRunner(env=env)
    for args in (
        ["init"],
        ["import", str(orders_file)],
        ["feature", "enable", "--shop", "main"],
        ["run", "--as-of", MASK_AS_OF.isoformat(), "--json"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        assert pii_in(result.output) == set()
    assert json.loads(result.output)["masked"] == BUYERS
    return env


NR = FIRST[0]["order_nr_external"]
UNKNOWN = "999-9999999-9999999"
AS_OF = MASK_AS_OF.isoformat()

CLI_FAILURES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    (
        "unreachable database",
        ["show", NR],
        {"SHELFLIFE_DATABASE_URL": "postgresql+psycopg://nobody@/nodb?host=/nonexistent-dir"},
        1,
        "SHELFLIFE_DATABASE_URL",
    ),
    (
        "malformed database URL",
        ["show", NR],
        {"SHELFLIFE_DATABASE_URL": "definitely not a database url"},
        2,
        "SHELFLIFE_DATABASE_URL",
    ),
    (
        "unsupported database",
        ["show", NR],
        {"SHELFLIFE_DATABASE_URL": "mysql://nobody@localhost/shelflife"},
        2,
        "SHELFLIFE_DATABASE_URL",
    ),
    ("missing key file, run", ["run", "--as-of", AS_OF], {"MISSING_KEY": "1"}, 1, "master key"),
    (
        "missing key file, retrieve",
        ["retrieve", NR, "--reason", "Rücksendung", "--user", "anna", "--as-of", AS_OF],
        {"MISSING_KEY": "1"},
        1,
        "master key",
    ),
    ("unknown order, show", ["show", UNKNOWN], {}, 2, UNKNOWN),
    (
        "unknown order, retrieve",
        ["retrieve", UNKNOWN, "--reason", "Rücksendung", "--user", "anna"],
        {},
        2,
        UNKNOWN,
    ),
    ("unknown order, ship", ["ship", UNKNOWN, "--at", AS_OF], {}, 2, UNKNOWN),
    ("bad --as-of, run", ["run", "--as-of", "yesterday"], {}, 2, "--as-of"),
    ("naive --as-of, show", ["show", NR, "--as-of", "2026-04-02T09:00:00"], {}, 2, "--as-of"),
    (
        "bad --as-of, retrieve",
        ["retrieve", NR, "--reason", "Rücksendung", "--user", "anna", "--as-of", "2026-13-01"],
        {},
        2,
        "--as-of",
    ),
    (
        "reason too long",
        ["retrieve", NR, "--reason", "x" * 51, "--user", "anna", "--as-of", AS_OF],
        {},
        2,
        "reason: ",
    ),
    (
        "reason blank",
        ["retrieve", NR, "--reason", "   ", "--user", "anna", "--as-of", AS_OF],
        {},
        2,
        "reason: ",
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "exit_code", "names"),
    [pytest.param(*case[1:], id=case[0]) for case in CLI_FAILURES],
)
def test_cli_failures_exit_with_code_and_message_without_traceback_or_pii(
    cli_home: dict[str, str | None],
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    exit_code: int,
    names: str,
) -> None:
    overrides: dict[str, str | None] = dict(env)
    if overrides.pop("MISSING_KEY", None):
        overrides["SHELFLIFE_MASTER_KEY_FILE"] = str(tmp_path / "missing.key")
    result = CliRunner(env={**cli_home, **overrides}).invoke(cli, args)
    assert (result.exit_code, isinstance(result.exception, SystemExit)) == (exit_code, True), (
        result.output
    )
    assert "Traceback" not in result.output
    assert names in result.output
    assert pii_in(result.output) == set()


def test_cli_import_reports_bad_lines_by_number_without_pii(
    cli_home: dict[str, str | None], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines(*EDITED), *bad_lines()]) + "\n", encoding="utf-8")
    result = CliRunner(env=cli_home).invoke(cli, ["import", str(bad)])
    assert (result.exit_code, isinstance(result.exception, SystemExit)) == (2, True)
    assert "Traceback" not in result.output
    for number in range(BUYERS + 1, BUYERS + 9):
        assert f"line {number}:" in result.output
    assert pii_in(result.output) == set()


def test_cli_show_of_a_masked_order_prints_pii_in(cli_home: dict[str, str | None]) -> None:
    for extra in ([], ["--json"]):
        result = CliRunner(env=cli_home).invoke(cli, ["show", NR, "--as-of", AS_OF, *extra])
        assert result.exit_code == 0, result.output
        assert NR in result.output
        assert pii_in(result.output) == set()
