"""Read models: the facts the pure policy needs, loaded for many buyers at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, exists, func, literal, or_, select

from shelflife.adapters.db.tables import (
    Address,
    ArchiveCopy,
    Credit,
    Customer,
    Invoice,
    Order,
    Shop,
)
from shelflife.domain.masking import MASKED_EMAIL, MASKED_TEXT
from shelflife.domain.policy import CustomerFacts, Cutoffs, DocumentFacts, OrderFacts
from shelflife.domain.ports import Match, OrderMatch


def load_customer_facts(conn: Connection, ids: Sequence[int]) -> dict[int, CustomerFacts]:
    """Three queries for the whole set: buyers, their orders, their documents."""
    if not ids:
        return {}
    orders: dict[int, list[OrderFacts]] = defaultdict(list)
    for o in conn.execute(
        select(
            Order.customer_id,
            Order.shipped_at,
            Order.cancelled_at,
            Order.masked_at,
            Order.order_nr_external,
        )
        .where(Order.customer_id.in_(ids))
        .order_by(Order.id)
    ):
        orders[o.customer_id].append(
            OrderFacts(o.shipped_at, o.cancelled_at, o.masked_at is not None, o.order_nr_external)
        )
    documents: dict[int, list[DocumentFacts]] = defaultdict(list)
    docs = (
        select(Invoice.customer_id, literal("invoice"), Invoice.invoice_nr, Invoice.created_at)
        .where(Invoice.customer_id.in_(ids))
        .union_all(
            select(
                Credit.customer_id, literal("credit"), Credit.credit_nr, Credit.created_at
            ).where(Credit.customer_id.in_(ids))
        )
    )
    for cid, kind, number, created_at in conn.execute(docs):
        documents[cid].append(DocumentFacts(kind, number, created_at))
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
            document_dates=tuple(sorted(d.created_at for d in documents[c.id])),
            pii_revision=c.pii_revision,
            archived_revision=c.archived_revision,
            archive_failed_at=c.archive_failed_at,
            masked_at=c.masked_at,
            retrieved_at=c.retrieved_at,
            documents=tuple(sorted(documents[c.id], key=_document_order)),
        )
    return facts


def _document_order(d: DocumentFacts) -> tuple[datetime, str, str]:
    return (d.created_at, d.kind, d.number or "")


def overdue_condition(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """SQL twin of `policy.overdue`: Amazon buyers holding real PII past a 30-day limit."""
    closed = func.coalesce(Order.shipped_at, Order.cancelled_at)
    return and_(
        Customer.shop_id == shop_id,
        Customer.channel == "amazon",
        or_(
            and_(
                Customer.masked_at.is_(None),
                exists().where(Order.customer_id == Customer.id, closed < c.mask_before),
            ),
            and_(Customer.retrieved_at.is_not(None), Customer.retrieved_at < c.remask_before),
        ),
    )


def overdue_candidates(
    conn: Connection, shop_id: int, c: Cutoffs, after_id: int, limit: int
) -> list[int]:
    """Amazon buyers holding real PII past a 30-day limit: the compliance report's rows."""
    condition = and_(overdue_condition(shop_id, c), Customer.id > after_id)
    return list(
        conn.execute(
            select(Customer.id).where(condition).order_by(Customer.id).limit(limit)
        ).scalars()
    )


def recorded_object_keys(conn: Connection, object_keys: Sequence[str]) -> set[str]:
    """Which of these object keys (segments or legacy whole objects) `archive_copies` points
    to: one query on the object-key index."""
    if not object_keys:
        return set()
    return set(
        conn.execute(
            select(ArchiveCopy.object_key).where(ArchiveCopy.object_key.in_(object_keys)).distinct()
        ).scalars()
    )


def find_order(conn: Connection, order_nr: str, shop: str | None = None) -> Row[Any]:
    """The one order with this external number; several shops may share a number."""
    from shelflife.domain.errors import InvalidInput, UnknownOrder

    # Imports refuse NUL, so no such order exists; PostgreSQL would refuse the parameter.
    if "\x00" in order_nr or (shop is not None and "\x00" in shop):
        raise UnknownOrder(order_nr)
    query = select(Order.__table__).where(Order.order_nr_external == order_nr)
    if shop is not None:
        query = query.join(Shop, Shop.id == Order.shop_id).where(Shop.name == shop)
    rows = conn.execute(query).all()
    if not rows:
        raise UnknownOrder(order_nr)
    if len(rows) > 1:
        raise InvalidInput(
            f"order number {order_nr!r} exists in several shops; name the shop as well"
        )
    return rows[0]


