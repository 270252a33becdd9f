"""Invoice and credit PDFs: made into the document store when a document is imported or
created, archived inside the buyer's encrypted record, removed from the document store once the
buyer is masked, put back byte-identical by a retrieval, downloaded, and exported by period.

The document store holds a PDF exactly while its document is unmasked. The order that keeps
this true across crashes: a PDF is in an archive copy (written, read back, verified) before its
buyer can be masked; it is deleted only after the masking committed, and a masked document
whose PDF is still stored (`pdf_stored`) is found and finished by the next run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shelflife.adapters.archive.store import delete_objects
from shelflife.adapters.documents.pdf import render_pdf
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    Unavailable,
)
from shelflife.domain.ports import (
    PDF_KINDS,
    ArchiveStore,
    DocumentPrint,
    PdfRef,
    PdfRepository,
    Ports,
    UnitOfWork,
    pdf_object_key,
)
from shelflife.domain.snapshot import CustomerSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_pdfs(
    store: ArchiveStore, prints: Sequence[DocumentPrint]
) -> list[tuple[DocumentPrint, bytes]]:
    """Render each document and put its PDF into the document store (overwriting a PDF a
    failed transaction left: rendering is deterministic, so it is the same bytes). A document
    the renderer fails on is left without a PDF (logged by kind and id): its buyer is then not
    archived, and so not masked, which the run report says."""
    made = []
    for doc in prints:
        try:
            made.append((doc, render_pdf(doc)))
        except Exception as exc:  # a defect in rendering costs this document only
            log.warning("no PDF made for %s id %d (%s)", doc.kind, doc.id, type(exc).__name__)
    _in_parallel(lambda item: store.put(pdf_object_key(item[0].kind, item[0].id), item[1]), made)
    return made


STORE_THREADS = 8
"""Document-store writes and deletes in flight at once: each waits on the disk (two fsyncs on
a folder) or the network (S3), not on the CPU, so a batch's PDFs overlap their waits."""


def _in_parallel(work: Callable[[T], object], items: Sequence[T]) -> None:
    """`work` on every item, several at a time; the first failure is raised once all ended."""
    if len(items) < 2:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=min(STORE_THREADS, len(items))) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


def issue_pending_pdfs(ports: Ports) -> int:
    """Make the PDF of every unmasked invoice and credit without one, a batch per transaction;
    returns how many. No archive copy can miss one: the archive step makes (and seals) the
    PDFs its buyers still lack itself."""
    made_count = 0
    batch = ports.limits.batch_size
    for kind in PDF_KINDS:
        after = 0
        while True:
            with ports.uow as uow:
                prints = uow.pdfs.pending(kind, after, batch)
                if not prints:
                    break
                made = make_pdfs(ports.documents, prints)
                uow.pdfs.record_made([(doc, sha256(data)) for doc, data in made])
                uow.commit()
            after = prints[-1].id
            made_count += len(made)
    return made_count


def issue_pending_pdfs_or_warn(ports: Ports) -> int:
    """`issue_pending_pdfs` for callers whose own work is done already (an import, a credit):
    a document store that is down costs the PDFs only, which the nightly run makes before it
    archives the buyer."""
    try:
        return issue_pending_pdfs(ports)
    except ArchiveUnavailable as exc:
        log.warning("invoice and credit PDFs not made now (the next run makes them): %s", exc)
        return 0


def attach_pdfs(
    ports: Ports,
    pdfs: PdfRepository,
    snaps: Mapping[int, CustomerSnapshot],
    failed: list[tuple[int, str]],
) -> None:
    """Inside an archive batch's transaction: put the PDFs of each buyer's unmasked documents
    into its snapshot, making (and recording) the ones not made yet. A buyer one of whose PDFs
    cannot be made or read back as recorded is added to `failed`, and the caller must not
    seal it: masking it would lose the PDF."""
    refs = pdfs.of_customers(list(snaps))
    made: dict[tuple[str, int], bytes] = {}
    for kind in PDF_KINDS:
        ids = sorted(r.id for rs in refs.values() for r in rs if r.kind == kind and not r.sha256)
        if not ids:
            continue
        try:
            fresh = make_pdfs(ports.documents, pdfs.pending(kind, 0, len(ids), ids))
        except ArchiveUnavailable as exc:
            log.warning("invoice and credit PDFs not made: %s", exc)
            continue
        pdfs.record_made([(doc, sha256(data)) for doc, data in fresh])
        made.update({(kind, doc.id): data for doc, data in fresh})
    for cid, snap in snaps.items():
        for ref in refs.get(cid, []):
            data = made.get((ref.kind, ref.id))
            why = None
            if data is None and ref.sha256 is None:
                why = f"the PDF of {ref.kind} id {ref.id} could not be made"
            elif data is None:
                data, why = _read_recorded(ports.documents, ref)
            if data is None:
                failed.append((cid, why or "an invoice or credit PDF is unreadable"))
                break
            snap.add_pdf(ref.table, ref.id, data)
            # A PDF made just now was recorded after the snapshot was taken: its row gets the
            # digest too, or a retrieval (which puts back the PDFs whose restored digest they
            # match) would leave this archived PDF out.
            row = snap.rows.get(ref.table, {}).get(ref.id)
            if row is not None:
                row["pdf_sha256"] = sha256(data)


