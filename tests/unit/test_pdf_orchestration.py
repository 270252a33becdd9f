"""Invoice and credit PDFs through the run on in-memory fakes: made before a record is sealed,
sealed with it, deleted from the document store only after the masking committed, and left
for the next run when the document store is down. No database; milliseconds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shelflife.adapters.documents.pdf import render_pdf
from shelflife.adapters.keys.envelope import open_record
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import DocumentPrint, Ports, WrappedKey, pdf_object_key
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services import pdfs
from shelflife.services.pdfs import issue_pending_pdfs
from shelflife.services.pipeline import run_retention
from tests.support.fakes import (
    FakeCustomer,
    FakeData,
    FakePdfDocument,
    FakeUnitOfWork,
    InMemoryArchive,
    fake_ports,
)

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)


class DownForDeletes(InMemoryArchive):
    """A document store that cannot delete (down) until `up` is set."""

    up = False

    def delete(self, key: str) -> None:
        if not self.up:
            raise ArchiveUnavailable("document store unreachable (test double)")
        super().delete(key)


def _invoice(doc_id: int, customer_id: int) -> DocumentPrint:
    return DocumentPrint(
        "invoice", doc_id, customer_id, f"RE-{doc_id}", "berlin", "Europe/Berlin",
        SHIPPED - timedelta(days=1), None, None, f"Buyer{customer_id}", "Weg 1", "DE", None,
        (), None, None, Decimal("10.00"), "EUR",
    )  # fmt: skip


def _ports(documents: InMemoryArchive, *buyers: int) -> Ports:
    data = FakeData()
    for cid in buyers:
        data.customers[cid] = FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}")
        data.pdf_docs[("invoice", cid * 10)] = FakePdfDocument(_invoice(cid * 10, cid))
    return fake_ports(FakeUnitOfWork(data), now=NIGHT, documents=documents)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def test_made_pdfs_are_sealed_in_the_record_and_leave_the_store_once_masked() -> None:
    documents = InMemoryArchive()
    ports = _ports(documents, 1, 2, 3)
    assert issue_pending_pdfs(ports) == 3
    made = dict(documents.objects)

    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.masked) == (3, 3)
    assert documents.objects == {}
    assert [(d.masked, d.stored) for d in data.pdf_docs.values()] == [(True, False)] * 3
    sealed = _sealed_pdfs(ports)
    assert sealed == {cid: made[pdf_object_key("invoice", cid * 10)] for cid in (1, 2, 3)}


def test_a_pdf_not_made_yet_is_made_and_sealed_by_the_archive_step() -> None:
    documents = InMemoryArchive()
    ports = _ports(documents, 1)

    run_retention(ports, NIGHT)

    doc = _data(ports).pdf_docs[("invoice", 10)]
    pdf = _sealed_pdfs(ports)[1]
    assert pdf.startswith(b"%PDF-")
    assert doc.sha256 == hashlib.sha256(pdf).hexdigest()
    assert (doc.masked, doc.stored, documents.objects) == (True, False, {})


def test_a_buyer_whose_pdf_is_gone_from_the_store_is_not_archived_or_masked() -> None:
    documents = InMemoryArchive()
    ports = _ports(documents, 1, 2)
    issue_pending_pdfs(ports)
    del documents.objects[pdf_object_key("invoice", 10)]

    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.archive_failed, report.masked) == (1, 1, 1)
    assert report.archive_failure_reasons == [
        "the PDF of invoice id 10 is missing from the document store"
    ]
    assert (data.customers[1].last_name, data.customers[2].last_name) == ("Buyer1", MASKED_TEXT)


def test_a_store_that_cannot_delete_keeps_the_masking_and_the_next_run_finishes() -> None:
    documents = DownForDeletes()
    ports = _ports(documents, 1)
    issue_pending_pdfs(ports)

    report = run_retention(ports, NIGHT)

    doc = _data(ports).pdf_docs[("invoice", 10)]
    assert (report.masked, doc.masked, doc.stored) == (1, True, True)
    assert list(documents.objects) == [pdf_object_key("invoice", 10)]

    documents.up = True
    run_retention(ports, NIGHT + timedelta(days=1))

    assert (_data(ports).pdf_docs[("invoice", 10)].stored, documents.objects) == (False, {})


def _sealed_pdfs(ports: Ports) -> dict[int, bytes]:
    """Each buyer's sealed invoice PDF, opened from the archive's record as retrieval does."""
    found = {}
    for cid, ref in _data(ports).copies:
        buyer = _data(ports).customers[cid]
        assert buyer.data_key_wrapped is not None
        assert buyer.data_key_master_id is not None
        key = ports.keys.unwrap(WrappedKey(buyer.data_key_master_id, buyer.data_key_wrapped))
        assert ref.offset is not None
        assert ref.length is not None
        plaintext = open_record(
            ports.archive.get_range(ref.object_key, ref.offset, ref.length),
            key,
            where=ref.object_key,
            customer_id=cid,
            revision=ref.revision,
            sha256=ref.ciphertext_sha256,
        )
        found[cid] = CustomerSnapshot.from_bytes(plaintext).documents["invoices"][cid * 10]
    return found


def test_a_document_the_renderer_fails_on_keeps_only_its_buyer_unarchived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = render_pdf

    def render(doc: DocumentPrint) -> bytes:
        if doc.id == 10:
            raise ValueError("a defect")
        return real(doc)

    monkeypatch.setattr(pdfs, "render_pdf", render)  # the name services.pdfs calls
    documents = InMemoryArchive()
    ports = _ports(documents, 1, 2)

    assert issue_pending_pdfs(ports) == 1
    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.archive_failed, report.masked) == (1, 1, 1)
    assert report.archive_failure_reasons == ["the PDF of invoice id 10 could not be made"]
    assert (data.customers[1].masked_at, data.customers[2].masked_at) == (None, NIGHT)
    assert data.pdf_docs[("invoice", 10)].sha256 is None
