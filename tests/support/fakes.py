"""Hand-written fakes of the ports: an in-memory unit of work with its repositories, archive
stores (working, and with the failures a real archive has, on demand) and a key provider.

The fake unit of work keeps committed data apart from the transaction's working copy, so a
unit test sees exactly what a commit (or a failure before it) leaves behind. Its selections
follow `domain.policy` for the few fields a fake buyer has; the SQL twins are tested against
the policy in tests/integration/test_properties.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Self

from shelflife.adapters.archive.segments import SEGMENT_MAGIC, read_manifest
from shelflife.domain.after_sales import OrderedLine
from shelflife.domain.audit import PURGE_ACTION, AuditEntry, next_entry
from shelflife.domain.clock import FixedClock
from shelflife.domain.duplicates import DuplicateCandidate, MergeCandidate, PersonFields
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    Forbidden,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    UnknownOrder,
)
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.masking import MASK_PROFILE, MASKED_TEXT, TAX_FIELDS
from shelflife.domain.policy import CustomerFacts, Cutoffs, OrderFacts
from shelflife.domain.ports import (
    RUN_COUNTS,
    AccountingRow,
    ArchivedCopy,
    ArchivedSegment,
    ArchiveKeyRow,
    ArchiveProblem,
    ArchiveStore,
    BuyerDocuments,
    CopyRef,
    DocumentPrint,
    DocumentRef,
    Due,
    ExportRecord,
    IndexedCopy,
    InvoiceRef,
    KeyLocation,
    LeavingPdf,
    LedgerEntry,
    Limits,
    MaskedState,
    Match,
    OrderMatch,
    OrderRecords,
    OrderRef,
    PdfRef,
    Ports,
    RecoveredRecord,
    Rewrap,
    RunLock,
    RunRow,
    SegmentRef,
    Selection,
    ShopRow,
    ShopSettings,
    StoredObject,
    WrappedKey,
    WrappingKey,
)
from shelflife.domain.snapshot import CustomerSnapshot, decode

# --- data ---------------------------------------------------------------------------------


@dataclass
class FakeCustomer:
    """A buyer with the PII fields the duplicate rule compares (`last_name` is the one the run
    archives and masks) and the retention columns the run reads."""

    id: int
    shop_id: int = 1
    last_name: str = "Mustermann"
    first_name: str | None = "Erika"
    city: str | None = "Köln"
    zip: str | None = "51147"
    company: str | None = None
    channel: str = "amazon"
    closed_at: datetime | None = None
    """When the buyer's last order was shipped or cancelled (None: still open)."""
    pii_revision: int = 1
    archived_revision: int | None = None
    archive_failed_at: datetime | None = None
    archive_failure: str | None = None
    masked_at: datetime | None = None
    retrieved_at: datetime | None = None
    data_key_wrapped: bytes | None = None
    data_key_master_id: str | None = None
    shredded_at: datetime | None = None
    shredded_because: str | None = None


@dataclass
class FakeOrder:
    id: int
    nr: str
    customer_id: int
    shop_id: int = 1
    is_amazon: bool = True
    ordered_at: datetime = datetime(2026, 1, 2, 10, tzinfo=UTC)
    shipped_at: datetime | None = None
    lines: list[OrderedLine] = field(default_factory=list)
    replaces: int | None = None


@dataclass
class FakeInvoice:
    id: int
    nr: str
    customer_id: int
    order_id: int | None
    total: Decimal
    shop_id: int = 1
    created_at: datetime = datetime(2026, 1, 2, 10, tzinfo=UTC)


@dataclass
class FakeDocument:
    """A return or credit the fake recorded: its number, what it is against, and why."""

    kind: str
    nr: str
    customer_id: int
    against: int
    at: datetime
    user: str
    reason: str
    items: dict[str, int] = field(default_factory=dict)
    total: Decimal = Decimal("0.00")


@dataclass
class FakeHistoryEntry:
    customer_id: int
    order_id: int | None
    at: datetime
    event: str
    user: str
    text: str


@dataclass
class FakeRun:
    id: int
    as_of: datetime
    started_at: datetime
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class FakeData:
    """Everything the fake database holds."""

    shops: list[ShopRow] = field(
        default_factory=lambda: [ShopRow(1, "berlin", "Europe/Berlin", True)]
    )
    customers: dict[int, FakeCustomer] = field(default_factory=dict)
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    invoices: dict[int, FakeInvoice] = field(default_factory=dict)
    documents: list[FakeDocument] = field(default_factory=list)
    copies: list[tuple[int, CopyRef]] = field(default_factory=list)
    segments: list[ArchivedSegment] = field(default_factory=list)
    verified: dict[str, datetime] = field(default_factory=dict)
    """Object key -> when a verification last found it sound."""
    problems: list[tuple[ArchiveProblem, datetime | None]] = field(default_factory=list)
    """What verifications found, with when a later check resolved it (None: open)."""
    history: list[FakeHistoryEntry] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    runs: dict[int, FakeRun] = field(default_factory=dict)
    master_key_id: str | None = "fake-master"
    previous_master_key_id: str | None = None
    identity_key_wrapped: bytes = b"fake-master:" + bytes(32)
    key_locations: dict[str, KeyLocation] = field(default_factory=dict)
    wrapping_keys: dict[str, WrappingKey] = field(default_factory=dict)
    patterns: dict[int, str] = field(default_factory=dict)
    """Shop id -> Amazon order pattern."""
    feature_changes: list[tuple[int, bool, datetime, str]] = field(default_factory=list)
    tax_fields: dict[int, tuple[frozenset[str], str | None]] = field(default_factory=dict)
    """Shop id -> the tax fields it keeps and their legal basis."""
    accounting_rows: list[AccountingRow] = field(default_factory=list)
    """Invoices and credits, as the accounting export lists them."""
    exported: dict[tuple[str, int], datetime] = field(default_factory=dict)
    """(kind, document id) -> when it was last exported."""
    exports: list[ExportRecord] = field(default_factory=list)
    pdf_docs: dict[tuple[str, int], FakePdfDocument] = field(default_factory=dict)
    """(kind, id) -> an invoice or credit with its PDF's state."""


@dataclass
class FakePdfDocument:
    """An invoice or credit as the PDF repository sees it."""

    print: DocumentPrint
    sha256: str | None = None
    stored: bool = False
    masked: bool = False
    exported_at: datetime | None = None

    def ref(self) -> PdfRef:
        p = self.print
        return PdfRef(
            p.kind,
            p.id,
            p.customer_id,
            p.number,
            p.shop,
            p.created_at,
            None if self.masked else self.sha256,
            self.stored,
            self.masked,
        )


# --- repositories -------------------------------------------------------------------------


