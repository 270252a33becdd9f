"""`archive recover` and `archive show` on in-memory fakes: what a lost or damaged ledger
object does to a recovery, and what an auditor reads. No database; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shelflife.adapters.archive.ledger import ledger_key
from shelflife.domain.errors import Conflict, InvalidInput, KeyUnavailable
from shelflife.domain.ports import Ports
from shelflife.services.pipeline import run_retention
from shelflife.services.recovery import recover_archive, show_archived
from tests.support.fakes import (
    FakeCustomer,
    FakeData,
    FakeKeyProvider,
    FakeUnitOfWork,
    InMemoryArchive,
    fake_ports,
)

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)


def _archived(*ids: int) -> tuple[Ports, InMemoryArchive, InMemoryArchive]:
    data = FakeData()
    for cid in ids:
        data.customers[cid] = FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}")
    archive, ledger = InMemoryArchive(), InMemoryArchive()
    ports = fake_ports(FakeUnitOfWork(data), archive=archive, ledger=ledger, now=NIGHT)
    assert run_retention(ports, NIGHT).masked == len(ids)
    return ports, archive, ledger


def _lost(archive: InMemoryArchive, ledger: InMemoryArchive) -> Ports:
    """A fresh database (nothing but the recorded master key) on the same stores."""
    return fake_ports(FakeUnitOfWork(FakeData()), archive=archive, ledger=ledger, now=NIGHT)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def test_recovered_buyers_are_masked_with_their_keys_and_read_back_as_archived() -> None:
    _ports, archive, ledger = _archived(1, 2)
    fresh = _lost(archive, ledger)

    report = recover_archive(fresh, "ops")
    shown = show_archived(fresh, "C2", "Prüfung", "auditor").as_json()

    data = _data(fresh)
    assert (report.segments, report.copies_added, report.keys_found, report.failed) == (1, 2, 2, [])
    assert sorted(data.customers) == [1, 2]
    assert all(c.masked_at and c.data_key_wrapped for c in data.customers.values())
    assert shown["customer"] == "C2"
    assert shown["copies"][0]["rows"]["customers"]["2"]["last_name"] == "Buyer2"
    assert [(e.action, e.subject) for e in data.audit] == [
        ("archive.recovered", "in-memory test double"),
        ("archive.shown", "C2"),
    ]


def test_a_segment_without_its_ledger_object_is_recovered_without_keys_and_named() -> None:
    _ports, archive, ledger = _archived(1, 2)
    (segment,) = [k for k in archive.objects if k.endswith(".sls")]
    ledger.delete(ledger_key(segment))
    fresh = _lost(archive, ledger)

    report = recover_archive(fresh, "ops")

    data = _data(fresh)
    assert (report.segments, report.keys_found, report.shredded) == (1, 0, 0)
    assert report.segments_without_ledger == [segment]
    assert [(c.data_key_wrapped, c.shredded_at) for c in data.customers.values()] == [
        (None, None),
        (None, None),
    ]


def test_a_ledger_object_copied_from_another_segment_fails_that_segment() -> None:
    _ports, archive, ledger = _archived(1, 2)
    (segment,) = [k for k in archive.objects if k.endswith(".sls")]
    other = segment.replace(segment[-20:-4], "0" * 16)
    ledger.put(
        ledger_key(segment),
        ledger.objects[ledger_key(segment)].replace(segment.encode(), other.encode()),
    )
    fresh = _lost(archive, ledger)

    report = recover_archive(fresh, "ops")

    assert (report.segments, report.failed) == (
        0,
        [(segment, f"key ledger of {segment} names another segment")],
    )
    assert _data(fresh).customers == {}


def test_archive_show_refuses_a_shredded_buyer_and_a_bad_reference() -> None:
    ports, _archive, _ledger = _archived(1)
    customer = _data(ports).customers[1]
    customer.data_key_wrapped, customer.shredded_at = None, NIGHT

    with pytest.raises(Conflict) as shredded:
        show_archived(ports, "C1", "Prüfung", "auditor")
    with pytest.raises(InvalidInput) as bad:
        show_archived(ports, "1", "Prüfung", "auditor")

    assert str(shredded.value) == (
        "buyer C1's archived data was shredded on 2026-02-10; nothing can be read"
    )
    assert str(bad.value) == "customer: give a buyer reference such as C42"


def test_a_master_key_that_does_not_open_the_ledger_stops_the_recovery_recording_nothing() -> None:
    _ports, archive, ledger = _archived(1, 2)
    (segment,) = [k for k in archive.objects if k.endswith(".sls")]
    fresh = fake_ports(
        FakeUnitOfWork(FakeData()),
        archive=archive,
        ledger=ledger,
        keys=FakeKeyProvider("other-master"),
        now=NIGHT,
    )

    with pytest.raises(KeyUnavailable) as stopped:
        recover_archive(fresh, "ops")

    assert str(stopped.value) == (
        f"the master key other-master does not open the keys in the key ledger of {segment} "
        "(wrapped under fake-master); run `shelflife init` with the master key file the "
        "archive's keys were wrapped with"
    )
    assert (_data(fresh).customers, _data(fresh).segments) == ({}, [])
