"""`keys rotate` on in-memory fakes: the switch, the batches, an interruption and the resume,
the audit entries, and the buyers a run wrapped under the old key meanwhile. Milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from shelflife.domain.errors import Conflict
from shelflife.domain.ports import KeyLocation, Ports, UnitOfWork
from shelflife.services.keys import (
    KEYS_ROTATED,
    ROTATION_STARTED,
    begin_rotation,
    rewrap_data_keys,
)
from tests.support.fakes import FakeCustomer, FakeData, FakeKeyProvider, FakeUnitOfWork, fake_ports

OLD, NEW = "fake-master", "mk-new"


def _ports(buyers: int, keys: FakeKeyProvider | None = None) -> Ports:
    data = FakeData()
    for cid in range(1, buyers + 1):
        data.customers[cid] = FakeCustomer(
            cid, data_key_wrapped=f"{OLD}:key-{cid}".encode(), data_key_master_id=OLD
        )
    data.customers[buyers + 1] = FakeCustomer(buyers + 1)  # never archived: no data key
    return fake_ports(FakeUnitOfWork(data), keys=keys or FakeKeyProvider(OLD, opens=(NEW,)))


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def _under(ports: Ports) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for c in _data(ports).customers.values():
        counts[c.data_key_master_id] = counts.get(c.data_key_master_id, 0) + 1
    return counts


def test_rotation_rewraps_every_data_key_and_the_identity_key_in_batches_then_forgets_the_old() -> (
    None
):
    ports = _ports(5)
    new = FakeKeyProvider(NEW)

    report = rewrap_data_keys(ports, new, begin_rotation(ports, new, "ops"), "ops")

    data = _data(ports)
    assert (report.started, report.rewrapped, report.batches, report.left) == (True, 5, 3, 0)
    assert _under(ports) == {NEW: 5, None: 1}
    assert [c.data_key_wrapped for c in data.customers.values()][:2] == [
        b"mk-new:key-1",
        b"mk-new:key-2",
    ]  # the same data keys, wrapped anew
    assert data.identity_key_wrapped == b"mk-new:" + bytes(32)
    assert (data.master_key_id, data.previous_master_key_id) == (NEW, None)
    assert data.key_locations == {
        OLD: KeyLocation(OLD, "file", "/keys/fake-master.key"),
        NEW: KeyLocation(NEW, "file", "/keys/mk-new.key"),
    }
    assert [(e.action, e.subject, dict(e.detail)) for e in data.audit] == [
        (ROTATION_STARTED, NEW, {"from": OLD, "to": NEW}),
        (KEYS_ROTATED, NEW, {"from": OLD, "to": NEW}),
    ]


class Killed(Exception):
    """Stands for the process being killed in the middle of a batch."""


def test_a_rotation_interrupted_midway_keeps_both_keys_and_continues_when_run_again() -> None:
    ports = _ports(7)
    new = FakeKeyProvider(NEW)
    batches: list[int] = []

    def kill_in_third_batch(_uow: UnitOfWork, ids: Sequence[int]) -> None:
        batches.append(len(ids))
        if len(batches) == 3:
            raise Killed

    with pytest.raises(Killed):
        rewrap_data_keys(
            ports, new, begin_rotation(ports, new, "ops"), "ops", on_batch=kill_in_third_batch
        )

    data = _data(ports)
    assert _under(ports) == {NEW: 4, OLD: 3, None: 1}  # the third batch rolled back
    assert (data.master_key_id, data.previous_master_key_id) == (NEW, OLD)

    resumed = begin_rotation(ports, new, "ops")
    assert resumed.started is False
    report = rewrap_data_keys(ports, new, resumed, "ops")

    assert (report.rewrapped, report.left) == (3, 0)
    assert _under(ports) == {NEW: 7, None: 1}
    assert _data(ports).previous_master_key_id is None
    assert [e.action for e in _data(ports).audit] == [ROTATION_STARTED, KEYS_ROTATED]


def test_keys_a_run_wrapped_under_the_old_key_during_the_rotation_are_rewrapped_too() -> None:
    ports = _ports(4)
    new = FakeKeyProvider(NEW)
    late = FakeCustomer(99)

    def a_run_archives_a_buyer_under_the_old_key(_done: int, _total: int) -> None:
        if 99 not in _data(ports).customers:
            late.data_key_wrapped, late.data_key_master_id = f"{OLD}:key-99".encode(), OLD
            _data(ports).customers[99] = late  # committed by "another process"

    report = rewrap_data_keys(
        ports,
        new,
        begin_rotation(ports, new, "ops"),
        "ops",
        progress=a_run_archives_a_buyer_under_the_old_key,  # between two batches
    )

    assert (report.rewrapped, report.passes, report.left) == (5, 3, 0)
    assert _under(ports) == {NEW: 5, None: 1}


def test_a_rotation_to_a_third_key_is_refused_while_one_is_unfinished() -> None:
    ports = _ports(3)
    data = _data(ports)
    data.master_key_id, data.previous_master_key_id = NEW, OLD

    with pytest.raises(Conflict) as refused:
        begin_rotation(ports, FakeKeyProvider("mk-third"), "ops")

    assert str(refused.value) == (
        "a rotation from master key fake-master to mk-new is not finished; finish it first "
        "(rotate to that key again), then rotate to another"
    )
    assert data.audit == []


def test_the_mask_step_masks_buyers_under_either_key_while_a_rotation_works() -> None:
    from datetime import timedelta

    from shelflife.services.pipeline import run_retention

    shipped = datetime(2026, 1, 10, 12, tzinfo=UTC)
    data = FakeData(master_key_id=NEW, previous_master_key_id=OLD)
    for cid, key_id in ((1, OLD), (2, NEW)):
        data.customers[cid] = FakeCustomer(
            cid,
            closed_at=shipped,
            archived_revision=1,
            data_key_wrapped=f"{key_id}:key".encode(),
            data_key_master_id=key_id,
        )
    ports = fake_ports(
        FakeUnitOfWork(data),
        keys=FakeKeyProvider(NEW, opens=(OLD,)),
        now=shipped + timedelta(days=31),
    )

    report = run_retention(ports)

    assert (report.masked, report.mask_refused) == (2, 0)
