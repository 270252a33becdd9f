"""Invoice and credit PDFs on SQLite and PostgreSQL: made at import and at credit creation,
archived in the buyer's encrypted record, absent from the document store while masked, back
byte-identical after a retrieval, gone again at the re-mask; downloads refused while masked."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shelflife.adapters.db.tables import ArchiveCopy, Credit, Customer, Export, Invoice
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveCorrupt, Conflict, InvalidInput, Unavailable
from shelflife.domain.ports import pdf_object_key
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.entrypoints.cli import app as cli
from shelflife.services.after_sales import create_credit
from shelflife.services.audit import recent_entries
from shelflife.services.exports import check_export_warnings, export_invoices
from shelflife.services.importing import import_lines
from shelflife.services.pdfs import document_pdf
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import copy_plaintext, make_legacy
from tests.support.builders import T0, at, days, make_app, order
from tests.support.fakes import UnreachableArchive
from tests.support.s3_server import S3Server

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


# --- the invoices export ----------------------------------------------------------------------


def _zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_invoices_export_holds_unmasked_pdfs_with_checked_digests_and_lists_masked_ones(
    database_url: str, tmp_path: Path
) -> None:
    app, imported = _masked_buyer(database_url, tmp_path)
    out = tmp_path / "invoices.zip"

    result = export_invoices(
        at(app, MASKED_AT).ports(), date(2026, 3, 1), date(2026, 5, 31), None, "bea", out
    )

    files = _zip(out)
    name = f"main/invoices/RE-{OTHER_NR}.pdf"
    assert sorted(files) == ["SHA256SUMS", name, "manifest.csv"]
    assert files[name] == imported[f"RE-{OTHER_NR}"]
    digest = hashlib.sha256(files[name]).hexdigest()
    assert files["manifest.csv"].decode() == (
        "type;number;shop;date;status;file;sha256\r\n"
        f"invoice;RE-{NR};main;2026-03-02;masked;;\r\n"
        f"credit;GS-{NR};main;2026-03-03;masked;;\r\n"
        "credit;MC-1;main;2026-03-04;masked;;\r\n"
        f"invoice;RE-{OTHER_NR};main;2026-05-01;included;{name};{digest}\r\n"
    )
    assert files["SHA256SUMS"].decode() == f"{digest}  {name}\n"
    file_digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (result.sha256, result.pdfs, result.masked, result.missing) == (file_digest, 1, 3, 0)
    with app.engine.connect() as conn:
        record = conn.execute(select(Export)).one()
        exported = conn.execute(
            select(Invoice.invoice_nr, Invoice.pdf_exported_at).order_by(Invoice.id)
        ).all()
    assert (record.kind, record.rows, record.file_sha256, record.created_by) == (
        "invoices",
        4,
        file_digest,
        "bea",
    )
    assert [tuple(e) for e in exported] == [(f"RE-{NR}", None), (f"RE-{OTHER_NR}", MASKED_AT)]
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.detail["pdfs"], entry.detail["sha256"]) == (
        "bea",
        "export.invoices",
        1,
        file_digest,
    )


def test_invoices_export_never_overwrites_a_file(database_url: str, tmp_path: Path) -> None:
    app, _imported = _masked_buyer(database_url, tmp_path)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "invoices.zip"
    out.write_bytes(b"keep me")

    with pytest.raises(InvalidInput, match="exists; the invoices export never overwrites"):
        export_invoices(app.ports(), date(2026, 3, 1), date(2026, 5, 31), None, "bea", out)

    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in out.parent.iterdir()) == ["invoices.zip"]
    with app.engine.connect() as conn:
        assert conn.execute(select(Export)).all() == []


def test_invoices_export_refuses_a_pdf_altered_in_the_document_store(
    database_url: str, tmp_path: Path
) -> None:
    app, _imported = _masked_buyer(database_url, tmp_path)
    key = _pdf_keys(app)[f"RE-{OTHER_NR}"]
    app.documents.put(key, app.documents.get(key) + b"%tampered")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "invoices.zip"

    with pytest.raises(ArchiveCorrupt, match="differs from the one recorded"):
        export_invoices(app.ports(), date(2026, 3, 1), date(2026, 5, 31), None, "bea", out)

    assert list(out.parent.iterdir()) == []


def test_export_invoices_command_writes_the_zip_and_says_what_is_masked(
    sqlite_url: str, tmp_path: Path
) -> None:
    _masked_buyer(sqlite_url, tmp_path)
    out = tmp_path / "period.zip"
    home = str(tmp_path / "home")

    result = CliRunner().invoke(
        cli,
        ["export", "invoices", "--from", "2026-03-01", "--to", "2026-05-31", "--out", str(out),
         "--home", home],
    )  # fmt: skip
    again = CliRunner().invoke(
        cli,
        ["export", "invoices", "--from", "2026-03-01", "--to", "2026-05-31", "--out", str(out),
         "--home", home],
    )  # fmt: skip

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()) == (
        f"1 PDFs (3 masked: listed in the manifest) written to {out} (sha256 {digest})"
    )
    assert again.exit_code == 2
    assert "exists; the invoices export never overwrites a file" in again.output


def test_invoices_export_warnings_at_their_days(database_url: str, tmp_path: Path) -> None:
    app, _imported = _masked_buyer(database_url, tmp_path)
    # The other buyer's order shipped on 1 May: it is masked from 31 May on, so the warning
    # starts 7 days before, on 24 May (as the accounting export's does).
    assert check_export_warnings(app.ports(), T0 + days(82)).invoices_unexported_due == 0
    due = check_export_warnings(app.ports(), T0 + days(83))
    assert due.invoices_unexported_due == 1
    assert (
        "1 invoices and credits will be masked within 7 days without their PDFs ever having "
        "been exported"
    ) in due.messages()

    exported_at = T0 + days(83)
    export_invoices(
        at(app, exported_at).ports(), date(2026, 3, 1), date(2026, 5, 31), "main", "bea",
        tmp_path / "x.zip",
    )  # fmt: skip

    assert check_export_warnings(app.ports(), exported_at).invoices_unexported_due == 0
    fresh = check_export_warnings(app.ports(), exported_at + days(14))
    assert fresh.invoices_stale is False
    stale = check_export_warnings(app.ports(), exported_at + days(14) + timedelta(hours=1))
    assert stale.invoices_stale is True
    assert "the last invoices export was on 2026-05-24, more than 14 days ago" in stale.messages()


# --- the document store on S3 ------------------------------------------------------------------


def test_pdfs_on_an_s3_document_store_leave_every_version_at_masking_and_come_back(
    database_url: str, tmp_path: Path, s3: S3Server
) -> None:
    bucket = s3.create_bucket(object_lock=False)
    app, _clock = make_app(
        database_url, tmp_path / "home", document_store_url=s3.url(bucket, "pdfs")
    )
    record = order(NR, shipped_at=T0, invoiced_at=T0)
    assert import_lines(app, [json.dumps(record, ensure_ascii=False)]).pdfs_made == 1
    ((key, made),) = list(s3.every_object(bucket))
    set_feature(app.ports(), "main", True, "ops")

    assert run_retention(at(app, MASKED_AT).ports(), MASKED_AT).masked == 1
    assert list(s3.every_object(bucket)) == []  # no version of it left

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rückfrage", "anna", RETRIEVED_AT)

    assert [k for k, _ in s3.every_object(bucket)] == [key]
    assert document_pdf(app.ports(), "invoice", f"RE-{NR}") == made
    app.close()


def test_an_unreachable_document_store_costs_the_import_its_pdfs_only(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    store = app.documents
    app.documents = UnreachableArchive()
    record = json.dumps(order(NR, shipped_at=T0, invoiced_at=T0), ensure_ascii=False)

    first = import_lines(app, [record])

    assert (first.created, first.refused, first.pdfs_made) == (1, [], 0)
    with pytest.raises(Unavailable, match="has no PDF yet"):
        document_pdf(app.ports(), "invoice", f"RE-{NR}")
    app.documents = store
    again = import_lines(app, [record])  # unchanged, but the PDF still missing is made
    assert (again.unchanged, again.pdfs_made) == (1, 1)
    assert document_pdf(app.ports(), "invoice", f"RE-{NR}").startswith(b"%PDF-")


def test_a_pdf_first_made_at_archiving_comes_back_with_the_retrieval(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    store = app.documents
    app.documents = UnreachableArchive()  # the import makes no PDF: the archive step must
    record = json.dumps(order(NR, shipped_at=T0, invoiced_at=T0), ensure_ascii=False)
    assert import_lines(app, [record]).pdfs_made == 0
    app.documents = store
    set_feature(app.ports(), "main", True, "ops")
    report = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)
    assert (report.archived, report.masked) == (1, 1)
    with app.engine.connect() as conn:
        copy = conn.execute(select(ArchiveCopy)).one()
    archived = CustomerSnapshot.from_bytes(copy_plaintext(app, copy))
    [(invoice_id, pdf)] = archived.documents["invoices"].items()
    assert archived.rows["invoices"][invoice_id]["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rückfrage", "anna", RETRIEVED_AT)

    assert document_pdf(app.ports(), "invoice", f"RE-{NR}") == pdf
    assert _stored(app) == {pdf_object_key("invoice", invoice_id): pdf}
