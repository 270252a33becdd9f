"""Repositories: the SQL behind `domain.ports`, each bound to one transaction's connection.

Batch methods issue a fixed number of statements whatever the batch size (the set-based
queries are in `retention.py`); nothing loops over rows with a query inside, except the
retrieval of a single order, which touches one buyer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    LargeBinary,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from shelflife.adapters.db import audit_log, customers, exports, retention, runs, shredding
from shelflife.adapters.db import installation as lineage
from shelflife.adapters.db.installation import read_installation
from shelflife.adapters.db.reading import (
    find_order,
    find_orders,
    load_customer_facts,
    overdue_candidates,
)
from shelflife.adapters.db.tables import (
    PII_TABLES,
    Address,
    AddressHistory,
    ArchiveCopy,
    ArchiveSegment,
    AuditLogEntry,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    OrderItem,
    Return,
    Shop,
    ShopFeatureChange,
)
from shelflife.adapters.db.tables import ArchiveProblem as ArchiveProblemRow
from shelflife.domain.audit import AuditEntry
from shelflife.domain.duplicates import DuplicateCandidate, MergeCandidate
from shelflife.domain.errors import InvalidInput, NotFound, NotInitialised
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.masking import TAX_FIELDS
from shelflife.domain.policy import CustomerFacts, Cutoffs
from shelflife.domain.ports import (
    AccountingRow,
    ArchivedCopy,
    ArchivedSegment,
    ArchiveKeyRow,
    ArchiveProblem,
    BuyerDocuments,
    CopyRef,
    DocumentRef,
    Due,
    ExportRecord,
    IndexedCopy,
    KeyLocation,
    LedgerEntry,
    MaskedState,
    OrderMatch,
    OrderRecords,
    OrderRef,
    RecoveredRecord,
    Rewrap,
    RunRow,
    SegmentRef,
    Selection,
    ShopRow,
    ShopSettings,
    WrappedKey,
    WrappingKey,
)
from shelflife.domain.snapshot import CustomerSnapshot, decode


class SqlOrders:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(self, order_nr: str, shop: str | None = None) -> OrderRef:
        row = find_order(self.conn, order_nr, shop)
        return OrderRef(row.id, row.customer_id, row.shop_id, bool(row.is_amazon), row.ordered_at)

    def search(
        self,
        query: str,
        customer_id: int | None,
        limit: int,
        *,
        numbers: bool = True,
        personal_data: bool = True,
    ) -> tuple[list[OrderMatch], bool]:
        return find_orders(
            self.conn, query, customer_id, limit, numbers=numbers, personal_data=personal_data
        )

    def ship(self, order_id: int, at: datetime) -> None:
        self.conn.execute(
            update(Order).where(Order.id == order_id).values(shipped_at=at, updated_at=at)
        )

    def through_document(
        self, kind: DocumentKind, number: str, shop: str | None = None
    ) -> DocumentRef:
        model: Any = Invoice if kind is DocumentKind.INVOICE else Credit
        column = model.invoice_nr if kind is DocumentKind.INVOICE else model.credit_nr
        missing = NotFound(f"no {kind} with number {number!r}; check the number")
        if "\x00" in number or (shop is not None and "\x00" in shop):
            raise missing  # imports refuse NUL; PostgreSQL would refuse the parameter
        query = (
            select(model.customer_id, model.order_id, Shop.name.label("shop"))
            .join(Shop, Shop.id == model.shop_id)
            .where(column == number)
        )
        if shop is not None:
            query = query.where(Shop.name == shop)
        rows = self.conn.execute(query).all()
        if not rows:
            raise missing
        if len(rows) > 1:
            raise InvalidInput(
                f"{kind} number {number!r} exists in several shops; name the shop as well"
            )
        row = rows[0]
        through = select(Order.order_nr_external)
        if row.order_id is not None:
            through = through.where(Order.id == row.order_id)
        else:
            through = (
                through.where(Order.customer_id == row.customer_id, Order.is_amazon.is_(True))
                .order_by(Order.ordered_at.desc(), Order.id.desc())
                .limit(1)
            )
        return DocumentRef(
            kind,
            number,
            row.customer_id,
            row.shop,
            row.order_id is None,
            self.conn.execute(through).scalar(),
        )

    def records(self, order_nr: str, shop: str | None = None) -> OrderRecords:
        conn = self.conn
        order = find_order(conn, order_nr, shop)
        customer_id = order.customer_id

        def rows(query: Any) -> list[Any]:
            return list(conn.execute(query).all())

        customer = conn.execute(select(Customer.__table__).where(Customer.id == customer_id)).one()
        linked = (
            rows(
                select(Order.__table__)
                .join(Customer, Customer.id == Order.customer_id)
                .where(
                    Customer.shop_id == order.shop_id,
                    Customer.buyer_link == customer.buyer_link,
                    Customer.id != customer_id,
                )
                .order_by(Order.ordered_at.desc(), Order.id.desc())
            )
            if customer.buyer_link is not None
            else []
        )
        return OrderRecords(
            order=order,
            shop=conn.execute(select(Shop.__table__).where(Shop.id == order.shop_id)).one(),
            customer=customer,
            linked_orders=linked,
            linked_facts=load_customer_facts(conn, sorted({r.customer_id for r in linked}))
            if linked
            else {},
            facts=load_customer_facts(conn, [customer_id])[customer_id],
            addresses=rows(
                select(Address.__table__).where(Address.order_id == order.id).order_by(Address.kind)
            ),
            items=rows(
                select(OrderItem.__table__)
                .where(OrderItem.order_id == order.id)
                .order_by(OrderItem.position)
            ),
            invoices=rows(
                select(Invoice.__table__)
                .where(
                    Invoice.customer_id == customer_id,
                    (Invoice.order_id == order.id) | Invoice.order_id.is_(None),
                )
                .order_by(Invoice.id)
            ),
            credits=rows(
                select(Credit.__table__)
                .where(
                    Credit.customer_id == customer_id,
                    (Credit.order_id == order.id) | Credit.order_id.is_(None),
                )
                .order_by(Credit.id)
            ),
            history=rows(
                select(CustomerHistory.__table__)
                .where(CustomerHistory.customer_id == customer_id)
                .order_by(CustomerHistory.id)
            ),
            other_orders=rows(
                select(Order.__table__)
                .where(Order.customer_id == customer_id, Order.id != order.id)
                .order_by(Order.ordered_at.desc(), Order.id.desc())
            ),
            returns=rows(
                select(Return.__table__).where(Return.order_id == order.id).order_by(Return.id)
            ),
            replaces_order=conn.execute(
                select(Order.order_nr_external).where(Order.id == order.replaces_order_id)
            ).scalar()
            if order.replaces_order_id is not None
            else None,
        )


def _condition(s: Selection) -> ColumnElement[bool]:
    c = s.cutoffs
    match s.due:
        case Due.ARCHIVE:
            return retention.archive_due_condition(s.shop_id, c)
        case Due.RETRY:
            return retention.retry_due_condition(s.shop_id, c)
        case Due.MASK:
            return retention.mask_due_condition(
                s.shop_id, c, s.master_key_id, tonight=s.tonight, also=s.other_key_ids
            )
        case Due.REMASK:
            return retention.remask_due_condition(
                s.shop_id, c, s.master_key_id, tonight=s.tonight, also=s.other_key_ids
            )
        case Due.MASK_REFUSED:
            return retention.mask_refused_condition(
                s.shop_id, c, s.master_key_id, also=s.other_key_ids
            )
        case Due.REMASK_REFUSED:
            return retention.mask_refused_condition(
                s.shop_id, c, s.master_key_id, remask=True, also=s.other_key_ids
            )


class SqlCustomers:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def duplicate_groups(self, shop: str | None) -> Iterator[list[DuplicateCandidate]]:
        return customers.duplicate_candidates(self.conn, shop)

    def merge_candidate(self, customer_id: int) -> MergeCandidate:
        return customers.merge_candidate(self.conn, customer_id)

    def merge(self, keep_id: int, other_id: int) -> int:
        return customers.move_customer(self.conn, keep_id, other_id)

    def lock_masked_state(self, customer_id: int) -> MaskedState:
        masked_at, shredded_at, retrieved_at = self.conn.execute(
            select(Customer.masked_at, Customer.shredded_at, Customer.retrieved_at)
            .where(Customer.id == customer_id)
            .with_for_update()
        ).one()
        remasked = self.conn.execute(
            select(func.max(CustomerHistory.recorded_at)).where(
                CustomerHistory.customer_id == customer_id, CustomerHistory.event == "remasked"
            )
        ).scalar()
        last = masked_at if remasked is None or masked_at is None else max(masked_at, remasked)
        return MaskedState(customer_id, masked_at, last, shredded_at, retrieved_at)

    def restore(
        self, customer_id: int, order_id: int, merged: Mapping[str, Mapping[int, Mapping[str, Any]]]
    ) -> int:
        """The order, its replacement orders and returns, their addresses, the buyer, the
        buyer's history and manual documents, and the order's invoices and credits."""
        conn = self.conn
        # A replacement order and a return belong to the case of the order they came from.
        orders = {order_id} | set(
            conn.execute(select(Order.id).where(Order.replaces_order_id == order_id)).scalars()
        )
        wanted: dict[str, set[int]] = {
            "customers": {customer_id},
            "orders": orders,
            "addresses": set(
                conn.execute(select(Address.id).where(Address.order_id.in_(orders))).scalars()
            ),
            "returns": set(
                conn.execute(select(Return.id).where(Return.order_id.in_(orders))).scalars()
            ),
            "invoices": set(
                conn.execute(
                    select(Invoice.id).where(
                        Invoice.customer_id == customer_id,
                        or_(Invoice.order_id == order_id, Invoice.order_id.is_(None)),
                    )
                ).scalars()
            ),
            "credits": set(
                conn.execute(
                    select(Credit.id).where(
                        Credit.customer_id == customer_id,
                        or_(Credit.order_id == order_id, Credit.order_id.is_(None)),
                    )
                ).scalars()
            ),
            "customer_history": set(
                conn.execute(
                    select(CustomerHistory.id).where(CustomerHistory.customer_id == customer_id)
                ).scalars()
            ),
        }
        wanted["address_history"] = set(
            conn.execute(
                select(AddressHistory.id).where(AddressHistory.address_id.in_(wanted["addresses"]))
            ).scalars()
        )
        restored = 0
        for table, row_ids in wanted.items():
            model = PII_TABLES[table]
            archived = merged.get(table, {})
            for row_id in sorted(row_ids & set(archived)):
                values = decode(table, dict(archived[row_id]))
                if not values:  # no copy knows any of its columns: it stays masked
                    continue
                if model is not Customer:
                    values["masked_at"] = None
                conn.execute(update(model).where(model.id == row_id).values(**values))
                restored += 1
        return restored

    def mark_retrieved(self, customer_id: int, at: datetime) -> None:
        self.conn.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(retrieved_at=at, pii_revision=Customer.pii_revision + 1)
        )

    def facts(self, ids: Sequence[int]) -> dict[int, CustomerFacts]:
        return load_customer_facts(self.conn, ids)

    def overdue_candidates(
        self, shop_id: int, cutoffs: Cutoffs, after_id: int, limit: int
    ) -> list[int]:
        return overdue_candidates(self.conn, shop_id, cutoffs, after_id, limit)

    def count(self, selection: Selection) -> int:
        s = selection
        if s.tonight and s.due in (Due.MASK, Due.REMASK):
            parts = retention.due_tonight_parts(
                s.shop_id,
                s.cutoffs,
                s.master_key_id,
                remask=s.due is Due.REMASK,
                also=s.other_key_ids,
            )
            return sum(retention.count_customers(self.conn, part) for part in parts)
        return retention.count_customers(self.conn, _condition(selection))

    def next_batch(self, selection: Selection, after_id: int, limit: int) -> list[int]:
        return retention.select_batch(self.conn, _condition(selection), after_id, limit)

    def first_ids(self, selection: Selection, limit: int) -> list[int]:
        return retention.first_customer_ids(self.conn, _condition(selection), limit)

    def among(self, selection: Selection, ids: Sequence[int]) -> list[int]:
        return retention.select_among(self.conn, _condition(selection), ids)

    def count_retries(self, ids: Sequence[int]) -> int:
        return retention.count_retries(self.conn, ids)

    def archive_keys(self, ids: Sequence[int]) -> dict[int, ArchiveKeyRow]:
        return retention.archive_keys(self.conn, ids)

    def snapshots(
        self, ids: Sequence[int], revisions: Mapping[int, int]
    ) -> dict[int, CustomerSnapshot]:
        return retention.load_snapshots(self.conn, ids, revisions)

    def record_archived(self, done: Sequence[ArchivedCopy], at: datetime) -> None:
        # A KMS wrapping key is stored no later than the first data key sealed under it.
        lineage.record_wrapping_keys(
            self.conn, [d.wrapping_key for d in done if d.wrapping_key is not None], at
        )
        retention.record_archived(self.conn, done, at)

    def keys_to_rewrap(self, master_key_id: str, after_id: int, limit: int) -> list[int]:
        query = (
            select(Customer.id)
            .where(_under_other_key(master_key_id), Customer.id > after_id)
            .order_by(Customer.id)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def count_keys_to_rewrap(self, master_key_id: str) -> int:
        return retention.count_customers(self.conn, _under_other_key(master_key_id))

    def replace_data_keys(self, rewraps: Sequence[Rewrap], at: datetime) -> int:
        if not rewraps:
            return 0
        lineage.record_wrapping_keys(
            self.conn, [r.new.wrapping_key for r in rewraps if r.new.wrapping_key is not None], at
        )
        # Compare-and-set: a key changed since it was read (erased, re-made) is left alone.
        result = self.conn.execute(
            update(Customer)
            .where(
                Customer.id == bindparam("b_cid"),
                Customer.data_key_wrapped == bindparam("b_old", type_=LargeBinary),
            )
            .values(
                data_key_wrapped=bindparam("b_new", type_=LargeBinary),
                data_key_master_id=bindparam("b_kid", type_=String),
            )
            .execution_options(synchronize_session=False),
            [
                {
                    "b_cid": r.customer_id,
                    "b_old": r.old_blob,
                    "b_new": r.new.blob,
                    "b_kid": r.new.master_key_id,
                }
                for r in rewraps
            ],
        )
        return int(result.rowcount)

    def record_failed(self, failed: Sequence[tuple[int, str]], at: datetime) -> None:
        retention.record_failed(self.conn, failed, at)

    def mask(self, ids: Sequence[int], at: datetime, event: str) -> int:
        return retention.mask_customers(self.conn, ids, at, event)

    def adopt_data_key(self, customer_id: int, wrapped: WrappedKey) -> None:
        self.conn.execute(
            update(Customer)
            .where(Customer.id == customer_id, Customer.data_key_wrapped.is_(None))
            .values(data_key_wrapped=wrapped.blob, data_key_master_id=wrapped.master_key_id)
        )

    def shred_due(
        self,
        shop_id: int,
        expired_before: Mapping[DocumentKind, datetime],
        after_id: int,
        limit: int,
    ) -> list[int]:
        return shredding.shred_due(self.conn, shop_id, expired_before, after_id, limit)

    def documents(self, customer_id: int) -> BuyerDocuments:
        return shredding.buyer_documents(self.conn, customer_id)

    def shred(self, ids: Sequence[int], at: datetime, because: str) -> list[int]:
        return shredding.shred(self.conn, ids, at, because)


def _under_other_key(master_key_id: str) -> ColumnElement[bool]:
    """Buyers holding a data key wrapped under another master key than this one."""
    return and_(
        Customer.data_key_wrapped.is_not(None),
        Customer.data_key_master_id.is_distinct_from(master_key_id),
    )


class SqlArchiveCopies:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def of_customer(self, customer_id: int) -> list[CopyRef]:
        rows = self.conn.execute(
            select(
                ArchiveCopy.object_key,
                ArchiveCopy.revision,
                ArchiveCopy.ciphertext_sha256,
                ArchiveCopy.record_offset,
                ArchiveCopy.record_length,
            )
            .where(ArchiveCopy.customer_id == customer_id)
            .order_by(ArchiveCopy.revision.desc())
        )
        return [CopyRef(*r) for r in rows]

    def segment_keys(self, after: str, limit: int) -> list[str]:
        return shredding.segment_keys(self.conn, after, limit)

    def segments_of(self, customer_ids: Sequence[int]) -> list[str]:
        return shredding.segments_of(self.conn, customer_ids)

    def ledger_entries(self, object_keys: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        return shredding.ledger_entries(self.conn, object_keys)

    def has_segment(self, object_key: str) -> bool:
        return shredding.has_segment(self.conn, object_key)

    def recover(
        self,
        segment: ArchivedSegment,
        records: Sequence[RecoveredRecord],
        at: datetime,
        ledger_found: bool,
    ) -> int:
        return shredding.recover(self.conn, segment, records, at, ledger_found)

    def add_segment(self, segment: ArchivedSegment) -> None:
        self.conn.execute(
            insert(ArchiveSegment).values(
                object_key=segment.object_key,
                created_at=segment.created_at,
                record_count=segment.record_count,
                size_bytes=segment.size,
                sha256=segment.sha256,
            )
        )

    def count_objects(self) -> tuple[int, int]:
        segments = self.conn.execute(select(func.count()).select_from(ArchiveSegment)).scalar()
        legacy = self.conn.execute(
            select(func.count()).where(ArchiveCopy.record_offset.is_(None))
        ).scalar()
        return int(segments or 0), int(legacy or 0)

    def segments_to_verify(self, limit: int) -> list[SegmentRef]:
        rows = self.conn.execute(
            _SEGMENT_COLUMNS.order_by(
                ArchiveSegment.verified_at.is_not(None),
                ArchiveSegment.verified_at,
                ArchiveSegment.id,
            ).limit(limit)
        )
        return [SegmentRef(*r) for r in rows]

    def segments_after(self, after_id: int, limit: int) -> list[SegmentRef]:
        rows = self.conn.execute(
            _SEGMENT_COLUMNS.where(ArchiveSegment.id > after_id)
            .order_by(ArchiveSegment.id)
            .limit(limit)
        )
        return [SegmentRef(*r) for r in rows]

    def legacy_to_verify(self, limit: int) -> list[IndexedCopy]:
        rows = self.conn.execute(
            _COPY_COLUMNS.where(ArchiveCopy.record_offset.is_(None))
            .order_by(ArchiveCopy.verified_at, ArchiveCopy.id)
            .limit(limit)
        )
        return [IndexedCopy(*r) for r in rows]

    def legacy_after(self, after_id: int, limit: int) -> list[IndexedCopy]:
        rows = self.conn.execute(
            _COPY_COLUMNS.where(ArchiveCopy.record_offset.is_(None), ArchiveCopy.id > after_id)
            .order_by(ArchiveCopy.id)
            .limit(limit)
        )
        return [IndexedCopy(*r) for r in rows]

    def records_in(self, object_key: str) -> list[IndexedCopy]:
        rows = self.conn.execute(
            _COPY_COLUMNS.where(
                ArchiveCopy.object_key == object_key, ArchiveCopy.record_offset.is_not(None)
            ).order_by(ArchiveCopy.record_offset)
        )
        return [IndexedCopy(*r) for r in rows]

    def record_verification(
        self, object_key: str, at: datetime, problems: Sequence[ArchiveProblem]
    ) -> None:
        self.conn.execute(
            update(ArchiveProblemRow)
            .where(
                ArchiveProblemRow.object_key == object_key, ArchiveProblemRow.resolved_at.is_(None)
            )
            .values(resolved_at=at)
        )
        if problems:
            self.conn.execute(
                insert(ArchiveProblemRow),
                [
                    {
                        "found_at": at,
                        "location": p.location,
                        "object_key": p.object_key,
                        "customer_id": p.customer_id,
                        "revision": p.revision,
                        "problem": p.problem[:PROBLEM_LENGTH],
                    }
                    for p in problems
                ],
            )
            return
        self.conn.execute(
            update(ArchiveSegment)
            .where(ArchiveSegment.object_key == object_key)
            .values(verified_at=at)
        )
        self.conn.execute(
            update(ArchiveCopy)
            .where(ArchiveCopy.object_key == object_key, ArchiveCopy.record_offset.is_(None))
            .values(verified_at=at)
        )

    def open_problems(self) -> list[ArchiveProblem]:
        rows = self.conn.execute(
            select(
                ArchiveProblemRow.location,
                ArchiveProblemRow.object_key,
                ArchiveProblemRow.customer_id,
                ArchiveProblemRow.revision,
                ArchiveProblemRow.problem,
                ArchiveProblemRow.found_at,
            )
            .where(ArchiveProblemRow.resolved_at.is_(None))
            .order_by(ArchiveProblemRow.id)
        )
        return [ArchiveProblem(*r) for r in rows]

    def discard_unmasked(self, copies: Sequence[tuple[int, int]]) -> list[int]:
        if not copies:
            return []
        # Locked: a nightly run masking one of them meanwhile is waited for, and then its
        # buyer is masked and keeps the copy (its only way back). Without the lock the copy
        # went from under the mask (PostgreSQL; SQLite writes one transaction at a time).
        never_masked = set(
            self.conn.execute(
                select(Customer.id)
                .where(Customer.id.in_({cid for cid, _rev in copies}), Customer.masked_at.is_(None))
                .with_for_update()
            ).scalars()
        )
        dropped = sorted({cid for cid, _rev in copies if cid in never_masked})
        for cid, rev in copies:
            if cid not in never_masked:
                continue
            self.conn.execute(
                delete(ArchiveCopy).where(
                    ArchiveCopy.customer_id == cid, ArchiveCopy.revision == rev
                )
            )
            self.conn.execute(
                update(Customer)
                .where(Customer.id == cid, Customer.archived_revision == rev)
                .values(archived_revision=None, archived_at=None)
            )
        return dropped

    def move_into_segment(self, moved: Sequence[ArchivedCopy]) -> None:
        for m in moved:
            self.conn.execute(
                update(ArchiveCopy)
                .where(ArchiveCopy.customer_id == m.customer_id, ArchiveCopy.revision == m.revision)
                .values(
                    object_key=m.object_key,
                    ciphertext_sha256=m.sha256,
                    record_offset=m.offset,
                    record_length=m.length,
                )
            )


PROBLEM_LENGTH = 200
_SEGMENT_COLUMNS = select(
    ArchiveSegment.id,
    ArchiveSegment.object_key,
    ArchiveSegment.size_bytes,
    ArchiveSegment.sha256,
    ArchiveSegment.record_count,
)
_COPY_COLUMNS = select(
    ArchiveCopy.id,
    ArchiveCopy.customer_id,
    ArchiveCopy.revision,
    ArchiveCopy.object_key,
    ArchiveCopy.ciphertext_sha256,
    ArchiveCopy.record_offset,
    ArchiveCopy.record_length,
)


class SqlHistory:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self, customer_id: int, order_id: int | None, at: datetime, event: str, user: str, text: str
    ) -> None:
        self.conn.execute(
            insert(CustomerHistory).values(
                customer_id=customer_id,
                order_id=order_id,
                recorded_at=at,
                event=event,
                user_name=user,
                text=text,
            )
        )


class SqlAudit:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(
        self,
        at: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: Mapping[str, str | int | None] | None = None,
    ) -> AuditEntry:
        return audit_log.append(self.conn, at, actor, action, subject, detail)

    def count_actions(self, actor: str, action: str, since: datetime) -> int:
        return audit_log.count_actions(self.conn, actor, action, since)

    def entries(self) -> Iterator[AuditEntry]:
        return audit_log.entries(self.conn)

    def recent(self, limit: int) -> list[AuditEntry]:
        return audit_log.recent(self.conn, limit)

    def purge_anchor(self) -> str | None:
        return audit_log.purge_anchor(self.conn)

    def last_before(self, before: datetime) -> AuditEntry | None:
        return audit_log.last_before(self.conn, before)

    def count_through(self, seq: int) -> int:
        return int(
            self.conn.execute(select(func.count()).where(AuditLogEntry.seq <= seq)).scalar_one()
        )

    def delete_through(self, seq: int) -> int:
        result = self.conn.execute(delete(AuditLogEntry).where(AuditLogEntry.seq <= seq))
        return int(result.rowcount)


class SqlRuns:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, as_of: datetime, started_at: datetime) -> int:
        return runs.start_run(self.conn, as_of, started_at)

    def finish(
        self,
        run_id: int,
        finished_at: datetime,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        runs.finish_run(self.conn, run_id, finished_at, counts, error)

    def recent(self, limit: int) -> list[RunRow]:
        return runs.recent_runs(self.conn, limit)


class SqlShops:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def enabled(self) -> list[ShopRow]:
        return retention.shops(self.conn, enabled_only=True)

    def all(self) -> list[ShopSettings]:
        rows = self.conn.execute(
            select(
                Shop.name,
                Shop.time_zone,
                Shop.amazon_order_pattern,
                Shop.retention_enabled,
                Shop.tax_fields_basis,
                *(getattr(Shop, f"keep_{name}") for name in TAX_FIELDS),
            ).order_by(Shop.name)
        )
        return [
            ShopSettings(
                r.name,
                r.time_zone,
                r.amazon_order_pattern,
                r.retention_enabled,
                tuple(name for name in TAX_FIELDS if getattr(r, f"keep_{name}")),
                r.tax_fields_basis,
            )
            for r in rows
        ]

    def every(self) -> list[ShopRow]:
        return retention.shops(self.conn)

    def by_name(self, name: str) -> ShopRow | None:
        row = self.conn.execute(
            select(Shop.id, Shop.name, Shop.time_zone, Shop.retention_enabled).where(
                Shop.name == name
            )
        ).first()
        if row is None:
            return None
        return ShopRow(row.id, row.name, row.time_zone, bool(row.retention_enabled))

    def switch_feature(self, shop_id: int, enabled: bool, at: datetime, user: str) -> None:
        self.conn.execute(update(Shop).where(Shop.id == shop_id).values(retention_enabled=enabled))
        self.conn.execute(
            insert(ShopFeatureChange).values(
                shop_id=shop_id, enabled=enabled, changed_at=at, changed_by=user
            )
        )

    def configure(self, name: str, changes: Mapping[str, str]) -> bool:
        result = self.conn.execute(update(Shop).where(Shop.name == name).values(**changes))
        return bool(result.rowcount)

    def set_tax_fields(self, shop_id: int, kept: frozenset[str], basis: str | None) -> None:
        self.conn.execute(
            update(Shop)
            .where(Shop.id == shop_id)
            .values(
                tax_fields_basis=basis,
                **{f"keep_{name}": name in kept for name in TAX_FIELDS},
            )
        )


class SqlInstallation:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def master_key_id(self) -> str | None:
        installation = read_installation(self.conn)
        return installation.master_key_id if installation else None

    def key_ids(self) -> tuple[str, ...]:
        installation = read_installation(self.conn)
        if installation is None:
            return ()
        previous = installation.previous_master_key_id
        return (installation.master_key_id, *((previous,) if previous else ()))

    def identity_key(self) -> WrappedKey:
        installation = read_installation(self.conn)
        if installation is None:
            raise NotInitialised("this database records no master key yet; run `shelflife init`")
        return WrappedKey(installation.master_key_id, installation.identity_key_wrapped)

    def previous_master_key_id(self) -> str | None:
        installation = read_installation(self.conn)
        return installation.previous_master_key_id if installation else None

    def begin_rotation(
        self, new: KeyLocation, old: KeyLocation, identity_key: WrappedKey, at: datetime
    ) -> None:
        if identity_key.wrapping_key is not None:
            lineage.record_wrapping_keys(self.conn, [identity_key.wrapping_key], at)
        lineage.begin_rotation(self.conn, new, old, identity_key.blob, at)

    def finish_rotation(self, at: datetime) -> None:
        lineage.finish_rotation(self.conn, at)

    def record_wrapping_keys(self, keys: Sequence[WrappingKey], at: datetime) -> None:
        lineage.record_wrapping_keys(self.conn, keys, at)


class SqlExports:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def accounting_rows(self, shop_id: int, start: datetime, end: datetime) -> list[AccountingRow]:
        return exports.accounting_rows(self.conn, shop_id, start, end)

    def mark_exported(self, rows: Sequence[AccountingRow], at: datetime) -> None:
        exports.mark_exported(self.conn, rows, at)

    def record(self, export: ExportRecord) -> None:
        exports.record(self.conn, export)

    def last(self, kind: str) -> ExportRecord | None:
        return exports.last(self.conn, kind)

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        return exports.unexported_due(self.conn, shop_id, cutoffs)
