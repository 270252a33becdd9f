"""The key ledger, and shredding: destroying a buyer's data key everywhere it is kept.

A segment's records are sealed under their buyers' data keys, and the segment itself is
write-once. The keys live in two places that can really delete: the database (the working
copy) and the key ledger (`adapters/archive/ledger.py`, one object per segment in a mutable
store, copied to a second location with the archive's replica). Shredding a buyer removes its
key from both; every copy of its records (primary, replica, offline media) then stays sealed
for good. Legal retention decides when the nightly run shreds (`shred_expired`); an erasure
(`erase_customer`) shreds one buyer that no law requires us to keep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from shelflife.adapters.archive.ledger import ledger_key, pack_ledger, read_ledger
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, Conflict, InvalidInput
from shelflife.domain.legal_retention import DocumentKind, still_kept
from shelflife.domain.ports import ArchiveStore, LedgerEntry, Ports, ShopRow, UnitOfWork
from shelflife.domain.references import customer_ref, parse_customer_ref

log = logging.getLogger(__name__)

SHREDDED = "archive.shredded"
ERASED = "customer.erased"
BECAUSE_RETENTION = "retention"
BECAUSE_ERASURE = "erasure"
NO_RUN = 0
"""The run id an erasure's reclaim passes: it is no run, and no run comes before it."""


def ledger_store(ports: Ports) -> ArchiveStore:
    if ports.ledger is None:
        raise ArchiveUnavailable("no key ledger is configured; nothing can be archived or shredded")
    return ports.ledger


def write_ledger(ledger: ArchiveStore, segment_key: str, entries: Sequence[LedgerEntry]) -> None:
    """Write a segment's ledger object and read it back; raises `ArchiveUnavailable` or
    `ArchiveCorrupt` (naming the ledger, never a key) when it is not there as written."""
    key = ledger_key(segment_key)
    data = pack_ledger(segment_key, entries)
    try:
        ledger.put(key, data)
        back = ledger.get(key)
    except (ArchiveUnavailable, ArchiveCorrupt) as exc:
        raise type(exc)(f"key ledger {ledger.describe()}: {exc}") from None
    if back != data:
        raise ArchiveCorrupt(
            f"key ledger {ledger.describe()}: the read-back of {key} differs from what was written"
        )
    if read_ledger(segment_key, back) != sorted(entries, key=lambda e: (e.customer_id, e.revision)):
        raise ArchiveCorrupt(f"key ledger {ledger.describe()}: {key} does not read back")


def rewrite_ledgers(ports: Ports, segment_keys: Sequence[str]) -> int:
    """Rewrite the ledger objects of these segments from the keys the database holds now, in
    the caller's transaction (`ports.uow`): after a rotation re-wrapped keys, or a shred
    destroyed some. A shredded buyer's entries disappear; a segment whose every buyer is
    shredded keeps an empty ledger object (so `archive recover` can tell it from a lost one).
    Returns how many ledger objects were written."""
    if not segment_keys:
        return 0
    ledger = ledger_store(ports)
    with ports.uow as uow:
        entries = uow.archive_copies.ledger_entries(sorted(set(segment_keys)))
    for segment_key, keys in entries.items():
        write_ledger(ledger, segment_key, keys)
    return len(entries)


def shred_customers(
    ports: Ports, uow: UnitOfWork, ids: Sequence[int], at: datetime, because: str
) -> list[int]:
    """Destroy these buyers' data keys in the database and in the ledger of every segment
    holding their records, inside `uow`'s transaction: a ledger that cannot be rewritten
    raises, and the caller's transaction then keeps the keys (nothing half-shredded in the
    database). Returns the ids shredded."""
    shredded = uow.customers.shred(ids, at, because)
    if shredded:
        rewrite_ledgers(ports, uow.archive_copies.segments_of(shredded))
    return shredded


# --- legal retention in the nightly run ---------------------------------------------------------


def shred_expired(ports: Ports, shop: ShopRow, now: datetime, actor: str) -> int:
    """Shred the shop's masked buyers whose every document's legal retention has ended as of
    `now`, batch by batch (each its own transaction, audited with the count and id range).
    Returns how many were shredded."""
    rules = ports.limits.legal_retention
    zone = ZoneInfo(shop.time_zone)
    expired = {kind: rules.expired_before(kind, now, zone) for kind in DocumentKind}
    after, total = 0, 0
    while True:
        with ports.uow as uow:
            ids = uow.customers.shred_due(shop.id, expired, after, ports.limits.batch_size)
            if not ids:
                break
            done = shred_customers(ports, uow, ids, now, BECAUSE_RETENTION)
            if done:
                uow.audit.append(
                    ports.clock.now(),
                    actor,
                    SHREDDED,
                    shop.name,
                    {
                        "because": BECAUSE_RETENTION,
                        "shredded": len(done),
                        "first_customer": customer_ref(done[0]),
                        "last_customer": customer_ref(done[-1]),
                        "as_of": now.isoformat(),
                    },
                )
            uow.commit()
        total += len(done)
        after = ids[-1]
    if total:
        log.info("legal retention ended: %d buyer(s) of shop %s shredded", total, shop.name)
    return total


# --- erasure on request -------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    customer: str
    erased_at: datetime


def erase_customer(ports: Ports, customer: str, reason: str, user: str) -> ErasureResult:
    """Shred one buyer that no law requires us to keep, audited with the reason.

    Refused while any of its documents is within legal retention (naming the one kept longest
    and until when), while its data is in the database (not masked yet, or retrieved), when it
    has no orders to judge the retention by, and when it was shredded already."""
    customer_id = parse_customer_ref(customer)
    if customer_id is None:
        raise InvalidInput("customer: give a buyer reference such as C42")
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise InvalidInput("reason: say why the buyer is erased (1 to 200 characters)")
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("user: give the name of the person erasing (1 to 100 characters)")
    now = ports.clock.now()
    ref = customer_ref(customer_id)
    with ports.uow as uow:
        state = uow.customers.documents(customer_id)
        if state.shredded_at is not None:
            raise Conflict(f"buyer {ref} was shredded on {state.shredded_at:%Y-%m-%d} already")
        if state.masked_at is None or state.retrieved_at is not None:
            raise Conflict(
                f"buyer {ref}'s personal data is in the database (not masked, or retrieved); "
                "it can be erased once it is masked"
            )
        if not state.has_key:
            raise Conflict(f"buyer {ref} has no archive data key; there is nothing to shred")
        if not any(kind is DocumentKind.ORDER for kind, _nr, _made in state.documents):
            raise Conflict(
                f"buyer {ref} has no orders in the database (e.g. a buyer brought back by an "
                "archive recovery), so the legal retention of its documents cannot be judged; "
                "import its orders first"
            )
        zone = ZoneInfo(state.time_zone)
        kept = still_kept(ports.limits.legal_retention, state.documents, zone, now)
        if kept:
            first = kept[0]
            raise Conflict(
                f"buyer {ref} cannot be erased: the law keeps its {first.kind.value} "
                f"{first.number} until the end of {first.kept_until.astimezone(zone).year - 1} "
                f"({len(kept)} document(s) still within legal retention)"
            )
        shred_customers(ports, uow, [customer_id], now, BECAUSE_ERASURE)
        uow.audit.append(now, user, ERASED, ref, {"reason": reason})
        uow.commit()
    # The destroyed key's old bytes out of the database files, as after a run's masking.
    with ports.run_lock() as lock:
        lock.reclaim_if_needed(NO_RUN, True)
    log.info("buyer %s erased by %s", ref, user)
    return ErasureResult(ref, now)
