"""The ports services use: a unit of work with repositories, the archive store, the key
provider, the clock, the run lock. Protocols and the plain records they exchange, nothing else.

They live in the domain (stdlib only) so that adapters implement them and services use them
without either importing the other's machinery; tests/support/fakes.py implements them in
memory, which is what lets the orchestration's unit tests run without a database.

A `UnitOfWork` is one transaction. It is re-entrant: a service opens it with `with uow:` and
calls `uow.commit()`; when a caller has opened it already, the inner `with` and `commit()` join
the caller's transaction, so two operations share one transaction and commit together or not
at all. One unit of work (and so one `Ports`) serves one request or command at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, Self

from shelflife.domain.after_sales import OrderedLine
from shelflife.domain.audit import AuditEntry
from shelflife.domain.clock import Clock
from shelflife.domain.duplicates import DuplicateCandidate, MergeCandidate
from shelflife.domain.errors import ShelflifeError
from shelflife.domain.legal_retention import DocumentKind, LegalRetention
from shelflife.domain.policy import CustomerFacts, Cutoffs
from shelflife.domain.snapshot import CustomerSnapshot

# --- the records repositories hand out -----------------------------------------------------


@dataclass(frozen=True)
class WrappingKey:
    """An intermediate key a KMS master key encrypted, as the database keeps it: the data keys
    a process wraps are wrapped locally under it, so KMS is called once per process, not once
    per buyer. It must be stored no later than the first data key wrapped under it."""

    id: str
    master_key_id: str
    encrypted: bytes


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under a master key, and which master key that is; `wrapping_key` is
    set when a KMS master key's wrapping key sealed it (stored with it, see `WrappingKey`)."""

    master_key_id: str
    blob: bytes
    wrapping_key: WrappingKey | None = None


@dataclass(frozen=True)
class KeyLocation:
    """Where a master key is: a key file's path or a KMS key's ARN (never key material)."""

    master_key_id: str
    provider: str
    """file or kms"""
    location: str


@dataclass(frozen=True)
class Rewrap:
    """A buyer's data key re-wrapped under the new master key by `keys rotate`; it replaces
    `old_blob` only if that is still the stored one."""

    customer_id: int
    old_blob: bytes
    new: WrappedKey


@dataclass(frozen=True)
class StoredObject:
    """One object in the store as a listing sees it; says nothing about its content."""

    key: str
    size: int
    modified_at: datetime
    temporary: bool
    """An unfinished write (a temp file left by a killed run), not an archive object."""


@dataclass(frozen=True)
class ShopRow:
    id: int
    name: str
    time_zone: str
    retention_enabled: bool


@dataclass(frozen=True)
class ShopSettings:
    """A shop as `shop list` and the shops page show it."""

    name: str
    time_zone: str
    amazon_order_pattern: str
    retention_enabled: bool
    kept_tax_fields: tuple[str, ...] = ()
    """The tax fields (masking.TAX_FIELDS order) its invoices and credits keep when masked."""
    tax_fields_basis: str | None = None


@dataclass(frozen=True)
class OrderRef:
    """The facts about one order that retrieval and shipping decide on."""

    id: int
    customer_id: int
    shop_id: int
    is_amazon: bool
    ordered_at: datetime


@dataclass(frozen=True)
class DocumentRef:
    """An invoice or credit found by its number, and the order a retrieval by that number goes
    through: the document's own order, or for a manual document the buyer's newest Amazon
    order (retrieving any of the buyer's orders restores its manual documents). `order_nr` is
    None when the buyer has no Amazon order."""

    kind: DocumentKind
    number: str
    customer_id: int
    shop: str
    manual: bool
    order_nr: str | None


@dataclass(frozen=True)
class InvoiceRef:
    """An invoice a credit is written against, and the order a retrieval goes through: the
    invoice's own, or for a manual invoice the buyer's newest order (retrieving any of the
    buyer's orders restores its manual documents)."""

    id: int
    invoice_nr: str
    customer_id: int
    shop_id: int
    shop: str
    order_id: int | None
    order_nr: str | None
    total: Decimal
    masked: bool
    """The invoice's own row is masked (its buyer may have been retrieved through another order)."""


