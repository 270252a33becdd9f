"""Recent nightly runs as an operator checks them each morning: when, how long, what, why not."""

from __future__ import annotations

from shelflife.domain.errors import InvalidInput
from shelflife.domain.ports import Ports
from shelflife.services.documents import RunView

MAX_RUNS = 1000


def list_runs(ports: Ports, limit: int = 20) -> list[RunView]:
    """The most recently started runs, newest first."""
    if not 1 <= limit <= MAX_RUNS:
        raise InvalidInput(f"the number of runs to show must be between 1 and {MAX_RUNS}")
    with ports.reader as reader:
        rows = reader.runs.recent(limit)
    views = []
    for r in rows:
        if r.finished_at is None:
            status = "not finished"
        else:
            status = "failed" if r.error is not None else "finished"
        views.append(
            RunView(
                id=r.id,
                status=status,
                as_of=r.as_of.isoformat(),
                started_at=r.started_at.isoformat(),
                finished_at=r.finished_at.isoformat() if r.finished_at else None,
                duration_seconds=round((r.finished_at - r.started_at).total_seconds(), 3)
                if r.finished_at
                else None,
                shops=r.shops,
                archived=r.archived,
                archive_failed=r.archive_failed,
                retried=r.retried,
                masked=r.masked,
                remasked=r.remasked,
                mask_refused=r.mask_refused,
                verified_objects=r.verified_objects,
                integrity_problems=r.integrity_problems,
                error=r.error,
            )
        )
    return views
