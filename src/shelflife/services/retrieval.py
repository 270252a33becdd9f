"""Retrieval: restore one masked order's PII from the archive, read-only, for 30 days.

Everything is read, checked against the recorded copies and decrypted before anything is
written, so an unreachable archive, a missing key or a foreign object leaves the database
exactly as it was. Restoring nothing is a failure, not a retrieval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from shelflife.adapters.archive.store import ArchiveStore
from shelflife.adapters.db import audit_log
from shelflife.adapters.db.reading import find_order
from shelflife.adapters.db.tables import (
    PII_TABLES,
    Address,
    AddressHistory,
    ArchiveCopy,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
)
from shelflife.adapters.keys.envelope import open_copy
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveCorrupt, InvalidInput, NotRetrievable
from shelflife.domain.policy import check_retrieval_time, validate_retrieval_reason
from shelflife.domain.snapshot import CustomerSnapshot, decode, merge_newest_first

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalResult:
    order_nr: str
    restored_rows: int
    retrieved_at: datetime


def retrieve_order(
    app: App,
    order_nr: str,
    reason: str,
    user: str,
    as_of: datetime | None = None,
    shop: str | None = None,
) -> RetrievalResult:
    try:
        reason = validate_retrieval_reason(reason)
    except ValueError as exc:
        raise InvalidInput(f"reason: {exc}") from None
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("user: give the name of the person retrieving (1 to 100 characters)")
    real_now = app.clock.now()
    now = as_of or real_now
    keys = app.keys  # checked against the recorded key before the transaction takes its lock
    with app.engine.begin() as conn:
        order = find_order(conn, order_nr, shop)
        customer = conn.execute(  # locked: a concurrent re-mask waits for this retrieval
            select(Customer.__table__).where(Customer.id == order.customer_id).with_for_update()
        ).one()
        if not order.is_amazon:
            raise NotRetrievable(
                f"order {order_nr!r} is not an Amazon order; its data is never masked"
            )
        if customer.masked_at is None:
            raise NotRetrievable(
                f"order {order_nr!r} is not masked; its data is in the database already"
            )
        check_retrieval_time(now, _last_masked_at(conn, customer), real_now)
        copies = list(
            conn.execute(
                select(ArchiveCopy.object_key, ArchiveCopy.revision, ArchiveCopy.ciphertext_sha256)
                .where(ArchiveCopy.customer_id == customer.id)
                .order_by(ArchiveCopy.revision.desc())
            )
        )
        if not copies:
            raise NotRetrievable(f"order {order_nr!r} has no archive copy to retrieve from")
        # Read, check and decrypt every copy first: any failure here changes nothing.
        snapshots = [_open_copy(app.archive, keys, c, customer.id) for c in copies]
        merged = merge_newest_first(snapshots)
        restored = _restore(conn, merged, customer.id, order.id)
        if restored == 0:  # the transaction is rolled back: nothing is marked retrieved
            raise ArchiveCorrupt(
                f"the archive copies of order {order_nr!r}'s buyer hold none of its records; "
                "nothing was changed"
            )
        conn.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(retrieved_at=now, pii_revision=Customer.pii_revision + 1)
        )
        conn.execute(
            insert(CustomerHistory).values(
                customer_id=customer.id,
                order_id=order.id,
                recorded_at=now,
                event="retrieved",
                user_name=user,
                text=reason,
            )
        )
        # The audit entry outlives the re-mask that masks the history's copy of the reason.
        audit_log.append(
            conn,
            real_now,
            user,
            RETRIEVED,
            order_nr,
            {"shop_id": order.shop_id, "reason": reason, "restored": restored},
        )
        _alert_on_retrieval_rate(conn, user, real_now, app.settings.retrieval_alert_per_hour)
    # The reason is free text typed by a person and may name the buyer: it is not logged.
    log.info("order %s retrieved by %s (%d records restored)", order_nr, user, restored)
    return RetrievalResult(order_nr, restored, now)


RETRIEVED = "order.retrieved"
RATE_ALERT = "alert.retrieval_rate"


def _alert_on_retrieval_rate(conn: Connection, user: str, now: datetime, limit: int) -> None:
    """More retrievals in an hour than one person plausibly needs may be data harvesting:
    alert once, when the count first passes the limit (audit log, dashboard, log)."""
    count = audit_log.count_actions(conn, user, RETRIEVED, now - timedelta(hours=1))
    if count == limit + 1:
        audit_log.append(
            conn,
            now,
            "shelflife",
            RATE_ALERT,
            user,
            {"retrievals_last_hour": count, "limit": limit},
        )
        log.warning("user %s retrieved %d orders within an hour (limit %d)", user, count, limit)


def _last_masked_at(conn: Connection, customer: Any) -> datetime:
    """The buyer's latest masking: the first one, or the last re-masking after a retrieval."""
    remasked = conn.execute(
        select(func.max(CustomerHistory.recorded_at)).where(
            CustomerHistory.customer_id == customer.id, CustomerHistory.event == "remasked"
        )
    ).scalar()
    masked: datetime = customer.masked_at
    return max(masked, remasked) if remasked is not None else masked


