"""The run record on SQLite and PostgreSQL: real start and end times, shops and counts; why a
run stopped (never PII); a killed run left unfinished; archive failures summarised in one
warning with a count and the first reasons."""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from shelflife.adapters.archive.store import ArchiveStore
from shelflife.bootstrap import App
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import ArchiveUnavailable, InvalidInput
from shelflife.services.documents import RunView
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.runs import list_runs
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, lines, order
from tests.support.fakes import FailingPut, Wrapping

WALL = T0 + days(400)
"""The real clock in these tests: far from every run's as-of, so that they cannot be mixed up."""


@dataclass
class TickingClock:
    """A clock that moves on by one second whenever it is read."""

    start: datetime
    reads: itertools.count[int] = field(default_factory=itertools.count)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=next(self.reads))


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even an except clause for Exception."""


class DiesOnPut(Wrapping):
    def put(self, key: str, data: bytes) -> None:
        raise Killed


class BrokenWithPii(Wrapping):
    """Fails with a library error whose message carries a buyer's e-mail address."""

    def put(self, key: str, data: bytes) -> None:
        raise RuntimeError("could not store erika.mustermann@example.org")


class NumberedFailures(Wrapping):
    """Every write fails, each with its own reason."""

    def __init__(self, real: ArchiveStore) -> None:
        super().__init__(real)
        self.count = itertools.count(1)
        self.lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self.lock:
            n = next(self.count)
        raise ArchiveUnavailable(f"disk {n} is full")


def _start(app: App, n: int = 1) -> None:
    buyers = [order(f"30{i}-1234567-1234567", shipped_at=T0, suffix=f"-{i}") for i in range(n)]
    assert import_lines(app, lines(*buyers)).refused == []
    set_feature(app.ports(), "main", True, "ops")


def test_a_run_is_recorded_with_the_real_clock_its_as_of_shops_and_counts(app: App) -> None:
    _start(app, 2)
    app.clock = TickingClock(WALL)

    report = run_retention(app.ports(), T0 + days(31))

    assert list_runs(app.ports()) == [
        RunView(
            id=1,
            status="finished",
            as_of=(T0 + days(31)).isoformat(),
            started_at=WALL.isoformat(),
            # The clock is read at the start, when the segment is made, and at the end.
            finished_at=(WALL + timedelta(seconds=2)).isoformat(),
            duration_seconds=2.0,
            shops=1,
            archived=2,
            archive_failed=0,
            retried=0,
            masked=2,
            remasked=0,
            mask_refused=0,
            error=None,
        )
    ]
    assert report.counts() == {
        "shops": 1,
        "archived": 2,
        "archive_failed": 0,
        "retried": 0,
        "masked": 2,
        "remasked": 0,
        "mask_refused": 0,
        "verified_objects": 0,
        "integrity_problems": 0,
    }


def test_a_run_stopped_by_an_unexpected_error_records_its_type_and_no_pii(app: App) -> None:
    _start(app)
    app.clock = FixedClock(WALL)
    app.archive = BrokenWithPii(app.archive)

    with pytest.raises(RuntimeError):
        run_retention(app.ports(), T0 + days(31))

    (run,) = list_runs(app.ports())
    assert (run.status, run.error, run.finished_at, run.shops) == (
        "failed",
        "unexpected RuntimeError",
        WALL.isoformat(),
        1,
    )


def test_a_killed_run_shows_as_not_finished_and_the_rerun_as_finished(app: App) -> None:
    _start(app)
    app.clock = FixedClock(WALL)
    real = app.archive
    app.archive = DiesOnPut(real)
    with pytest.raises(Killed):
        run_retention(app.ports(), T0 + days(31))
    app.archive = real
    app.clock = FixedClock(WALL + timedelta(minutes=5))

    run_retention(app.ports(), T0 + days(31))

    assert [
        (r.id, r.status, r.finished_at, r.duration_seconds, r.masked)
        for r in list_runs(app.ports())
    ] == [
        (2, "finished", (WALL + timedelta(minutes=5)).isoformat(), 0.0, 1),
        (1, "not finished", None, None, 0),
    ]


def test_runs_lists_the_newest_first_and_at_most_the_limit(app: App) -> None:
    _start(app)
    for night in range(3):
        app.clock = FixedClock(WALL + days(night))
        run_retention(app.ports(), T0 + days(29 + night))

    newest = list_runs(app.ports(), limit=2)

    assert [(r.id, r.archived, r.masked) for r in newest] == [(3, 0, 0), (2, 0, 1)]
    with pytest.raises(InvalidInput):
        list_runs(app.ports(), limit=0)


def test_archive_failures_of_a_run_are_one_warning_with_the_count_and_first_reasons(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    _start(app, 7)
    app.archive = NumberedFailures(app.archive)
    app.settings.batch_size = 3  # the failures span three batches

    with caplog.at_level(logging.WARNING, logger="shelflife"):
        report = run_retention(app.ports(), T0 + days(31))

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "archive failed for 7 buyer(s), retried the next day; first reasons: "
        "disk 1 is full; disk 2 is full; disk 3 is full"
    ]
    assert (report.archive_failed, report.archive_failure_reasons) == (
        7,
        ["disk 1 is full", "disk 2 is full", "disk 3 is full"],
    )
    assert list_runs(app.ports())[0].archive_failed == 7


def test_the_same_failure_reason_is_named_once(app: App, caplog: pytest.LogCaptureFixture) -> None:
    _start(app, 4)
    app.archive = FailingPut(app.archive)

    with caplog.at_level(logging.WARNING, logger="shelflife"):
        report = run_retention(app.ports(), T0 + days(31))

    assert report.archive_failure_reasons == ["archive offline (test double)"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "archive failed for 4 buyer(s), retried the next day; first reasons: "
        "archive offline (test double)"
    ]
