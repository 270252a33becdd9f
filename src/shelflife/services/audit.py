"""Reading and checking the audit log."""

from __future__ import annotations

from shelflife.adapters.db import audit_log
from shelflife.bootstrap import App
from shelflife.domain.audit import GENESIS_HASH, AuditEntry, ChainCheck, verify_chain


def verify_audit_log(app: App) -> ChainCheck:
    """Walk the whole chain from the genesis hash, or from the anchor the last purge recorded."""
    with app.engine.connect() as conn:
        anchor = audit_log.purge_anchor(conn) or GENESIS_HASH
        return verify_chain(audit_log.entries(conn), anchor=anchor)


def recent_entries(app: App, limit: int = 50) -> list[AuditEntry]:
    with app.engine.connect() as conn:
        return audit_log.recent(conn, limit)
