"""Retrieval: restore one masked order's PII from the archive, read-only, for 30 days.

Everything is read, checked against the recorded copies and decrypted before anything is
written, so an unreachable archive, a missing key or a foreign object leaves the database
exactly as it was. Restoring nothing is a failure, not a retrieval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shelflife.adapters.archive.store import read_recorded
from shelflife.adapters.keys.envelope import open_copy, open_record
from shelflife.domain.errors import ArchiveCorrupt, InvalidInput, KeyUnavailable, NotRetrievable
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.policy import check_retrieval_time, validate_retrieval_reason
from shelflife.domain.ports import (
    ArchiveStore,
    AuditRepository,
    CopyRef,
    KeyProvider,
    Ports,
    UnitOfWork,
    WrappedKey,
)
from shelflife.domain.snapshot import (
    CustomerSnapshot,
    merge_documents_newest_first,
    merge_newest_first,
)
from shelflife.services.pdfs import forget_pdfs, restore_pdfs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalResult:
    order_nr: str
    restored_rows: int
    retrieved_at: datetime
    shop: str | None = None
    """The shop, when the retrieval found it (by invoice or credit number)."""


def retrieve_document(
    ports: Ports,
    kind: DocumentKind,
    number: str,
    reason: str,
    user: str,
    as_of: datetime | None = None,
    shop: str | None = None,
) -> RetrievalResult:
    """Restore a masked invoice or credit, found by its number, with its buyer: through the
    document's order, or for a manual document (no order) through the buyer's newest Amazon
    order, which restores the buyer's manual documents too. The audit entry names the document.
    """
    with ports.reader as reader:
        document = reader.orders.through_document(kind, number, shop)
    if document.order_nr is None:
        raise NotRetrievable(
            f"{kind} {number!r} belongs to a buyer without an Amazon order; its data is never "
            "masked"
        )
    result = retrieve_order(
        ports, document.order_nr, reason, user, as_of, document.shop, f"{kind} {number}"
    )
    return replace(result, shop=document.shop)


def retrieve_order(
    ports: Ports,
    order_nr: str,
    reason: str,
    user: str,
    as_of: datetime | None = None,
    shop: str | None = None,
    document: str | None = None,
) -> RetrievalResult:
    """Restore the order, note it in the buyer's history and audit it with the reason, in one
    transaction (the caller's, when it has opened `ports.uow` already). `document` names the
    invoice or credit the retrieval was asked for by, for the audit entry."""
    try:
        reason = validate_retrieval_reason(reason)
    except ValueError as exc:
        raise InvalidInput(f"reason: {exc}") from None
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("user: give the name of the person retrieving (1 to 100 characters)")
    real_now = ports.clock.now()
    now = as_of or real_now
    keys = ports.keys  # checked against the recorded key before the transaction takes its lock
    with ports.uow as uow:
        order = uow.orders.find(order_nr, shop)
        state = uow.customers.lock_masked_state(order.customer_id)
        if not order.is_amazon:
            raise NotRetrievable(
                f"order {order_nr!r} is not an Amazon order; its data is never masked"
            )
        if state.shredded_at is not None:
            raise NotRetrievable(
                f"order {order_nr!r} cannot be retrieved: its buyer's archived data was shredded "
                f"on {state.shredded_at:%Y-%m-%d} (its archive key was destroyed)"
            )
        if state.masked_at is None or state.last_masked_at is None:
            raise NotRetrievable(
                f"order {order_nr!r} is not masked; its data is in the database already"
            )
        if state.retrieved_at is not None and not uow.after_sales.order_masked(order.id):
            # Retrieving it again would only push its re-mask back by another 30 days.
            raise NotRetrievable(
                f"order {order_nr!r} was retrieved already on {state.retrieved_at:%Y-%m-%d}; "
                "its data is in the database, read-only until it is masked again"
            )
        check_retrieval_time(now, state.last_masked_at, real_now)
        copies = uow.archive_copies.of_customer(order.customer_id)
        if not copies:
            raise NotRetrievable(f"order {order_nr!r} has no archive copy to retrieve from")
        # Read, check and decrypt every copy first: any failure here changes nothing.
        data_key = _data_key(uow, keys, order.customer_id, copies)
        snapshots = [
            _open_copy(
                ports.archive,
                keys,
                c,
                order.customer_id,
                data_key,
                lambda: _recorded_data_key(uow, keys, order.customer_id),
            )
            for c in copies
        ]
        merged = merge_newest_first(snapshots)
        restored = uow.customers.restore(order.customer_id, order.id, merged)
        if restored == 0:  # the transaction is rolled back: nothing is marked retrieved
            raise ArchiveCorrupt(
                f"the archive copies of order {order_nr!r}'s buyer hold none of its records; "
                "nothing was changed"
            )
        # The restored documents' PDFs back into the document store, byte-identical; taken
        # out again if this transaction does not commit (the documents stay masked then).
        put = restore_pdfs(
            ports, uow.pdfs, order.customer_id, merge_documents_newest_first(snapshots)
        )
        try:
            uow.customers.mark_retrieved(order.customer_id, now)
            uow.history.add(order.customer_id, order.id, now, "retrieved", user, reason)
            # The audit entry outlives the re-mask that masks the history's copy of the reason.
            detail: dict[str, str | int | None] = {
                "shop_id": order.shop_id,
                "reason": reason,
                "restored": restored,
            }
            if document is not None:
                detail["document"] = document
            uow.audit.append(real_now, user, RETRIEVED, order_nr, detail)
            _alert_on_retrieval_rate(
                uow.audit, user, real_now, ports.limits.retrieval_alert_per_hour
            )
            uow.commit()
        except BaseException:
            forget_pdfs(ports.documents, put)
            raise
    # The reason is free text typed by a person and may name the buyer: it is not logged.
    log.info("order %s retrieved by %s (%d records restored)", order_nr, user, restored)
    return RetrievalResult(order_nr, restored, now)


RETRIEVED = "order.retrieved"
RATE_ALERT = "alert.retrieval_rate"


def _alert_on_retrieval_rate(audit: AuditRepository, user: str, now: datetime, limit: int) -> None:
    """More retrievals in an hour than one person plausibly needs may be data harvesting:
    alert once, when the count first passes the limit (audit log, dashboard, log)."""
    count = audit.count_actions(user, RETRIEVED, now - timedelta(hours=1))
    if count == limit + 1:
        audit.append(
            now,
            "shelflife",
            RATE_ALERT,
            user,
            {"retrievals_last_hour": count, "limit": limit},
        )
        log.warning("user %s retrieved %d orders within an hour (limit %d)", user, count, limit)


def _data_key(
    uow: UnitOfWork, keys: KeyProvider, customer_id: int, copies: list[CopyRef]
) -> bytes | None:
    """The buyer's data key from the database, unwrapped: segment records do not carry it
    (legacy whole objects do, so a buyer with only those needs none)."""
    if all(c.offset is None for c in copies):
        return None
    data_key = _recorded_data_key(uow, keys, customer_id)
    if data_key is None:
        raise ArchiveCorrupt(
            "the buyer's archive data key is not recorded; its segment records cannot be "
            "opened and nothing was changed"
        )
    return data_key


def _recorded_data_key(uow: UnitOfWork, keys: KeyProvider, customer_id: int) -> bytes | None:
    row = uow.customers.archive_keys([customer_id])[customer_id]
    if row.data_key_wrapped is None or row.data_key_master_id is None:
        return None
    return keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))


def _open_copy(
    archive: ArchiveStore,
    keys: KeyProvider,
    copy: CopyRef,
    customer_id: int,
    data_key: bytes | None,
    recorded_key: Callable[[], bytes | None],
) -> CustomerSnapshot:
    """One recorded copy, checked to be this buyer's and this revision's, decrypted: a
    segment record from its byte range alone, a legacy copy from its whole object (whose
    header wraps the data key under the master key of its day; after `keys rotate` the
    database's re-wrapped copy of the same key opens it)."""
    if copy.offset is None or copy.length is None:
        blob = read_recorded(archive, copy.object_key, copy.ciphertext_sha256)

        def opened(key: bytes | None) -> bytes:
            return open_copy(
                blob,
                keys,
                object_key=copy.object_key,
                customer_id=customer_id,
                revision=copy.revision,
                ciphertext_sha256=copy.ciphertext_sha256,
                data_key=key,
            )

        try:
            plaintext = opened(None)
        except KeyUnavailable:
            rewrapped = recorded_key()
            if rewrapped is None:
                raise
            plaintext = opened(rewrapped)
    else:
        assert data_key is not None  # _data_key unwraps it whenever a copy is a record
        plaintext = open_record(
            read_recorded(
                archive, copy.object_key, copy.ciphertext_sha256, copy.offset, copy.length
            ),
            data_key,
            where=f"{copy.object_key}@{copy.offset}",
            customer_id=customer_id,
            revision=copy.revision,
            sha256=copy.ciphertext_sha256,
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
