"""The accounting export: its exact CSV, no partial file, the export record and audit entry,
the API answer, and the two warnings of `compliance` and the dashboard at their days."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import Export
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.entrypoints.cli import app as cli
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user, create_token
from shelflife.services.audit import recent_entries
from shelflife.services.dashboard import dashboard
from shelflife.services.exports import (
    check_export_warnings,
    export_accounting,
    export_invoices,
    write_atomically,
)
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature, set_tax_fields
from tests.support.builders import T0, at, days, lines, make_app, order

MASKED_NR = "302-1111111-1111111"
OPEN_NR = "302-2222222-2222222"
OUTLET_NR = "302-3333333-3333333"
HEADER = (
    "type;number;invoice_nr;date;shop;customer_name;country;vat_id;net;tax;gross;currency;masked"
)
EXPECTED = (
    f"{HEADER}\r\n"
    f"invoice;RE-{MASKED_NR};;2026-03-02;main;***;DE;DE111111111;16.79;3.19;19.98;EUR;yes\r\n"
    f"credit;GS-{MASKED_NR};RE-{MASKED_NR};2026-03-03;main;***;DE;DE111111111;4.20;0.80;5.00;"
    "EUR;yes\r\n"
    f'invoice;RE-{OPEN_NR};;2026-04-01;main;"\'=HYPERLINK(1) Doe;Jr";AT;;;;30.00;GBP;no\r\n'
)


def data_set() -> list[str]:
    masked = order(MASKED_NR, shipped_at=T0)
    masked["billing_address"]["vat_id"] = "DE111111111"
    masked["invoices"] = [
        {"invoice_nr": f"RE-{MASKED_NR}", "created_at": T0.isoformat(), "total": "19.98",
         "net": "16.79", "tax": "3.19"},
    ]  # fmt: skip
    masked["credits"] = [
        {"credit_nr": f"GS-{MASKED_NR}", "invoice_nr": f"RE-{MASKED_NR}",
         "created_at": (T0 + days(1)).isoformat(), "total": "5.00", "net": "4.20", "tax": "0.80"},
    ]  # fmt: skip
    hostile = order(OPEN_NR, shipped_at=T0 + days(25), suffix="-o")
    hostile["billing_address"].update(first_name="=HYPERLINK(1)", last_name="Doe;Jr", country="AT")
    hostile["invoices"] = [  # 00:30 on 1 April in Berlin (summer time), still 31 March in UTC
        {"invoice_nr": f"RE-{OPEN_NR}", "created_at": "2026-03-31T22:30:00+00:00",
         "total": "30.00", "currency": "GBP"},
    ]  # fmt: skip
    outlet = order(OUTLET_NR, shipped_at=T0, invoiced_at=T0 + days(2), suffix="-p")
    outlet["shop"] = "outlet"
    return lines(masked, hostile, outlet)


@pytest.fixture
def exported_app(database_url: str, tmp_path: Path) -> App:
    app, _clock = make_app(database_url, tmp_path / "home")
    report = import_lines(app, data_set())
    assert (report.created, report.refused) == (3, [])
    set_feature(app.ports(), "main", True, "test")
    set_tax_fields(app.ports(), "main", ["vat_id"], "reverse-charge records", "test")
    assert run_retention(at(app, T0 + days(30)).ports(), T0 + days(30)).archived == 1
    assert run_retention(at(app, T0 + days(32)).ports(), T0 + days(32)).masked == 1
    at(app, T0 + days(33))
    return app


def test_the_csv_lists_a_shops_documents_of_the_local_period_masked_ones_with_masked_names(
    exported_app: App, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "accounting.csv"

    result = export_accounting(
        exported_app.ports(), date(2026, 3, 1), date(2026, 4, 1), "main", "anna",
        write_atomically(out),
    )  # fmt: skip

    assert out.read_bytes() == EXPECTED.encode("utf-8")
    assert (result.rows, result.masked_rows) == (3, 2)
    assert [p.name for p in out.parent.iterdir()] == ["accounting.csv"]  # no temporary left


def test_the_last_day_is_a_local_day_and_every_shop_is_listed_without_a_shop(
    exported_app: App,
) -> None:
    march = export_accounting(exported_app.ports(), date(2026, 3, 1), date(2026, 3, 31), None, "a")

    assert march.data.decode().splitlines() == [
        HEADER,
        *EXPECTED.splitlines()[1:3],
        f"invoice;RE-{OUTLET_NR};;2026-03-04;outlet;Erika-p Mustermann-p;DE;;;;19.98;EUR;no",
    ]


def test_an_export_is_recorded_with_its_digest_and_audited(exported_app: App) -> None:
    result = export_accounting(
        exported_app.ports(), date(2026, 3, 1), date(2026, 4, 1), "main", "anna"
    )

    with exported_app.engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(select(Export.__table__))]
    assert rows == [
        {
            "id": 1,
            "kind": "accounting",
            "shop": "main",
            "period_from": date(2026, 3, 1),
            "period_to": date(2026, 4, 1),
            "file_sha256": result.sha256,
            "rows": 3,
            "created_at": T0 + days(33),
            "created_by": "anna",
        }
    ]
    entry = recent_entries(exported_app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject, dict(entry.detail)) == (
        "anna",
        "export.accounting",
        "main",
        {"from": "2026-03-01", "to": "2026-04-01", "rows": 3, "sha256": result.sha256},
    )


@pytest.mark.parametrize("where", ["missing folder", "folder is a file", "target is a folder"])
def test_no_file_and_no_record_when_the_output_cannot_be_written(
    exported_app: App, tmp_path: Path, where: str
) -> None:
    """Tests run as root, for whom no folder is read-only: the write fails here because the
    folder is missing or is a file, or because the target is a folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    blocker = folder / "blocker"
    if where == "missing folder":
        out = folder / "nowhere" / "accounting.csv"
    elif where == "folder is a file":
        blocker.write_bytes(b"keep")
        out = blocker / "accounting.csv"
    else:
        (blocker / "accounting.csv").mkdir(parents=True)
        out = blocker / "accounting.csv"
    before = sorted(str(p) for p in folder.rglob("*"))

    with pytest.raises(InvalidInput, match=r"^output: cannot write"):
        export_accounting(
            exported_app.ports(), date(2026, 3, 1), date(2026, 4, 1), None, "anna",
            write_atomically(out),
        )  # fmt: skip

    assert sorted(str(p) for p in folder.rglob("*")) == before
    with exported_app.engine.connect() as conn:
        assert conn.execute(select(Export.id)).all() == []
    assert [
        e for e in recent_entries(exported_app.ports()) if e.action == "export.accounting"
    ] == []