@dataclass(frozen=True)
class OrderRecords:
    """One order as `show` presents it, with its buyer and the buyer's facts. Rows are read-only
    records whose attributes are the table's columns (what the view picks from them is the
    service's business, not the repository's)."""

    order: Any
    shop: Any
    customer: Any
    facts: CustomerFacts
    addresses: list[Any]
    """The order's addresses, by kind."""
    items: list[Any]
    invoices: list[Any]
    """The order's invoices and the buyer's manual ones (no order), in id order."""
    credits: list[Any]
    history: list[Any]
    """The buyer's customer history, oldest first."""
    other_orders: list[Any]
    """The buyer's other orders, newest first."""
    returns: list[Any] = field(default_factory=list)
    """The order's returns, oldest first."""
    replaces_order: str | None = None
    """For a replacement order, the number of the order it replaces."""
    linked_orders: list[Any] = field(default_factory=list)
    """Orders of other customer records of the same Amazon buyer (sharing its link, see
    domain/buyer_link.py), newest first."""
    linked_facts: dict[int, CustomerFacts] = field(default_factory=dict)
    """The facts of those records' buyers, by customer id, for each order's state."""


class Match(StrEnum):
    """Why `find` lists an order, in the order the kinds are tried."""

    CUSTOMER = "customer reference"
    ORDER = "order number"
    INVOICE = "invoice number"
    CREDIT = "credit number"
    PERSONAL_DATA = "e-mail or name"


@dataclass(frozen=True)
class OrderMatch:
    order_id: int
    customer_id: int
    shop: str
    time_zone: str
    order_nr_external: str
    is_amazon: bool
    ordered_at: datetime
    shipped_at: datetime | None
    cancelled_at: datetime | None
    masked_at: datetime | None
    matched: Match


@dataclass(frozen=True)
class MaskedState:
    """A buyer's masking as retrieval sees it, read under the buyer's row lock."""

    customer_id: int
    masked_at: datetime | None
    last_masked_at: datetime | None
    """The first masking, or the last re-masking after a retrieval."""
    shredded_at: datetime | None = None
    """When the buyer's archive data key was destroyed: nothing can be retrieved any more."""
    retrieved_at: datetime | None = None
    """The buyer's latest retrieval, until the re-mask: the orders it restored are unmasked."""


@dataclass(frozen=True)
class CopyRef:
    """A recorded, verified archive copy of a buyer's PII: a record of a segment (`offset`
    and `length` set) or a legacy whole object of its own (both None)."""

    object_key: str
    revision: int
    ciphertext_sha256: str
    offset: int | None = None
    length: int | None = None


@dataclass(frozen=True)
class ArchiveKeyRow:
    customer_id: int
    pii_revision: int
    data_key_wrapped: bytes | None
    data_key_master_id: str | None
    shredded: bool = False
    """The buyer's key was destroyed on purpose (legal retention ended, or an erasure)."""


@dataclass(frozen=True)
class ArchivedCopy:
    """A copy written, read back and verified tonight; `wrapped_key` and `master_key_id` are
    set when the buyer's data key was made for it (None when one was stored already)."""

    customer_id: int
    revision: int
    object_key: str
    sha256: str
    wrapped_key: bytes | None = None
    master_key_id: str | None = None
    offset: int | None = None
    """Where the record starts in its segment; None for a legacy whole-object copy."""
    length: int | None = None
    wrapping_key: WrappingKey | None = None
    """Stored with the copy when a KMS wrapping key sealed its new data key."""


@dataclass(frozen=True)
class LedgerEntry:
    """One record's key in a segment's key ledger: whose record, which revision, and the
    buyer's data key wrapped by the key-encryption key `key.master_key_id`."""

    customer_id: int
    revision: int
    key: WrappedKey


@dataclass(frozen=True)
class RecoveredRecord:
    """A segment record as `archive recover` found it in the store, with its buyer's key
    from the ledger (None: the key is not in the ledger, i.e. the buyer was shredded)."""

    customer_id: int
    revision: int
    offset: int
    length: int
    sha256: str
    key: WrappedKey | None


@dataclass(frozen=True)
class BuyerDocuments:
    """What an erasure decides on, read under the buyer's row lock: its masking and shredding,
    its shop's time zone, and its documents (kind, number, made at)."""

    customer_id: int
    time_zone: str
    masked_at: datetime | None
    retrieved_at: datetime | None
    shredded_at: datetime | None
    has_key: bool
    documents: list[tuple[DocumentKind, str, datetime]]


@dataclass(frozen=True)
class ArchivedSegment:
    """A segment written and read back tonight: the whole object's size and SHA-256 (what a
    later scrub compares against) and how many records it holds."""

    object_key: str
    created_at: datetime
    record_count: int
    size: int
    sha256: str


