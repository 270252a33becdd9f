"""Read models: the facts the pure policy needs, loaded for many buyers at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, exists, func, or_, select

from shelflife.adapters.db.tables import Credit, Customer, Invoice, Order, Shop
from shelflife.domain.policy import CustomerFacts, Cutoffs, OrderFacts


def load_customer_facts(conn: Connection, ids: Sequence[int]) -> dict[int, CustomerFacts]:
    """Three queries for the whole set: buyers, their orders, their documents."""
    if not ids:
        return {}
    orders: dict[int, list[OrderFacts]] = defaultdict(list)
    for o in conn.execute(
        select(Order.customer_id, Order.shipped_at, Order.cancelled_at, Order.masked_at)
        .where(Order.customer_id.in_(ids))
        .order_by(Order.id)
    ):
        orders[o.customer_id].append(
            OrderFacts(o.shipped_at, o.cancelled_at, o.masked_at is not None)
        )
    documents: dict[int, list[datetime]] = defaultdict(list)
    docs = (
        select(Invoice.customer_id, Invoice.created_at)
        .where(Invoice.customer_id.in_(ids))
        .union_all(select(Credit.customer_id, Credit.created_at).where(Credit.customer_id.in_(ids)))
    )
    for d in conn.execute(docs):
        documents[d.customer_id].append(d.created_at)
    facts = {}
    for c in conn.execute(
        select(
            Customer.id,
            Customer.channel,
            Shop.retention_enabled,
            Customer.pii_revision,
            Customer.archived_revision,
            Customer.archive_failed_at,
            Customer.masked_at,
            Customer.retrieved_at,
        )
        .join(Shop, Shop.id == Customer.shop_id)
        .where(Customer.id.in_(ids))
    ):
        facts[c.id] = CustomerFacts(
            is_amazon=c.channel == "amazon",
            feature_enabled=bool(c.retention_enabled),
            orders=tuple(orders[c.id]),
            document_dates=tuple(sorted(documents[c.id])),
            pii_revision=c.pii_revision,
            archived_revision=c.archived_revision,
            archive_failed_at=c.archive_failed_at,
            masked_at=c.masked_at,
            retrieved_at=c.retrieved_at,
        )
    return facts


def overdue_candidates(
    conn: Connection, shop_id: int, c: Cutoffs, after_id: int, limit: int
) -> list[int]:
    """Amazon buyers holding real PII past a 30-day limit: the compliance report's rows."""
    closed = func.coalesce(Order.shipped_at, Order.cancelled_at)
    condition = and_(
        Customer.shop_id == shop_id,
        Customer.channel == "amazon",
        or_(
            and_(
                Customer.masked_at.is_(None),
                exists().where(Order.customer_id == Customer.id, closed < c.mask_before),
            ),
            and_(Customer.retrieved_at.is_not(None), Customer.retrieved_at < c.remask_before),
        ),
        Customer.id > after_id,
    )
    return list(
        conn.execute(
            select(Customer.id).where(condition).order_by(Customer.id).limit(limit)
        ).scalars()
    )


def find_order(conn: Connection, order_nr: str, shop: str | None = None) -> Row[Any]:
    """The one order with this external number; several shops may share a number."""
    from shelflife.domain.errors import InvalidInput, UnknownOrder

    query = select(Order.__table__).where(Order.order_nr_external == order_nr)
    if shop is not None:
        query = query.join(Shop, Shop.id == Order.shop_id).where(Shop.name == shop)
    rows = conn.execute(query).all()
    if not rows:
        raise UnknownOrder(order_nr)
    if len(rows) > 1:
        raise InvalidInput(f"order number {order_nr!r} exists in several shops; give --shop")
    return rows[0]