def _open_copy(
    archive: ArchiveStore, keys: LocalKeyProvider, copy: Any, customer_id: int
) -> CustomerSnapshot:
    """One recorded copy, checked to be this buyer's and this revision's, decrypted."""
    plaintext = open_copy(
        archive.get(copy.object_key),
        keys,
        object_key=copy.object_key,
        customer_id=customer_id,
        revision=copy.revision,
        ciphertext_sha256=copy.ciphertext_sha256,
    )
    try:
        snapshot = CustomerSnapshot.from_bytes(plaintext)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ArchiveCorrupt(f"archive copy {copy.object_key} holds no readable snapshot") from None
    if snapshot.customer_id != customer_id:
        raise ArchiveCorrupt(
            f"archive copy {copy.object_key} does not belong to this buyer; nothing was changed"
        )
    if snapshot.revision != copy.revision:
        raise ArchiveCorrupt(
            f"archive copy {copy.object_key} is not the recorded one; nothing was changed"
        )
    return snapshot


def _restore(
    conn: Connection,
    merged: dict[str, dict[int, dict[str, str | None]]],
    customer_id: int,
    order_id: int,
) -> int:
    """Write archived values back into this order's rows, its buyer, the buyer's history and
    manual documents; other orders of the buyer stay masked."""
    wanted: dict[str, set[int]] = {
        "customers": {customer_id},
        "orders": {order_id},
        "addresses": set(
            conn.execute(select(Address.id).where(Address.order_id == order_id)).scalars()
        ),
        "invoices": set(
            conn.execute(
                select(Invoice.id).where(
                    Invoice.customer_id == customer_id,
                    or_(Invoice.order_id == order_id, Invoice.order_id.is_(None)),
                )
            ).scalars()
        ),
        "credits": set(
            conn.execute(
                select(Credit.id).where(
                    Credit.customer_id == customer_id,
                    or_(Credit.order_id == order_id, Credit.order_id.is_(None)),
                )
            ).scalars()
        ),
        "customer_history": set(
            conn.execute(
                select(CustomerHistory.id).where(CustomerHistory.customer_id == customer_id)
            ).scalars()
        ),
    }
    wanted["address_history"] = set(
        conn.execute(
            select(AddressHistory.id).where(AddressHistory.address_id.in_(wanted["addresses"]))
        ).scalars()
    )
    restored = 0
    for table, row_ids in wanted.items():
        model = PII_TABLES[table]
        for row_id in sorted(row_ids & set(merged.get(table, {}))):
            values = decode(table, merged[table][row_id])
            if not values:  # no copy knows any of its columns: it stays masked
                continue
            if model is not Customer:
                values["masked_at"] = None
            conn.execute(update(model).where(model.id == row_id).values(**values))
            restored += 1
    return restored
