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
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, Self

from shelflife.domain.after_sales import OrderedLine
from shelflife.domain.audit import AuditEntry
from shelflife.domain.clock import Clock
from shelflife.domain.duplicates import DuplicateCandidate, MergeCandidate
from shelflife.domain.policy import CustomerFacts, Cutoffs
from shelflife.domain.snapshot import CustomerSnapshot

# --- the records repositories hand out -----------------------------------------------------


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under a master key, and which master key that is."""

    master_key_id: str
    blob: bytes


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


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT = "credit"


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


@dataclass(frozen=True)
class ArchivedSegment:
    """A segment written and read back tonight: the whole object's size and SHA-256 (what a
    later scrub compares against) and how many records it holds."""

    object_key: str
    created_at: datetime
    record_count: int
    size: int
    sha256: str


RUN_COUNTS = (
    "shops",
    "archived",
    "archive_failed",
    "retried",
    "masked",
    "remasked",
    "mask_refused",
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


class InstallationRepository(Protocol):
    def master_key_id(self) -> str | None:
        """The master key `init` recorded; None before `init`."""
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
    archive_workers: int = 4
    retrieval_alert_per_hour: int = 30


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
    limits: Limits = Limits()

    @property
    def keys(self) -> KeyProvider:
        return self.key_provider()
