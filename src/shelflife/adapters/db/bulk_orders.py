"""Set-based creation of new orders: a fixed number of statements per batch of import lines.

The per-line path in `order_writer` stays for updates (rare) and as the fallback that pins a
database conflict on the line that caused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from shelflife.adapters.db.order_writer import (
    ORDER_TEXTS,
    OrderWriter,
    _address_values,
    _billing_copy,
    _customer_values,
)
from shelflife.adapters.db.tables import Address, Credit, Customer, Invoice, Order, OrderItem
from shelflife.domain.records import OrderRecord, is_amazon_order_number

BuyerKey = tuple[int, str, str] | int
"""(shop id, channel, identity digest); a buyer without one is keyed by its line's index."""


def existing_orders(writer: OrderWriter, records: Sequence[OrderRecord]) -> set[tuple[str, str]]:
    """(shop, order number) of the records whose order is already stored: one query per shop."""
    by_shop: dict[str, set[str]] = {}
    for rec in records:
        by_shop.setdefault(rec.shop, set()).add(rec.order_nr_external)
    found: set[tuple[str, str]] = set()
    for shop, numbers in by_shop.items():
        shop_id = writer.shop(shop).id
        rows = writer.conn.execute(
            select(Order.order_nr_external).where(
                Order.shop_id == shop_id, Order.order_nr_external.in_(numbers)
            )
        )
        found.update((shop, nr) for nr in rows.scalars())
    return found


