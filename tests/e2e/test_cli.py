"""The `shelflife` command line end to end, on SQLite and PostgreSQL.

Most tests go through Typer's CliRunner with the environment a user would set; a few run the
installed console script in a subprocess. No output may ever contain a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import Order, ShopFeatureChange
from shelflife.domain.masking import MASKED_EMAIL, MASKED_TEXT
from shelflife.domain.policy import DEFAULT_AMAZON_ORDER_PATTERN
from shelflife.entrypoints import cli as cli_module
from shelflife.entrypoints.cli import app
from shelflife.services.demo import DEMO_START
from tests.support.builders import T0, days, lines, malformed_lines, order, pii_strings

NR = "302-1234567-1234567"
NR2 = "302-7654321-7654321"
SHIPPED = T0 + days(1)
"""Shipped 2026-03-03 (Berlin): archive due 2026-04-01, mask due 2026-04-02."""
AFTER_MASK_DUE = "2026-04-05T02:00:00+02:00"
ARCHIVE_DUE_NIGHT = "2026-04-01T02:00:00+02:00"
ERIKA_EMAIL = "erika.mustermann@example.org"
SHELFLIFE_VARIABLES = (
    "SHELFLIFE_HOME",
    "SHELFLIFE_DATABASE_URL",
    "SHELFLIFE_ARCHIVE_URL",
    "SHELFLIFE_MASTER_KEY_FILE",
    "SHELFLIFE_BATCH_SIZE",
    "SHELFLIFE_ARCHIVE_WORKERS",
    "SHELFLIFE_DEBUG",
)
SCRIPT = Path(sys.executable).with_name("shelflife")


@dataclass
class Cli:
    """Runs `shelflife` with SHELFLIFE_HOME and SHELFLIFE_DATABASE_URL set, nothing else."""

    home: Path
    database_url: str

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = dict.fromkeys(SHELFLIFE_VARIABLES)
        env["SHELFLIFE_HOME"] = str(self.home)
        env["SHELFLIFE_DATABASE_URL"] = self.database_url
        env.update({f"SHELFLIFE_{k.upper()}": v for k, v in overrides.items()})
        return env

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> Result:
        result = CliRunner().invoke(app, list(args), input=input, env=env or self.env())
        assert "Traceback" not in result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, input: str | bytes | None = None, code: int = 0) -> Any:
        result = self(*args, "--json", input=input)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    def show(self, nr: str = NR, as_of: str = AFTER_MASK_DUE) -> Any:
        return self.json("show", nr, "--as-of", as_of)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home", database_url)


@pytest.fixture
def ready(cli: Cli) -> Cli:
    cli.ok("init")
    return cli


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables 200 columns wide, so that a test can find a cell's text on one line."""
    monkeypatch.setattr(cli_module.out, "width", 200)


def _stdin(*orders: dict[str, Any]) -> str:
    return "\n".join(lines(*orders)) + "\n"


def _masked(cli: Cli) -> dict[str, Any]:
    """One Amazon order, shipped, invoiced, archived and masked; returns the imported order."""
    imported = order(NR, shipped_at=SHIPPED, invoiced_at=SHIPPED)
    cli.ok("import", "-", input=_stdin(imported))
    cli.ok("feature", "enable", "--shop", "main")
    assert cli.json("run", "--as-of", AFTER_MASK_DUE)["masked"] == 1
    return imported


# -- init --------------------------------------------------------------------------------------


def test_init_is_idempotent_and_keeps_a_private_master_key(cli: Cli) -> None:
    first = cli.ok("init")
    key_file = cli.home / "master.key"
    key = key_file.read_bytes()
    key_id = json.loads(key)["key_id"]

    second = cli.ok("init")

    ledger = (cli.home / "archive-ledger").resolve().as_uri()
    documents = f"ok document store at {(cli.home / 'documents').resolve().as_uri()}"
    assert first.stdout.splitlines()[2:] == [
        f"ok key ledger at {ledger}",
        documents,
        f"ok master key {key_file} (created, mode 0600, key id {key_id})",
        f"Back up {key_file} now (key id {key_id}), apart from the database and archive "
        "backups: without it the archive cannot be read.",
    ]
    assert second.stdout.splitlines()[2:] == [
        f"ok key ledger at {ledger}",
        documents,
        f"ok master key {key_file} (kept, key id {key_id})",
    ]
    assert (cli.home / "documents").is_dir()
    assert key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700


def test_commands_before_init_exit_1_and_say_to_run_init(cli: Cli) -> None:
    for args in (["show", NR], ["run"], ["compliance"], ["feature", "enable", "--shop", "main"]):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr == (
            f"error: no shelflife home folder at {cli.home}; run `shelflife init` "
            "(or point SHELFLIFE_HOME / --home at the existing one)\n"
        )
    assert not cli.home.exists()


def test_commands_on_an_uninitialised_database_exit_1_and_say_to_run_init(cli: Cli) -> None:
    cli.home.mkdir()

    result = cli("import", "-", input=_stdin(order()))

    assert result.exit_code == 1
    assert result.stderr == (
        "error: the database is not set up (or needs an upgrade); run `shelflife init`\n"
    )


