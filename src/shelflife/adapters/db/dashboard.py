"""Counts for the dashboard and the shops page: grouped SQL, a fixed number of statements per
shop however many buyers there are; numbers and states only, never a buyer's data.

The state of an order is `policy.order_state` written as one `CASE`; a buyer's state is the
same rule applied to the buyer: masked, retrieved, archived, archive failed (retry not yet
due), ready for archiving (what the next run would archive), otherwise active.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, exists, func, or_, select

from shelflife.adapters.db.reading import overdue_condition
from shelflife.adapters.db.retention import archive_due_condition
from shelflife.adapters.db.tables import (
    AuditLogEntry,
    Credit,
    Customer,
    Invoice,
    Order,
    Shop,
    ShopFeatureChange,
)
from shelflife.domain.policy import Cutoffs, RetentionState
from shelflife.domain.ports import ShopRow

_S = RetentionState


def _closed_at() -> ColumnElement[Any]:
    return func.coalesce(Order.shipped_at, Order.cancelled_at)


def _archive_current() -> ColumnElement[bool]:
    return Customer.archived_revision == Customer.pii_revision


def _failed_recently(c: Cutoffs) -> ColumnElement[bool]:
    """Failed, and the day's back-off not over yet (the run retries it after that)."""
    return and_(
        Customer.archive_failed_at.is_not(None),
        Customer.archive_failed_at > c.retry_failed_before,
    )


def _order_state(shop: ShopRow, c: Cutoffs) -> ColumnElement[str]:
    """SQL twin of `policy.order_state` for the orders of one shop."""
    whens: list[tuple[ColumnElement[bool], str]] = [
        (Order.masked_at.is_not(None), _S.MASKED.value),
        (Customer.retrieved_at.is_not(None), _S.RETRIEVED.value),
        (or_(Order.is_amazon.is_(False), _closed_at().is_(None)), _S.ACTIVE.value),
        (_archive_current(), _S.ARCHIVED.value),
        (_failed_recently(c), _S.ARCHIVE_FAILED.value),
    ]
    if shop.retention_enabled:
        whens.append((_closed_at() < c.archive_before, _S.READY_FOR_ARCHIVING.value))
    return case(*whens, else_=_S.ACTIVE.value)


def _buyer_state(shop: ShopRow, c: Cutoffs) -> ColumnElement[str]:
    """The same rule for a buyer: ready for archiving is exactly what the run's archive step
    selects (`archive_due_condition`) when the shop's feature is on."""
    whens: list[tuple[ColumnElement[bool], str]] = [
        (
            and_(Customer.masked_at.is_not(None), Customer.retrieved_at.is_(None)),
            _S.MASKED.value,
        ),
        (Customer.retrieved_at.is_not(None), _S.RETRIEVED.value),
        (Customer.channel != "amazon", _S.ACTIVE.value),
        (_archive_current(), _S.ARCHIVED.value),
        (_failed_recently(c), _S.ARCHIVE_FAILED.value),
    ]
    if shop.retention_enabled:  # the feature flag is per shop, so it decides in Python
        whens.append((archive_due_condition(shop.id, c), _S.READY_FOR_ARCHIVING.value))
    return case(*whens, else_=_S.ACTIVE.value)


@dataclass(frozen=True)
class StateCounts:
    buyers: dict[str, int]
    orders: dict[str, int]


def state_counts(conn: Connection, shop: ShopRow, cutoffs: Cutoffs) -> StateCounts:
    """Buyers and orders of one shop per retention state: two grouped queries."""
    buyer_state = _buyer_state(shop, cutoffs).label("state")
    buyers = conn.execute(
        select(buyer_state, func.count())
        .select_from(Customer)
        .where(Customer.shop_id == shop.id)
        .group_by(buyer_state)
    ).all()
    order_state = _order_state(shop, cutoffs).label("state")
    orders = conn.execute(
        select(order_state, func.count())
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.shop_id == shop.id)
        .group_by(order_state)
    ).all()
    return StateCounts(
        buyers={str(s): int(n) for s, n in buyers},
        orders={str(s): int(n) for s, n in orders},
    )


def _pending_failure() -> ColumnElement[bool]:
    """The last archive attempt failed and no later one has succeeded; data still unmasked
    (or restored), so the run will try again."""
    return and_(
        Customer.archive_failed_at.is_not(None),
        or_(Customer.archived_revision.is_(None), ~_archive_current()),
        or_(Customer.masked_at.is_(None), Customer.retrieved_at.is_not(None)),
    )