RECOVERED_SHOP = "recovered"
"""The shop `archive recover` files buyers under whose shop the database no longer knows."""


@dataclass(frozen=True)
class SegmentRef:
    """A segment as `archive_segments` records it: what a verification compares against."""

    id: int
    object_key: str
    size: int
    sha256: str
    record_count: int


@dataclass(frozen=True)
class IndexedCopy:
    """One `archive_copies` row as a verification, an export or a migration reads it: a
    record of a segment (`offset` and `length` set) or a legacy whole object (both None)."""

    id: int
    customer_id: int
    revision: int
    object_key: str
    sha256: str
    offset: int | None
    length: int | None


@dataclass(frozen=True)
class ArchiveProblem:
    """A mismatch found in an archive object: the whole object's (`customer_id` None) or one
    buyer's record. `problem` says what is wrong and never contains PII."""

    location: str
    object_key: str
    customer_id: int | None
    revision: int | None
    problem: str
    found_at: datetime | None = None


RUN_COUNTS = (
    "shops",
    "archived",
    "archive_failed",
    "retried",
    "masked",
    "remasked",
    "mask_refused",
    "verified_objects",
    "integrity_problems",
)
"""The counts a run records."""

ERROR_LENGTH = 300
"""How much of why a run stopped is kept."""


@dataclass(frozen=True)
class RunRow:
    id: int
    as_of: datetime
    started_at: datetime
    finished_at: datetime | None
    shops: int
    archived: int
    archive_failed: int
    retried: int
    masked: int
    remasked: int
    mask_refused: int
    error: str | None
    verified_objects: int = 0
    integrity_problems: int = 0


class Due(StrEnum):
    """Which buyers of a shop a selection asks for; each has a twin in `domain.policy`."""

    ARCHIVE = "archive"
    RETRY = "retry"
    MASK = "mask"
    REMASK = "remask"
    MASK_REFUSED = "mask_refused"
    """Due for masking with a current copy whose data key another master key sealed."""
    REMASK_REFUSED = "remask_refused"


@dataclass(frozen=True)
class Selection:
    """The buyers of one shop due for one step as of `cutoffs`, judged with the master key
    loaded now; `tonight` also counts what tonight's archive step will make due (dry run)."""

    due: Due
    shop_id: int
    cutoffs: Cutoffs
    master_key_id: str = ""
    tonight: bool = False
    other_key_ids: tuple[str, ...] = ()
    """Further master keys whose data keys count as openable: both sides of a key rotation."""


# --- repositories ---------------------------------------------------------------------------


class OrderRepository(Protocol):
    def find(self, order_nr: str, shop: str | None = None) -> OrderRef:
        """The one order with this external number (`UnknownOrder`; `InvalidInput` when
        several shops have it and no shop is given)."""
        ...

    def search(
        self,
        query: str,
        customer_id: int | None,
        limit: int,
        *,
        numbers: bool = True,
        personal_data: bool = True,
    ) -> tuple[list[OrderMatch], bool]:
        """Orders whose number (order, invoice, credit) is `query`, the buyer's orders when
        `customer_id` is given, else orders whose unmasked e-mail or name contains it; at most
        `limit`, and whether more matched. `numbers` / `personal_data` switch either off."""
        ...

    def ship(self, order_id: int, at: datetime) -> None: ...

    def through_document(
        self, kind: DocumentKind, number: str, shop: str | None = None
    ) -> DocumentRef:
        """The one invoice or credit with this number (`NotFound`; `InvalidInput` when several
        shops have it and no shop is given), with the order that retrieves it."""
        ...

    def records(self, order_nr: str, shop: str | None = None) -> OrderRecords:
        """The order (found as `find` finds it) and everything `show` presents about it."""
        ...