class FakeOrders:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def find(self, order_nr: str, shop: str | None = None) -> OrderRef:
        found = [o for o in self.data.orders.values() if o.nr == order_nr]
        if not found:
            raise UnknownOrder(order_nr)
        if len(found) > 1 and shop is None:
            raise InvalidInput(f"order number {order_nr!r} exists in several shops")
        o = found[0]
        return OrderRef(o.id, o.customer_id, o.shop_id, o.is_amazon, o.ordered_at)

    def search(
        self,
        query: str,
        customer_id: int | None,
        limit: int,
        *,
        numbers: bool = True,
        personal_data: bool = True,
    ) -> tuple[list[OrderMatch], bool]:
        """Order numbers and buyer references only: the fake holds no documents or e-mail."""
        if not numbers:
            return [], False
        shops = {s.id: s for s in self.data.shops}
        hits = [
            OrderMatch(
                o.id,
                o.customer_id,
                shops[o.shop_id].name,
                shops[o.shop_id].time_zone,
                o.nr,
                o.is_amazon,
                o.ordered_at,
                o.shipped_at,
                None,
                self.data.customers[o.customer_id].masked_at,
                Match.CUSTOMER if customer_id is not None else Match.ORDER,
            )
            for o in self.data.orders.values()
            if o.customer_id == customer_id or (customer_id is None and o.nr == query)
        ]
        return hits[:limit], len(hits) > limit

    def ship(self, order_id: int, at: datetime) -> None:
        self.data.orders[order_id].shipped_at = at

    def through_document(
        self, kind: DocumentKind, number: str, shop: str | None = None
    ) -> DocumentRef:
        """Invoices, and credits the fake recorded against them (a credit's order is its
        invoice's)."""
        invoices = self.data.invoices
        if kind is DocumentKind.INVOICE:
            found = [
                (i.customer_id, i.order_id, i.shop_id) for i in invoices.values() if i.nr == number
            ]
        else:
            found = [
                (d.customer_id, invoices[d.against].order_id, invoices[d.against].shop_id)
                for d in self.data.documents
                if d.kind == "credit" and d.nr == number
            ]
        shops = {s.id: s.name for s in self.data.shops}
        found = [f for f in found if shop is None or shops[f[2]] == shop]
        if not found:
            raise NotFound(f"no {kind} with number {number!r}; check the number")
        if len(found) > 1:
            raise InvalidInput(f"{kind} number {number!r} exists in several shops")
        customer_id, order_id, shop_id = found[0]
        if order_id is not None:
            through: FakeOrder | None = self.data.orders[order_id]
        else:
            through = max(
                (
                    o
                    for o in self.data.orders.values()
                    if o.customer_id == customer_id and o.is_amazon
                ),
                key=lambda o: (o.ordered_at, o.id),
                default=None,
            )
        return DocumentRef(
            kind,
            number,
            customer_id,
            shops[shop_id],
            order_id is None,
            None if through is None else through.nr,
        )

    def records(self, order_nr: str, shop: str | None = None) -> OrderRecords:
        """The fake's order and buyer as rows with every column `show` reads (PII columns the
        fake does not model are empty); no addresses, items, documents."""
        ref = self.find(order_nr, shop)
        o, c = self.data.orders[ref.id], self.data.customers[ref.customer_id]
        shop_row = next(s for s in self.data.shops if s.id == o.shop_id)
        empty = {f.column: None for f in MASK_PROFILE["orders"]}
        order = SimpleNamespace(
            **empty,
            id=o.id,
            customer_id=o.customer_id,
            shop_id=o.shop_id,
            order_nr_external=o.nr,
            is_amazon=o.is_amazon,
            ordered_at=o.ordered_at,
            shipped_at=o.shipped_at or c.closed_at,
            cancelled_at=None,
            masked_at=c.masked_at if c.retrieved_at is None else None,
        )
        customer = SimpleNamespace(
            **{f.column: None for f in MASK_PROFILE["customers"]},
            id=c.id,
            channel="amazon" if o.is_amazon else "shop",
            country="DE",
            archived_at=None,
            archive_failed_at=c.archive_failed_at,
            masked_at=c.masked_at,
            retrieved_at=c.retrieved_at,
        )
        customer.last_name = c.last_name
        history = [
            SimpleNamespace(recorded_at=h.at, event=h.event, user_name=h.user, text=h.text)
            for h in self.data.history
            if h.customer_id == c.id
        ]
        facts = FakeCustomers(self.data).facts([c.id])[c.id]
        return OrderRecords(order, shop_row, customer, facts, [], [], [], [], history, [])


def _holds_real_pii(c: FakeCustomer) -> bool:
    return c.masked_at is None or c.retrieved_at is not None


def _archive_due(c: FakeCustomer, s: Selection) -> bool:
    cut = s.cutoffs
    return (
        c.shop_id == s.shop_id
        and _holds_real_pii(c)
        and c.archived_revision != c.pii_revision
        and (c.archive_failed_at is None or c.archive_failed_at <= cut.retry_failed_before)
        and c.closed_at is not None
        and c.closed_at < cut.archive_before
    )


def _mask_ready(c: FakeCustomer, s: Selection) -> bool:
    return (
        c.shop_id == s.shop_id
        and c.masked_at is None
        and c.closed_at is not None
        and c.closed_at < s.cutoffs.mask_before
    )


def _remask_ready(c: FakeCustomer, s: Selection) -> bool:
    return (
        c.shop_id == s.shop_id
        and c.retrieved_at is not None
        and c.retrieved_at < s.cutoffs.remask_before
    )


def _key_ok(c: FakeCustomer, s: Selection) -> bool:
    return c.data_key_master_id in (s.master_key_id, *s.other_key_ids)


def _copy_current(c: FakeCustomer, s: Selection) -> bool:
    key_ok = _key_ok(c, s)
    current = c.archived_revision == c.pii_revision and key_ok
    if s.tonight:
        return current or (_archive_due(c, s) and (c.data_key_master_id is None or key_ok))
    return current


def selected(c: FakeCustomer, s: Selection) -> bool:
    """The fake's twin of `adapters/db/retention.py`'s conditions."""
    match s.due:
        case Due.ARCHIVE:
            return _archive_due(c, s)
        case Due.RETRY:
            return _archive_due(c, s) and c.archive_failed_at is not None
        case Due.MASK:
            return _mask_ready(c, s) and _copy_current(c, s)
        case Due.REMASK:
            return _remask_ready(c, s) and _copy_current(c, s)
        case Due.MASK_REFUSED | Due.REMASK_REFUSED:
            ready = _remask_ready if s.due is Due.REMASK_REFUSED else _mask_ready
            return ready(c, s) and c.archived_revision == c.pii_revision and not _key_ok(c, s)