def test_an_s3_archive_url_without_a_bucket_is_refused_clearly_and_not_stored(cli: Cli) -> None:
    s3 = cli.env(archive_url="s3:///shelflife")
    message = (
        "error: SHELFLIFE_ARCHIVE_URL: an S3 URL needs a bucket name, "
        "e.g. s3://my-archive-bucket/shelflife\n"
    )

    refused = cli("init", env=s3)

    assert (refused.exit_code, refused.stderr) == (2, message)
    assert not (cli.home / "config.json").exists()
    cli.ok("init")
    assert json.loads((cli.home / "config.json").read_text()) == {"database_url": cli.database_url}
    later = cli("run", env=s3)
    assert (later.exit_code, later.stderr) == (2, message)


def test_environment_overrides_the_database_url_stored_by_init(cli: Cli, tmp_path: Path) -> None:
    stored_url = f"sqlite:///{tmp_path}/stored.db"
    assert cli("init", env=cli.env(database_url=stored_url)).exit_code == 0
    assert json.loads((cli.home / "config.json").read_text()) == {"database_url": stored_url}
    other_home = tmp_path / "other-home"
    assert cli("init", "--home", str(other_home)).exit_code == 0
    other_key = cli.env(master_key_file=str(other_home / "master.key"))  # the database's key

    imported = cli("import", "-", input=_stdin(order()), env=other_key)
    from_env = cli("show", NR, "--json")
    from_config = cli("show", NR, env=cli.env(database_url=None))

    assert imported.exit_code == 0
    assert json.loads(from_env.stdout)["order_nr_external"] == NR
    assert from_config.exit_code == 2
    assert from_config.stderr == (
        f"error: no order with number {NR!r}; check the number or import it first\n"
    )


# -- import ------------------------------------------------------------------------------------


def test_import_from_a_file_creates_orders_and_a_second_import_changes_nothing(
    ready: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(_stdin(order(NR), order(NR2, suffix="-b")), encoding="utf-8")

    first = ready.ok("import", str(path))
    again = ready.json("import", str(path))

    assert first.stdout == (
        "created 2, updated 0, unchanged 0, personal data ignored on masked orders 0, refused 0\n"
    )
    assert again == {
        "created": 0,
        "updated": 0,
        "unchanged": 2,
        "pii_ignored_masked": 0,
        "pdfs_made": 0,
        "refused": 0,
        "problems": [],
        "notices": [],
        "notice_summary": [],
    }


def test_import_reads_standard_input_when_the_path_is_a_dash(ready: Cli) -> None:
    report = ready.json("import", "-", input=_stdin(order(NR)))

    assert (report["created"], report["refused"]) == (1, 0)
    assert ready.show(as_of=T0.isoformat())["customer"]["email"] == ERIKA_EMAIL


def test_import_reports_bad_lines_by_number_without_pii_and_exits_2(ready: Cli) -> None:
    no_date = order(NR2, suffix="-zeile3")
    del no_date["ordered_at"]
    naive = order("302-1111111-1111111", suffix="-zeile6", ordered_at=T0)
    naive["ordered_at"] = "2026-03-02T09:00:00"
    text = "\n".join(
        [
            lines(order(NR))[0],
            '{"shop": main}',
            lines(no_date)[0],
            "",
            lines(order("302-2222222-2222222", suffix="-b"))[0],
            lines(naive)[0],
        ]
    )

    report = ready.json("import", "-", input=text, code=2)
    shown = ready("import", "-", input=text)

    assert (report["created"], report["refused"]) == (2, 3)
    assert sorted(report["problems"], key=lambda p: p["line"]) == [
        {"line": 2, "message": "invalid JSON at column 10: Expecting value"},
        {"line": 3, "message": "ordered_at: is required"},
        {
            "line": 6,
            "message": "ordered_at: not an ISO 8601 timestamp with offset "
            "(e.g. 2026-01-01T09:00:00+01:00)",
        },
    ]
    assert shown.exit_code == 2
    assert "  line 3: ordered_at: is required\n" in shown.stderr
    assert [s for s in pii_strings(no_date) | pii_strings(naive) if s in shown.output] == []


def test_import_points_at_the_column_where_a_truncated_line_ends(ready: Cli) -> None:
    """A line cut off by a broken export: the column must be where it ends, not "column 1"."""
    truncated = '{"shop": "main", "order_nr_external": '

    report = ready.json("import", "-", input=f"{truncated}\n", code=2)

    assert report["problems"] == [
        {"line": 1, "message": f"invalid JSON at column {len(truncated) + 1}: Expecting value"}
    ]


def _stored_orders(cli: Cli) -> set[str]:
    engine = make_engine(cli.database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(Order.order_nr_external)).scalars())
    finally:
        engine.dispose()


def test_import_refuses_exactly_the_malformed_lines_of_a_mixed_file_and_stores_the_rest(
    cli: Cli, tmp_path: Path
) -> None:
    """One line of each malformed kind between good lines, in batches of 4: before, invalid
    UTF-8 ended the import mid-file without a report, and the other kinds ended it with
    "unexpected …Error", dropping the good lines of the batch."""
    small_batches = cli.env(batch_size="4")
    assert cli("init", env=small_batches).exit_code == 0
    raw, good, bad_at = b"", set(), []
    for n, line in enumerate(malformed_lines().values()):
        good.add(f"302-0000000-{n:07d}")
        raw += lines(order(f"302-0000000-{n:07d}", suffix=f"-{n}"))[0].encode() + b"\n"
        raw += line + b"\n"
        bad_at.append(2 * n + 2)
    raw += lines(order("302-9999999-9999999", suffix="-last"))[0].encode() + b"\n"
    good.add("302-9999999-9999999")
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(raw)

    shown = cli("import", str(path), env=small_batches)
    from_file = cli("import", str(path), "--json", env=small_batches)
    from_stdin = cli("import", "-", "--json", input=raw, env=small_batches)

    assert (shown.exit_code, from_file.exit_code, from_stdin.exit_code) == (2, 2, 2)
    assert shown.stdout.startswith(f"created {len(good)}, updated 0, unchanged 0,")
    assert [int(x) for x in re.findall(r"^  line (\d+): ", shown.stderr, re.M)] == bad_at
    for result in (from_file, from_stdin):
        report = json.loads(result.stdout)
        assert [p["line"] for p in report["problems"]] == bad_at
        assert (report["created"], report["unchanged"], report["refused"]) == (
            0,
            len(good),
            len(bad_at),
        )
    assert _stored_orders(cli) == good