def test_a_bad_period_or_shop_is_refused(exported_app: App) -> None:
    with pytest.raises(InvalidInput, match="period: the last day is before the first"):
        export_accounting(exported_app.ports(), date(2026, 3, 2), date(2026, 3, 1), None, "a")
    with pytest.raises(UnknownShop):
        export_accounting(exported_app.ports(), date(2026, 3, 1), date(2026, 3, 2), "x", "a")


@pytest.mark.parametrize(
    ("first", "last"), [(date(1, 1, 1), date(2026, 3, 1)), (date(2026, 3, 1), date(9999, 12, 31))]
)
def test_a_period_at_the_edge_of_the_calendar_is_refused_and_names_the_period(
    exported_app: App, tmp_path: Path, first: date, last: date
) -> None:
    """Berlin's midnight of 1 January of year 1 is in year 0 in UTC, and the day after
    31 December 9999 does not exist: neither export may fail with an unexplained error."""
    folder = tmp_path / "out"
    folder.mkdir()
    refusal = (
        f"^period: {first.isoformat()} to {last.isoformat()} reaches the edge of the calendar; "
        "give days from 0001-01-02 to 9999-12-30$"
    )
    with pytest.raises(InvalidInput, match=refusal):
        export_accounting(
            exported_app.ports(), first, last, None, "a", write_atomically(folder / "a.csv")
        )
    with pytest.raises(InvalidInput, match=refusal):
        export_invoices(exported_app.ports(), first, last, None, "a", folder / "a.zip")
    assert list(folder.iterdir()) == []
    with exported_app.engine.connect() as conn:
        assert conn.execute(select(Export.id)).all() == []


