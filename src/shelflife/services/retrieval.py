"""Retrieval: restore one masked order's PII from the archive, read-only, for 30 days.

Everything is read and decrypted before anything is written, so an unreachable archive or a
missing key leaves the database exactly as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, or_, select, update

from shelflife.adapters.db.reading import find_order
from shelflife.adapters.db.tables import (
    PII_TABLES,
    Address,
    AddressHistory,
    ArchiveCopy,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
)
from shelflife.adapters.keys.envelope import open_sealed
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput, NotRetrievable
from shelflife.domain.policy import validate_retrieval_reason
from shelflife.domain.snapshot import CustomerSnapshot, decode, merge_newest_first

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalResult:
    order_nr: str
    restored_rows: int
    retrieved_at: datetime


def retrieve_order(
    app: App,
    order_nr: str,
    reason: str,
    user: str,
    as_of: datetime | None = None,
    shop: str | None = None,
) -> RetrievalResult:
    try:
        reason = validate_retrieval_reason(reason)
    except ValueError as exc:
        raise InvalidInput(f"--reason: {exc}") from None
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("--user: give the name of the person retrieving (1 to 100 characters)")
    now = as_of or app.clock.now()
    keys = app.keys  # checked against the recorded key before the transaction takes its lock
    with app.engine.begin() as conn:
        order = find_order(conn, order_nr, shop)
        customer = conn.execute(  # locked: a concurrent re-mask waits for this retrieval
            select(Customer.__table__).where(Customer.id == order.customer_id).with_for_update()
        ).one()
        if not order.is_amazon:
            raise NotRetrievable(
                f"order {order_nr!r} is not an Amazon order; its data is never masked"
            )
        if customer.masked_at is None:
            raise NotRetrievable(
                f"order {order_nr!r} is not masked; its data is in the database already"
            )
        copies = list(
            conn.execute(
                select(ArchiveCopy.object_key, ArchiveCopy.revision)
                .where(ArchiveCopy.customer_id == customer.id)
                .order_by(ArchiveCopy.revision.desc())
            )
        )
        if not copies:
            raise NotRetrievable(f"order {order_nr!r} has no archive copy to retrieve from")
        # Read and decrypt every copy first: any failure here changes nothing.
        snapshots = [
            CustomerSnapshot.from_bytes(open_sealed(app.archive.get(c.object_key), keys))
            for c in copies
        ]
        merged = merge_newest_first(snapshots)
        restored = _restore(conn, merged, customer.id, order.id)
        conn.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(retrieved_at=now, pii_revision=Customer.pii_revision + 1)
        )
        conn.execute(
            insert(CustomerHistory).values(
                customer_id=customer.id,
                order_id=order.id,
                recorded_at=now,
                event="retrieved",
                user_name=user,
                text=reason,
            )
        )
    # The reason is free text typed by a person and may name the buyer: it is not logged.
    log.info("order %s retrieved by %s (%d records restored)", order_nr, user, restored)
    return RetrievalResult(order_nr, restored, now)


def _restore(
    conn: Connection,
    merged: dict[str, dict[int, dict[str, str | None]]],
    customer_id: int,
    order_id: int,
) -> int:
    """Write archived values back into this order's rows, its buyer, the buyer's history and
    manual documents; other orders of the buyer stay masked."""
    wanted: dict[str, set[int]] = {
        "customers": {customer_id},
        "orders": {order_id},
        "addresses": set(
            conn.execute(select(Address.id).where(Address.order_id == order_id)).scalars()
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
        for row_id in sorted(row_ids & set(merged.get(table, {}))):
            values = decode(table, merged[table][row_id])
            if model is not Customer:
                values["masked_at"] = None
            conn.execute(update(model).where(model.id == row_id).values(**values))
            restored += 1
    return restored
