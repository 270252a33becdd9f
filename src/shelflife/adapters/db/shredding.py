"""The SQL of shredding, the key ledger and `archive recover` (see services/ledger.py and
services/recovery.py). Batch methods issue a fixed number of statements per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, LargeBinary, String, bindparam, exists, insert, select, update

from shelflife.adapters.db.retention import _among, in_shop
from shelflife.adapters.db.tables import (
    ArchiveCopy,
    ArchiveSegment,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    Shop,
    WrappingKey,
)
from shelflife.adapters.keys.envelope import wrapping_key_id
from shelflife.domain.errors import NotFound
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.policy import DEFAULT_AMAZON_ORDER_PATTERN
from shelflife.domain.ports import (
    RECOVERED_SHOP,
    ArchivedSegment,
    BuyerDocuments,
    LedgerEntry,
    RecoveredRecord,
    WrappedKey,
)
from shelflife.domain.ports import WrappingKey as WrappingKeyRecord
from shelflife.domain.references import customer_ref

RECOVERED_TIME_ZONE = "UTC"


def shred_due(
    conn: Connection,
    shop_id: int,
    expired_before: Mapping[DocumentKind, datetime],
    after_id: int,
    limit: int,
) -> list[int]:
    """Twin of `legal_retention.still_kept(...) == []` for masked, unretrieved buyers with a key
    and at least one order (retention counts from documents: a buyer with none is left to an
    erasure)."""
    newer = [
        exists()
        .where(Invoice.customer_id == Customer.id)
        .where(Invoice.created_at >= expired_before[DocumentKind.INVOICE]),
        exists()
        .where(Credit.customer_id == Customer.id)
        .where(Credit.created_at >= expired_before[DocumentKind.CREDIT]),
        exists()
        .where(Order.customer_id == Customer.id)
        .where(Order.ordered_at >= expired_before[DocumentKind.ORDER]),
    ]
    query = (
        select(Customer.id)
        .where(
            in_shop(shop_id),  # walked by id, not through a shop index and a sort
            Customer.id > after_id,
            Customer.masked_at.is_not(None),
            Customer.retrieved_at.is_(None),
            Customer.shredded_at.is_(None),
            Customer.data_key_wrapped.is_not(None),
            exists().where(Order.customer_id == Customer.id),
            *(~condition for condition in newer),
        )
        .order_by(Customer.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def buyer_documents(conn: Connection, customer_id: int) -> BuyerDocuments:
    row = conn.execute(
        select(
            Customer.masked_at,
            Customer.retrieved_at,
            Customer.shredded_at,
            Customer.data_key_wrapped.is_not(None).label("has_key"),
            Shop.time_zone,
        )
        .join(Shop, Shop.id == Customer.shop_id)
        .where(Customer.id == customer_id)
        .with_for_update(of=Customer)
    ).first()
    if row is None:
        raise NotFound(f"no buyer {customer_ref(customer_id)}; check the reference")
    documents: list[tuple[DocumentKind, str, datetime]] = []
    for kind, query in (
        (
            DocumentKind.INVOICE,
            select(Invoice.invoice_nr, Invoice.created_at).where(
                Invoice.customer_id == customer_id
            ),
        ),
        (
            DocumentKind.CREDIT,
            select(Credit.credit_nr, Credit.created_at).where(Credit.customer_id == customer_id),
        ),
        (
            DocumentKind.ORDER,
            select(Order.order_nr_external, Order.ordered_at).where(
                Order.customer_id == customer_id
            ),
        ),
    ):
        documents += [(kind, number, made_at) for number, made_at in conn.execute(query)]
    return BuyerDocuments(
        customer_id,
        row.time_zone,
        row.masked_at,
        row.retrieved_at,
        row.shredded_at,
        bool(row.has_key),
        documents,
    )


def shred(conn: Connection, ids: Sequence[int], at: datetime, because: str) -> list[int]:
    if not ids:
        return []
    shredded = sorted(
        conn.execute(
            update(Customer)
            .where(
                _among(conn, Customer.id, ids),
                Customer.shredded_at.is_(None),
                Customer.data_key_wrapped.is_not(None),
            )
            .values(
                data_key_wrapped=None,
                data_key_master_id=None,
                shredded_at=at,
                shredded_because=because,
            )
            .returning(Customer.id)
        ).scalars()
    )
    if shredded:
        conn.execute(
            insert(CustomerHistory),
            [
                {
                    "customer_id": cid,
                    "recorded_at": at,
                    "event": "shredded",
                    "user_name": "shelflife",
                    "text": because,
                }
                for cid in shredded
            ],
        )
    return shredded


def segment_keys(conn: Connection, after: str, limit: int) -> list[str]:
    query = (
        select(ArchiveSegment.object_key)
        .where(ArchiveSegment.object_key > after)
        .order_by(ArchiveSegment.object_key)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def segments_of(conn: Connection, customer_ids: Sequence[int]) -> list[str]:
    if not customer_ids:
        return []
    query = (
        select(ArchiveCopy.object_key)
        .where(
            _among(conn, ArchiveCopy.customer_id, customer_ids),
            ArchiveCopy.record_offset.is_not(None),
        )
        .distinct()
        .order_by(ArchiveCopy.object_key)
    )
    return list(conn.execute(query).scalars())


def ledger_entries(conn: Connection, object_keys: Sequence[str]) -> dict[str, list[LedgerEntry]]:
    """The segments' rows are locked first (in key order, so two callers never deadlock): two
    transactions rewriting one segment's ledger (an erasure, the nightly shred, a rotation)
    take turns, and the second reads the keys as the first committed them, so neither writes
    back a key the other destroyed."""
    found: dict[str, list[LedgerEntry]] = {key: [] for key in object_keys}
    if not object_keys:
        return found
    conn.execute(
        select(ArchiveSegment.id)
        .where(ArchiveSegment.object_key.in_(object_keys))
        .order_by(ArchiveSegment.object_key)
        .with_for_update()
    ).all()
    rows = conn.execute(
        select(
            ArchiveCopy.object_key,
            ArchiveCopy.customer_id,
            ArchiveCopy.revision,
            Customer.data_key_master_id,
            Customer.data_key_wrapped,
        )
        .join(Customer, Customer.id == ArchiveCopy.customer_id)
        .where(
            ArchiveCopy.object_key.in_(object_keys),
            ArchiveCopy.record_offset.is_not(None),
            Customer.data_key_wrapped.is_not(None),
        )
        .order_by(ArchiveCopy.object_key, ArchiveCopy.customer_id, ArchiveCopy.revision)
    ).all()
    wrapping = _wrapping_keys(
        conn, {wrapping_key_id(bytes(r.data_key_wrapped or b"")) for r in rows}
    )
    for r in rows:
        blob = bytes(r.data_key_wrapped or b"")
        found[r.object_key].append(
            LedgerEntry(
                r.customer_id,
                r.revision,
                WrappedKey(r.data_key_master_id, blob, wrapping.get(wrapping_key_id(blob) or "")),
            )
        )
    return found


def _wrapping_keys(conn: Connection, ids: set[str | None]) -> dict[str, WrappingKeyRecord]:
    """The KMS-encrypted wrapping keys these ids name: a ledger object carries the ones its
    keys are wrapped under, so that `archive recover` needs KMS and the ledger only."""
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return {}
    rows = conn.execute(
        select(WrappingKey.id, WrappingKey.master_key_id, WrappingKey.encrypted).where(
            WrappingKey.id.in_(wanted)
        )
    )
    return {r.id: WrappingKeyRecord(r.id, r.master_key_id, bytes(r.encrypted)) for r in rows}


def has_segment(conn: Connection, object_key: str) -> bool:
    return (
        conn.execute(
            select(ArchiveSegment.id).where(ArchiveSegment.object_key == object_key)
        ).first()
        is not None
    )


def recover(
    conn: Connection,
    segment: ArchivedSegment,
    records: Sequence[RecoveredRecord],
    at: datetime,
    ledger_found: bool,
) -> int:
    if not has_segment(conn, segment.object_key):
        conn.execute(
            insert(ArchiveSegment).values(
                object_key=segment.object_key,
                created_at=segment.created_at,
                record_count=segment.record_count,
                size_bytes=segment.size,
                sha256=segment.sha256,
            )
        )
    ids = sorted({r.customer_id for r in records})
    known = {
        r.id: r
        for r in conn.execute(
            select(
                Customer.id,
                Customer.pii_revision,
                Customer.data_key_wrapped,
                Customer.shredded_at,
            ).where(_among(conn, Customer.id, ids))
        )
    }
    newest: dict[int, RecoveredRecord] = {}
    for r in records:
        if r.customer_id not in newest or r.revision > newest[r.customer_id].revision:
            newest[r.customer_id] = r
    missing = [cid for cid in ids if cid not in known]

    def shredded(cid: int) -> bool:
        """A ledger without the buyer's key says it was shredded; a lost ledger says nothing."""
        return ledger_found and newest[cid].key is None

    if missing:
        shop_id = _recovered_shop(conn, at)
        conn.execute(
            insert(Customer),
            [
                {
                    "id": cid,
                    "shop_id": shop_id,
                    "channel": "amazon",
                    "created_at": segment.created_at,
                    "pii_revision": newest[cid].revision,
                    "archived_revision": newest[cid].revision,
                    "archived_at": segment.created_at,
                    "masked_at": segment.created_at,
                    "data_key_wrapped": None,
                    "data_key_master_id": None,
                    "shredded_at": at if shredded(cid) else None,
                    "shredded_because": "unknown" if shredded(cid) else None,
                }
                for cid in missing
            ],
        )
    given = [
        {"b_cid": cid, "b_key": key.blob, "b_kid": key.master_key_id}
        for cid in ids
        if (key := newest[cid].key) is not None
        and (
            cid in missing
            or (known[cid].data_key_wrapped is None and known[cid].shredded_at is None)
        )
    ]
    if given:
        conn.execute(
            update(Customer)
            .where(Customer.id == bindparam("b_cid"))
            .values(
                data_key_wrapped=bindparam("b_key", type_=LargeBinary),
                data_key_master_id=bindparam("b_kid", type_=String),
            ),
            given,
        )
    recorded = {
        (r.customer_id, r.revision)
        for r in conn.execute(
            select(ArchiveCopy.customer_id, ArchiveCopy.revision).where(
                _among(conn, ArchiveCopy.customer_id, ids)
            )
        )
    }
    new_copies = [r for r in records if (r.customer_id, r.revision) not in recorded]
    if new_copies:
        conn.execute(
            insert(ArchiveCopy),
            [
                {
                    "customer_id": r.customer_id,
                    "revision": r.revision,
                    "object_key": segment.object_key,
                    "ciphertext_sha256": r.sha256,
                    "created_at": segment.created_at,
                    "verified_at": at,
                    "record_offset": r.offset,
                    "record_length": r.length,
                }
                for r in new_copies
            ],
        )
    return len(new_copies)


def _recovered_shop(conn: Connection, at: datetime) -> int:
    found = conn.execute(select(Shop.id).where(Shop.name == RECOVERED_SHOP)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            insert(Shop)
            .values(
                name=RECOVERED_SHOP,
                time_zone=RECOVERED_TIME_ZONE,
                amazon_order_pattern=DEFAULT_AMAZON_ORDER_PATTERN,
                retention_enabled=False,
                created_at=at,
            )
            .returning(Shop.id)
        ).scalar_one()
    )
