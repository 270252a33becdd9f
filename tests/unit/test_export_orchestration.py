"""The accounting export and the tax-field choice on in-memory fakes: what one export commits
(record, audit, documents marked) and that a failing write commits nothing. Milliseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shelflife.domain.errors import InvalidInput
from shelflife.domain.ports import AccountingRow, ExportRecord
from shelflife.services.exports import (
    HEADER,
    accounting_csv,
    check_export_warnings,
    export_accounting,
)
from shelflife.services.shops import set_tax_fields
from tests.support.fakes import FakeData, FakeUnitOfWork, fake_ports

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _row(
    number: str, at: datetime, *, kind: str = "invoice", masked: bool = False
) -> AccountingRow:
    return AccountingRow(
        kind=kind,
        id=int(number[-1]),
        number=number,
        invoice_nr=None,
        shop="berlin",
        created_at=at,
        customer_name="***" if masked else "Anna Schmidt",
        country="DE",
        vat_id=None,
        net=None,
        tax=None,
        gross=Decimal("10.00"),
        currency="EUR",
        masked=masked,
    )


def _uow(*rows: AccountingRow) -> FakeUnitOfWork:
    return FakeUnitOfWork(FakeData(accounting_rows=list(rows)))


def test_an_export_records_audits_and_marks_exactly_the_documents_it_lists() -> None:
    uow = _uow(
        _row("RE-1", datetime(2026, 2, 1, 10, tzinfo=UTC), masked=True),
        _row("RE-2", datetime(2026, 2, 28, 22, 59, tzinfo=UTC)),  # 23:59 in Berlin: still Feb
        _row("RE-3", datetime(2026, 2, 28, 23, 0, tzinfo=UTC)),  # 00:00 on 1 March in Berlin
    )
    ports = fake_ports(uow, now=NOW)

    result = export_accounting(ports, date(2026, 2, 1), date(2026, 2, 28), None, "anna")

    assert result.data.decode().splitlines() == [
        ";".join(HEADER),
        "invoice;RE-1;;2026-02-01;berlin;***;DE;;;;10.00;EUR;yes",
        "invoice;RE-2;;2026-02-28;berlin;Anna Schmidt;DE;;;;10.00;EUR;no",
    ]
    data = uow.committed
    assert data.exports == [
        ExportRecord("accounting", None, date(2026, 2, 1), date(2026, 2, 28), result.sha256, 2,
                     NOW, "anna"),
    ]  # fmt: skip
    assert data.exported == {("invoice", 1): NOW, ("invoice", 2): NOW}
    assert [(e.action, e.actor, dict(e.detail)) for e in data.audit] == [
        (
            "export.accounting",
            "anna",
            {"from": "2026-02-01", "to": "2026-02-28", "rows": 2, "sha256": result.sha256},
        )
    ]


def test_a_failing_write_commits_no_record_no_audit_no_mark() -> None:
    uow = _uow(_row("RE-1", datetime(2026, 2, 1, 10, tzinfo=UTC)))

    def broken(_data: bytes) -> None:
        raise InvalidInput("output: cannot write in folder /x (Read-only file system)")

    with pytest.raises(InvalidInput):
        export_accounting(
            fake_ports(uow, now=NOW), date(2026, 2, 1), date(2026, 2, 28), None, "a", broken
        )

    assert (uow.committed.exports, uow.committed.exported, uow.committed.audit) == ([], {}, [])


@pytest.mark.parametrize("name", ["=1+1", "+49", "-x", "@SUM(A1)", "\tTab", "\rCR"])
def test_a_name_a_spreadsheet_would_run_is_prefixed_with_an_apostrophe(name: str) -> None:
    row = _row("RE-1", datetime(2026, 2, 1, 10, tzinfo=UTC))
    hostile = AccountingRow(**{**row.__dict__, "customer_name": name})

    line = accounting_csv([hostile], {"berlin": ZoneInfo("Europe/Berlin")})

    cell = line.decode().split("\r\n")[1].split(";")[5]
    assert cell.strip('"') == "'" + name


def test_the_warnings_follow_the_last_export_and_the_documents_at_risk() -> None:
    old = ExportRecord("accounting", None, date(2026, 1, 1), date(2026, 1, 31), "0" * 64, 1,
                       NOW - timedelta(days=14, hours=1), "anna")  # fmt: skip
    uow = FakeUnitOfWork(
        FakeData(exports=[old], accounting_rows=[_row("RE-1", NOW - timedelta(days=40))])
    )

    warnings = check_export_warnings(fake_ports(uow, now=NOW))

    assert (warnings.stale, warnings.unexported_due) == (True, 1)
    assert warnings.messages() == [
        "the last accounting export was on 2026-02-15, more than 14 days ago",
        "1 invoices and credits will be masked within 7 days without ever having been exported",
    ]


def test_tax_fields_are_kept_only_with_a_basis_and_each_change_is_audited() -> None:
    uow = FakeUnitOfWork()
    ports = fake_ports(uow, now=NOW)

    with pytest.raises(InvalidInput, match="legal basis: required"):
        set_tax_fields(ports, "berlin", ["zip"], " ", "anna")
    view = set_tax_fields(ports, "berlin", ["zip", "state"], "OSS records", "anna")

    assert (view.kept_tax_fields, view.tax_fields_basis) == (("zip", "state"), "OSS records")
    assert [(e.action, e.subject, dict(e.detail)) for e in uow.committed.audit] == [
        ("shop.tax_fields", "berlin", {"kept": "zip,state", "basis": "OSS records"})
    ]