class FakeCustomers:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def duplicate_groups(self, shop: str | None) -> Iterator[list[DuplicateCandidate]]:
        shops = {s.id: s.name for s in self.data.shops}
        groups: dict[tuple[object, ...], list[DuplicateCandidate]] = {}
        for c in sorted(self.data.customers.values(), key=lambda c: c.id):
            person = PersonFields(c.first_name, c.last_name, c.city, c.zip, c.company)
            key = (c.shop_id, *((v or "").strip(" ") for v in vars(person).values()))
            eligible = c.masked_at is None and c.archived_revision is None and all(key[1:5])
            if eligible and (shop is None or shops[c.shop_id] == shop):
                orders = sum(1 for o in self.data.orders.values() if o.customer_id == c.id)
                groups.setdefault(key, []).append(
                    DuplicateCandidate(c.id, shops[c.shop_id], c.channel, person, orders)
                )
        yield from (g for g in groups.values() if len(g) > 1)

    def merge_candidate(self, customer_id: int) -> MergeCandidate:
        c = self.data.customers.get(customer_id)
        if c is None:
            raise NotFound(f"customer C{customer_id} does not exist")
        copied = any(cid == customer_id for cid, _copy in self.data.copies)
        return MergeCandidate(
            c.id,
            c.shop_id,
            c.channel,
            c.archived_revision is not None or copied,
            c.masked_at is not None,
        )

    def merge(self, keep_id: int, other_id: int) -> int:
        moved = [o for o in self.data.orders.values() if o.customer_id == other_id]
        for o in moved:
            o.customer_id = keep_id
        for h in self.data.history:
            if h.customer_id == other_id:
                h.customer_id = keep_id
        self.data.customers[keep_id].pii_revision += 1
        del self.data.customers[other_id]
        return len(moved)

    def lock_masked_state(self, customer_id: int) -> MaskedState:
        c = self.data.customers[customer_id]
        remasked = [
            h.at
            for h in self.data.history
            if h.customer_id == customer_id and h.event == "remasked"
        ]
        last = c.masked_at
        if last is not None and remasked:
            last = max(last, *remasked)
        return MaskedState(customer_id, c.masked_at, last, c.shredded_at, c.retrieved_at)

    def restore(
        self, customer_id: int, order_id: int, merged: Mapping[str, Mapping[int, Mapping[str, Any]]]
    ) -> int:
        row = merged.get("customers", {}).get(customer_id)
        if not row:
            return 0
        values = decode("customers", dict(row))
        if "last_name" not in values:
            return 0
        self.data.customers[customer_id].last_name = str(values["last_name"])
        for (kind, doc_id), doc in self.data.pdf_docs.items():
            archived = merged.get(f"{kind}s", {}).get(doc_id)
            if doc.print.customer_id == customer_id and doc.masked and archived is not None:
                doc.masked, doc.sha256 = False, archived.get("pdf_sha256")
        return 1

    def mark_retrieved(self, customer_id: int, at: datetime) -> None:
        c = self.data.customers[customer_id]
        c.retrieved_at = at
        c.pii_revision += 1

    def facts(self, ids: Sequence[int]) -> dict[int, CustomerFacts]:
        facts = {}
        for cid in ids:
            c = self.data.customers[cid]
            orders = tuple(
                OrderFacts(o.shipped_at or c.closed_at, None, c.masked_at is not None, o.nr)
                for o in self.data.orders.values()
                if o.customer_id == cid
            )
            shop = next(s for s in self.data.shops if s.id == c.shop_id)
            facts[cid] = CustomerFacts(
                is_amazon=True,
                feature_enabled=shop.retention_enabled,
                orders=orders,
                document_dates=(),
                pii_revision=c.pii_revision,
                archived_revision=c.archived_revision,
                archive_failed_at=c.archive_failed_at,
                masked_at=c.masked_at,
                retrieved_at=c.retrieved_at,
            )
        return facts

    def overdue_candidates(
        self, shop_id: int, cutoffs: Cutoffs, after_id: int, limit: int
    ) -> list[int]:
        return [
            c.id
            for c in sorted(self.data.customers.values(), key=lambda c: c.id)
            if c.shop_id == shop_id
            and c.id > after_id
            and (
                (
                    c.masked_at is None
                    and c.closed_at is not None
                    and c.closed_at < cutoffs.mask_before
                )
                or (c.retrieved_at is not None and c.retrieved_at < cutoffs.remask_before)
            )
        ][:limit]

    def _ids(self, selection: Selection) -> list[int]:
        return sorted(cid for cid, c in self.data.customers.items() if selected(c, selection))

    def count(self, selection: Selection) -> int:
        return len(self._ids(selection))

    def next_batch(self, selection: Selection, after_id: int, limit: int) -> list[int]:
        return [cid for cid in self._ids(selection) if cid > after_id][:limit]

    def first_ids(self, selection: Selection, limit: int) -> list[int]:
        return self._ids(selection)[:limit]

    def among(self, selection: Selection, ids: Sequence[int]) -> list[int]:
        wanted = set(ids)
        return [cid for cid in self._ids(selection) if cid in wanted]

    def count_retries(self, ids: Sequence[int]) -> int:
        return sum(1 for cid in ids if self.data.customers[cid].archive_failed_at is not None)

    def archive_keys(self, ids: Sequence[int]) -> dict[int, ArchiveKeyRow]:
        return {
            cid: ArchiveKeyRow(
                cid,
                self.data.customers[cid].pii_revision,
                self.data.customers[cid].data_key_wrapped,
                self.data.customers[cid].data_key_master_id,
                shredded=self.data.customers[cid].shredded_at is not None,
            )
            for cid in ids
        }

    def snapshots(
        self, ids: Sequence[int], revisions: Mapping[int, int]
    ) -> dict[int, CustomerSnapshot]:
        snaps = {}
        for cid in ids:
            snap = CustomerSnapshot(cid, revisions[cid])
            snap.add("customers", cid, {"last_name": self.data.customers[cid].last_name})
            for doc in self.data.pdf_docs.values():
                if doc.print.customer_id == cid and not doc.masked:
                    table = f"{doc.print.kind}s"
                    snap.add(table, doc.print.id, {"pdf_sha256": doc.sha256})
            snaps[cid] = snap
        return snaps

    def record_archived(self, done: Sequence[ArchivedCopy], at: datetime) -> None:
        for d in done:
            c = self.data.customers[d.customer_id]
            ref = CopyRef(d.object_key, d.revision, d.sha256, d.offset, d.length)
            self.data.copies.append((d.customer_id, ref))
            c.archived_revision, c.archive_failed_at, c.archive_failure = d.revision, None, None
            if c.data_key_wrapped is None:
                c.data_key_wrapped, c.data_key_master_id = d.wrapped_key, d.master_key_id
            if d.wrapping_key is not None:
                self.data.wrapping_keys.setdefault(d.wrapping_key.id, d.wrapping_key)

    def keys_to_rewrap(self, master_key_id: str, after_id: int, limit: int) -> list[int]:
        return sorted(
            cid
            for cid, c in self.data.customers.items()
            if cid > after_id
            and c.data_key_wrapped is not None
            and c.data_key_master_id != master_key_id
        )[:limit]

    def count_keys_to_rewrap(self, master_key_id: str) -> int:
        return len(self.keys_to_rewrap(master_key_id, 0, len(self.data.customers)))

    def replace_data_keys(self, rewraps: Sequence[Rewrap], at: datetime) -> int:
        replaced = 0
        for r in rewraps:
            c = self.data.customers[r.customer_id]
            if r.new.wrapping_key is not None:
                self.data.wrapping_keys.setdefault(r.new.wrapping_key.id, r.new.wrapping_key)
            if c.data_key_wrapped == r.old_blob:
                c.data_key_wrapped, c.data_key_master_id = r.new.blob, r.new.master_key_id
                replaced += 1
        return replaced

    def record_failed(self, failed: Sequence[tuple[int, str]], at: datetime) -> None:
        for cid, why in failed:
            c = self.data.customers[cid]
            c.archive_failed_at, c.archive_failure = at, why

    def adopt_data_key(self, customer_id: int, wrapped: WrappedKey) -> None:
        c = self.data.customers[customer_id]
        if c.data_key_wrapped is None:
            c.data_key_wrapped, c.data_key_master_id = wrapped.blob, wrapped.master_key_id

    def mask(self, ids: Sequence[int], at: datetime, event: str) -> int:
        masked = 0
        for cid in ids:
            c = self.data.customers[cid]
            if c.archived_revision != c.pii_revision:
                continue
            c.last_name = MASKED_TEXT
            c.masked_at = c.masked_at or at
            c.retrieved_at = None
            for doc in self.data.pdf_docs.values():
                if doc.print.customer_id == cid and not doc.masked:
                    doc.masked = True
            self.data.history.append(FakeHistoryEntry(cid, None, at, event, "shelflife", ""))
            masked += 1
        return masked

    def _documents(self, customer_id: int) -> list[tuple[DocumentKind, str, datetime]]:
        orders = [o for o in self.data.orders.values() if o.customer_id == customer_id]
        invoices = [i for i in self.data.invoices.values() if i.customer_id == customer_id]
        return [(DocumentKind.ORDER, o.nr, o.ordered_at) for o in orders] + [
            (DocumentKind.INVOICE, i.nr, i.created_at) for i in invoices
        ]

    def shred_due(
        self,
        shop_id: int,
        expired_before: Mapping[DocumentKind, datetime],
        after_id: int,
        limit: int,
    ) -> list[int]:
        due = [
            c.id
            for c in sorted(self.data.customers.values(), key=lambda c: c.id)
            if c.shop_id == shop_id
            and c.id > after_id
            and c.masked_at is not None
            and c.retrieved_at is None
            and c.shredded_at is None
            and c.data_key_wrapped is not None
            and any(kind is DocumentKind.ORDER for kind, _nr, _made in self._documents(c.id))
            and all(made < expired_before[kind] for kind, _nr, made in self._documents(c.id))
        ]
        return due[:limit]

    def documents(self, customer_id: int) -> BuyerDocuments:
        c = self.data.customers.get(customer_id)
        if c is None:
            raise NotFound(f"no buyer C{customer_id} (test double)")
        zone = next(s.time_zone for s in self.data.shops if s.id == c.shop_id)
        return BuyerDocuments(
            customer_id,
            zone,
            c.masked_at,
            c.retrieved_at,
            c.shredded_at,
            c.data_key_wrapped is not None,
            self._documents(customer_id),
        )

    def shred(self, ids: Sequence[int], at: datetime, because: str) -> list[int]:
        done = []
        for cid in sorted(ids):
            c = self.data.customers[cid]
            if c.shredded_at is None and c.data_key_wrapped is not None:
                c.data_key_wrapped, c.data_key_master_id = None, None
                c.shredded_at, c.shredded_because = at, because
                self.data.history.append(FakeHistoryEntry(cid, None, at, "shredded", "", because))
                done.append(cid)
        return done


