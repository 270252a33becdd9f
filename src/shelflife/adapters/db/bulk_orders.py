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
    _vat_id,
    document_amounts,
)
from shelflife.adapters.db.tables import Address, Credit, Customer, Invoice, Order, OrderItem
from shelflife.domain.customer_merge import (
    BUYER_FIELDS,
    Source,
    buyer_values,
    merge_buyer,
    order_key,
    sources_from_json,
    sources_to_json,
)
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
        stored = writer.known_shop(shop)  # a new shop has no orders, and is made by a stored one
        if stored is None:
            continue
        rows = writer.conn.execute(
            select(Order.order_nr_external).where(
                Order.shop_id == stored.id, Order.order_nr_external.in_(numbers)
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
    digests = [writer.buyer_digest(r, ch) for r, ch in zip(records, channels, strict=True)]
    links = [writer.buyer_link(r, ch) for r, ch in zip(records, channels, strict=True)]
    buyer_keys: list[BuyerKey] = [
        (s, ch, d) if d is not None else i
        for i, (s, ch, d) in enumerate(zip(shop_ids, channels, digests, strict=True))
    ]

    # Buyers: find known ones with one query per shop, merge every order of the batch into its
    # buyer (the same function as the per-line path, so batching cannot change the outcome),
    # then update the known ones and create the rest, one statement each.
    known: dict[BuyerKey, int] = {}
    merged: dict[BuyerKey, tuple[dict[str, Any], dict[str, Source]]] = {}
    link_of: dict[BuyerKey, str | None] = {}
    for shop_id in set(shop_ids):
        wanted = {d for s, d in zip(shop_ids, digests, strict=True) if s == shop_id and d}
        if wanted:
            # Locked on PostgreSQL until commit: a buyer masked meanwhile has lost its digest,
            # drops out of this result and gets a fresh record instead of unmasked new PII.
            rows = conn.execute(
                select(
                    Customer.id,
                    Customer.channel,
                    Customer.identity_digest,
                    Customer.buyer_link,
                    Customer.pii_sources,
                    *[getattr(Customer, c) for c in BUYER_FIELDS],
                )
                .where(Customer.shop_id == shop_id, Customer.identity_digest.in_(wanted))
                .with_for_update()
            )
            for row in rows:
                found: BuyerKey = (shop_id, row.channel, row.identity_digest)
                known[found] = row.id
                merged[found] = (row._asdict(), sources_from_json(row.pii_sources))
                link_of[found] = row.buyer_link
    for rec, buyer, link in zip(records, buyer_keys, links, strict=True):
        current, sources = merged.get(buyer, ({}, {}))
        merged[buyer] = merge_buyer(current, sources, buyer_values(rec), order_key(rec))
        link_of[buyer] = link_of.get(buyer) or link  # the stored link, else the first given
    if known:
        # Every known buyer here gets a new order, whose rows are PII: always a new revision.
        conn.execute(
            update(Customer)
            .where(Customer.id == bindparam("b_id"))
            .values(
                pii_revision=Customer.pii_revision + 1,
                pii_sources=bindparam("b_pii_sources"),
                buyer_link=bindparam("b_buyer_link"),
                **{c: bindparam(f"b_{c}") for c in BUYER_FIELDS},
            ),
            [
                {
                    "b_id": cid,
                    "b_pii_sources": sources_to_json(merged[key][1]),
                    "b_buyer_link": link_of[key],
                    **{f"b_{c}": merged[key][0][c] for c in BUYER_FIELDS},
                }
                for key, cid in known.items()
            ],
        )
    new_keys = [k for k in dict.fromkeys(buyer_keys) if k not in known]
    customer_of: dict[BuyerKey, int] = dict(known)
    if new_keys:
        new_rows: list[dict[str, Any]] = []
        for key in new_keys:
            shop_id, channel, digest = _buyer_columns(key, shop_ids, channels)
            values, sources = merged[key]
            new_rows.append(
                {
                    "shop_id": shop_id,
                    "channel": channel,
                    "identity_digest": digest,
                    "buyer_link": link_of[key],
                    "created_at": now,
                    "pii_revision": 1,
                    "pii_sources": sources_to_json(sources),
                    **values,
                }
            )
        customer_of.update(zip(new_keys, _insert_ids(conn, Customer, new_rows), strict=True))
    customer_ids = [customer_of[key] for key in buyer_keys]

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
        copy = _billing_copy(billing, _vat_id(r))
        billing_of.append(copy)
        invoices += [
            {
                "shop_id": s,
                "customer_id": c,
                "order_id": o,
                "invoice_nr": d.number,
                **document_amounts(d),
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
            **document_amounts(d),
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


def _buyer_columns(
    key: BuyerKey, shop_ids: list[int], channels: list[str]
) -> tuple[int, str, str | None]:
    """(shop id, channel, identity digest) of a buyer key; a keyless buyer is its line's."""
    if isinstance(key, int):
        return shop_ids[key], channels[key], None
    return key