def test_import_summarises_notices_by_kind_and_lists_them_with_verbose(ready: Cli) -> None:
    imported = _masked(ready)
    text = _stdin(imported, imported, imported)

    summary = ready.ok("import", "-", input=text)
    verbose = ready.ok("-v", "import", "-", input=text)

    notice = "order is masked: personal data in this line was ignored, status updated"
    counts = (
        "created 0, updated 0, unchanged 0, personal data ignored on masked orders 3, refused 0"
    )
    assert summary.stdout == f"{counts}\nnotice (3 lines): {notice}\n"
    assert verbose.stdout == (
        f"{counts}\nnotice (3 lines): {notice}\n"
        f"  line 1: {notice}\n  line 2: {notice}\n  line 3: {notice}\n"
    )


def test_import_prints_the_first_20_refused_lines_and_counts_the_rest(ready: Cli) -> None:
    text = "{\n" * 25

    shown = ready("import", "-", input=text)
    verbose = ready("-v", "import", "-", input=text)

    problem = "invalid JSON at column 2: Expecting property name enclosed in double quotes"
    assert shown.exit_code == 2
    assert shown.stderr == "".join(f"  line {n}: {problem}\n" for n in range(1, 21)) + (
        "  … and 5 more refused lines (all of them with `shelflife -v import` or --json)\n"
    )
    assert [int(n) for n in re.findall(r"^  line (\d+): ", verbose.stderr, re.M)] == list(
        range(1, 26)
    )


def test_import_of_a_missing_file_exits_2(ready: Cli, tmp_path: Path) -> None:
    result = ready("import", str(tmp_path / "nope.jsonl"))

    assert (result.exit_code, result.stderr) == (2, f"error: {tmp_path}/nope.jsonl: no such file\n")


# -- shops and shipping ------------------------------------------------------------------------


def test_feature_enable_and_disable_switch_the_shop_and_are_recorded(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order()))

    enabled = ready.ok("feature", "enable", "--shop", "main", "--user", "anna")
    again = ready.ok("feature", "enable", "--shop", "main", "--user", "anna")
    listed_on = ready.json("shop", "list")
    disabled = ready.ok("feature", "disable", "--shop", "main", "--user", "ben")
    listed_off = ready.json("shop", "list")

    assert enabled.stdout == "retention enabled for shop main\n"
    assert again.stdout == "retention enabled for shop main (already)\n"
    assert disabled.stdout == "retention disabled for shop main\n"
    shop: dict[str, object] = {
        "name": "main",
        "time_zone": "Europe/Berlin",
        "amazon_order_pattern": DEFAULT_AMAZON_ORDER_PATTERN,
        "kept_tax_fields": [],
        "tax_fields_basis": None,
    }
    assert listed_on == [{**shop, "retention_enabled": True}]
    assert listed_off == [{**shop, "retention_enabled": False}]
    engine = make_engine(ready.database_url)
    try:
        with engine.connect() as conn:
            changes = conn.execute(
                select(ShopFeatureChange.enabled, ShopFeatureChange.changed_by).order_by(
                    ShopFeatureChange.id
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(c) for c in changes] == [(True, "anna"), (False, "ben")]


def test_shop_tax_fields_needs_a_basis_is_listed_and_audited(ready: Cli, wide: None) -> None:
    ready.ok("import", "-", input=_stdin(order()))
    basis = "reverse-charge records (UStG §14a)"

    no_basis = ready("shop", "tax-fields", "main", "--keep", "vat_id")
    unknown = ready("shop", "tax-fields", "main", "--keep", "vat_id,street", "--basis", basis)
    neither = ready("shop", "tax-fields", "main")
    both = ready("shop", "tax-fields", "main", "--keep", "zip", "--clear")
    kept = ready.ok(
        "shop", "tax-fields", "main", "--keep", "zip, vat_id", "--basis", basis, "--user", "anna"
    )
    listed = ready.json("shop", "list")
    table = ready.ok("shop", "list").stdout
    cleared = ready.ok("shop", "tax-fields", "main", "--clear", "--user", "ben")
    audit = ready.json("audit", "list")

    assert [(r.exit_code, r.stderr) for r in (no_basis, unknown, neither, both)] == [
        (2, "error: legal basis: required when keeping tax fields, e.g. the law or rule\n"),
        (2, "error: tax fields: street not among vat_id, zip, state\n"),
        (2, "error: give either --keep FIELDS with --basis, or --clear\n"),
        (2, "error: give either --keep FIELDS with --basis, or --clear\n"),
    ]
    assert kept.stdout == f"shop main: tax fields kept: vat_id, zip ({basis})\n"
    assert (listed[0]["kept_tax_fields"], listed[0]["tax_fields_basis"]) == (
        ["vat_id", "zip"],
        basis,
    )
    assert f"vat_id, zip ({basis})" in table
    assert cleared.stdout == "shop main: tax fields kept: none\n"
    changes = [e for e in audit if e["action"] == "shop.tax_fields"]
    assert [(e["actor"], e["subject"], e["detail"]) for e in changes] == [
        ("ben", "main", {"kept": None, "basis": None}),
        ("anna", "main", {"kept": "vat_id,zip", "basis": basis}),
    ]


def test_feature_enable_for_an_unknown_shop_exits_2(ready: Cli) -> None:
    result = ready("feature", "enable", "--shop", "nope")

    assert (result.exit_code, result.stderr) == (
        2,
        "error: no shop named 'nope'; shops are created by importing their orders\n",
    )


def test_ship_marks_an_order_shipped(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR)))

    shipped = ready.ok("ship", NR, "--at", "2026-03-03T10:00:00+01:00")

    assert shipped.stdout == f"order {NR} shipped at 2026-03-03T09:00:00+00:00\n"
    assert ready.show()["shipped_at"] == "2026-03-03T09:00:00+00:00"