class FakeAfterSales:
    """Returns, replacements and credits on the fake's orders and invoices. An order counts as
    masked while its buyer is masked and not retrieved (the fake's orders have no own state)."""

    def __init__(self, data: FakeData) -> None:
        self.data = data

    def _masked(self, customer_id: int) -> bool:
        return not _holds_real_pii(self.data.customers[customer_id])

    def order_masked(self, order_id: int) -> bool:
        return self._masked(self.data.orders[order_id].customer_id)

    def lines(self, order_id: int) -> list[OrderedLine]:
        return list(self.data.orders[order_id].lines)

    def _documents(self, kind: str, against: int) -> list[FakeDocument]:
        return [d for d in self.data.documents if (d.kind, d.against) == (kind, against)]

    def returned(self, order_id: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        for d in self._documents("return", order_id):
            for sku, qty in d.items.items():
                totals[sku] = totals.get(sku, 0) + qty
        return totals

    def replaced(self, order_id: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        for o in self.data.orders.values():
            if o.replaces == order_id:
                for line in o.lines:
                    totals[line.sku] = totals.get(line.sku, 0) + line.qty
        return totals

    def count_returns(self, order_id: int) -> int:
        return len(self._documents("return", order_id))

    def count_replacements(self, order_id: int) -> int:
        return sum(1 for o in self.data.orders.values() if o.replaces == order_id)

    def add_return(
        self,
        order: OrderRef,
        return_nr: str,
        at: datetime,
        user: str,
        reason: str,
        items: Mapping[str, int],
    ) -> None:
        self.data.documents.append(
            FakeDocument(
                "return", return_nr, order.customer_id, order.id, at, user, reason, dict(items)
            )
        )

    def add_replacement(
        self, original: OrderRef, order_nr: str, at: datetime, lines: Sequence[OrderedLine]
    ) -> int:
        new_id = max(self.data.orders, default=0) + 1
        self.data.orders[new_id] = FakeOrder(
            new_id,
            order_nr,
            original.customer_id,
            original.shop_id,
            original.is_amazon,
            at,
            lines=list(lines),
            replaces=original.id,
        )
        return new_id

    def find_invoice(self, invoice_nr: str, shop: str | None = None) -> InvoiceRef:
        found = [i for i in self.data.invoices.values() if i.nr == invoice_nr]
        if not found:
            raise NotFound(f"no invoice with number {invoice_nr!r}; check the number")
        i = found[0]
        order = self.data.orders.get(i.order_id) if i.order_id is not None else None
        if order is None:
            order = next(
                (o for o in self.data.orders.values() if o.customer_id == i.customer_id), None
            )
        shop_name = next(s.name for s in self.data.shops if s.id == i.shop_id)
        return InvoiceRef(
            i.id,
            i.nr,
            i.customer_id,
            i.shop_id,
            shop_name,
            i.order_id,
            order.nr if order else None,
            i.total,
            self._masked(i.customer_id),
        )

    def credited(self, invoice_id: int) -> Decimal:
        return sum((d.total for d in self._documents("credit", invoice_id)), Decimal("0.00"))

    def count_credits(self, invoice_id: int) -> int:
        return len(self._documents("credit", invoice_id))

    def add_credit(
        self,
        invoice: InvoiceRef,
        credit_nr: str,
        at: datetime,
        user: str,
        reason: str,
        total: Decimal,
    ) -> None:
        self.data.documents.append(
            FakeDocument(
                "credit", credit_nr, invoice.customer_id, invoice.id, at, user, reason, total=total
            )
        )

    def number_taken(self, kind: str, shop_id: int, number: str) -> bool:
        if kind == "order":
            return any(o.nr == number for o in self.data.orders.values())
        return any((d.kind, d.nr) == (kind, number) for d in self.data.documents)

    def buyer_changed(self, customer_id: int) -> None:
        self.data.customers[customer_id].pii_revision += 1


class FakeArchiveCopies:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def of_customer(self, customer_id: int) -> list[CopyRef]:
        refs = [ref for cid, ref in self.data.copies if cid == customer_id]
        return sorted(refs, key=lambda r: r.revision, reverse=True)

    def add_segment(self, segment: ArchivedSegment) -> None:
        self.data.segments.append(segment)

    def segment_keys(self, after: str, limit: int) -> list[str]:
        return sorted(s.object_key for s in self.data.segments if s.object_key > after)[:limit]

    def segments_of(self, customer_ids: Sequence[int]) -> list[str]:
        wanted = set(customer_ids)
        return sorted(
            {r.object_key for cid, r in self.data.copies if cid in wanted and r.offset is not None}
        )

    def ledger_entries(self, object_keys: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        found: dict[str, list[LedgerEntry]] = {key: [] for key in object_keys}
        for cid, ref in sorted(self.data.copies, key=lambda c: (c[0], c[1].revision)):
            c = self.data.customers[cid]
            if ref.object_key in found and ref.offset is not None and c.data_key_wrapped:
                key = WrappedKey(c.data_key_master_id or "", c.data_key_wrapped)
                found[ref.object_key].append(LedgerEntry(cid, ref.revision, key))
        return found

    def has_segment(self, object_key: str) -> bool:
        return any(s.object_key == object_key for s in self.data.segments)

    def recover(
        self,
        segment: ArchivedSegment,
        records: Sequence[RecoveredRecord],
        at: datetime,
        ledger_found: bool,
    ) -> int:
        if not self.has_segment(segment.object_key):
            self.data.segments.append(segment)
        added = 0
        for r in records:
            c = self.data.customers.get(r.customer_id)
            if c is None:
                c = FakeCustomer(r.customer_id, last_name=MASKED_TEXT, masked_at=segment.created_at)
                c.pii_revision = c.archived_revision = r.revision
                if ledger_found and r.key is None:
                    c.shredded_at, c.shredded_because = at, "unknown"
                self.data.customers[r.customer_id] = c
            if r.key is not None and c.data_key_wrapped is None and c.shredded_at is None:
                c.data_key_wrapped, c.data_key_master_id = r.key.blob, r.key.master_key_id
            if not any(
                cid == r.customer_id and ref.revision == r.revision for cid, ref in self.data.copies
            ):
                ref = CopyRef(segment.object_key, r.revision, r.sha256, r.offset, r.length)
                self.data.copies.append((r.customer_id, ref))
                added += 1
        return added

    def _segment_refs(self) -> list[SegmentRef]:
        return [
            SegmentRef(i, s.object_key, s.size, s.sha256, s.record_count)
            for i, s in enumerate(self.data.segments, 1)
        ]

    def _indexed(self) -> list[IndexedCopy]:
        """Copies with their position as id."""
        return [
            IndexedCopy(i, cid, r.revision, r.object_key, r.ciphertext_sha256, r.offset, r.length)
            for i, (cid, r) in enumerate(self.data.copies, 1)
        ]

    def _legacy(self) -> list[IndexedCopy]:
        return [c for c in self._indexed() if c.offset is None]

    def _last_verified(self, key: str) -> tuple[bool, datetime]:
        at = self.data.verified.get(key)
        return (at is not None, at or datetime.min.replace(tzinfo=UTC))

    def count_objects(self) -> tuple[int, int]:
        return len(self.data.segments), len(self._legacy())

    def segments_to_verify(self, limit: int) -> list[SegmentRef]:
        refs = self._segment_refs()
        return sorted(refs, key=lambda r: (*self._last_verified(r.object_key), r.id))[:limit]

    def segments_after(self, after_id: int, limit: int) -> list[SegmentRef]:
        return [r for r in self._segment_refs() if r.id > after_id][:limit]

    def legacy_to_verify(self, limit: int) -> list[IndexedCopy]:
        legacy = self._legacy()
        return sorted(legacy, key=lambda c: (*self._last_verified(c.object_key), c.id))[:limit]

    def legacy_after(self, after_id: int, limit: int) -> list[IndexedCopy]:
        return [c for c in self._legacy() if c.id > after_id][:limit]

    def records_in(self, object_key: str) -> list[IndexedCopy]:
        found = [c for c in self._indexed() if c.object_key == object_key and c.offset is not None]
        return sorted(found, key=lambda c: c.offset or 0)

    def record_verification(
        self, object_key: str, at: datetime, problems: Sequence[ArchiveProblem]
    ) -> None:
        self.data.problems = [
            (p, resolved or (at if p.object_key == object_key else None))
            for p, resolved in self.data.problems
        ]
        self.data.problems += [(replace(p, found_at=at), None) for p in problems]
        if not problems:
            self.data.verified[object_key] = at

    def open_problems(self) -> list[ArchiveProblem]:
        return [p for p, resolved in self.data.problems if resolved is None]

    def discard_unmasked(self, copies: Sequence[tuple[int, int]]) -> list[int]:
        dropped = {cid for cid, _rev in copies if self.data.customers[cid].masked_at is None}
        for cid, rev in copies:
            if cid not in dropped:
                continue
            self.data.copies = [
                (c, r) for c, r in self.data.copies if (c, r.revision) != (cid, rev)
            ]
            customer = self.data.customers[cid]
            if customer.archived_revision == rev:
                customer.archived_revision = None
        return sorted(dropped)

    def move_into_segment(self, moved: Sequence[ArchivedCopy]) -> None:
        where = {(m.customer_id, m.revision): m for m in moved}
        self.data.copies = [
            (cid, r)
            if (cid, r.revision) not in where
            else (
                cid,
                CopyRef(
                    where[cid, r.revision].object_key,
                    r.revision,
                    where[cid, r.revision].sha256,
                    where[cid, r.revision].offset,
                    where[cid, r.revision].length,
                ),
            )
            for cid, r in self.data.copies
        ]


class FakeHistory:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def add(
        self, customer_id: int, order_id: int | None, at: datetime, event: str, user: str, text: str
    ) -> None:
        self.data.history.append(FakeHistoryEntry(customer_id, order_id, at, event, user, text))


class FakeAudit:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def append(
        self,
        at: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: Mapping[str, str | int | None] | None = None,
    ) -> AuditEntry:
        last = self.data.audit[-1] if self.data.audit else None
        entry = next_entry(last, at, actor, action, subject, detail)
        self.data.audit.append(entry)
        return entry

    def count_actions(self, actor: str, action: str, since: datetime) -> int:
        return sum(
            1 for e in self.data.audit if (e.actor, e.action) == (actor, action) and e.at >= since
        )

    def entries(self) -> Iterator[AuditEntry]:
        return iter(list(self.data.audit))

    def recent(self, limit: int) -> list[AuditEntry]:
        return list(reversed(self.data.audit))[:limit]

    def purge_anchor(self) -> str | None:
        purges = [e for e in self.data.audit if e.action == PURGE_ACTION]
        return str(purges[-1].detail["anchor"]) if purges else None

    def last_before(self, before: datetime) -> AuditEntry | None:
        older = [e for e in self.data.audit if e.at < before]
        return older[-1] if older else None

    def count_through(self, seq: int) -> int:
        return sum(1 for e in self.data.audit if e.seq <= seq)

    def delete_through(self, seq: int) -> int:
        kept = [e for e in self.data.audit if e.seq > seq]
        removed = len(self.data.audit) - len(kept)
        self.data.audit = kept
        return removed


_RUN_ROW = set(RunRow.__dataclass_fields__)


class FakeRuns:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def start(self, as_of: datetime, started_at: datetime) -> int:
        run_id = len(self.data.runs) + 1
        self.data.runs[run_id] = FakeRun(run_id, as_of, started_at)
        return run_id

    def finish(
        self,
        run_id: int,
        finished_at: datetime,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        run = self.data.runs[run_id]
        run.finished_at, run.counts, run.error = finished_at, dict(counts), error

    def recent(self, limit: int) -> list[RunRow]:
        runs = sorted(self.data.runs.values(), key=lambda r: (r.started_at, r.id), reverse=True)
        return [
            RunRow(
                r.id,
                r.as_of,
                r.started_at,
                r.finished_at,
                error=r.error,
                **{name: r.counts.get(name, 0) for name in RUN_COUNTS if name in _RUN_ROW},
            )
            for r in runs[:limit]
        ]


class FakeShops:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def enabled(self) -> list[ShopRow]:
        return [s for s in self.data.shops if s.retention_enabled]

    def all(self) -> list[ShopSettings]:
        return sorted(
            (
                ShopSettings(
                    s.name,
                    s.time_zone,
                    self.data.patterns.get(s.id, ""),
                    s.retention_enabled,
                    tuple(
                        name
                        for name in TAX_FIELDS
                        if name in self.data.tax_fields.get(s.id, (frozenset(), None))[0]
                    ),
                    self.data.tax_fields.get(s.id, (frozenset(), None))[1],
                )
                for s in self.data.shops
            ),
            key=lambda s: s.name,
        )

    def every(self) -> list[ShopRow]:
        return sorted(self.data.shops, key=lambda s: s.id)

    def by_name(self, name: str) -> ShopRow | None:
        return next((s for s in self.data.shops if s.name == name), None)

    def switch_feature(self, shop_id: int, enabled: bool, at: datetime, user: str) -> None:
        self.data.shops = [
            replace(s, retention_enabled=enabled) if s.id == shop_id else s for s in self.data.shops
        ]
        self.data.feature_changes.append((shop_id, enabled, at, user))

    def configure(self, name: str, changes: Mapping[str, str]) -> bool:
        shop = self.by_name(name)
        if shop is None:
            return False
        if "time_zone" in changes:
            self.data.shops = [
                replace(s, time_zone=changes["time_zone"]) if s.id == shop.id else s
                for s in self.data.shops
            ]
        if "amazon_order_pattern" in changes:
            self.data.patterns[shop.id] = changes["amazon_order_pattern"]
        return True

    def set_tax_fields(self, shop_id: int, kept: frozenset[str], basis: str | None) -> None:
        self.data.tax_fields[shop_id] = (frozenset(kept), basis)


class FakeExports:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def accounting_rows(self, shop_id: int, start: datetime, end: datetime) -> list[AccountingRow]:
        shop = next(s.name for s in self.data.shops if s.id == shop_id)
        found = [
            d for d in self.data.accounting_rows if d.shop == shop and start <= d.created_at < end
        ]
        return sorted(found, key=lambda d: (d.created_at, d.kind != "invoice", d.number))

    def mark_exported(self, rows: Sequence[AccountingRow], at: datetime) -> None:
        self.data.exported.update({(r.kind, r.id): at for r in rows})

    def record(self, export: ExportRecord) -> None:
        self.data.exports.append(export)

    def last(self, kind: str) -> ExportRecord | None:
        of_kind = [e for e in self.data.exports if e.kind == kind]
        return max(of_kind, key=lambda e: e.created_at) if of_kind else None

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        """Simply: the shop's unmasked documents never exported and older than the mask
        cut-off (the fakes model no buyer behind a document)."""
        shop = next(s.name for s in self.data.shops if s.id == shop_id)
        return sum(
            1
            for d in self.data.accounting_rows
            if d.shop == shop
            and not d.masked
            and (d.kind, d.id) not in self.data.exported
            and d.created_at < cutoffs.mask_before
        )


class FakePdfs:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def _docs(self, kind: str | None = None) -> list[FakePdfDocument]:
        found = [d for (k, _), d in self.data.pdf_docs.items() if kind is None or k == kind]
        return sorted(found, key=lambda d: (d.print.kind, d.print.id))

    def pending(
        self, kind: str, after_id: int, limit: int, among: Sequence[int] | None = None
    ) -> list[DocumentPrint]:
        return [
            d.print
            for d in self._docs(kind)
            if d.sha256 is None
            and not d.masked
            and d.print.id > after_id
            and (among is None or d.print.id in among)
        ][:limit]

    def record_made(self, made: Sequence[tuple[DocumentPrint, str]]) -> None:
        for doc, digest in made:
            found = self.data.pdf_docs[(doc.kind, doc.id)]
            found.sha256, found.stored = digest, True

    def of_customers(self, ids: Sequence[int]) -> dict[int, list[PdfRef]]:
        found: dict[int, list[PdfRef]] = {cid: [] for cid in ids}
        for d in self._docs():
            if d.print.customer_id in found and not d.masked:
                found[d.print.customer_id].append(d.ref())
        return found

    def leaving(self, limit: int) -> list[LeavingPdf]:
        leaving = [d.print for d in self._docs() if d.masked and d.stored]
        return [LeavingPdf(p.kind, p.id) for p in leaving][:limit]

    def mark_removed(self, pdfs: Sequence[LeavingPdf]) -> None:
        for r in pdfs:
            self.data.pdf_docs[(r.kind, r.id)].stored = False

    def returning(self, customer_id: int) -> list[PdfRef]:
        return [
            d.ref()
            for d in self._docs()
            if d.print.customer_id == customer_id and not d.masked and d.sha256 and not d.stored
        ]

    def mark_stored(self, refs: Sequence[PdfRef]) -> None:
        for r in refs:
            self.data.pdf_docs[(r.kind, r.id)].stored = True

    def find(self, kind: str, number: str, shop: str | None = None) -> PdfRef:
        found = [
            d.ref()
            for d in self._docs(kind)
            if d.print.number == number and (shop is None or d.print.shop == shop)
        ]
        if not found:
            raise NotFound(f"no {kind} with number {number!r}; check the number")
        if len(found) > 1:
            raise InvalidInput(f"{kind} number {number!r} exists in several shops")
        return found[0]

    def of_period(self, shop_id: int, start: datetime, end: datetime) -> list[PdfRef]:
        shop = next(s.name for s in self.data.shops if s.id == shop_id)
        found = [
            d.ref()
            for d in self._docs()
            if d.print.shop == shop and start <= d.print.created_at < end
        ]
        return sorted(found, key=lambda r: (r.created_at, r.kind != "invoice", r.number))

    def mark_exported(self, refs: Sequence[PdfRef], at: datetime) -> None:
        for r in refs:
            self.data.pdf_docs[(r.kind, r.id)].exported_at = at

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        """Simply, as `FakeExports.unexported_due`: unmasked, never exported, older than the
        mask cut-off."""
        shop = next(s.name for s in self.data.shops if s.id == shop_id)
        return sum(
            1
            for d in self._docs()
            if d.print.shop == shop
            and not d.masked
            and d.exported_at is None
            and d.print.created_at < cutoffs.mask_before
        )


class FakeInstallation:
    def __init__(self, data: FakeData) -> None:
        self.data = data

    def master_key_id(self) -> str | None:
        return self.data.master_key_id

    def key_ids(self) -> tuple[str, ...]:
        if self.data.master_key_id is None:
            return ()
        previous = self.data.previous_master_key_id
        return (self.data.master_key_id, *((previous,) if previous else ()))

    def identity_key(self) -> WrappedKey:
        assert self.data.master_key_id is not None
        return WrappedKey(self.data.master_key_id, self.data.identity_key_wrapped)

    def previous_master_key_id(self) -> str | None:
        return self.data.previous_master_key_id

    def begin_rotation(
        self, new: KeyLocation, old: KeyLocation, identity_key: WrappedKey, at: datetime
    ) -> None:
        for location in (old, new):
            self.data.key_locations[location.master_key_id] = location
        if identity_key.wrapping_key is not None:
            self.record_wrapping_keys([identity_key.wrapping_key], at)
        self.data.previous_master_key_id = self.data.master_key_id
        self.data.master_key_id = new.master_key_id
        self.data.identity_key_wrapped = identity_key.blob

    def finish_rotation(self, at: datetime) -> None:
        self.data.previous_master_key_id = None

    def record_wrapping_keys(self, keys: Sequence[WrappingKey], at: datetime) -> None:
        for key in keys:
            self.data.wrapping_keys.setdefault(key.id, key)


class FakeUnitOfWork:
    """cosmicpython's FakeUnitOfWork, re-entrant like `SqlUnitOfWork`: the outermost `with`
    works on a copy of `committed`; the outermost `commit()` makes the copy the committed
    data; leaving without a commit (or after a failure inside) drops it."""

    def __init__(self, data: FakeData | None = None, *, read_only: bool = False) -> None:
        self.committed = data if data is not None else FakeData()
        self.read_only = read_only
        self.commits = 0
        self._working: FakeData | None = None
        self._depth = 0
        self._doomed = False

    def __enter__(self) -> Self:
        if self._depth == 0:
            self._working = copy.deepcopy(self.committed)
            self._doomed = False
            w = self._working
            self.orders, self.customers = FakeOrders(w), FakeCustomers(w)
            self.archive_copies, self.history = FakeArchiveCopies(w), FakeHistory(w)
            self.after_sales = FakeAfterSales(w)
            self.audit, self.runs = FakeAudit(w), FakeRuns(w)
            self.shops, self.installation = FakeShops(w), FakeInstallation(w)
            self.exports = FakeExports(w)
            self.pdfs = FakePdfs(w)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if exc[0] is not None:
            self._doomed = True
        if self._depth == 0:
            self._working = None

    def commit(self) -> None:
        if self.read_only or self._doomed:
            raise RuntimeError("this fake unit of work cannot commit now")
        if self._depth == 1 and self._working is not None:
            self.committed = copy.deepcopy(self._working)
            self.commits += 1

    def rollback(self) -> None:
        if self._depth > 1:
            self._doomed = True
        self._working = copy.deepcopy(self.committed)


class SharedReader(FakeUnitOfWork):
    """A read-only unit of work that sees what the writer `of` has committed."""

    def __init__(self, of: FakeUnitOfWork) -> None:
        super().__init__(read_only=True)
        self.of = of

    def __enter__(self) -> Self:
        if self._depth == 0:
            self.committed = self.of.committed
        return super().__enter__()


# --- keys and archives ----------------------------------------------------------------------


class FakeKeyProvider:
    """Wraps a data key by prefixing it with the key id: enough for the envelope's checks."""

    def __init__(self, key_id: str = "fake-master", opens: Sequence[str] = ()) -> None:
        self.key_id = key_id
        self.opens = (key_id, *opens)
        """Master keys it opens data keys of (a keyring during a rotation)."""

    def location(self) -> KeyLocation:
        return KeyLocation(self.key_id, "file", f"/keys/{self.key_id}.key")

    def wrap(self, data_key: bytes) -> WrappedKey:
        return WrappedKey(self.key_id, self.key_id.encode() + b":" + data_key)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        prefix = wrapped.master_key_id.encode() + b":"
        if wrapped.master_key_id not in self.opens or not wrapped.blob.startswith(prefix):
            raise ArchiveCorrupt("data key sealed under another master key (test double)")
        return wrapped.blob[len(prefix) :]

    def identity_digest(self, text: str) -> str:
        return f"{self.key_id}:{text.casefold()}"


class MissingKey:
    """A key provider whose key file is offline: every use fails."""

    def __call__(self) -> FakeKeyProvider:
        raise KeyUnavailable("master key file missing (test double)")


class InMemoryArchive:
    """A working archive in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ArchiveUnavailable(f"archive object {key} not found (test double)") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data = self.get(key)[start : start + length]
        if len(data) != length:
            raise ArchiveCorrupt(f"archive object {key} ends before the range (test double)")
        return data

    def describe(self) -> str:
        return "in-memory test double"

    def list_objects(self) -> Iterator[StoredObject]:
        for key, data in self.objects.items():
            yield StoredObject(key, len(data), datetime(2026, 1, 1, tzinfo=UTC), False)

    @property
    def allows_deletion(self) -> bool:
        return True

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


@dataclass
class FakeRunLock:
    reclaims: list[tuple[int, bool]] = field(default_factory=list)

    def reclaim_if_needed(self, run_id: int, masked: bool) -> None:
        self.reclaims.append((run_id, masked))


def fake_ports(
    uow: FakeUnitOfWork | None = None,
    archive: ArchiveStore | None = None,
    keys: FakeKeyProvider | MissingKey | None = None,
    now: datetime | None = None,
    limits: Limits | None = None,
    ledger: ArchiveStore | None = None,
    documents: ArchiveStore | None = None,
) -> Ports:
    """Ports on fakes; the reader sees what the writer committed."""
    writer = uow if uow is not None else FakeUnitOfWork()
    provider = keys if keys is not None else FakeKeyProvider()
    lock = FakeRunLock()

    def run_lock() -> AbstractContextManager[RunLock]:
        return nullcontext(lock)

    return Ports(
        uow=writer,
        reader=SharedReader(writer),
        archive=archive if archive is not None else InMemoryArchive(),
        key_provider=provider if isinstance(provider, MissingKey) else lambda: provider,
        clock=FixedClock(now or datetime(2026, 3, 1, 12, tzinfo=UTC)),
        run_lock=run_lock,
        limits=limits or Limits(batch_size=2, retrieval_alert_per_hour=3),
        ledger=ledger if ledger is not None else InMemoryArchive(),
        documents=documents if documents is not None else InMemoryArchive(),
    )


# --- failing archives ---------------------------------------------------------------------


class Wrapping:
    """Base of the fakes that wrap a real store: everything they do not change passes through."""

    def __init__(self, real: ArchiveStore) -> None:
        self.real = real

    def put(self, key: str, data: bytes) -> None:
        self.real.put(key, data)

    def get(self, key: str) -> bytes:
        return self.real.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.real.get_range(key, start, length)

    def describe(self) -> str:
        return self.real.describe()

    def list_objects(self) -> Iterator[StoredObject]:
        return self.real.list_objects()

    @property
    def allows_deletion(self) -> bool:
        return self.real.allows_deletion

    def delete(self, key: str) -> None:
        self.real.delete(key)


class FailingPut(Wrapping):
    """An archive that is down for writes. (To fail one buyer of a segment, damage its record
    with `TamperedRecord`: a segment is written whole or not at all.)"""

    def put(self, key: str, data: bytes) -> None:
        raise ArchiveUnavailable("archive offline (test double)")

    def describe(self) -> str:
        return "failing test double"


class AlteredGet(Wrapping):
    """An archive that stores but reads back different bytes (silent corruption): the last
    byte of each record of a segment, or of a whole object."""

    def get(self, key: str) -> bytes:
        data = self.real.get(key)
        if not data.startswith(SEGMENT_MAGIC):
            return data[:-1] + bytes([data[-1] ^ 1])
        for entry in read_manifest(data):
            at = entry.offset + entry.length - 1
            data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        return data

    def describe(self) -> str:
        return "corrupting test double"


class Counting(Wrapping):
    """Counts the writes and reads a store sees, and the bytes read."""

    def __init__(self, real: ArchiveStore) -> None:
        super().__init__(real)
        self.puts: list[str] = []
        self.gets: list[str] = []
        self.ranges: list[tuple[str, int, int]] = []
        self.bytes_read = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        self.real.put(key, data)

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        data = self.real.get(key)
        self.bytes_read += len(data)
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.ranges.append((key, start, length))
        data = self.real.get_range(key, start, length)
        self.bytes_read += len(data)
        return data


class TamperedRecord(Wrapping):
    """Stores a segment with one byte of `customer_id`'s record flipped (silent damage of one
    record): found through the segment's own manifest."""

    def __init__(self, real: ArchiveStore, customer_id: int) -> None:
        super().__init__(real)
        self.customer_id = customer_id

    def put(self, key: str, data: bytes) -> None:
        for entry in read_manifest(data):
            if entry.customer_id == self.customer_id:
                at = entry.offset + entry.length - 1
                data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        self.real.put(key, data)


class Truncating(Wrapping):
    """Stores only the first `keep` bytes of every object (a write cut short)."""

    def __init__(self, real: ArchiveStore, keep: int = 100) -> None:
        super().__init__(real)
        self.keep = keep

    def put(self, key: str, data: bytes) -> None:
        self.real.put(key, data[: self.keep])


class WriteOnce(Wrapping):
    """A write-once store (Object Lock, WORM media): it lists, but refuses every deletion."""

    @property
    def allows_deletion(self) -> bool:
        return False

    def delete(self, key: str) -> None:
        raise Forbidden("write-once test double: deletion refused")


class UnreachableArchive:
    """An archive that cannot be reached at all (network down)."""

    def put(self, key: str, data: bytes) -> None:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def get(self, key: str) -> bytes:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def get_range(self, key: str, start: int, length: int) -> bytes:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def describe(self) -> str:
        return "unreachable test double"

    def list_objects(self) -> Iterator[StoredObject]:
        raise ArchiveUnavailable("archive unreachable (test double)")

    @property
    def allows_deletion(self) -> bool:
        return True

    def delete(self, key: str) -> None:
        raise ArchiveUnavailable("archive unreachable (test double)")
