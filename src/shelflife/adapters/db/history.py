"""The customer history's storage: the buyer an order belongs to, and a note added to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from shelflife.adapters.db.tables import Customer, CustomerHistory

NOTE_EVENT = "note"


@dataclass(frozen=True)
class BuyerState:
    customer_id: int
    masked_at: datetime | None
    retrieved_at: datetime | None


def lock_buyer(conn: Connection, customer_id: int) -> BuyerState:
    """The buyer's masking state, locked for the caller's transaction: a nightly mask of the
    same buyer waits until the caller commits, then sees the new revision."""
    row = conn.execute(
        select(Customer.id, Customer.masked_at, Customer.retrieved_at)
        .where(Customer.id == customer_id)
        .with_for_update()
    ).one()
    return BuyerState(row.id, row.masked_at, row.retrieved_at)


def add_note(
    conn: Connection, customer_id: int, order_id: int, at: datetime, user: str, text: str
) -> None:
    """Record the note and bump the buyer's PII revision: the note is PII, so the buyer is
    archived again before the next masking, which then masks the note with the rest."""
    conn.execute(
        insert(CustomerHistory).values(
            customer_id=customer_id,
            order_id=order_id,
            recorded_at=at,
            event=NOTE_EVENT,
            user_name=user,
            text=text,
        )
    )
    conn.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(pii_revision=Customer.pii_revision + 1)
    )