class CustomerRepository(Protocol):
    def lock_masked_state(self, customer_id: int) -> MaskedState:
        """Read the buyer's masking and lock its row until the transaction ends, so that a
        concurrent re-mask waits."""
        ...

    def restore(
        self, customer_id: int, order_id: int, merged: Mapping[str, Mapping[int, Mapping[str, Any]]]
    ) -> int:
        """Write archived values back into this order's rows, its buyer, the buyer's history
        and manual documents (other orders stay masked); returns the rows restored."""
        ...

    def mark_retrieved(self, customer_id: int, at: datetime) -> None: ...

    def facts(self, ids: Sequence[int]) -> dict[int, CustomerFacts]:
        """What the pure policy needs to know about these buyers."""
        ...

    def overdue_candidates(
        self, shop_id: int, cutoffs: Cutoffs, after_id: int, limit: int
    ) -> list[int]:
        """Amazon buyers of the shop holding real PII past a 30-day limit, in id order: the
        compliance report's candidates (the policy then files each one)."""
        ...

    def count(self, selection: Selection) -> int: ...

    def next_batch(self, selection: Selection, after_id: int, limit: int) -> list[int]:
        """The next buyer ids in id order; where the database can, the rows stay locked for
        this transaction and rows another worker holds are skipped."""
        ...

    def first_ids(self, selection: Selection, limit: int) -> list[int]:
        """The lowest buyer ids selected, without locking them: for log lines."""
        ...

    def among(self, selection: Selection, ids: Sequence[int]) -> list[int]:
        """Those of `ids` the selection selects, in id order, claimed for this transaction
        as `next_batch` claims: rows another worker holds are skipped."""
        ...

    def count_retries(self, ids: Sequence[int]) -> int: ...

    def archive_keys(self, ids: Sequence[int]) -> dict[int, ArchiveKeyRow]: ...

    def snapshots(
        self, ids: Sequence[int], revisions: Mapping[int, int]
    ) -> dict[int, CustomerSnapshot]:
        """Every unmasked PII row of these buyers, as snapshots of the given revisions."""
        ...

    def record_archived(self, done: Sequence[ArchivedCopy], at: datetime) -> None: ...

    def record_failed(self, failed: Sequence[tuple[int, str]], at: datetime) -> None: ...

    def mask(self, ids: Sequence[int], at: datetime, event: str) -> int:
        """Mask these buyers whose archive is still current, writing `event` to each one's
        history; returns how many were masked."""
        ...

    def shred_due(
        self,
        shop_id: int,
        expired_before: Mapping[DocumentKind, datetime],
        after_id: int,
        limit: int,
    ) -> list[int]:
        """The next masked, not retrieved, not yet shredded buyers of the shop holding a data key
        and at least one order, whose every document of each kind was made before that kind's
        instant, in id order."""
        ...

    def documents(self, customer_id: int) -> BuyerDocuments:
        """The buyer's state and documents, its row locked until the transaction ends;
        `NotFound` when there is no such buyer."""
        ...

    def shred(self, ids: Sequence[int], at: datetime, because: str) -> list[int]:
        """Destroy these buyers' data keys (those that have one), mark them shredded and note it
        in their history; returns the ids shredded."""
        ...

    def adopt_data_key(self, customer_id: int, wrapped: WrappedKey) -> None:
        """Record this data key for a buyer that has none (a legacy copy's own key, when it
        moves into a segment)."""
        ...

    def duplicate_groups(self, shop: str | None) -> Iterator[list[DuplicateCandidate]]:
        """Unarchived, unmasked records sharing the compared fields (spaces around them
        aside), one group at a time; the duplicate rule then decides within each group."""
        ...

    def merge_candidate(self, customer_id: int) -> MergeCandidate:
        """The record's state, locked until the transaction ends; NotFound when missing."""
        ...

    def merge(self, keep_id: int, other_id: int) -> int:
        """Give `other`'s orders, addresses, documents and history to `keep`, raise `keep`'s
        revision, delete `other`; returns how many orders moved."""
        ...

    def keys_to_rewrap(self, master_key_id: str, after_id: int, limit: int) -> list[int]:
        """The next buyer ids, in id order, holding a data key under another master key than
        `master_key_id` (what `keys rotate` has left to do)."""
        ...

    def count_keys_to_rewrap(self, master_key_id: str) -> int: ...

    def replace_data_keys(self, rewraps: Sequence[Rewrap], at: datetime) -> int:
        """Store re-wrapped data keys (and their KMS wrapping keys) where the old wrapped key
        is still the stored one; returns how many were replaced."""
        ...


