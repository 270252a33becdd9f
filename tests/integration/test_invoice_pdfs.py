"""Invoice and credit PDFs on SQLite and PostgreSQL: made at import and at credit creation,
archived in the buyer's encrypted record, absent from the document store while masked, back
byte-identical after a retrieval, gone again at the re-mask; downloads refused while masked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import ArchiveCopy, Credit, Customer, Invoice
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveCorrupt, Conflict
from shelflife.domain.ports import pdf_object_key
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services.after_sales import create_credit
from shelflife.services.importing import import_lines
from shelflife.services.pdfs import document_pdf
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import copy_plaintext, make_legacy
from tests.support.builders import T0, at, days, make_app, order

NR = "302-1234567-1234567"
OTHER_NR = "303-7654321-7654321"
MASKED_AT = T0 + days(33)
RETRIEVED_AT = T0 + days(35)
REMASKED_AT = RETRIEVED_AT + days(31)


def _stored(app: App) -> dict[str, bytes]:
    """Every PDF in the document store, by object key: the store listed, not the database."""
    store = app.documents
    return {o.key: store.get(o.key) for o in store.list_objects() if not o.temporary}


def _pdf_keys(app: App) -> dict[str, str]:
    """Document number -> its object key, from the database's ids."""
    with app.engine.connect() as conn:
        invoices = conn.execute(select(Invoice.invoice_nr, Invoice.id)).all()
        credits = conn.execute(select(Credit.credit_nr, Credit.id)).all()
    return {n: pdf_object_key("invoice", i) for n, i in invoices} | {
        n: pdf_object_key("credit", i) for n, i in credits
    }


def _masked_buyer(database_url: str, tmp_path: Path) -> tuple[App, dict[str, bytes]]:
    """A buyer with an invoice, an imported credit and a manual credit, and a second buyer
    who stays unmasked; returns the app and the PDFs as imported, by number."""
    app, _clock = make_app(database_url, tmp_path / "home")
    masked = order(NR, shipped_at=T0, invoiced_at=T0)
    masked["credits"] = [
        {"credit_nr": f"GS-{NR}", "invoice_nr": f"RE-{NR}",
         "created_at": (T0 + days(1)).isoformat(), "total": "5.00"},
    ]  # fmt: skip
    manual = {
        "type": "manual_credit",
        "shop": "main",
        "customer_of_order": NR,
        "credit_nr": "MC-1",
        "created_at": (T0 + days(2)).isoformat(),
        "total": "3.00",
    }
    kept = order(OTHER_NR, shipped_at=T0 + days(60), invoiced_at=T0 + days(60), suffix="-k")
    report = import_lines(app, [json.dumps(r, ensure_ascii=False) for r in (masked, manual, kept)])
    assert (report.refused, report.pdfs_made) == ([], 4)
    keys = _pdf_keys(app)
    stored = _stored(app)
    assert sorted(stored) == sorted(keys.values())
    imported = {number: stored[key] for number, key in keys.items()}
    set_feature(app.ports(), "main", True, "ops")
    report_run = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)
    assert (report_run.archived, report_run.masked) == (1, 1)
    return app, imported


def test_pdfs_leave_the_document_store_at_masking_and_come_back_byte_identical(
    database_url: str, tmp_path: Path
) -> None:
    app, imported = _masked_buyer(database_url, tmp_path)
    keys = _pdf_keys(app)
    assert imported[f"RE-{NR}"].startswith(b"%PDF-")
    assert sorted(_stored(app)) == [keys[f"RE-{OTHER_NR}"]]

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rückfrage", "anna", RETRIEVED_AT)

    stored = _stored(app)
    for kind, number in (("invoice", f"RE-{NR}"), ("credit", f"GS-{NR}"), ("credit", "MC-1")):
        assert stored[keys[number]] == imported[number]
        assert document_pdf(app.ports(), kind, number) == imported[number]
    assert len(stored) == 4

    report = run_retention(at(app, REMASKED_AT).ports(), REMASKED_AT)
    assert report.remasked == 1
    assert sorted(_stored(app)) == [keys[f"RE-{OTHER_NR}"]]


def test_archive_record_holds_the_pdfs_and_no_digest_survives_masking(
    database_url: str, tmp_path: Path
) -> None:
    app, imported = _masked_buyer(database_url, tmp_path)
    with app.engine.connect() as conn:
        buyer = conn.execute(
            select(Invoice.customer_id).where(Invoice.invoice_nr == f"RE-{NR}")
        ).scalar_one()
        digests = conn.execute(
            select(Invoice.pdf_sha256, Invoice.pdf_stored).where(Invoice.customer_id == buyer)
        ).all()
        copy = conn.execute(select(ArchiveCopy).where(ArchiveCopy.customer_id == buyer)).one()
    assert [tuple(d) for d in digests] == [("***", False)]
    snapshot = CustomerSnapshot.from_bytes(copy_plaintext(app, copy))
    archived = sorted(pdf for pdfs in snapshot.documents.values() for pdf in pdfs.values())
    assert archived == sorted(imported[n] for n in (f"RE-{NR}", f"GS-{NR}", "MC-1"))
    invoice_id = next(iter(snapshot.documents["invoices"]))
    assert (
        snapshot.rows["invoices"][invoice_id]["pdf_sha256"]
        == hashlib.sha256(imported[f"RE-{NR}"]).hexdigest()
    )


def test_download_of_a_masked_invoice_is_refused_until_retrieved(
    database_url: str, tmp_path: Path
) -> None:
    app, imported = _masked_buyer(database_url, tmp_path)
    with pytest.raises(Conflict, match=r"invoice 'RE-302-1234567-1234567' is masked"):
        document_pdf(app.ports(), "invoice", f"RE-{NR}")
    assert document_pdf(app.ports(), "invoice", f"RE-{OTHER_NR}") == imported[f"RE-{OTHER_NR}"]


def test_retrieval_refuses_an_archived_pdf_that_differs_and_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    app, _imported = _masked_buyer(database_url, tmp_path)

    def altered(plaintext: bytes) -> bytes:
        snapshot = CustomerSnapshot.from_bytes(plaintext)
        pdfs = snapshot.documents["invoices"]
        first = next(iter(pdfs))
        pdfs[first] += b"%altered"
        return snapshot.to_bytes()

    with app.engine.connect() as conn:
        copy = conn.execute(select(ArchiveCopy)).one()
    make_legacy(app, copy, altered)
    before = _stored(app)
    with pytest.raises(ArchiveCorrupt, match="hold no matching PDF of invoice"):
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rückfrage", "anna", RETRIEVED_AT)
    assert _stored(app) == before
    with app.engine.connect() as conn:
        assert conn.execute(select(Customer.retrieved_at)).scalars().all() == [None, None]


def test_credit_created_in_shelflife_gets_its_pdf(database_url: str, tmp_path: Path) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    record = order(OTHER_NR, shipped_at=T0, invoiced_at=T0)
    assert import_lines(app, [json.dumps(record, ensure_ascii=False)]).refused == []
    created = create_credit(app.ports(), f"RE-{OTHER_NR}", "4.00", "Kulanz", "anna")
    pdf = document_pdf(app.ports(), "credit", created.credit_nr)
    assert pdf.startswith(b"%PDF-")
    with app.engine.connect() as conn:
        digest = conn.execute(
            select(Credit.pdf_sha256).where(Credit.credit_nr == created.credit_nr)
        ).scalar_one()
    assert digest == hashlib.sha256(pdf).hexdigest()
