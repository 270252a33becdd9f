"""The audit log's storage: append the next chained entry, read entries back in order."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from shelflife.adapters.db.tables import AuditLogEntry
from shelflife.domain.audit import PURGE_ACTION, AuditEntry, next_entry

_APPEND_LOCK = 0x5E1F11FE
"""PostgreSQL advisory lock id that serialises appends (SQLite's BEGIN IMMEDIATE already does)."""


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail=json.loads(row.detail),
        previous_hash=row.previous_hash,
        hash=row.hash,
    )


def last_entry(conn: Connection) -> AuditEntry | None:
    row = conn.execute(
        select(AuditLogEntry.__table__).order_by(AuditLogEntry.seq.desc()).limit(1)
    ).first()
    return None if row is None else _entry(row)


def append(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: Mapping[str, str | int | None] | None = None,
) -> AuditEntry:
    """Add the entry that follows the current last one, inside the caller's transaction, so
    that the audited change and its entry commit (or roll back) together."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _APPEND_LOCK})
    entry = next_entry(last_entry(conn), at, actor, action, subject, detail)
    conn.execute(
        insert(AuditLogEntry).values(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            detail=json.dumps(dict(entry.detail), sort_keys=True, ensure_ascii=False),
            previous_hash=entry.previous_hash,
            hash=entry.hash,
        )
    )
    return entry


def entries(conn: Connection, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in batches so a long log streams."""
    after = 0
    while True:
        rows = conn.execute(
            select(AuditLogEntry.__table__)
            .where(AuditLogEntry.seq > after)
            .order_by(AuditLogEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1].seq


def recent(conn: Connection, limit: int) -> list[AuditEntry]:
    rows = conn.execute(
        select(AuditLogEntry.__table__).order_by(AuditLogEntry.seq.desc()).limit(limit)
    ).all()
    return [_entry(r) for r in rows]


def last_before(conn: Connection, before: datetime) -> AuditEntry | None:
    """The newest entry written before `before`: the last one a purge up to `before` removes."""
    row = conn.execute(
        select(AuditLogEntry.__table__)
        .where(AuditLogEntry.at < before)
        .order_by(AuditLogEntry.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else _entry(row)


def purge_anchor(conn: Connection) -> str | None:
    """The hash the oldest remaining entry must link to, as recorded by the latest purge."""
    row = conn.execute(
        select(AuditLogEntry.detail)
        .where(AuditLogEntry.action == PURGE_ACTION)
        .order_by(AuditLogEntry.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    anchor = json.loads(row.detail).get("anchor")
    return str(anchor) if anchor else None


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(AuditLogEntry)).scalar_one())


def count_actions(conn: Connection, actor: str, action: str, since: datetime) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                AuditLogEntry.actor == actor,
                AuditLogEntry.action == action,
                AuditLogEntry.at >= since,
            )
        ).scalar_one()
    )
