"""Looking at the data: one order with its retention state, and the compliance report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from shelflife.adapters.db import retention as sql
from shelflife.adapters.db.reading import find_order, load_customer_facts, overdue_candidates
from shelflife.adapters.db.tables import (
    Address,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    OrderItem,
    Shop,
)
from shelflife.bootstrap import App
from shelflife.domain.masking import MASK_PROFILE
from shelflife.domain.policy import (
    ARCHIVE_AFTER_DAYS,
    MASK_AFTER_DAYS,
    REMASK_AFTER_DAYS,
    Cutoffs,
    OrderFacts,
    compliance_reasons,
    due_on,
    order_state,
    overdue,
    retry_at,
)


def _json(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "is_finite"):
        return str(value)
    return value


def _row(obj: Any, columns: list[str]) -> dict[str, object]:
    return {c: _json(getattr(obj, c)) for c in columns}


def show_order(
    app: App, order_nr: str, as_of: datetime | None = None, shop: str | None = None
) -> dict[str, Any]:
    now = as_of or app.clock.now()
    with app.read_engine.connect() as conn:
        order = find_order(conn, order_nr, shop)
        shop_row = conn.execute(select(Shop.__table__).where(Shop.id == order.shop_id)).one()
        customer = conn.execute(
            select(Customer.__table__).where(Customer.id == order.customer_id)
        ).one()
        facts = load_customer_facts(conn, [customer.id])[customer.id]
        addresses = list(
            conn.execute(
                select(Address.__table__).where(Address.order_id == order.id).order_by(Address.kind)
            ).all()
        )
        items = list(
            conn.execute(
                select(OrderItem.__table__)
                .where(OrderItem.order_id == order.id)
                .order_by(OrderItem.position)
            ).all()
        )
        invoices = list(
            conn.execute(
                select(Invoice.__table__)
                .where(
                    Invoice.customer_id == customer.id,
                    (Invoice.order_id == order.id) | Invoice.order_id.is_(None),
                )
                .order_by(Invoice.id)
            ).all()
        )
        credits = list(
            conn.execute(
                select(Credit.__table__)
                .where(
                    Credit.customer_id == customer.id,
                    (Credit.order_id == order.id) | Credit.order_id.is_(None),
                )
                .order_by(Credit.id)
            ).all()
        )
        history = list(
            conn.execute(
                select(CustomerHistory.__table__)
                .where(CustomerHistory.customer_id == customer.id)
                .order_by(CustomerHistory.id)
            ).all()
        )
    zone = ZoneInfo(shop_row.time_zone)
    cutoffs = Cutoffs.for_shop(now, zone)
    order_facts = OrderFacts(order.shipped_at, order.cancelled_at, order.masked_at is not None)
    state = order_state(facts, order_facts, order.is_amazon, cutoffs)
    closed = order_facts.closed_at
    retention: dict[str, object] = {
        "state": state.value,
        "amazon": order.is_amazon,
        "feature_enabled": shop_row.retention_enabled,
        "archive_due": _json(due_on(closed, ARCHIVE_AFTER_DAYS, zone)) if closed else None,
        "mask_due": _json(due_on(closed, MASK_AFTER_DAYS, zone)) if closed else None,
        "archived_at": _json(customer.archived_at),
        "archive_current": facts.archive_is_current,
        "archive_failed_at": _json(customer.archive_failed_at),
        "archive_retry_at": _json(retry_at(customer.archive_failed_at, zone))
        if customer.archive_failed_at
        else None,
        # A retrieved order's rows are unmasked again; it still shows when it was masked.
        "masked_at": _json(order.masked_at or customer.masked_at),
        "retrieved_at": _json(customer.retrieved_at),
        "remask_due": _json(due_on(customer.retrieved_at, REMASK_AFTER_DAYS, zone))
        if customer.retrieved_at
        else None,
        "read_only": facts.is_retrieved,
    }
    if order.is_amazon and not facts.is_masked and not facts.is_retrieved:
        retention["mask_blocked_by"] = [
            r for r in compliance_reasons(facts, cutoffs) if not r.endswith("next run")
        ]
    customer_cols = [f.column for f in MASK_PROFILE["customers"]] + ["country"]
    address_cols = ["kind"] + [f.column for f in MASK_PROFILE["addresses"]] + ["country"]
    return {
        "shop": shop_row.name,
        "order_nr_external": order.order_nr_external,
        "ordered_at": _json(order.ordered_at),
        "shipped_at": _json(order.shipped_at),
        "cancelled_at": _json(order.cancelled_at),
        **_row(order, [f.column for f in MASK_PROFILE["orders"]]),
        "customer": {"channel": customer.channel, **_row(customer, customer_cols)},
        "addresses": [_row(a, address_cols) for a in addresses],
        "items": [_row(i, ["sku", "title", "qty", "price"]) for i in items],
        "invoices": [
            dict(
                _row(i, ["invoice_nr", "created_at", "total", "billing_name", "billing_address"]),
                manual=i.order_id is None,
            )
            for i in invoices
        ],
        "credits": [
            dict(
                _row(c, ["credit_nr", "created_at", "total", "billing_name", "billing_address"]),
                manual=c.order_id is None,
            )
            for c in credits
        ],
        "customer_history": [
            _row(h, ["recorded_at", "event", "user_name", "text"]) for h in history
        ],
        "retention": retention,
    }


@dataclass
class ComplianceRow:
    shop: str
    customer_id: int
    orders: list[str]
    oldest_closed_at: str | None
    reasons: list[str] = field(default_factory=list)


def compliance_report(
    app: App, as_of: datetime | None = None, batch: int = 1000
) -> list[ComplianceRow]:
    """Every Amazon buyer whose PII is unmasked more than 30 days after a shipment, and why."""
    now = as_of or app.clock.now()
    rows: list[ComplianceRow] = []
    with app.read_engine.connect() as conn:
        for shop in sql.shops(conn):
            cutoffs = Cutoffs.for_shop(now, ZoneInfo(shop.time_zone))
            after = 0
            while ids := overdue_candidates(conn, shop.id, cutoffs, after, batch):
                after = ids[-1]
                facts = load_customer_facts(conn, ids)
                numbers: dict[int, list[str]] = {}
                for o in conn.execute(
                    select(Order.customer_id, Order.order_nr_external)
                    .where(Order.customer_id.in_(ids))
                    .order_by(Order.id)
                ):
                    numbers.setdefault(o.customer_id, []).append(o.order_nr_external)
                for cid in ids:
                    f = facts[cid]
                    if not overdue(f, cutoffs):
                        continue
                    closed = [o.closed_at for o in f.orders if o.closed_at is not None]
                    rows.append(
                        ComplianceRow(
                            shop=shop.name,
                            customer_id=cid,
                            orders=numbers.get(cid, []),
                            oldest_closed_at=min(closed).isoformat() if closed else None,
                            reasons=compliance_reasons(f, cutoffs),
                        )
                    )
    return rows
