"""The audit log as a hash chain: each entry carries the hash of the one before it.

Append-only storage alone does not show tampering; a chain does. Changing, inserting or
removing an entry breaks the link of the next one, and `verify_chain` says where. Entries older
than the retention period are purged by the nightly run; the purge is itself an entry that
records the hash of the last entry removed (the anchor), so the remaining chain still verifies
from that anchor and a silent removal of the oldest entries is detected too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

GENESIS_HASH = "0" * 64
"""The `previous_hash` of the very first entry."""

AUDIT_RETENTION = timedelta(days=400)
"""Amazon asks for access logs of at least 12 months; 400 days keeps a full year plus a margin."""

PURGE_ACTION = "audit.purged"


@dataclass(frozen=True)
class AuditEntry:
    """One thing a person or the nightly run did. `detail` holds no PII: ids, numbers, counts,
    and free text only where it is the audit's purpose (a retrieval reason)."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    detail: Mapping[str, str | int | None] = field(default_factory=dict)
    previous_hash: str = GENESIS_HASH
    hash: str = ""

    def computed_hash(self) -> str:
        body = {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": dict(sorted(self.detail.items())),
            "previous_hash": self.previous_hash,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def next_entry(
    previous: AuditEntry | None,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: Mapping[str, str | int | None] | None = None,
) -> AuditEntry:
    """The entry that follows `previous` (None for the first), with its hash filled in."""
    draft = AuditEntry(
        seq=1 if previous is None else previous.seq + 1,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        detail=dict(detail or {}),
        previous_hash=GENESIS_HASH if previous is None else previous.hash,
    )
    return AuditEntry(**{**draft.__dict__, "hash": draft.computed_hash()})


@dataclass(frozen=True)
class ChainCheck:
    intact: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(entries: Iterable[AuditEntry], anchor: str = GENESIS_HASH) -> ChainCheck:
    """Walk the entries in `seq` order; the first must link to `anchor` (the genesis hash, or
    the hash recorded by the last purge)."""
    expected_previous, expected_seq, checked = anchor, None, 0
    for entry in entries:
        if expected_seq is not None and entry.seq != expected_seq:
            return ChainCheck(False, checked, entry.seq, f"entry {expected_seq} is missing")
        if entry.previous_hash != expected_previous:
            return ChainCheck(False, checked, entry.seq, "does not link to the entry before it")
        if entry.computed_hash() != entry.hash:
            return ChainCheck(False, checked, entry.seq, "was changed after it was written")
        checked += 1
        expected_previous, expected_seq = entry.hash, entry.seq + 1
    return ChainCheck(True, checked)
