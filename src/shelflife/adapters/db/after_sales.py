"""The SQL behind `AfterSalesRepository`: returns, replacement orders and credits.

Each method touches one order, invoice or buyer; a replacement copies the original's address
rows column for column, PII included, because the replacement ships to the same buyer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, func, insert, select, update

from shelflife.adapters.db.tables import (
    Address,
    Credit,
    Customer,
    Invoice,
    Order,
    OrderItem,
    Return,
    Shop,
)
from shelflife.domain.after_sales import OrderedLine
from shelflife.domain.errors import InvalidInput, NotFound
from shelflife.domain.ports import InvoiceRef, OrderRef

_ADDRESS_COPIED = tuple(
    c.name for c in Address.__table__.columns if c.name not in ("id", "order_id", "masked_at")
)


class SqlAfterSales:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def order_masked(self, order_id: int) -> bool:
        masked_at = self.conn.execute(
            select(Order.masked_at).where(Order.id == order_id)
        ).scalar_one()
        return masked_at is not None

    def lines(self, order_id: int) -> list[OrderedLine]:
        rows = self.conn.execute(
            select(OrderItem.sku, OrderItem.title, OrderItem.qty, OrderItem.price)
            .where(OrderItem.order_id == order_id)
            .order_by(OrderItem.position, OrderItem.id)
        )
        by_sku: dict[str, OrderedLine] = {}
        for r in rows:
            known = by_sku.get(r.sku)
            qty = r.qty + (known.qty if known else 0)
            by_sku[r.sku] = OrderedLine(r.sku, known.title if known else r.title, qty, r.price)
        return list(by_sku.values())

    def returned(self, order_id: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        for items in self.conn.execute(
            select(Return.items).where(Return.order_id == order_id)
        ).scalars():
            for sku, qty in json.loads(items).items():
                totals[sku] = totals.get(sku, 0) + int(qty)
        return totals

    def replaced(self, order_id: int) -> dict[str, int]:
        rows = self.conn.execute(
            select(OrderItem.sku, func.sum(OrderItem.qty))
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.replaces_order_id == order_id)
            .group_by(OrderItem.sku)
        )
        return {sku: int(qty) for sku, qty in rows}

    def count_returns(self, order_id: int) -> int:
        return int(
            self.conn.execute(select(func.count()).where(Return.order_id == order_id)).scalar_one()
        )

    def count_replacements(self, order_id: int) -> int:
        return int(
            self.conn.execute(
                select(func.count()).where(Order.replaces_order_id == order_id)
            ).scalar_one()
        )

    def add_return(
        self,
        order: OrderRef,
        return_nr: str,
        at: datetime,
        user: str,
        reason: str,
        items: Mapping[str, int],
    ) -> None:
        self.conn.execute(
            insert(Return).values(
                shop_id=order.shop_id,
                customer_id=order.customer_id,
                order_id=order.id,
                return_nr=return_nr,
                created_at=at,
                created_by=user,
                items=json.dumps(dict(items), sort_keys=True, ensure_ascii=False),
                reason=reason,
            )
        )

    def add_replacement(
        self, original: OrderRef, order_nr: str, at: datetime, lines: Sequence[OrderedLine]
    ) -> int:
        conn = self.conn
        new_id = conn.execute(
            insert(Order)
            .values(
                shop_id=original.shop_id,
                customer_id=original.customer_id,
                order_nr_external=order_nr,
                is_amazon=original.is_amazon,
                ordered_at=at,
                created_at=at,
                updated_at=at,
                replaces_order_id=original.id,
            )
            .returning(Order.id)
        ).scalar_one()
        conn.execute(
            insert(OrderItem),
            [
                {
                    "order_id": new_id,
                    "position": position,
                    "sku": line.sku,
                    "title": line.title,
                    "qty": line.qty,
                    "price": line.price,
                }
                for position, line in enumerate(lines, start=1)
            ],
        )
        columns = [getattr(Address, name) for name in _ADDRESS_COPIED]
        addresses = conn.execute(select(*columns).where(Address.order_id == original.id)).all()
        if addresses:
            conn.execute(
                insert(Address),
                [{**row._asdict(), "order_id": new_id} for row in addresses],
            )
        return int(new_id)

    def find_invoice(self, invoice_nr: str, shop: str | None = None) -> InvoiceRef:
        if "\x00" in invoice_nr or (shop is not None and "\x00" in shop):
            raise NotFound(f"no invoice with number {invoice_nr!r}; check the number")
        query = (
            select(
                Invoice.id,
                Invoice.invoice_nr,
                Invoice.customer_id,
                Invoice.shop_id,
                Shop.name.label("shop"),
                Invoice.order_id,
                Order.order_nr_external,
                Invoice.total,
                Invoice.masked_at,
            )
            .join(Shop, Shop.id == Invoice.shop_id)
            .outerjoin(Order, Order.id == Invoice.order_id)
            .where(Invoice.invoice_nr == invoice_nr)
        )
        if shop is not None:
            query = query.where(Shop.name == shop)
        rows = self.conn.execute(query).all()
        if not rows:
            raise NotFound(f"no invoice with number {invoice_nr!r}; check the number")
        if len(rows) > 1:
            raise InvalidInput(
                f"invoice number {invoice_nr!r} exists in several shops; name the shop as well"
            )
        r = rows[0]
        order_nr = r.order_nr_external
        if order_nr is None:  # a manual invoice: any of the buyer's orders retrieves it
            order_nr = self.conn.execute(
                select(Order.order_nr_external)
                .where(Order.customer_id == r.customer_id)
                .order_by(Order.ordered_at.desc(), Order.id.desc())
                .limit(1)
            ).scalar()
        return InvoiceRef(
            r.id,
            r.invoice_nr,
            r.customer_id,
            r.shop_id,
            r.shop,
            r.order_id,
            order_nr,
            r.total,
            r.masked_at is not None,
        )

    def credited(self, invoice_id: int) -> Decimal:
        total = self.conn.execute(
            select(func.coalesce(func.sum(Credit.total), 0)).where(Credit.invoice_id == invoice_id)
        ).scalar_one()
        return Decimal(total).quantize(Decimal("0.01"))

    def count_credits(self, invoice_id: int) -> int:
        return int(
            self.conn.execute(
                select(func.count()).where(Credit.invoice_id == invoice_id)
            ).scalar_one()
        )

    def add_credit(
        self,
        invoice: InvoiceRef,
        credit_nr: str,
        at: datetime,
        user: str,
        reason: str,
        total: Decimal,
    ) -> None:
        billing = self.conn.execute(
            select(Invoice.billing_name, Invoice.billing_address).where(Invoice.id == invoice.id)
        ).one()
        self.conn.execute(
            insert(Credit).values(
                shop_id=invoice.shop_id,
                customer_id=invoice.customer_id,
                order_id=invoice.order_id,
                invoice_id=invoice.id,
                credit_nr=credit_nr,
                created_at=at,
                created_by=user,
                total=total,
                reason=reason,
                billing_name=billing.billing_name,
                billing_address=billing.billing_address,
            )
        )

    def number_taken(self, kind: str, shop_id: int, number: str) -> bool:
        column = {
            "return": Return.return_nr,
            "order": Order.order_nr_external,
            "credit": Credit.credit_nr,
        }[kind]
        query = select(func.count()).where(column == number, column.table.c.shop_id == shop_id)
        return bool(self.conn.execute(query).scalar_one())

    def buyer_changed(self, customer_id: int) -> None:
        self.conn.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(pii_revision=Customer.pii_revision + 1)
        )
