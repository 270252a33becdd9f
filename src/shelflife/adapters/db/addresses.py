"""SQL of an address change: lock the buyer, read the address, write it with its history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from shelflife.adapters.db.tables import Address, AddressHistory, Customer


def lock_buyer(conn: Connection, customer_id: int) -> None:
    """Hold the buyer's row until the change commits: a nightly run that would archive or mask
    the buyer meanwhile waits, and then sees the new revision."""
    conn.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update()).one()


def order_address(conn: Connection, order_id: int, kind: str) -> Row[Any] | None:
    return conn.execute(
        select(Address.__table__).where(Address.order_id == order_id, Address.kind == kind)
    ).first()


def write_address(
    conn: Connection,
    address: Row[Any],
    values: Mapping[str, str | None],
    now: datetime,
) -> list[str]:
    """Write the values that differ from the stored ones; the old values go to the address
    history (as a re-import records them) and the buyer's PII revision moves on, so the next
    run archives the new data before anything is masked. Returns the changed columns."""
    changed = {k: v for k, v in values.items() if getattr(address, k) != v}
    if not changed:
        return []
    conn.execute(update(Address).where(Address.id == address.id).values(**changed))
    history = [
        {
            "address_id": address.id,
            "customer_id": address.customer_id,
            "recorded_at": now,
            "field": column,
            "old_value": _text(getattr(address, column)),
        }
        for column in changed
        if getattr(address, column) not in (None, "")
    ]
    if history:
        conn.execute(insert(AddressHistory), history)
    conn.execute(
        update(Customer)
        .where(Customer.id == address.customer_id)
        .values(pii_revision=Customer.pii_revision + 1)
    )
    return sorted(changed)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)