class AfterSalesRepository(Protocol):
    """Returns, replacement orders and credits written in shelflife."""

    def order_masked(self, order_id: int) -> bool:
        """The order's own row is masked: its buyer may have been retrieved through another
        order, which leaves this one masked."""
        ...

    def lines(self, order_id: int) -> list[OrderedLine]:
        """The order's lines, one per SKU (quantities of a SKU on several lines added up)."""
        ...

    def returned(self, order_id: int) -> dict[str, int]:
        """Quantity per SKU taken back by the order's earlier returns."""
        ...

    def replaced(self, order_id: int) -> dict[str, int]:
        """Quantity per SKU shipped by the order's earlier replacement orders."""
        ...

    def count_returns(self, order_id: int) -> int: ...

    def count_replacements(self, order_id: int) -> int: ...

    def add_return(
        self,
        order: OrderRef,
        return_nr: str,
        at: datetime,
        user: str,
        reason: str,
        items: Mapping[str, int],
    ) -> None: ...

    def add_replacement(
        self, original: OrderRef, order_nr: str, at: datetime, lines: Sequence[OrderedLine]
    ) -> int:
        """A new order of the same buyer that names `original`, with these lines and copies of
        the original's addresses; returns its id."""
        ...

    def find_invoice(self, invoice_nr: str, shop: str | None = None) -> InvoiceRef:
        """The one invoice with this number (`NotFound`; `InvalidInput` when several shops
        have it and no shop is given)."""
        ...

    def credited(self, invoice_id: int) -> Decimal:
        """What the invoice's earlier credits paid back."""
        ...

    def count_credits(self, invoice_id: int) -> int: ...

    def add_credit(
        self,
        invoice: InvoiceRef,
        credit_nr: str,
        at: datetime,
        user: str,
        reason: str,
        total: Decimal,
    ) -> None:
        """A credit against the invoice, printed with the invoice's billing name and address."""
        ...

    def number_taken(self, kind: str, shop_id: int, number: str) -> bool:
        """Whether the shop has a return, order or credit (`kind`) with this number already,
        e.g. an imported one that happens to follow the same numbering."""
        ...

    def buyer_changed(self, customer_id: int) -> None:
        """Raise the buyer's PII revision: the next archive copy must hold the new rows before
        the buyer is masked (again)."""
        ...