@dataclass(frozen=True)
class FailureRow:
    customer_id: int
    shop: str
    time_zone: str
    failed_at: datetime
    reason: str | None


def count_archive_failures(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(Customer).where(_pending_failure())
        ).scalar_one()
    )


def archive_failures(conn: Connection, limit: int) -> list[FailureRow]:
    """The oldest pending failures first: they have waited longest."""
    rows = conn.execute(
        select(
            Customer.id,
            Shop.name,
            Shop.time_zone,
            Customer.archive_failed_at,
            Customer.archive_failure,
        )
        .join(Shop, Shop.id == Customer.shop_id)
        .where(_pending_failure())
        .order_by(Customer.archive_failed_at, Customer.id)
        .limit(limit)
    ).all()
    # archive_failed_at is never NULL here (`_pending_failure`)
    return [FailureRow(r[0], r[1], r[2], r[3], r[4]) for r in rows if r[3] is not None]


def order_numbers(conn: Connection, customer_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each buyer's order numbers, oldest order first (numbers are not personal data)."""
    found: dict[int, list[str]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return found
    for cid, nr in conn.execute(
        select(Order.customer_id, Order.order_nr_external)
        .where(Order.customer_id.in_(customer_ids))
        .order_by(Order.id)
    ):
        found[cid].append(nr)
    return found


@dataclass(frozen=True)
class AlertRow:
    at: datetime
    user: str | None
    detail: dict[str, Any]


def count_actions(conn: Connection, action: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(AuditLogEntry).where(AuditLogEntry.action == action)
        ).scalar_one()
    )


def recent_actions(conn: Connection, action: str, limit: int) -> list[AlertRow]:
    """The newest audit entries of one kind (the alert's subject is the staff member)."""
    rows = conn.execute(
        select(AuditLogEntry.at, AuditLogEntry.subject, AuditLogEntry.detail)
        .where(AuditLogEntry.action == action)
        .order_by(AuditLogEntry.seq.desc())
        .limit(limit)
    ).all()
    return [AlertRow(r.at, r.subject, json.loads(r.detail)) for r in rows]


@dataclass(frozen=True)
class FeatureChangeRow:
    enabled: bool
    changed_at: datetime
    changed_by: str


def last_feature_changes(conn: Connection) -> dict[int, FeatureChangeRow]:
    """Each shop's latest switch of the feature, by shop id."""
    latest = (
        select(ShopFeatureChange.shop_id, func.max(ShopFeatureChange.id).label("id"))
        .group_by(ShopFeatureChange.shop_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            ShopFeatureChange.shop_id,
            ShopFeatureChange.enabled,
            ShopFeatureChange.changed_at,
            ShopFeatureChange.changed_by,
        ).join(latest, latest.c.id == ShopFeatureChange.id)
    ).all()
    return {r[0]: FeatureChangeRow(bool(r[1]), r[2], r[3]) for r in rows}


def _legally_held(c: Cutoffs) -> ColumnElement[bool]:
    """SQL twin of "`policy.holds` is not empty" for a buyer who is not retrieved: an open
    order, an order closed or a document created less than 30 days ago. A retrieved buyer
    past the re-mask day is always a violation (`policy.compliance_finding`)."""
    young = c.mask_before
    return and_(
        Customer.retrieved_at.is_(None),
        or_(
            exists().where(
                Order.customer_id == Customer.id,
                or_(_closed_at().is_(None), _closed_at() >= young),
            ),
            exists().where(Invoice.customer_id == Customer.id, Invoice.created_at >= young),
            exists().where(Credit.customer_id == Customer.id, Credit.created_at >= young),
        ),
    )


def _finding_condition(shop_id: int, c: Cutoffs, held: bool) -> ColumnElement[bool]:
    hold = _legally_held(c)
    return and_(overdue_condition(shop_id, c), hold if held else ~hold)


def count_overdue(conn: Connection, shop_id: int, c: Cutoffs, *, held: bool) -> int:
    """Overdue buyers of one shop that are legal holds (`held`) or violations."""
    return int(
        conn.execute(
            select(func.count()).select_from(Customer).where(_finding_condition(shop_id, c, held))
        ).scalar_one()
    )


def first_overdue(
    conn: Connection, shop_id: int, c: Cutoffs, *, held: bool, limit: int
) -> list[int]:
    """The first `limit` of them in buyer order, as the compliance report lists them."""
    return list(
        conn.execute(
            select(Customer.id)
            .where(_finding_condition(shop_id, c, held))
            .order_by(Customer.id)
            .limit(limit)
        ).scalars()
    )
