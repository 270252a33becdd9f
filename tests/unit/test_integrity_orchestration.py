"""Verification, its nightly sample and the legacy migration on in-memory fakes: which objects a
sample takes, what a damaged copy does to masking, migration on a write-once store.
No database; milliseconds."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shelflife.adapters.archive.replicated import ReplicatedArchive
from shelflife.adapters.keys.envelope import new_data_key, seal
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import ArchiveStore, CopyRef, Limits, Ports
from shelflife.services.integrity import migrate_legacy, verify_archive
from shelflife.services.ledger import shred_customers
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from tests.support.fakes import (
    FakeCustomer,
    FakeCustomers,
    FakeData,
    FakeKeyProvider,
    FakeOrder,
    FakeUnitOfWork,
    InMemoryArchive,
    Wrapping,
    WriteOnce,
    fake_ports,
)

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
ARCHIVE_NIGHT = SHIPPED + timedelta(days=28, hours=14)
"""The local night (Europe/Berlin) 29 calendar days after shipping: archived, not masked."""
NIGHT = SHIPPED + timedelta(days=31)


def _ports(
    n: int, archive: ArchiveStore | None = None, sample: float = 0.0, **fields: Any
) -> Ports:
    data = FakeData()
    for cid in range(1, n + 1):
        data.customers[cid] = replace(
            FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}"), **fields
        )
        data.orders[cid] = FakeOrder(cid, f"30{cid}-1234567-1234567", cid, shipped_at=SHIPPED)
    limits = Limits(batch_size=2, verify_sample_percent=sample)
    return fake_ports(FakeUnitOfWork(data), archive=archive, now=NIGHT, limits=limits)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def test_a_sample_takes_the_least_recently_verified_segments_first() -> None:
    ports = _ports(5)  # batch size 2: segments of 2, 2 and 1 buyers
    run_retention(ports, NIGHT)
    first, second, third = (s.object_key for s in _data(ports).segments)

    report = verify_archive(ports, 34)  # 34 % of 3, rounded up: 2

    assert (report.objects_total, report.objects_checked, report.records_checked) == (3, 2, 4)
    assert set(_data(ports).verified) == {first, second}
    assert verify_archive(ports, 34).records_checked == 3  # the third (1), then the first (2)
    assert set(_data(ports).verified) == {first, second, third}


def test_the_nightly_sample_renews_a_damaged_unmasked_copy_before_masking() -> None:
    archive = InMemoryArchive()
    ports = _ports(2, archive, sample=100)
    run_retention(ports, ARCHIVE_NIGHT)
    ((_cid, damaged),) = [(c, r) for c, r in _data(ports).copies if c == 2]
    assert damaged.offset is not None
    assert damaged.length is not None
    blob = bytearray(archive.objects[damaged.object_key])
    blob[damaged.offset + damaged.length - 1] ^= 0x01
    archive.objects[damaged.object_key] = bytes(blob)

    report = run_retention(ports, NIGHT)

    assert (report.verified_objects, report.integrity_problems) == (1, 2)
    assert (report.archived, report.masked) == (1, 2)
    copies = _data(ports).copies
    assert [(c, r.object_key == damaged.object_key) for c, r in copies] == [(1, True), (2, False)]
    assert [c.last_name for c in _data(ports).customers.values()] == [MASKED_TEXT] * 2
    assert [(p.customer_id, p.problem) for p in ports.uow.archive_copies.open_problems()] == [
        (None, "SHA-256 differs from the one recorded when it was written"),
        (2, "record SHA-256 differs from the index"),
    ]


def test_a_damaged_copy_of_a_masked_buyer_stays_recorded_and_reported() -> None:
    archive = InMemoryArchive()
    ports = _ports(1, archive)
    run_retention(ports, NIGHT)
    ((_cid, copy),) = _data(ports).copies
    assert copy.offset is not None
    blob = bytearray(archive.objects[copy.object_key])
    blob[copy.offset + 40] ^= 0x01
    archive.objects[copy.object_key] = bytes(blob)

    report = verify_archive(ports, 100)

    assert report.reset_for_archiving == []
    assert [(p.customer, p.problem) for p in report.problems] == [
        (None, "SHA-256 differs from the one recorded when it was written"),
        ("C1", "record SHA-256 differs from the index"),
    ]
    assert _data(ports).copies == [(1, copy)]


def _legacy(ports: Ports, archive: InMemoryArchive, *ids: int) -> list[str]:
    """Legacy whole-object copies of these masked buyers, as the code before segments wrote
    them (their data keys only in the objects' headers); returns the object keys."""
    keys = FakeKeyProvider()
    data = _data(ports)
    snaps = FakeCustomers(data).snapshots(list(ids), dict.fromkeys(ids, 1))
    written = []
    for cid in ids:
        data_key = new_data_key()
        blob = seal(data_key, keys.wrap(data_key), cid, 1, snaps[cid].to_bytes())
        key = f"customers/000000/{cid}-r000001-00ff.slf"
        archive.objects[key] = blob
        data.copies.append((cid, CopyRef(key, 1, hashlib.sha256(blob).hexdigest())))
        data.customers[cid].archived_revision = 1
        data.customers[cid].masked_at = NIGHT - timedelta(days=1)
        written.append(key)
    return written


class _KilledOnSecondPut(Wrapping):
    puts = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        if self.puts == 2:
            raise Killed
        super().put(key, data)


class Killed(BaseException):
    """Stands in for the process being killed."""


def test_a_killed_migration_keeps_its_committed_batches_and_a_rerun_finishes() -> None:
    archive = InMemoryArchive()
    dying = _KilledOnSecondPut(archive)
    ports = _ports(3, dying)  # batch size 2: two batches
    legacy = _legacy(ports, archive, 1, 2, 3)

    with pytest.raises(Killed):
        migrate_legacy(ports, "ops")

    assert [r.offset is not None for _c, r in _data(ports).copies] == [True, True, False]
    assert sorted(archive.objects) == sorted([legacy[2], _data(ports).segments[0].object_key])
    report = migrate_legacy(ports, "ops")
    assert (report.migrated, report.deleted, report.remaining) == (1, 1, 0)
    assert all(r.offset is not None for _c, r in _data(ports).copies)


def test_a_damaged_legacy_copy_is_not_migrated_and_stays_readable_as_it_was() -> None:
    archive = InMemoryArchive()
    ports = _ports(2, archive)
    first, second = _legacy(ports, archive, 1, 2)
    archive.objects[second] = archive.objects[second][:-1] + b"X"

    report = migrate_legacy(ports, "ops")

    assert (report.migrated, report.failed, report.remaining) == (1, 1, 1)
    assert report.failure_reasons == [
        f"archive copy {second} is not the recorded one; nothing was changed (check the archive "
        "store for a replaced object)"
    ]
    assert first not in archive.objects
    assert [r.object_key for _c, r in _data(ports).copies][1] == second


def test_migration_on_a_write_once_store_moves_copies_and_leaves_the_objects() -> None:
    archive = InMemoryArchive()
    ports = _ports(2, WriteOnce(archive))
    _legacy(ports, archive, 1, 2)

    report = migrate_legacy(ports, "ops")

    assert (report.migrated, report.segments, report.deleted, report.left_in_place) == (2, 1, 0, 2)
    assert report.remaining == 0
    assert all(r.offset is not None for _c, r in _data(ports).copies)
    assert len(archive.objects) == 3  # both legacy objects and the segment
    assert {c.data_key_master_id for c in _data(ports).customers.values()} == {"fake-master"}
    retrieve_order(ports, "301-1234567-1234567", "Rücksendung", "anna", NIGHT)
    assert _data(ports).customers[1].last_name == "Buyer1"


def test_a_replica_that_cannot_deliver_is_a_problem_of_the_object_not_of_its_buyers() -> None:
    primary, replica = InMemoryArchive(), InMemoryArchive()
    ports = _ports(2, ReplicatedArchive(primary, replica))
    run_retention(ports, ARCHIVE_NIGHT)
    replica.objects.clear()

    report = verify_archive(ports, 100)

    (segment,) = _data(ports).segments
    assert [(p.location, p.customer, p.problem) for p in report.problems] == [
        (
            "replica",
            None,
            f"cannot be read: archive object {segment.object_key} not found (test double)",
        )
    ]
    assert report.reset_for_archiving == []
    assert [c for c, _r in _data(ports).copies] == [1, 2]


def test_a_shredded_buyers_records_are_checked_up_to_their_header_and_are_no_problem() -> None:
    archive = InMemoryArchive()
    ports = _ports(2, archive)
    run_retention(ports, NIGHT)
    with ports.uow as uow:
        assert shred_customers(ports, uow, [1], NIGHT, "erasure") == [1]
        uow.commit()

    sound = verify_archive(ports, 100)
    ((_cid, record),) = [(c, r) for c, r in _data(ports).copies if c == 1]
    assert record.offset is not None
    blob = bytearray(archive.objects[record.object_key])
    blob[record.offset + 9] ^= 0x01  # inside the record's header: its digest no longer matches
    archive.objects[record.object_key] = bytes(blob)
    damaged = verify_archive(ports, 100)

    assert (sound.records_checked, sound.problems) == (2, [])
    assert [(p.customer, p.problem) for p in damaged.problems] == [
        (None, "SHA-256 differs from the one recorded when it was written"),
        ("C1", "record SHA-256 differs from the index"),
    ]
