"""Customer records as a whole: duplicate candidates and merging two records into one."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, delete, func, select, update

from shelflife.adapters.db.tables import (
    Address,
    AddressHistory,
    ArchiveCopy,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    Return,
    Shop,
)
from shelflife.domain.duplicates import DuplicateCandidate, MergeCandidate, PersonFields
from shelflife.domain.errors import NotFound
from shelflife.domain.references import customer_ref

_KEY_COLUMNS = (
    Customer.first_name,
    Customer.last_name,
    Customer.city,
    Customer.zip,
    Customer.company,
)


def duplicate_candidates(conn: Connection, shop: str | None) -> Iterator[list[DuplicateCandidate]]:
    """Groups of unarchived, unmasked customers that share the compared fields, one group at a
    time: the database groups (nothing but keys comes back for the many singletons), then each
    group's members are read in one query per batch of keys."""
    trimmed = [func.trim(func.coalesce(c, "")) for c in _KEY_COLUMNS]
    eligible = [
        Customer.masked_at.is_(None),
        Customer.archived_revision.is_(None),
        *(t != "" for t in trimmed[:4]),
    ]
    groups = select(Customer.shop_id, *trimmed).where(*eligible)
    if shop is not None:
        groups = groups.join(Shop, Shop.id == Customer.shop_id).where(Shop.name == shop)
    groups = (
        groups.group_by(Customer.shop_id, *trimmed)
        .having(func.count() > 1)
        .order_by(Customer.shop_id, *trimmed)
    )
    order_counts = (
        select(Order.customer_id, func.count().label("orders"))
        .group_by(Order.customer_id)
        .subquery()
    )
    for key in conn.execute(groups).all():
        shop_id, *values = key
        members = conn.execute(
            select(
                Customer.id,
                Shop.name,
                Customer.channel,
                *_KEY_COLUMNS,
                func.coalesce(order_counts.c.orders, 0),
            )
            .join(Shop, Shop.id == Customer.shop_id)
            .outerjoin(order_counts, order_counts.c.customer_id == Customer.id)
            .where(
                Customer.shop_id == shop_id,
                *eligible,
                *(t == v for t, v in zip(trimmed, values, strict=True)),
            )
            .order_by(Customer.id)
        ).all()
        yield [
            DuplicateCandidate(m[0], m[1], m[2], PersonFields(m[3], m[4], m[5], m[6], m[7]), m[8])
            for m in members
        ]


def merge_candidate(conn: Connection, customer_id: int) -> MergeCandidate:
    """The record's state, locked until the transaction ends so that a nightly run cannot
    archive it between the check and the merge."""
    row = conn.execute(
        select(
            Customer.id,
            Customer.shop_id,
            Customer.channel,
            Customer.archived_revision,
            Customer.masked_at,
        )
        .where(Customer.id == customer_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"customer {customer_ref(customer_id)} does not exist")
    has_copy = conn.execute(
        select(ArchiveCopy.id).where(ArchiveCopy.customer_id == customer_id).limit(1)
    ).first()
    return MergeCandidate(
        customer_id=row.id,
        shop_id=row.shop_id,
        channel=row.channel,
        archived=row.archived_revision is not None or has_copy is not None,
        masked=row.masked_at is not None,
    )


def move_customer(conn: Connection, keep_id: int, other_id: int) -> int:
    """Give `other`'s orders, addresses, documents and history to `keep`, then delete `other`;
    `keep`'s data changed, so its revision goes up (the next archive copy holds all of it).
    Returns how many orders moved."""
    moved = 0
    for table in (Order, Address, AddressHistory, CustomerHistory, Invoice, Credit, Return):
        result = conn.execute(
            update(table).where(table.customer_id == other_id).values(customer_id=keep_id)
        )
        if table is Order:
            moved = result.rowcount
    other_link = select(Customer.buyer_link).where(Customer.id == other_id).scalar_subquery()
    conn.execute(
        update(Customer)
        .where(Customer.id == keep_id)
        .values(
            pii_revision=Customer.pii_revision + 1,
            # the kept record stays linked to masked records of either buyer
            buyer_link=func.coalesce(Customer.buyer_link, other_link),
        )
    )
    conn.execute(delete(Customer).where(Customer.id == other_id))
    return moved