def test_the_cli_writes_the_file_and_says_how_many_are_masked(
    exported_app: App, tmp_path: Path
) -> None:
    out = tmp_path / "a.csv"
    home = exported_app.settings.home

    result = CliRunner().invoke(
        cli,
        ["export", "accounting", "--from", "2026-03-01", "--to", "2026-04-01", "--shop", "main",
         "--out", str(out), "--home", str(home), "--user", "anna"],
        env={"SHELFLIFE_DATABASE_URL": exported_app.settings.resolved_database_url},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == EXPECTED.encode()
    digest = hashlib.sha256(EXPECTED.encode()).hexdigest()
    assert result.stdout == f"3 documents, 2 of them masked, written to {out} (sha256 {digest})\n"


def test_the_api_answers_the_same_csv_and_records_it(
    exported_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )
    add_user(exported_app, "boss", "admin", "correct horse battery", "setup")
    token = create_token(exported_app, "boss", "setup").token
    with TestClient(create_web_app(exported_app), base_url="https://shelflife.test") as web:
        response = web.get(
            "/api/v1/exports/accounting?from=2026-03-01&to=2026-04-01&shop=main",
            headers={"Authorization": f"Bearer {token}"},
        )
        bad = web.get(
            "/api/v1/exports/accounting?from=2026-03-02&to=2026-03-01",
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content == EXPECTED.encode()
    assert bad.status_code == 422
    entry = recent_entries(exported_app.ports(), 1)[0]
    assert (entry.actor, entry.action) == ("boss", "export.accounting")


def _warnings(app: App, moment: datetime) -> tuple[bool, int]:
    found = check_export_warnings(at(app, moment).ports())
    return found.stale, found.unexported_due


def test_the_unexported_warning_starts_seven_local_days_before_masking_and_ends_on_export(
    database_url: str, tmp_path: Path
) -> None:
    """Shipped and invoiced on 2 March (Berlin): masked from 1 April, warned from 25 March
    00:00 CET (24 March 23:00 UTC), one hour either side."""
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        data = order(MASKED_NR, shipped_at=T0, invoiced_at=T0)
        assert import_lines(app, lines(data)).created == 1
        set_feature(app.ports(), "main", True, "test")

        assert _warnings(app, datetime(2026, 3, 24, 22, 0, tzinfo=UTC)) == (False, 0)
        assert _warnings(app, datetime(2026, 3, 25, 0, 0, tzinfo=UTC)) == (False, 1)
        report = json.loads(
            CliRunner().invoke(
                cli,
                ["compliance", "--json", "--as-of", "2026-03-25T00:00:00+00:00",
                 "--home", str(app.settings.home)],
                env={"SHELFLIFE_DATABASE_URL": app.settings.resolved_database_url},
            ).stdout
        )  # fmt: skip
        assert report["warnings"] == [
            "1 invoices and credits will be masked within 7 days without ever having been exported",
            # The invoices export (the PDFs) is warned about on its own.
            "1 invoices and credits will be masked within 7 days without their PDFs ever having "
            "been exported",
        ]
        assert dashboard(app).exports.unexported_due == 1

        export_accounting(app.ports(), date(2026, 3, 1), date(2026, 3, 31), None, "anna")

        assert _warnings(app, datetime(2026, 3, 25, 0, 0, tzinfo=UTC)) == (False, 0)
    finally:
        app.close()


def test_the_stale_warning_appears_fourteen_days_after_the_last_export(
    exported_app: App,
) -> None:
    exported_at = T0 + days(33)
    export_accounting(exported_app.ports(), date(2026, 3, 1), date(2026, 3, 31), None, "anna")

    assert _warnings(exported_app, exported_at + days(14) - days(1 / 24))[0] is False
    later = check_export_warnings(at(exported_app, exported_at + days(14) + days(1 / 24)).ports())
    assert later.stale is True
    assert later.messages() == [
        "the last accounting export was on 2026-04-04, more than 14 days ago"
    ]
    assert dashboard(exported_app).exports.stale is True


def test_the_dashboard_page_shows_the_export_warnings(
    exported_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )
    add_user(exported_app, "boss", "admin", "correct horse battery", "setup")
    export_accounting(exported_app.ports(), date(2026, 3, 1), date(2026, 3, 31), None, "anna")
    at(exported_app, datetime(2026, 4, 24, 9, tzinfo=UTC))  # RE-O (1 April) masked 1 May
    with TestClient(create_web_app(exported_app), base_url="https://shelflife.test") as web:
        login = web.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        web.post(
            "/login",
            data={"user_name": "boss", "password": "correct horse battery",
                  "csrf_token": csrf.group(1)},
        )  # fmt: skip
        page = web.get("/dashboard").text

    section = re.search(r'<section class="card" id="exports".*?</section>', page, re.S)
    assert section is not None
    items = re.findall(r'<li class="warning">(.*?)</li>', section.group(0))
    assert items == [
        "the last accounting export was on 2026-04-04, more than 14 days ago",
        "1 invoices and credits will be masked within 7 days without ever having been exported",
        "1 invoices and credits will be masked within 7 days without their PDFs ever having "
        "been exported",
    ]