def test_ship_with_a_timestamp_without_offset_exits_2(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR)))

    result = ready("ship", NR, "--at", "2026-03-03T10:00:00")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: --at: '2026-03-03T10:00:00' is not an ISO 8601 timestamp with offset, "
        "e.g. 2026-03-01T02:00:00+01:00\n"
    )
    assert ready.show()["shipped_at"] is None


# -- run, show, compliance ---------------------------------------------------------------------


def test_run_json_reports_integer_counts_and_a_second_run_does_nothing(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    keys = ("archived", "masked", "archive_failed", "retried", "remasked")

    first = ready.json("run", "--as-of", AFTER_MASK_DUE)
    second = ready.json("run", "--as-of", AFTER_MASK_DUE)

    assert all(type(first[k]) is int and type(second[k]) is int for k in keys)
    assert {k: first[k] for k in keys} == {
        "archived": 1,
        "masked": 1,
        "archive_failed": 0,
        "retried": 0,
        "remasked": 0,
    }
    assert {k: second[k] for k in keys} == dict.fromkeys(keys, 0)
    assert (first["shops"], first["as_of"]) == (1, "2026-04-05T00:00:00+00:00")


def test_run_with_two_workers_is_one_run_on_postgresql_and_refused_on_sqlite(
    ready: Cli, database_url: str
) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")

    if database_url.startswith("sqlite"):
        refused = ready("run", "--workers", "2", "--as-of", AFTER_MASK_DUE)
        assert (refused.exit_code, refused.stderr) == (
            2,
            "error: several workers need PostgreSQL: SQLite lets one process write at a time, "
            "so a run on SQLite has one worker\n",
        )
        assert ready.json("runs") == []
        return
    report = ready.json("run", "--workers", "2", "--as-of", AFTER_MASK_DUE)

    assert (report["archived"], report["masked"], report["shops"]) == (1, 1, 1)
    assert [(r["archived"], r["masked"]) for r in ready.json("runs")] == [(1, 1)]
    assert ready.show()["retention"]["state"] == "masked"


def test_run_says_when_no_shop_has_the_feature_enabled(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))

    result = ready.ok("run", "--as-of", AFTER_MASK_DUE)

    assert "no shop has the feature enabled; see `shelflife feature enable`\n" in result.stdout
    assert ready.show()["retention"]["state"] == "active"


def test_show_json_follows_an_order_through_its_retention_states(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")

    active = ready.show(as_of=(SHIPPED + timedelta(days=5)).isoformat())["retention"]
    due = ready.show(as_of=ARCHIVE_DUE_NIGHT)["retention"]
    archived_run = ready.json("run", "--as-of", ARCHIVE_DUE_NIGHT)
    archived = ready.show(as_of=ARCHIVE_DUE_NIGHT)["retention"]
    ready.json("run", "--as-of", AFTER_MASK_DUE)
    masked = ready.show()

    assert (active["state"], active["archive_due"], active["mask_due"]) == (
        "active",
        "2026-04-01",
        "2026-04-02",
    )
    assert due["state"] == "ready_for_archiving"
    assert (archived_run["archived"], archived_run["masked"]) == (1, 0)
    assert (archived["state"], archived["archived_at"]) == (
        "archived",
        "2026-04-01T00:00:00+00:00",
    )
    assert masked["retention"]["state"] == "masked"
    assert masked["retention"]["masked_at"] == "2026-04-05T00:00:00+00:00"
    assert (masked["customer"]["email"], masked["customer"]["last_name"]) == (
        MASKED_EMAIL,
        MASKED_TEXT,
    )


def test_unknown_order_exits_2_with_a_clear_message(ready: Cli) -> None:
    message = "error: no order with number 'nope'; check the number or import it first\n"
    for args in (
        ["show", "nope"],
        ["ship", "nope", "--at", "2026-03-03T10:00:00+01:00"],
        ["retrieve", "nope", "--reason", "return", "--user", "anna"],
    ):
        result = ready(*args)
        assert (result.exit_code, result.stderr) == (2, message)


def test_compliance_exits_1_while_a_buyer_is_overdue_and_0_once_masked(
    ready: Cli, wide: None
) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))

    overdue = ready.json("compliance", "--as-of", AFTER_MASK_DUE, code=1)
    table = ready("compliance", "--as-of", AFTER_MASK_DUE)
    ready.ok("feature", "enable", "--shop", "main")
    ready.json("run", "--as-of", AFTER_MASK_DUE)
    compliant = ready.json("compliance", "--as-of", AFTER_MASK_DUE)
    text = ready.ok("compliance", "--as-of", AFTER_MASK_DUE)

    customer = ready.show()["customer"]["ref"]
    assert overdue == {
        "violations": [
            {
                "shop": "main",
                "customer": customer,
                "orders": [NR],
                "reasons": ["feature disabled", "no verified archive of the current data yet"],
                "since": "2026-04-02",
                "expected_mask_date": None,
                "held_by": [],
            }
        ],
        "holds": [],
        "archive_problems": [],
        "warnings": [],
    }
    assert table.exit_code == 1
    assert "1 violation(s): past the 30-day limit because something is wrong" in table.stdout
    reasons = [line.rstrip() for line in table.stdout.splitlines() if line.rstrip()][-2:]
    assert [r.split("   ")[-1].strip() for r in reasons] == [
        "feature disabled",
        "no verified archive of the current data yet",
    ]
    assert compliant == {"violations": [], "holds": [], "archive_problems": [], "warnings": []}
    assert text.stdout == (
        "compliant: no Amazon buyer's data is kept past the limit without a legal reason\n"
    )