def create_orders(writer: OrderWriter, records: Sequence[OrderRecord]) -> None:
    """Insert new orders with their buyers, addresses, items, invoices and credits.

    Order numbers must be new and distinct within `records`; the caller guarantees it.
    """
    if not records:
        return
    conn, now = writer.conn, writer.now
    shop_ids = [writer.shop(r.shop).id for r in records]
    channels = [
        "amazon"
        if is_amazon_order_number(r.order_nr_external, writer.shop(r.shop).pattern)
        else "shop"
        for r in records
    ]
    digests = [_identity(writer, r, ch) for r, ch in zip(records, channels, strict=True)]
    values = [_customer_values(r) for r in records]

    # Buyers: find known ones with one query per shop, create the rest in one INSERT.
    known: dict[BuyerKey, int] = {}
    for shop_id in set(shop_ids):
        wanted = {d for s, d in zip(shop_ids, digests, strict=True) if s == shop_id and d}
        if wanted:
            # Locked on PostgreSQL until commit: a buyer masked meanwhile has lost its digest,
            # drops out of this result and gets a fresh record instead of unmasked new PII.
            rows = conn.execute(
                select(Customer.id, Customer.channel, Customer.identity_digest)
                .where(Customer.shop_id == shop_id, Customer.identity_digest.in_(wanted))
                .with_for_update()
            )
            known.update({(shop_id, r.channel, r.identity_digest): r.id for r in rows})
    latest: dict[tuple[int, str, str], int] = {}  # buyer key -> index of its newest record
    for i, (s, ch, d) in enumerate(zip(shop_ids, channels, digests, strict=True)):
        if d is not None:
            latest[(s, ch, d)] = i
    to_update = [(cid, latest[k]) for k, cid in known.items() if k in latest]
    if to_update:
        columns = list(values[0])
        conn.execute(
            update(Customer)
            .where(Customer.id == bindparam("b_id"))
            .values(
                pii_revision=Customer.pii_revision + 1,
                **{c: bindparam(f"b_{c}") for c in columns},
            ),
            [{"b_id": cid, **{f"b_{c}": values[i][c] for c in columns}} for cid, i in to_update],
        )
    new_rows: list[dict[str, Any]] = []
    new_keys: list[BuyerKey] = []
    for i, (s, ch, d) in enumerate(zip(shop_ids, channels, digests, strict=True)):
        key: BuyerKey = (s, ch, d) if d is not None else i
        if d is not None and (key in known or latest[(s, ch, d)] != i):
            continue
        new_keys.append(key)
        new_rows.append(
            {
                "shop_id": s,
                "channel": ch,
                "identity_digest": d,
                "created_at": now,
                "pii_revision": 1,
                **values[i],
            }
        )
    customer_of: dict[BuyerKey, int] = dict(known)
    if new_rows:
        customer_of.update(zip(new_keys, _insert_ids(conn, Customer, new_rows), strict=True))
    customer_ids = [
        customer_of[(s, ch, d) if d is not None else i]
        for i, (s, ch, d) in enumerate(zip(shop_ids, channels, digests, strict=True))
    ]

    order_ids = _insert_ids(
        conn,
        Order,
        [
            {
                "shop_id": s,
                "customer_id": c,
                "order_nr_external": r.order_nr_external,
                "is_amazon": ch == "amazon",
                "ordered_at": r.ordered_at,
                "shipped_at": r.shipped_at,
                "cancelled_at": r.cancelled_at,
                "created_at": now,
                "updated_at": now,
                **{k: r.texts.get(k) for k in ORDER_TEXTS},
            }
            for r, s, c, ch in zip(records, shop_ids, customer_ids, channels, strict=True)
        ],
    )

    addresses: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    invoices: list[dict[str, Any]] = []
    billing_of: list[dict[str, str | None]] = []
    for r, s, c, o in zip(records, shop_ids, customer_ids, order_ids, strict=True):
        billing = dict(_address_values(r, "billing"), kind="billing", customer_id=c, order_id=o)
        addresses.append(billing)
        if r.has_shipping_address:
            addresses.append(
                dict(_address_values(r, "shipping"), kind="shipping", customer_id=c, order_id=o)
            )
        items += [
            {
                "order_id": o,
                "position": n,
                "sku": it.sku,
                "title": it.title,
                "qty": it.qty,
                "price": it.price,
            }
            for n, it in enumerate(r.items, 1)
        ]
        copy = _billing_copy(billing)
        billing_of.append(copy)
        invoices += [
            {
                "shop_id": s,
                "customer_id": c,
                "order_id": o,
                "invoice_nr": d.number,
                "created_at": d.created_at,
                "total": d.total,
                "masked_at": None,
                **copy,
            }
            for d in r.invoices
        ]
    conn.execute(insert(Address), addresses)
    if items:
        conn.execute(insert(OrderItem), items)
    invoice_ids: dict[tuple[int, str], int] = {}
    if invoices:
        invoice_ids = {
            (i["shop_id"], i["invoice_nr"]): n
            for i, n in zip(invoices, _insert_ids(conn, Invoice, invoices), strict=True)
        }
    credits: list[dict[str, Any]] = [
        {
            "shop_id": s,
            "customer_id": c,
            "order_id": o,
            "credit_nr": d.number,
            "invoice_nr": d.invoice_nr,
            "created_at": d.created_at,
            "total": d.total,
            "masked_at": None,
            **copy,
        }
        for r, s, c, o, copy in zip(
            records, shop_ids, customer_ids, order_ids, billing_of, strict=True
        )
        for d in r.credits
    ]
    if credits:
        missing: set[tuple[int, str]] = {
            (int(cr["shop_id"]), str(cr["invoice_nr"]))
            for cr in credits
            if cr["invoice_nr"] and (cr["shop_id"], cr["invoice_nr"]) not in invoice_ids
        }
        for missing_shop in {shop for shop, _ in missing}:
            rows = conn.execute(
                select(Invoice.id, Invoice.invoice_nr).where(
                    Invoice.shop_id == missing_shop,
                    Invoice.invoice_nr.in_({n for shop, n in missing if shop == missing_shop}),
                )
            )
            invoice_ids.update({(missing_shop, r.invoice_nr): r.id for r in rows})
        for cr in credits:
            cr["invoice_id"] = invoice_ids.get(
                (int(cr["shop_id"]), str(cr.pop("invoice_nr") or ""))
            )
        conn.execute(insert(Credit), credits)


def _insert_ids(conn: Connection, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """One multi-row INSERT; the new ids come back in the order of `rows`."""
    result = conn.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows)
    return list(result.scalars().all())


def _identity(writer: OrderWriter, rec: OrderRecord, channel: str) -> str | None:
    key = (
        rec.customer.get("customer_nr_external")
        or rec.customer.get("email")
        or rec.billing_address.get("email")
    )
    if isinstance(key, str) and key.strip():
        return writer.identity_digest(f"{channel}|{key.strip().lower()}")
    return None
