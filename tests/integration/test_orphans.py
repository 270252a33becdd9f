"""`archive orphans` on SQLite and PostgreSQL: what a killed run leaves in the archive (an
object no copy record points to, a temp file) is listed and, where the store allows it and
once old enough, removed; a recorded copy is never listed, whatever its age."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import ArchiveCopy
from shelflife.bootstrap import App
from shelflife.domain.errors import Forbidden, InvalidInput
from shelflife.services.importing import import_lines
from shelflife.services.orphans import Orphan, OrphanKind, archive_orphans
from shelflife.services.pipeline import object_key_prefix, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import make_legacy
from tests.support.builders import T0, at, days, lines, order
from tests.support.fakes import Wrapping, WriteOnce

NR = "302-1234567-1234567"
LEFTOVER_NR = "302-7654321-7654321"
OLD = T0 - timedelta(hours=48)
YOUNG = T0 - timedelta(minutes=30)


class Killed(BaseException):
    """Stands in for SIGKILL between writing a copy and committing its record."""


class KilledAfterPut(Wrapping):
    """Reads work until the first write (the run's verification sample reads before it)."""

    written = False

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        self.written = True

    def get(self, key: str) -> bytes:
        if self.written:
            raise Killed
        return super().get(key)


def _age(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def _root(app: App) -> Path:
    return Path(app.settings.home) / "archive"


@pytest.fixture
def leftovers(app: App) -> dict[str, str]:
    """One recorded copy (Erika's, masked); a segment a killed run wrote but never recorded; a
    temp file of a write it never finished; a file shelflife did not write. All old."""
    report = import_lines(
        app,
        lines(order(NR, shipped_at=T0), order(LEFTOVER_NR, shipped_at=T0 + days(5), suffix="-b")),
    )
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(31)).masked == 1
    real = app.archive
    app.archive = KilledAfterPut(real)
    with pytest.raises(Killed):
        run_retention(app.ports(), T0 + days(35))
    app.archive = real
    root = _root(app)
    with app.engine.connect() as conn:
        (recorded,) = conn.execute(select(ArchiveCopy.object_key)).scalars()
    (unrecorded,) = [
        p.relative_to(root).as_posix() for p in root.rglob("*.sls") if p.name != Path(recorded).name
    ]
    temp = (root / recorded).parent / ".tmp-k1ll3d"
    temp.write_bytes(b"half a copy")
    (root / "README.txt").write_text("not an archive object\n")
    for path in root.rglob("*"):
        if path.is_file():
            _age(path, OLD)
    return {
        "recorded": recorded,
        "unrecorded": unrecorded,
        "temp": temp.relative_to(root).as_posix(),
        "foreign": "README.txt",
    }


def _listed(app: App, delete: bool = False) -> list[tuple[str, OrphanKind, bool]]:
    report = archive_orphans(app, delete=delete)
    return sorted((o.key, o.kind, o.deleted) for o in report.orphans)


def test_lists_what_a_killed_run_left_and_never_a_recorded_copy(
    app: App, leftovers: dict[str, str]
) -> None:
    report = archive_orphans(app)

    assert sorted(report.orphans, key=lambda o: o.key) == sorted(
        [
            Orphan(
                leftovers["unrecorded"],
                OrphanKind.UNREFERENCED,
                *_stat(app, "unrecorded", leftovers),
                False,
            ),
            Orphan(leftovers["temp"], OrphanKind.TEMPORARY, 11, OLD, False),
            Orphan("README.txt", OrphanKind.UNKNOWN, 22, OLD, False),
        ],
        key=lambda o: o.key,
    )
    assert (report.deleted, report.younger, report.deletion_allowed) == (0, 0, True)
    assert (_root(app) / leftovers["unrecorded"]).exists()


def _stat(app: App, name: str, leftovers: dict[str, str]) -> tuple[int, datetime]:
    return (_root(app) / leftovers[name]).stat().st_size, OLD


def test_delete_removes_the_leftovers_and_keeps_the_recorded_copy_and_foreign_files(
    app: App, leftovers: dict[str, str]
) -> None:
    deleted = _listed(app, delete=True)

    assert deleted == sorted(
        [
            ("README.txt", OrphanKind.UNKNOWN, False),
            (leftovers["temp"], OrphanKind.TEMPORARY, True),
            (leftovers["unrecorded"], OrphanKind.UNREFERENCED, True),
        ]
    )
    remaining = sorted(
        p.relative_to(_root(app)).as_posix() for p in _root(app).rglob("*") if p.is_file()
    )
    assert remaining == sorted(["README.txt", leftovers["recorded"]])
    assert _listed(app) == [("README.txt", OrphanKind.UNKNOWN, False)]
    retrieve_order(
        at(app, T0 + days(36)).ports(), NR, "Rücksendung", "anna", T0 + days(36)
    )  # the copy still opens


def test_orphans_younger_than_the_minimum_age_are_neither_listed_nor_deleted(
    app: App, leftovers: dict[str, str]
) -> None:
    for name in ("unrecorded", "temp"):
        _age(_root(app) / leftovers[name], YOUNG)

    report = archive_orphans(app, delete=True)
    shorter = archive_orphans(app, min_age=timedelta(hours=1))

    assert ([o.key for o in report.orphans], report.younger) == (["README.txt"], 2)
    assert (_root(app) / leftovers["unrecorded"]).exists()
    assert ([o.key for o in shorter.orphans], shorter.younger) == (["README.txt"], 2)


def test_an_old_recorded_copy_is_never_listed(app: App, leftovers: dict[str, str]) -> None:
    _age(_root(app) / leftovers["recorded"], T0 - timedelta(days=3650))

    keys = [o.key for o in archive_orphans(app, min_age=timedelta(hours=1)).orphans]

    assert leftovers["recorded"] not in keys
    assert len(keys) == 3


def test_a_write_once_store_lists_but_refuses_deletion_and_deletes_nothing(
    app: App, leftovers: dict[str, str]
) -> None:
    app.archive = WriteOnce(app.archive)

    listed = archive_orphans(app)
    with pytest.raises(Forbidden, match="write-once and does not allow deletion"):
        archive_orphans(app, delete=True)

    assert (len(listed.orphans), listed.deletion_allowed) == (3, False)
    assert (_root(app) / leftovers["unrecorded"]).exists()
    assert (_root(app) / leftovers["temp"]).exists()


def test_a_minimum_age_under_an_hour_is_refused(app: App) -> None:
    with pytest.raises(InvalidInput, match="the minimum age is at least 1 hour"):
        archive_orphans(app, min_age=timedelta(minutes=59))


def test_a_segment_is_referenced_while_any_copy_names_it_and_legacy_objects_still_count(
    app: App,
) -> None:
    report = import_lines(
        app, lines(order(NR, shipped_at=T0), order(LEFTOVER_NR, shipped_at=T0, suffix="-b"))
    )
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(31)).masked == 2
    with app.engine.connect() as conn:
        first, second = conn.execute(select(ArchiveCopy.__table__).order_by(ArchiveCopy.id))
    segment = first.object_key
    assert second.object_key == segment  # one batch, one segment
    legacy = make_legacy(app, first)  # Erika's copy as the old code wrote it
    stray = f"{object_key_prefix(first.customer_id)}r000009-0badc0de.slf"
    app.archive.put(stray, b"a legacy object no copy records")
    for path in _root(app).rglob("*"):
        _age(path, OLD)

    assert _listed(app) == [(stray, OrphanKind.UNREFERENCED, False)]

    make_legacy(app, second)  # no copy names the segment any more
    _age(_root(app) / segment, OLD)
    assert _listed(app, delete=True) == sorted(
        [(segment, OrphanKind.UNREFERENCED, True), (stray, OrphanKind.UNREFERENCED, True)]
    )
    assert (_root(app) / legacy).exists()
    retrieve_order(at(app, T0 + days(36)).ports(), NR, "Rücksendung", "anna", T0 + days(36))