class ArchiveCopyRepository(Protocol):
    def of_customer(self, customer_id: int) -> list[CopyRef]:
        """The buyer's recorded copies, newest revision first."""
        ...

    def add_segment(self, segment: ArchivedSegment) -> None:
        """Record a segment whose records the same transaction records as copies."""
        ...

    def segment_keys(self, after: str, limit: int) -> list[str]:
        """Up to `limit` segments' object keys after `after`, in key order ("" for the first)."""
        ...

    def segments_of(self, customer_ids: Sequence[int]) -> list[str]:
        """The segments holding records of these buyers, in key order."""
        ...

    def ledger_entries(self, object_keys: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        """For each of these segments, its records whose buyer still has a data key, with that
        key as the database holds it now (every segment named is in the answer). The segments
        stay locked until the transaction ends, so that rewrites of one ledger object take
        turns."""
        ...

    def has_segment(self, object_key: str) -> bool: ...

    def recover(
        self,
        segment: ArchivedSegment,
        records: Sequence[RecoveredRecord],
        at: datetime,
        ledger_found: bool,
    ) -> int:
        """Record a segment found in the store and its records' copies, and give each buyer the
        ledger's key where it has none: buyers the database lost come back as masked rows of the
        shop `RECOVERED_SHOP` (shredded when the segment's ledger was found without their key).
        Returns how many copies were added (copies already recorded are left as they are)."""
        ...

    def count_objects(self) -> tuple[int, int]:
        """How many segments and legacy whole-object copies the index records."""
        ...

    def segments_to_verify(self, limit: int) -> list[SegmentRef]:
        """The `limit` segments verified least recently (never verified first), so that a
        nightly sample covers every segment in turn."""
        ...

    def segments_after(self, after_id: int, limit: int) -> list[SegmentRef]:
        """Segments in id order, for a walk over all of them."""
        ...

    def legacy_to_verify(self, limit: int) -> list[IndexedCopy]:
        """The `limit` legacy whole-object copies verified least recently."""
        ...

    def legacy_after(self, after_id: int, limit: int) -> list[IndexedCopy]:
        """Legacy whole-object copies in id order."""
        ...

    def records_in(self, object_key: str) -> list[IndexedCopy]:
        """The copies the index places in this segment, by offset."""
        ...

    def record_verification(
        self, object_key: str, at: datetime, problems: Sequence[ArchiveProblem]
    ) -> None:
        """Close the object's open problems and keep these instead; with none, note that the
        object was found sound at `at`."""
        ...

    def open_problems(self) -> list[ArchiveProblem]:
        """Every problem no later check resolved, oldest first."""
        ...

    def discard_unmasked(self, copies: Sequence[tuple[int, int]]) -> list[int]:
        """Drop these damaged (customer id, revision) copies of buyers never masked (their
        data is still in the database), so that the next run archives them again before it
        masks them; returns the buyers whose copy was dropped."""
        ...

    def move_into_segment(self, moved: Sequence[ArchivedCopy]) -> None:
        """Point legacy copies (by customer and revision) at their record in a segment."""
        ...


class HistoryRepository(Protocol):
    def add(
        self, customer_id: int, order_id: int | None, at: datetime, event: str, user: str, text: str
    ) -> None: ...


class AuditRepository(Protocol):
    def append(
        self,
        at: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: Mapping[str, str | int | None] | None = None,
    ) -> AuditEntry:
        """Add the next chained entry inside this transaction."""
        ...

    def count_actions(self, actor: str, action: str, since: datetime) -> int: ...

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order."""
        ...

    def recent(self, limit: int) -> list[AuditEntry]:
        """The newest entries, newest first."""
        ...

    def purge_anchor(self) -> str | None:
        """The hash the oldest remaining entry links to, as the latest purge recorded it."""
        ...

    def last_before(self, before: datetime) -> AuditEntry | None:
        """The newest entry written before `before` (what a purge up to `before` removes last)."""
        ...

    def count_through(self, seq: int) -> int:
        """How many entries there are up to and including `seq`."""
        ...

    def delete_through(self, seq: int) -> int:
        """Remove the entries up to and including `seq`; returns how many."""
        ...


class RunRepository(Protocol):
    def start(self, as_of: datetime, started_at: datetime) -> int: ...

    def finish(
        self,
        run_id: int,
        finished_at: datetime,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None: ...

    def recent(self, limit: int) -> list[RunRow]:
        """The most recently started runs, newest first."""
        ...


class ShopRepository(Protocol):
    def enabled(self) -> list[ShopRow]:
        """The shops with the retention feature switched on, in id order."""
        ...

    def all(self) -> list[ShopSettings]:
        """Every shop, by name."""
        ...

    def every(self) -> list[ShopRow]:
        """Every shop, in id order."""
        ...

    def by_name(self, name: str) -> ShopRow | None: ...

    def switch_feature(self, shop_id: int, enabled: bool, at: datetime, user: str) -> None:
        """Switch retention and keep the change in the shop's feature history."""
        ...

    def configure(self, name: str, changes: Mapping[str, str]) -> bool:
        """Change `time_zone` and/or `amazon_order_pattern`; False when no shop has the name."""
        ...

    def set_tax_fields(self, shop_id: int, kept: frozenset[str], basis: str | None) -> None:
        """Keep exactly these tax fields (masking.TAX_FIELDS) under this basis; none: clear."""
        ...


@dataclass(frozen=True)
class AccountingRow:
    """One invoice or credit as the accounting export lists it: the billing name, country and
    VAT ID as stored (masked values when the document is masked), and its amounts."""

    kind: str  # "invoice" or "credit"
    id: int
    number: str
    invoice_nr: str | None  # the invoice a credit corrects
    shop: str
    created_at: datetime
    customer_name: str | None
    country: str | None
    vat_id: str | None
    net: Decimal | None
    tax: Decimal | None
    gross: Decimal
    currency: str
    masked: bool


@dataclass(frozen=True)
class ExportRecord:
    """One export as recorded: what, which period (local days, inclusive), the file's digest."""

    kind: str
    shop: str | None
    period_from: date
    period_to: date
    file_sha256: str
    rows: int
    created_at: datetime
    created_by: str


class ExportRepository(Protocol):
    def accounting_rows(self, shop_id: int, start: datetime, end: datetime) -> list[AccountingRow]:
        """The shop's invoices and credits created in [start, end), by date, kind and number."""
        ...

    def mark_exported(self, rows: Sequence[AccountingRow], at: datetime) -> None:
        """Note on each document that it has been exported (kept for the unexported count)."""
        ...

    def record(self, export: ExportRecord) -> None: ...

    def last(self, kind: str) -> ExportRecord | None:
        """The newest export of this kind, or None."""
        ...

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        """Unmasked invoices and credits never exported whose buyer is ready for masking by
        these cut-offs (archive aside: it is made the night before)."""
        ...


PDF_KINDS = ("invoice", "credit")


@dataclass(frozen=True)
class PrintedLine:
    sku: str
    title: str
    qty: int
    price: Decimal


@dataclass(frozen=True)
class DocumentPrint:
    """What an invoice's or credit's PDF prints: the document as stored when it is made."""

    kind: str  # "invoice" or "credit"
    id: int
    customer_id: int
    number: str
    shop: str
    time_zone: str
    created_at: datetime
    order_nr: str | None
    invoice_nr: str | None
    """The invoice a credit corrects."""
    billing_name: str | None
    billing_address: str | None
    billing_country: str | None
    billing_vat_id: str | None
    lines: tuple[PrintedLine, ...]
    """An order invoice's items; none on a credit or a manual invoice."""
    net: Decimal | None
    tax: Decimal | None
    total: Decimal
    currency: str


@dataclass(frozen=True)
class PdfRef:
    """An invoice's or credit's PDF as the database knows it: its digest (None: not made yet,
    or masked) and whether the document store holds it now."""

    kind: str
    id: int
    customer_id: int
    number: str
    shop: str
    created_at: datetime
    sha256: str | None
    stored: bool
    masked: bool

    @property
    def table(self) -> str:
        return f"{self.kind}s"

    @property
    def object_key(self) -> str:
        """Where the document store keeps it: by kind and id, never by anything a buyer typed."""
        return pdf_object_key(self.kind, self.id)


def pdf_object_key(kind: str, document_id: int) -> str:
    return f"{kind}s/{document_id // 1000:06d}/{document_id}.pdf"


@dataclass(frozen=True)
class LeavingPdf:
    """A masked document's PDF the document store still holds: all its removal needs (the
    nightly run removes tens of thousands, so nothing else is read for them)."""

    kind: str
    id: int

    @property
    def object_key(self) -> str:
        return pdf_object_key(self.kind, self.id)


class PdfRepository(Protocol):
    """The invoices' and credits' PDFs: which to make, archive, remove, put back, export."""

    def pending(
        self, kind: str, after_id: int, limit: int, among: Sequence[int] | None = None
    ) -> list[DocumentPrint]:
        """Unmasked documents of this kind without a PDF yet, in id order after `after_id`
        (only those whose id is in `among`, when given)."""
        ...

    def record_made(self, made: Sequence[tuple[DocumentPrint, str]]) -> None:
        """Note each PDF's digest and that the document store holds it. The buyer's revision
        stays: a document is added under a new revision already, and an archive batch makes
        (and seals) the PDFs its buyers' documents still lack, so every copy that lets a
        buyer be masked holds every PDF."""
        ...

    def of_customers(self, ids: Sequence[int]) -> dict[int, list[PdfRef]]:
        """The unmasked documents of these buyers (with or without a PDF), in id order."""
        ...

    def leaving(self, limit: int) -> list[LeavingPdf]:
        """Masked documents whose PDF the document store still holds."""
        ...

    def mark_removed(self, pdfs: Sequence[LeavingPdf]) -> None: ...

    def returning(self, customer_id: int) -> list[PdfRef]:
        """The buyer's unmasked documents with a PDF the document store does not hold: what a
        retrieval restored."""
        ...

    def mark_stored(self, refs: Sequence[PdfRef]) -> None: ...

    def find(self, kind: str, number: str, shop: str | None = None) -> PdfRef:
        """The one document with this number (`NotFound`; `InvalidInput` when several shops
        have it and no shop is given)."""
        ...

    def of_period(self, shop_id: int, start: datetime, end: datetime) -> list[PdfRef]:
        """The shop's invoices and credits created in [start, end), by date, kind, number."""
        ...

    def mark_exported(self, refs: Sequence[PdfRef], at: datetime) -> None: ...

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        """Unmasked invoices and credits no invoices export has included whose buyer is ready
        for masking by these cut-offs (archive aside)."""
        ...


class InstallationRepository(Protocol):
    def master_key_id(self) -> str | None:
        """The master key `init` recorded; None before `init`."""
        ...

    def key_ids(self) -> tuple[str, ...]:
        """The master keys data keys may be under now: the recorded one and, while a rotation
        works, the one it moves away from."""
        ...

    def identity_key(self) -> WrappedKey:
        """The buyer-identity key, wrapped under the recorded master key."""
        ...

    def previous_master_key_id(self) -> str | None:
        """The master key a rotation in progress moves data keys away from."""
        ...

    def begin_rotation(
        self, new: KeyLocation, old: KeyLocation, identity_key: WrappedKey, at: datetime
    ) -> None:
        """Record `new` as the master key (with the identity key re-wrapped under it) and
        `old` as the one the rotation moves away from; both locations are kept."""
        ...

    def finish_rotation(self, at: datetime) -> None:
        """Every data key is under the recorded master key: forget the previous one."""
        ...

    def record_wrapping_keys(self, keys: Sequence[WrappingKey], at: datetime) -> None:
        """Store KMS wrapping keys (those stored already are left as they are)."""
        ...


class UnitOfWork(Protocol):
    """One transaction and the repositories that work in it (see the module docstring)."""

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def archive_copies(self) -> ArchiveCopyRepository: ...

    @property
    def after_sales(self) -> AfterSalesRepository: ...

    @property
    def history(self) -> HistoryRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def runs(self) -> RunRepository: ...

    @property
    def shops(self) -> ShopRepository: ...

    @property
    def installation(self) -> InstallationRepository: ...

    @property
    def exports(self) -> ExportRepository: ...

    @property
    def pdfs(self) -> PdfRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


# --- the outside world ----------------------------------------------------------------------


class ArchiveStore(Protocol):
    """Write-once object storage for sealed snapshots.

    Listing and deletion exist for housekeeping only (`shelflife archive orphans`); the
    nightly run and retrieval never delete. A store that does not allow deletion (S3 Object
    Lock, WORM media) says so with `allows_deletion` and refuses `delete` with `Forbidden`.
    """

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes of an object from offset `start`: one record of a segment without
        reading the rest. `ArchiveCorrupt` when the object ends before the range does."""
        ...

    def describe(self) -> str: ...

    def list_objects(self) -> Iterator[StoredObject]:
        """Every object and unfinished write in the store, in no particular order."""
        ...

    @property
    def allows_deletion(self) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove one object or unfinished write; `Forbidden` where the store is write-once."""
        ...


class KeyProvider(Protocol):
    """Wraps buyers' data keys with the master key and digests buyer identities; a local key
    file and a KMS offer the same methods."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey) -> bytes: ...

    def identity_digest(self, text: str) -> str: ...

    def location(self) -> KeyLocation:
        """Where the master key that wraps is (for the key lineage `keys rotate` records)."""
        ...


class KeyEncryptionKey(Protocol):
    """One master key: a key file or a KMS key. `keys rotate` re-wraps under a new one."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey) -> bytes: ...

    def location(self) -> KeyLocation: ...


class RunLock(Protocol):
    """Held by a nightly run from start to end (see adapters/db/reclaim.py)."""

    def reclaim_if_needed(self, run_id: int, masked: bool) -> None:
        """Remove masked values from the database files when this run masked someone or the
        run before it stopped early."""
        ...


@dataclass(frozen=True)
class Limits:
    """The settings the orchestrations read (from `config.Settings`)."""

    batch_size: int = 1000
    retrieval_alert_per_hour: int = 30
    legal_retention: LegalRetention = field(default_factory=LegalRetention)
    verify_sample_percent: float = 0.0
    """Share of the archive objects the nightly run re-reads and checks (0: none)."""


@dataclass(frozen=True)
class Ports:
    """What a service receives: built by `bootstrap.App.ports()` for one request or command,
    or from fakes in unit tests.

    `reader` is a read-only unit of work (it never takes or waits for the write lock); the
    key provider is loaded on first use, so reading works while the key file is offline."""

    uow: UnitOfWork
    reader: UnitOfWork
    archive: ArchiveStore
    key_provider: Callable[[], KeyProvider]
    clock: Clock
    run_lock: Callable[[], AbstractContextManager[RunLock]]
    documents: ArchiveStore
    """The document store: the invoices' and credits' PDFs while their buyers are unmasked."""
    limits: Limits = Limits()
    ledger: ArchiveStore | None = None
    """The key ledger: a mutable store beside the write-once archive holding, per segment, its
    records' wrapped data keys (see services/ledger.py). None only in tests that need none:
    the nightly run then refuses to archive."""
    no_run_working: Callable[[], AbstractContextManager[None]] = nullcontext
    """Waits until no nightly run works and holds new ones back while open (where the
    database can tell; elsewhere it returns at once)."""
    background_uow: Callable[[], UnitOfWork] | None = None
    """A unit of work on a connection of its own, for work a service hands to another thread
    while it goes on (a batch's masking and the removal of its PDFs, during the next batch:
    services/after_commit.py). None where the database has one writer at a time (SQLite) and
    in tests on fakes: that work then runs in turn."""
    our_error: Callable[[BaseException], ShelflifeError | None] = lambda _exc: None
    """Our error for an adapter library's failure (a database lock not granted in time, a
    server gone), or None: where a service keeps why something failed (a run's record), the
    library's own text must not go, as it can quote PII, and its type alone tells an operator
    little."""

    @property
    def keys(self) -> KeyProvider:
        return self.key_provider()