def test_compliance_with_only_holds_exits_0_and_names_the_open_order(
    ready: Cli, wide: None
) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED), order(NR2)))
    ready.ok("feature", "enable", "--shop", "main")
    ready.json("run", "--as-of", AFTER_MASK_DUE)

    report = ready.json("compliance", "--as-of", AFTER_MASK_DUE)
    text = ready.ok("compliance", "--as-of", AFTER_MASK_DUE)
    found = ready.json("find", report["holds"][0]["customer"])

    assert report["violations"] == []
    assert [(h["orders"], h["reasons"], h["expected_mask_date"]) for h in report["holds"]] == [
        ([NR, NR2], [f"open order: {NR2}"], None)
    ]
    assert "1 hold(s): kept for a legal reason, masked once it ends" in text.stdout
    assert f"open order: {NR2}" in text.stdout
    assert text.stdout.endswith(
        "compliant: no Amazon buyer's data is kept past the limit without a legal reason\n"
    )
    assert sorted(o["order_nr_external"] for o in found["orders"]) == [NR, NR2]


def test_compliance_before_the_limit_exits_0(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))

    result = ready.json("compliance", "--as-of", ARCHIVE_DUE_NIGHT)

    assert result == {"violations": [], "holds": [], "archive_problems": [], "warnings": []}


# -- archive failure and retry -----------------------------------------------------------------


def _broken_archive_url(tmp_path: Path) -> str:
    """A file where the archive folder should be: every write fails as on a broken mount."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return f"file://{blocker}/archive"


def test_a_failed_archive_is_reported_and_retried_a_day_later(ready: Cli, tmp_path: Path) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    broken = ready.env(archive_url=_broken_archive_url(tmp_path))

    night1 = ready("run", "--as-of", "2026-04-01T02:00:00+02:00", "--json", env=broken)
    failed = ready.show(as_of="2026-04-01T12:00:00+02:00")["retention"]
    night2 = ready.json("run", "--as-of", "2026-04-02T02:00:00+02:00")

    assert night1.exit_code == 0
    assert (json.loads(night1.stdout)["archive_failed"], json.loads(night1.stdout)["masked"]) == (
        1,
        0,
    )
    assert (failed["state"], failed["archive_retry_at"]) == (
        "archive_failed",
        "2026-04-01T22:00:00+00:00",  # the next local midnight (CEST)
    )
    assert (night2["retried"], night2["archived"], night2["masked"]) == (1, 1, 1)


def test_a_failed_archive_is_retried_by_the_next_nightly_run_that_starts_a_little_earlier(
    ready: Cli, tmp_path: Path
) -> None:
    """A nightly cron job never starts at exactly the same millisecond. The spec: a failed
    archive is "ready for archiving" again after one day and the next night's run retries it;
    otherwise this buyer is masked a day late, past Amazon's 30 days."""
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    broken = ready.env(archive_url=_broken_archive_url(tmp_path))

    night1 = ready("run", "--as-of", "2026-04-01T02:00:01+02:00", "--json", env=broken)
    night2 = ready.json("run", "--as-of", "2026-04-02T02:00:00+02:00")

    assert json.loads(night1.stdout)["archive_failed"] == 1
    assert (night2["retried"], night2["archived"], night2["masked"]) == (1, 1, 1)


# -- the operator's view: dry run, runs, find, show, orphans ----------------------------------


def test_run_dry_run_reports_what_the_run_then_does_and_writes_nothing(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED), order(NR2, suffix="-b")))
    ready.ok("feature", "enable", "--shop", "main")
    before = ready.show()
    keys = ("shops", "archived", "archive_failed", "retried", "masked", "remasked")

    planned = ready.json("run", "--dry-run", "--as-of", AFTER_MASK_DUE)
    text = ready.ok("run", "--dry-run", "--as-of", AFTER_MASK_DUE)
    unchanged = (ready.show(), ready.json("runs"), list((ready.home / "archive").rglob("*.sls")))
    done = ready.json("run", "--as-of", AFTER_MASK_DUE)

    assert unchanged == (before, [], [])
    assert (planned["dry_run"], done["dry_run"]) == (True, False)
    assert (
        {k: planned[k] for k in keys}
        == {k: done[k] for k in keys}
        == {
            "shops": 1,
            "archived": 1,
            "archive_failed": 0,
            "retried": 0,
            "masked": 1,
            "remasked": 0,
        }
    )
    title = text.stdout.splitlines()[0]
    assert title.strip() == "dry run as of 2026-04-05T00:00:00+00:00 (nothing written)"


