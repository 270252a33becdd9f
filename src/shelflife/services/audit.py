"""Reading and checking the audit log."""

from __future__ import annotations

import logging
from datetime import datetime

from shelflife.domain.audit import (
    AUDIT_RETENTION,
    GENESIS_HASH,
    PURGE_ACTION,
    AuditEntry,
    ChainCheck,
    verify_chain,
)
from shelflife.domain.ports import AuditRepository, Ports

log = logging.getLogger(__name__)


def verify_audit_log(ports: Ports) -> ChainCheck:
    """Walk the whole chain from the genesis hash, or from the anchor the last purge recorded,
    in one read-only transaction (a purge committing meanwhile is not seen half-done)."""
    with ports.reader as reader:
        anchor = reader.audit.purge_anchor() or GENESIS_HASH
        return verify_chain(reader.audit.entries(), anchor=anchor)


def recent_entries(ports: Ports, limit: int = 50) -> list[AuditEntry]:
    with ports.reader as reader:
        return reader.audit.recent(limit)


def purge_expired_entries(audit: AuditRepository, now: datetime, actor: str) -> int:
    """Remove the entries written more than `AUDIT_RETENTION` before `now` (the nightly run
    calls this inside its final transaction); returns how many.

    The purge entry is appended first, so that it links to the newest entry as every entry
    does, even when nothing newer than the cut-off is left. It records the hash of the last
    entry removed (the anchor the oldest remaining entry links to), its number and the count,
    so `verify` still walks an intact chain and a silent removal is still detected."""
    cutoff = now - AUDIT_RETENTION
    last = audit.last_before(cutoff)
    if last is None:
        return 0
    removed = audit.count_through(last.seq)
    audit.append(
        now,
        actor,
        PURGE_ACTION,
        None,
        {
            "anchor": last.hash,
            "through_seq": last.seq,
            "removed": removed,
            "older_than": cutoff.isoformat(),
        },
    )
    audit.delete_through(last.seq)
    log.info("audit log: %d entries older than %s purged", removed, cutoff.date().isoformat())
    return removed
