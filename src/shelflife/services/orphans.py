"""Archive housekeeping: objects no copy record points to, and files killed runs left behind.

A run writes a batch's segment, reads it back and verifies it before the batch's transaction
records its copies; a run killed in between leaves a segment nothing refers to (as legacy
one-buyer objects could), or a temp file of a write it never
finished. Neither holds anything retrieval needs. They are listed here and removed only where
the store allows deletion and only once older than a minimum age, so that the objects of a run
still in flight are never touched.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shelflife.adapters.archive.segments import is_segment_key
from shelflife.adapters.archive.store import StoredObject
from shelflife.adapters.db.reading import recorded_object_keys
from shelflife.bootstrap import App
from shelflife.domain.errors import Forbidden, InvalidInput
from shelflife.services.pipeline import customer_of_object_key

DEFAULT_MIN_AGE = timedelta(hours=24)
SHORTEST_MIN_AGE = timedelta(hours=1)
"""Far longer than a batch takes from writing its copies to committing their records."""
CHUNK = 1000
"""Objects checked against the database per query."""


class OrphanKind(enum.StrEnum):
    TEMPORARY = "temporary"
    """A write that never finished (a killed run); removable."""
    UNREFERENCED = "unreferenced"
    """An archive object no copy record points to; removable."""
    UNKNOWN = "unknown"
    """A file shelflife did not write: listed for a person to look at, never deleted."""


@dataclass(frozen=True)
class Orphan:
    key: str
    kind: OrphanKind
    size: int
    modified_at: datetime
    deleted: bool


@dataclass
class OrphanReport:
    store: str
    deletion_allowed: bool
    older_than_hours: float
    orphans: list[Orphan] = field(default_factory=list)
    younger: int = 0
    """Orphans not listed because they are younger than the minimum age (they may belong to
    a run in progress)."""

    @property
    def deleted(self) -> int:
        return sum(1 for o in self.orphans if o.deleted)


def archive_orphans(
    app: App, min_age: timedelta = DEFAULT_MIN_AGE, delete: bool = False
) -> OrphanReport:
    """List (and with `delete`, remove) the orphans older than `min_age`."""
    if min_age < SHORTEST_MIN_AGE:
        raise InvalidInput(
            f"the minimum age is at least {SHORTEST_MIN_AGE.total_seconds() / 3600:g} hour, so "
            "that the objects of a run in progress are never removed"
        )
    store = app.archive
    if delete and not store.allows_deletion:
        raise Forbidden(
            f"the archive {store.describe()} is write-once and does not allow deletion; "
            "its orphans stay until the store's own retention removes them"
        )
    report = OrphanReport(store.describe(), store.allows_deletion, min_age.total_seconds() / 3600)
    older_than = app.clock.now() - min_age
    for chunk in _chunks(store.list_objects()):
        for obj, kind in _orphans_in(app, chunk):
            if obj.modified_at > older_than:
                report.younger += 1
                continue
            removable = kind is not OrphanKind.UNKNOWN
            if delete and removable:
                store.delete(obj.key)
            report.orphans.append(
                Orphan(obj.key, kind, obj.size, obj.modified_at, delete and removable)
            )
    return report


def _chunks(objects: Iterator[StoredObject]) -> Iterator[list[StoredObject]]:
    while chunk := list(itertools.islice(objects, CHUNK)):
        yield chunk


def _orphans_in(app: App, chunk: list[StoredObject]) -> list[tuple[StoredObject, OrphanKind]]:
    """The chunk's objects that no copy record points to, with their kind; one query. A
    segment is referenced as long as any copy names it."""
    ours = [
        o.key
        for o in chunk
        if not o.temporary and (is_segment_key(o.key) or customer_of_object_key(o.key))
    ]
    with app.read_engine.connect() as conn:
        recorded = recorded_object_keys(conn, ours)
    known = set(ours)
    found: list[tuple[StoredObject, OrphanKind]] = []
    for obj in chunk:
        if obj.temporary:
            found.append((obj, OrphanKind.TEMPORARY))
        elif obj.key not in known:
            found.append((obj, OrphanKind.UNKNOWN))
        elif obj.key not in recorded:
            found.append((obj, OrphanKind.UNREFERENCED))
    return found