def _unmasked_text_contains(column: Any, needle: str) -> ColumnElement[bool]:
    """Case-insensitive substring match on a real value: mask placeholders never match."""
    return and_(
        column.is_not(None),
        column.not_in([MASKED_TEXT, MASKED_EMAIL]),
        func.lower(column).contains(needle.lower(), autoescape=True),
    )


def find_orders(
    conn: Connection,
    query: str,
    customer_id: int | None,
    limit: int,
    numbers: bool = True,
    personal_data: bool = True,
) -> tuple[list[OrderMatch], bool]:
    """Orders matching `query`, at most `limit`, and whether more matched.

    Numbers match exactly, masked orders included (order, invoice and credit numbers are not
    personal data). Only when nothing matched that way, e-mail addresses and names match as
    case-insensitive substrings of unmasked rows, listing only unmasked orders: a masked buyer
    is never found by what the buyer's data was. At most five queries, each bounded by `limit`.
    `numbers` and `personal_data` switch either kind of search off, for a caller that knows
    which one it asks.
    """
    base = (
        select(
            Order.id,
            Order.customer_id,
            Shop.name,
            Shop.time_zone,
            Order.order_nr_external,
            Order.is_amazon,
            Order.ordered_at,
            Order.shipped_at,
            Order.cancelled_at,
            Order.masked_at,
        )
        .join(Shop, Shop.id == Order.shop_id)
        .order_by(Order.ordered_at.desc(), Order.id.desc())
        .limit(limit + 1)
    )

    def document(model: Any, number: Any) -> ColumnElement[bool]:
        """A document with this number, of this order or a manual one of its buyer."""
        return or_(
            Order.id.in_(select(model.order_id).where(number == query)),
            Order.customer_id.in_(
                select(model.customer_id).where(number == query, model.order_id.is_(None))
            ),
        )

    customers = select(Customer.id).where(
        or_(Customer.masked_at.is_(None), Customer.retrieved_at.is_not(None)),
        or_(
            *(
                _unmasked_text_contains(c, query)
                for c in (Customer.email, Customer.name, Customer.company)
            )
        ),
    )
    addresses = select(Address.order_id).where(
        Address.masked_at.is_(None),
        or_(
            *(
                _unmasked_text_contains(c, query)
                for c in (Address.email, Address.email2, Address.name, Address.company)
            )
        ),
    )
    searches: list[tuple[Match, Any]] = []
    if customer_id is not None:
        searches.append((Match.CUSTOMER, base.where(Order.customer_id == customer_id)))
    if numbers:
        searches += [
            (Match.ORDER, base.where(Order.order_nr_external == query)),
            (Match.INVOICE, base.where(document(Invoice, Invoice.invoice_nr))),
            (Match.CREDIT, base.where(document(Credit, Credit.credit_nr))),
        ]
    by_personal_data = base.where(
        Order.masked_at.is_(None),
        or_(Order.customer_id.in_(customers), Order.id.in_(addresses)),
    )
    found: dict[int, OrderMatch] = {}
    for match, statement in searches:
        _collect(conn, statement, match, found)
    if personal_data and not found:  # a number or reference is not searched for as a name too
        _collect(conn, by_personal_data, Match.PERSONAL_DATA, found)
    rows = list(found.values())
    return rows[:limit], len(rows) > limit


def _collect(conn: Connection, statement: Any, match: Match, found: dict[int, OrderMatch]) -> None:
    for r in conn.execute(statement):
        if r.id not in found:
            found[r.id] = OrderMatch(
                order_id=r.id,
                customer_id=r.customer_id,
                shop=r.name,
                time_zone=r.time_zone,
                order_nr_external=r.order_nr_external,
                is_amazon=r.is_amazon,
                ordered_at=r.ordered_at,
                shipped_at=r.shipped_at,
                cancelled_at=r.cancelled_at,
                masked_at=r.masked_at,
                matched=match,
            )