def test_run_dry_run_works_without_the_master_key(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    (ready.home / "master.key").rename(ready.home / "master.key.away")

    planned = ready.json("run", "--dry-run", "--as-of", AFTER_MASK_DUE)

    assert (planned["archived"], planned["masked"]) == (1, 1)


def test_runs_lists_each_run_with_its_real_start_time_and_counts(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    ready.ok("feature", "enable", "--shop", "main")
    wall_before = datetime.now(UTC)
    ready.json("run", "--as-of", AFTER_MASK_DUE)
    wall_after = datetime.now(UTC)

    (run,) = ready.json("runs")
    text = ready.ok("runs")

    started = datetime.fromisoformat(run["started_at"])
    assert wall_before <= started <= datetime.fromisoformat(run["finished_at"]) <= wall_after
    assert {k: v for k, v in run.items() if k not in ("started_at", "finished_at")} == {
        "id": 1,
        "status": "finished",
        "as_of": "2026-04-05T00:00:00+00:00",
        "duration_seconds": run["duration_seconds"],
        "shops": 1,
        "archived": 1,
        "archive_failed": 0,
        "retried": 0,
        "masked": 1,
        "remasked": 0,
        "mask_refused": 0,
        "verified_objects": 0,
        "integrity_problems": 0,
        "error": None,
    }
    assert text.stdout.startswith("run 1: finished, as of 2026-04-05 00:00:00 UTC, started ")
    assert text.stdout.endswith(
        "; shops 1, archived 1, failed 0, retried 0, masked 1, remasked 0\n"
    )


def test_runs_before_any_run_says_so(ready: Cli) -> None:
    assert ready.ok("runs").stdout == "no run recorded yet; see `shelflife run`\n"


def test_find_lists_a_masked_order_by_invoice_number_and_an_open_one_by_e_mail(ready: Cli) -> None:
    _masked(ready)
    other = order(NR2, suffix="-b")
    other["customer"]["email"] = "Jan.Kowalski@example.org"
    ready.ok("import", "-", input=_stdin(other))

    by_invoice = ready.json("find", f"RE-{NR}")
    by_email = ready.ok("find", "jan.kowalski@EXAMPLE.org")
    nothing = ready.ok("find", ERIKA_EMAIL)

    assert [(o["order_nr_external"], o["state"], o["matched"]) for o in by_invoice["orders"]] == [
        (NR, "masked", "invoice number")
    ]
    assert (by_invoice["truncated"], by_invoice["limit"]) == (False, 50)
    customer = ready.show(NR2)["customer"]["ref"]
    assert by_email.stdout == (
        f"{NR2}  shop main, amazon, buyer {customer}, ordered 2026-03-02, not shipped, "
        "state active (matched by e-mail or name)\n"
    )
    assert nothing.stdout == "no order matches\n"


def test_show_names_channel_items_payment_holds_and_the_buyers_mask_date_in_local_time(
    ready: Cli,
) -> None:
    young = order(NR2, shipped_at=SHIPPED + timedelta(days=10))
    ready.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED, invoiced_at=SHIPPED), young))
    ready.ok("feature", "enable", "--shop", "main")
    ready.json("run", "--as-of", AFTER_MASK_DUE)

    shown = ready.ok("show", NR, "--as-of", AFTER_MASK_DUE).stdout
    ref = ready.show()["customer"]["ref"]

    assert shown.splitlines()[:7] == [
        f"{NR}  shop main, Amazon order, state archived",
        "  times in Europe/Berlin",
        "  ordered: 2026-03-02 10:00 CET",
        "  shipped: 2026-03-03 10:00 CET",
        "  archived: 2026-04-05 02:00 CEST (current)",
        "  buyer's mask date: 2026-04-12",
        f"  mask held by: order shipped less than 30 days ago {NR2} (until 2026-04-12)",
    ]
    assert f"customer {ref}: Erika Mustermann  {ERIKA_EMAIL}\n" in shown
    assert "items:\n  2 x BK-1 Notizbuch  9.99\n" in shown
    assert "payment: VISA, card ending 1111, IBAN ending 2051, account ending 6789\n" in shown
    assert f"  invoice RE-{NR} 19.98 2026-03-03 10:00 CET\n" in shown
    assert "4111111111111111" not in shown  # the card number is never printed whole


def test_show_of_a_shop_order_names_the_channel_and_no_archive_or_mask_dates(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order("SHOP-100006", shipped_at=SHIPPED)))

    shown = ready.ok("show", "SHOP-100006", "--as-of", AFTER_MASK_DUE).stdout
    data = ready.show("SHOP-100006")

    assert shown.splitlines()[:5] == [
        "SHOP-100006  shop main, shop order (not Amazon), state active",
        "  times in Europe/Berlin",
        "  ordered: 2026-03-02 10:00 CET",
        "  shipped: 2026-03-03 10:00 CET",
        "  not an Amazon order: its data is neither archived nor masked",
    ]
    assert [
        k for k in ("archive_due", "mask_due", "expected_mask_date") if data["retention"][k]
    ] == []