def _read_recorded(store: ArchiveStore, ref: PdfRef) -> tuple[bytes | None, str | None]:
    """The stored PDF if it is the recorded one; else why not (naming the document's kind
    and id, never its number's buyer)."""
    try:
        data = store.get(ref.object_key)
    except (ArchiveUnavailable, ArchiveCorrupt):
        return None, f"the PDF of {ref.kind} id {ref.id} is missing from the document store"
    if sha256(data) != ref.sha256:
        return None, f"the PDF of {ref.kind} id {ref.id} in the document store was altered"
    return data, None


def remove_masked_pdfs(ports: Ports, uow: UnitOfWork | None = None) -> int:
    """Delete from the document store the PDFs of masked documents, a batch per transaction
    (on `uow`, by default the ports' own); returns how many. Runs after each masking commits,
    and at the start of a run for what a stopped run left."""
    work = ports.uow if uow is None else uow
    removed = 0
    try:
        while True:
            with work:
                refs = work.pdfs.leaving(ports.limits.batch_size)
                if not refs:
                    break
                delete_objects(ports.documents, [ref.object_key for ref in refs])
                work.pdfs.mark_removed(refs)
                work.commit()
            removed += len(refs)
    except (ArchiveUnavailable, Forbidden) as exc:
        # The masking stands; the next run removes what is left (`pdf_stored` says what).
        log.warning("masked documents' PDFs not removed from the document store yet: %s", exc)
    return removed


def restore_pdfs(
    ports: Ports,
    pdfs: PdfRepository,
    customer_id: int,
    documents: Mapping[str, Mapping[int, bytes]],
) -> list[str]:
    """Inside a retrieval's transaction, after its restore: put back the PDFs of the documents
    it restored, each checked against its restored digest. Raises `ArchiveCorrupt` (nothing
    put) when an archived PDF is missing or differs. Returns the object keys put, which the
    caller deletes again if its transaction then fails."""
    refs = pdfs.returning(customer_id)
    back: list[tuple[PdfRef, bytes]] = []
    for ref in refs:
        data = documents.get(ref.table, {}).get(ref.id)
        if data is None or sha256(data) != ref.sha256:
            raise ArchiveCorrupt(
                f"the archive copies hold no matching PDF of {ref.kind} {ref.number!r}; "
                "nothing was changed"
            )
        back.append((ref, data))
    put = [ref.object_key for ref, _ in back]
    try:
        _in_parallel(lambda item: ports.documents.put(item[0].object_key, item[1]), back)
    except ArchiveUnavailable:
        forget_pdfs(ports.documents, put)
        raise
    pdfs.mark_stored([ref for ref, _ in back])
    return put


def forget_pdfs(store: ArchiveStore, keys: Sequence[str]) -> None:
    """Best-effort removal of PDFs put by a transaction that then failed."""
    for key in keys:
        try:
            store.delete(key)
        except Exception:  # the original failure matters more; the key is logged
            log.warning("could not remove %s from the document store", key)


def document_pdf(ports: Ports, kind: str, number: str, shop: str | None = None) -> bytes:
    """The PDF of an invoice or credit, as recorded. `Conflict` while the document is masked
    (retrieve its order first); `Unavailable` while it has no PDF or the store cannot give it."""
    if kind not in PDF_KINDS:
        raise InvalidInput("kind: must be invoice or credit")
    with ports.reader as reader:
        ref = reader.pdfs.find(kind, number, shop)
    if ref.masked:
        raise Conflict(
            f"{kind} {number!r} is masked: its PDF is in the archive only; retrieve its order "
            "to read it"
        )
    if ref.sha256 is None:
        raise Unavailable(
            f"{kind} {number!r} has no PDF yet (the document store was unavailable when it was "
            "made); the next nightly run makes it"
        )
    data, why = _read_recorded(ports.documents, ref)
    if data is None:
        raise Unavailable(f"{why}; check SHELFLIFE_DOCUMENT_STORE_URL")
    return data
