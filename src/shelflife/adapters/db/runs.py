"""The `retention_runs` table: one row per nightly run, written at its start and its end.

A run that stops with an error records why (a message that never carries PII); a run that was
killed keeps `finished_at` empty, which is how `shelflife runs` tells it apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from shelflife.adapters.db.tables import RetentionRun
from shelflife.domain.ports import ERROR_LENGTH, RUN_COUNTS, RunRow

__all__ = ["ERROR_LENGTH", "RUN_COUNTS", "RunRow", "finish_run", "recent_runs", "start_run"]


def start_run(conn: Connection, as_of: datetime, started_at: datetime) -> int:
    run_id: int = conn.execute(
        insert(RetentionRun).values(as_of=as_of, started_at=started_at).returning(RetentionRun.id)
    ).scalar_one()
    return run_id


def finish_run(
    conn: Connection,
    run_id: int,
    finished_at: datetime,
    counts: Mapping[str, int],
    error: str | None = None,
) -> None:
    """Record the end of a run: its counts so far and, when it stopped early, why."""
    conn.execute(
        update(RetentionRun)
        .where(RetentionRun.id == run_id)
        .values(
            finished_at=finished_at,
            error=None if error is None else error[:ERROR_LENGTH],
            **{name: counts[name] for name in RUN_COUNTS},
        )
    )


def recent_runs(conn: Connection, limit: int) -> list[RunRow]:
    """The `limit` most recently started runs, newest first."""
    rows = conn.execute(
        select(
            RetentionRun.id,
            RetentionRun.as_of,
            RetentionRun.started_at,
            RetentionRun.finished_at,
            RetentionRun.shops,
            RetentionRun.archived,
            RetentionRun.archive_failed,
            RetentionRun.retried,
            RetentionRun.masked,
            RetentionRun.remasked,
            RetentionRun.mask_refused,
            RetentionRun.error,
            RetentionRun.verified_objects,
            RetentionRun.integrity_problems,
        )
        .order_by(RetentionRun.started_at.desc(), RetentionRun.id.desc())
        .limit(limit)
    )
    return [RunRow(**r._asdict()) for r in rows]