def test_find_and_show_print_markup_looking_data_as_itself(ready: Cli) -> None:
    odd = order("[/x]", shipped_at=SHIPPED, suffix="[bold]")
    ready.ok("import", "-", input=_stdin(odd))

    found = ready.ok("find", "erika[bold]").stdout
    shown = ready.ok("show", "[/x]", "--as-of", AFTER_MASK_DUE).stdout

    assert found.startswith("[/x]  shop main, shop, buyer C1, ordered 2026-03-02, shipped ")
    assert "customer C1: Erika[bold] Mustermann[bold]  erika.mustermann@example.org[bold]\n" in (
        shown
    )
    assert "payment: VISA[bold], card ending old], IBAN ending old]" in shown


def test_archive_orphans_lists_and_deletes_what_a_killed_run_left(ready: Cli) -> None:
    _masked(ready)
    archive = ready.home / "archive"
    (recorded,) = archive.rglob("*.sls")  # the run's one segment
    unreferenced = recorded.with_name(f"{recorded.name[:6]}-{'0' * 16}.sls")
    unreferenced.write_bytes(recorded.read_bytes())
    temp = recorded.with_name(".tmp-k1ll3d")
    temp.write_bytes(b"half")
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    for path in (recorded, unreferenced, temp):
        os.utime(path, (two_days_ago, two_days_ago))
    key = unreferenced.relative_to(archive).as_posix()

    listed = ready.json("archive", "orphans")
    deleted = ready.json("archive", "orphans", "--delete", "--older-than", "1")
    too_short = ready("archive", "orphans", "--older-than", "0")

    assert [(o["key"], o["kind"], o["deleted"]) for o in listed["orphans"]] == [
        (temp.relative_to(archive).as_posix(), "temporary", False),
        (key, "unreferenced", False),
    ]
    assert (deleted["deleted"], deleted["deletion_allowed"]) == (2, True)
    assert sorted(archive.rglob("*"), key=str)[-1:] == [recorded]
    assert (unreferenced.exists(), temp.exists()) == (False, False)
    assert too_short.exit_code == 2


def test_archive_failures_of_a_run_are_one_warning_line(database_url: str, tmp_path: Path) -> None:
    env = _script_env(SHELFLIFE_HOME=str(tmp_path / "home"), SHELFLIFE_DATABASE_URL=database_url)
    buyers = [order(f"30{i}-1234567-1234567", shipped_at=SHIPPED, suffix=f"-{i}") for i in range(5)]
    _script(["init"], env)
    _script(["import", "-"], env, stdin=_stdin(*buyers))
    _script(["feature", "enable", "--shop", "main"], env)
    broken = dict(env, SHELFLIFE_ARCHIVE_URL=_broken_archive_url(tmp_path))

    run = _script(["run", "--as-of", AFTER_MASK_DUE, "--json"], broken)

    assert run.returncode == 0
    assert json.loads(run.stdout)["archive_failed"] == 5
    (line,) = run.stderr.splitlines()
    assert line.endswith(
        " WARNING shelflife.services.pipeline: archive failed for 5 buyer(s), retried the next "
        f"day; first reasons: cannot write to the archive folder {tmp_path}/not-a-folder/archive: "
        "Not a directory"
    )


# -- retrieval ---------------------------------------------------------------------------------


def test_retrieve_with_a_reason_restores_the_order_read_only_and_records_it(ready: Cli) -> None:
    _masked(ready)

    result = ready.json(
        "retrieve",
        NR,
        "--reason",
        "Rücksendung",
        "--user",
        "anna",
        "--as-of",
        "2026-04-06T10:00:00+02:00",
    )
    shown = ready.show(as_of="2026-04-06T11:00:00+02:00")

    assert result == {
        "order_nr_external": NR,
        "restored_rows": 5,
        "retrieved_at": "2026-04-06T08:00:00+00:00",
    }
    assert shown["customer"]["email"] == ERIKA_EMAIL
    assert shown["invoices"][0]["billing_name"] == "Erika Mustermann"
    assert (shown["retention"]["state"], shown["retention"]["read_only"]) == ("retrieved", True)
    assert shown["retention"]["remask_due"] == "2026-05-06"
    assert shown["customer_history"][-1] == {
        "recorded_at": "2026-04-06T08:00:00+00:00",
        "event": "retrieved",
        "user_name": "anna",
        "text": "Rücksendung",
    }


def test_retrieve_accepts_a_reason_of_exactly_50_characters(ready: Cli) -> None:
    _masked(ready)

    result = ready("retrieve", NR, "--reason", "r" * 50, "--user", "anna")

    assert result.exit_code == 0
    assert result.stdout.startswith(f"order {NR} retrieved (5 records restored, read-only")
    assert ready.show()["customer_history"][-1]["text"] == "r" * 50


def test_retrieve_refuses_a_51_character_reason_and_changes_nothing(ready: Cli) -> None:
    _masked(ready)
    before = ready.show()

    result = ready("retrieve", NR, "--reason", "r" * 51, "--user", "anna")

    assert (result.exit_code, result.stderr) == (
        2,
        "error: reason: the reason has 51 characters; at most 50 are allowed\n",
    )
    assert ready.show() == before


def test_retrieve_without_a_reason_is_a_usage_error(ready: Cli) -> None:
    _masked(ready)
    before = ready.show()

    result = ready("retrieve", NR, "--user", "anna")

    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.stderr
    assert ready.show() == before


