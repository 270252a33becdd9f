"""A run with helper workers (`run --workers N`) on in-memory fakes: the helpers' counts become
the run's, the run is recorded, audited and reclaimed once, a helper's failure fails the run,
and a run that fails stops its helpers. The processes themselves: test_parallel_workers.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shelflife.domain.errors import ArchiveUnavailable
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import Limits, Ports, Selection
from shelflife.services.documents import RunReportDocument
from shelflife.services.pipeline import RUN_FAILED, RUN_FINISHED, run_retention, work_night
from tests.support.fakes import (
    FakeCustomer,
    FakeCustomers,
    FakeData,
    FakeRunLock,
    FakeUnitOfWork,
    fake_ports,
)
from tests.unit.test_pipeline_orchestration import _UowWhoseMaskFails

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)


def _shipped(cid: int, **fields: Any) -> FakeCustomer:
    return replace(FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}"), **fields)


def _ports(*customers: FakeCustomer, uow: FakeUnitOfWork | None = None) -> Ports:
    data = FakeData()
    for c in customers:
        data.customers[c.id] = c
    return fake_ports(uow or FakeUnitOfWork(data), now=NIGHT)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def _lock(ports: Ports) -> FakeRunLock:
    with ports.run_lock() as lock:
        assert isinstance(lock, FakeRunLock)
        return lock


@dataclass
class Eager:
    """A helper that takes the whole night as soon as it is started (so the run itself finds
    nothing left): what a fast helper process beside a slow run would do."""

    ports: Ports
    started: list[datetime] = field(default_factory=list)
    stopped: bool = False
    done: list[RunReportDocument] = field(default_factory=list)

    def __call__(self, as_of: datetime) -> Eager:
        self.started.append(as_of)
        self.done.append(work_night(self.ports, as_of))
        return self

    def wait(self) -> list[RunReportDocument]:
        return self.done

    def stop(self) -> list[RunReportDocument]:
        self.stopped = True
        return self.done


@dataclass
class Failing:
    why: str
    stopped: bool = False

    def __call__(self, as_of: datetime) -> Failing:
        return self

    def wait(self) -> list[RunReportDocument]:
        raise ArchiveUnavailable(self.why)

    def stop(self) -> list[RunReportDocument]:
        self.stopped = True
        return []


def test_a_helpers_work_is_counted_recorded_and_audited_as_the_runs_own() -> None:
    ports = _ports(*(_shipped(cid) for cid in (1, 2, 3)))
    helper = Eager(ports)

    report = run_retention(ports, NIGHT, helpers=helper)

    assert helper.started == [NIGHT]
    assert [(d.archived, d.masked, d.shops) for d in helper.done] == [(3, 3, 0)]
    assert (report.archived, report.masked, report.shops, report.archive_failed) == (3, 3, 1, 0)
    data = _data(ports)
    assert [c.last_name for c in data.customers.values()] == [MASKED_TEXT] * 3
    assert [(r.id, r.counts["archived"], r.counts["masked"]) for r in data.runs.values()] == [
        (1, 3, 3)
    ]
    assert [(e.action, e.detail["archived"]) for e in data.audit] == [(RUN_FINISHED, 3)]
    assert _lock(ports).reclaims == [(1, True)]  # once, for the helper's masks too


def test_buyers_refused_for_their_key_are_counted_once_however_many_workers() -> None:
    other_key = _shipped(
        1, archived_revision=1, data_key_wrapped=b"old:key", data_key_master_id="old-master"
    )
    ports = _ports(other_key, _shipped(2))

    report = run_retention(ports, NIGHT, helpers=Eager(ports))

    assert (report.archived, report.masked, report.mask_refused) == (1, 1, 1)


def test_a_helper_that_fails_fails_the_run_with_its_reason_and_the_work_done_stays() -> None:
    ports = _ports(_shipped(1))
    why = "a helper's archive went away (test double)"

    with pytest.raises(ArchiveUnavailable):
        run_retention(ports, NIGHT, helpers=Failing(why))

    data = _data(ports)
    assert (data.runs[1].error, data.runs[1].counts["archived"]) == (why, 1)
    assert data.customers[1].last_name == MASKED_TEXT  # the run's own batches are committed
    assert [(e.action, e.detail["error"]) for e in data.audit] == [(RUN_FAILED, why)]
    assert _lock(ports).reclaims == []


@dataclass
class StoppedMidway(Failing):
    """A helper that had archived and masked two buyers when the run stopped it."""

    def stop(self) -> list[RunReportDocument]:
        self.stopped = True
        return [RunReportDocument(as_of=NIGHT.isoformat(), archived=2, masked=2)]


def test_a_run_that_fails_stops_its_helpers_and_records_what_they_did() -> None:
    data = FakeData()
    data.customers[1] = _shipped(1)
    ports = fake_ports(_UowWhoseMaskFails(data), now=NIGHT)
    helper = StoppedMidway("never asked")

    with pytest.raises(ArchiveUnavailable, match="archive went away mid-run"):
        run_retention(ports, NIGHT, helpers=helper)

    assert helper.stopped
    (run,) = _data(ports).runs.values()
    assert (run.counts["archived"], run.counts["masked"]) == (2, 2)


@dataclass
class WaitInterrupted(Failing):
    """Ctrl-C while the run waits for its helpers (which do not take it themselves)."""

    def wait(self) -> list[RunReportDocument]:
        raise KeyboardInterrupt


def test_a_run_interrupted_while_waiting_for_its_helpers_stops_them() -> None:
    ports = _ports(_shipped(1))
    helper = WaitInterrupted("never asked")

    with pytest.raises(KeyboardInterrupt):
        run_retention(ports, NIGHT, helpers=helper)

    assert helper.stopped
    assert _data(ports).runs[1].error == "interrupted"


def test_no_helper_is_started_when_no_shop_has_the_feature_enabled() -> None:
    ports = _ports(_shipped(1))
    _data(ports).shops = [replace(s, retention_enabled=False) for s in _data(ports).shops]
    helper = Eager(ports)

    report = run_retention(ports, NIGHT, helpers=helper)

    assert (helper.started, report.shops, report.archived) == ([], 0, 0)


def test_a_progress_bar_gets_each_steps_total_and_a_run_without_one_counts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = _ports(*(_shipped(cid) for cid in (1, 2, 3)))
    seen: list[tuple[str, int, int]] = []

    run_retention(drawn, NIGHT, lambda step, done, total: seen.append((step, done, total)))

    assert seen == [("archive", 2, 3), ("archive", 3, 3)]  # masked in their archive batches
    counted: list[Selection] = []
    real_count = FakeCustomers.count

    def count(self: FakeCustomers, selection: Selection) -> int:
        counted.append(selection)
        return real_count(self, selection)

    monkeypatch.setattr(FakeCustomers, "count", count)
    report = run_retention(_ports(*(_shipped(cid) for cid in (1, 2, 3))), NIGHT)

    assert (report.archived, report.masked, counted) == (3, 3, [])


def test_a_helper_asked_to_stop_ends_after_its_batch_and_returns_what_it_did() -> None:
    data = FakeData()
    for cid in (1, 2, 3):
        data.customers[cid] = _shipped(cid)
    ports = fake_ports(FakeUnitOfWork(data), now=NIGHT, limits=Limits(batch_size=1))
    asked: list[bool] = []

    def stop_requested() -> bool:
        asked.append(True)
        return True  # the run asked before the helper's first batch ended

    report = work_night(ports, NIGHT, stop_requested)

    assert (report.archived, report.masked, len(asked)) == (1, 1, 1)
    assert [c.masked_at is not None for c in _data(ports).customers.values()] == [
        True,
        False,
        False,
    ]