def test_retrieve_without_the_master_key_exits_1_and_changes_nothing(ready: Cli) -> None:
    _masked(ready)
    before = ready.show()
    key_file = ready.home / "master.key"
    key_id = json.loads(key_file.read_text())["key_id"]
    key_file.rename(ready.home / "master.key.away")

    result = ready("retrieve", NR, "--reason", "return", "--user", "anna")

    assert (result.exit_code, result.stderr) == (
        1,
        f"error: master key file {key_file} is missing, and this database's data is sealed "
        f"under master key {key_id}; restore the file from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to where it is)\n",
    )
    assert ready.show() == before


def test_retrieve_with_an_unreachable_archive_exits_1_and_changes_nothing(
    ready: Cli, tmp_path: Path
) -> None:
    _masked(ready)
    before = ready.show()
    empty = tmp_path / "empty-archive"
    empty.mkdir()

    result = ready(
        "retrieve",
        NR,
        "--reason",
        "return",
        "--user",
        "anna",
        env=ready.env(archive_url=f"file://{empty}"),
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: archive object segments/")
    assert result.stderr.endswith(f" is missing from {empty}\n")
    assert ready.show() == before


# -- the installed console script --------------------------------------------------------------


def _script_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")}
    env.update(values)
    return env


def _script(args: list[str], env: dict[str, str], stdin: str | None = None) -> Any:
    result = subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_installed_script_runs_the_whole_cycle(database_url: str, tmp_path: Path) -> None:
    env = _script_env(SHELFLIFE_HOME=str(tmp_path / "home"), SHELFLIFE_DATABASE_URL=database_url)
    imported = order(NR, shipped_at=SHIPPED)

    init = _script(["init"], env)
    load = _script(["import", "-", "--json"], env, stdin=_stdin(imported))
    enable = _script(["feature", "enable", "--shop", "main"], env)
    run = _script(["run", "--as-of", AFTER_MASK_DUE, "--json"], env)
    show = _script(["show", NR, "--as-of", AFTER_MASK_DUE, "--json"], env)
    compliance = _script(["compliance", "--as-of", AFTER_MASK_DUE, "--json"], env)

    assert [p.returncode for p in (init, load, enable, run, show, compliance)] == [0] * 6
    assert json.loads(load.stdout)["created"] == 1
    assert json.loads(run.stdout)["masked"] == 1
    assert json.loads(show.stdout)["retention"]["state"] == "masked"
    assert json.loads(compliance.stdout) == {
        "violations": [],
        "holds": [],
        "archive_problems": [],
        "warnings": [],
    }
    assert [s for s in pii_strings(imported) if s in show.stdout] == []


def test_installed_script_exits_2_on_a_usage_error_without_a_traceback(tmp_path: Path) -> None:
    env = _script_env(SHELFLIFE_HOME=str(tmp_path / "home"))

    result = _script(["run", "--as-of", "tomorrow"], env)

    assert result.returncode == 2
    assert result.stderr == (
        "error: --as-of: 'tomorrow' is not an ISO 8601 timestamp with offset, "
        "e.g. 2026-03-01T02:00:00+01:00\n"
    )


def test_demo_shows_the_nights_and_a_retrieved_order(tmp_path: Path) -> None:
    env = _script_env(COLUMNS="80")  # the table must fit a plain 80-column log
    home = tmp_path / "demo"

    result = _script(["demo", "--home", str(home), "--customers", "40", "--nights", "35"], env)

    assert result.returncode == 0, result.stderr
    assert "35 simulated nights" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [
        "night",
        "date",
        "imported",
        "archived",
        "failed",
        "retried",
        "masked",
        "remasked",
        "overdue",
    ] in rows
    nights = [row[:2] for row in rows if len(row) == 9 and row[0].isdigit()]
    assert nights == [
        [str(n), (DEMO_START + timedelta(days=n)).strftime("%m-%d")] for n in range(1, 36)
    ]
    assert "\nRetrieved order " in result.stdout
    assert "history: retrieved by demo-agent: Demo: buyer returned an item" in result.stdout


# -- duplicates and merge ------------------------------------------------------------------------


def test_duplicates_lists_references_and_merge_joins_them_then_refuses_a_masked_buyer(
    ready: Cli,
) -> None:
    twin = order(NR2)
    twin["customer"]["customer_nr_external"] = "ZZ9PLURALZALPHA"
    ready.ok("import", "-", input=_stdin(order(NR), twin))

    listed = ready.json("duplicates")
    assert listed == {
        "groups": [
            {"shop": "main", "channel": "amazon", "customers": ["C1", "C2"], "orders": [1, 1]}
        ]
    }
    text = ready.ok("duplicates", "--shop", "main").output
    assert text == "shop main, amazon: C1 (1 orders), C2 (1 orders)\n"
    assert ERIKA_EMAIL not in text

    assert ready.ok("merge", "C1", "C2").output == "merged C2 into C1 (1 orders moved)\n"
    assert ready.ok("duplicates").output == "no duplicates\n"

    third = order("302-0000003-0000003", shipped_at=SHIPPED)
    third["customer"]["customer_nr_external"] = "ANOTHERBUYER"
    ready.ok("import", "-", input=_stdin(third))
    ready.ok("feature", "enable", "--shop", "main")
    ready.ok("run", "--as-of", AFTER_MASK_DUE)
    refused = ready("merge", "C1", "C3")
    assert refused.exit_code == 2
    assert "customer C3 is archived; its data cannot be merged" in refused.output
