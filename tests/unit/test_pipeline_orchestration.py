"""Archive -> verify -> mask -> re-mask on in-memory fakes: the order of the steps, what a
failure leaves behind, retries, refused masks, the run's audit entries and the audit purge.
No database; milliseconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import pytest

from shelflife.domain.audit import (
    AUDIT_RETENTION,
    GENESIS_HASH,
    PURGE_ACTION,
    next_entry,
    verify_chain,
)
from shelflife.domain.errors import ArchiveUnavailable, KeyUnavailable
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import ArchiveStore, Ports
from shelflife.services.pipeline import RUN_FAILED, RUN_FINISHED, dry_run, run_retention
from tests.support.fakes import (
    AlteredGet,
    Counting,
    FailingPut,
    FakeCustomer,
    FakeCustomers,
    FakeData,
    FakeUnitOfWork,
    InMemoryArchive,
    MissingKey,
    TamperedRecord,
    fake_ports,
)

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)
"""Past the 29 days before archiving and the 30 days before masking."""
DAY = timedelta(days=1)


def _ports(*customers: FakeCustomer, archive: ArchiveStore | None = None) -> Ports:
    data = FakeData()
    for c in customers:
        data.customers[c.id] = c
    return fake_ports(FakeUnitOfWork(data), archive=archive, now=NIGHT)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def _shipped(cid: int, **fields: Any) -> FakeCustomer:
    return replace(FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}"), **fields)


def test_a_run_archives_verifies_and_then_masks_in_batches() -> None:
    ports = _ports(*(_shipped(cid) for cid in (1, 2, 3)))  # batch size 2: two batches

    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.masked, report.archive_failed, report.shops) == (3, 3, 0, 1)
    assert [c.last_name for c in data.customers.values()] == [MASKED_TEXT] * 3
    assert [(cid, ref.revision) for cid, ref in data.copies] == [(1, 1), (2, 1), (3, 1)]
    assert {c.data_key_master_id for c in data.customers.values()} == {"fake-master"}
    assert [(h.customer_id, h.event) for h in data.history] == [
        (1, "masked"),
        (2, "masked"),
        (3, "masked"),
    ]


def test_a_copy_that_does_not_read_back_is_never_masked() -> None:
    ports = _ports(_shipped(1), archive=AlteredGet(InMemoryArchive()))

    report = run_retention(ports, NIGHT)

    buyer = _data(ports).customers[1]
    assert (report.archived, report.archive_failed, report.masked) == (0, 1, 0)
    assert (buyer.last_name, buyer.masked_at, buyer.archived_revision) == ("Buyer1", None, None)
    assert (buyer.archive_failed_at, _data(ports).copies) == (NIGHT, [])
    assert report.archive_failure_reasons == [
        "read-back of the archive copy differs from what was written"
    ]


def test_a_failed_archive_is_retried_after_a_day_not_the_same_night() -> None:
    store = InMemoryArchive()
    failing = _ports(_shipped(1), archive=FailingPut(store))
    assert run_retention(failing, NIGHT).archive_failed == 1
    working = replace(failing, archive=store)

    same_night = run_retention(working, NIGHT + timedelta(hours=1))
    next_night = run_retention(working, NIGHT + timedelta(days=1))

    assert (same_night.archived, same_night.retried, same_night.masked) == (0, 0, 0)
    assert (next_night.archived, next_night.retried, next_night.masked) == (1, 1, 1)
    assert _data(working).customers[1].archive_failed_at is None


def test_masking_is_refused_when_the_data_key_is_sealed_under_another_master_key() -> None:
    archived = _shipped(
        1, archived_revision=1, data_key_wrapped=b"old:key", data_key_master_id="old-master"
    )
    ports = _ports(archived)

    report = run_retention(ports, NIGHT)

    assert (report.archived, report.masked, report.mask_refused) == (0, 0, 1)
    assert _data(ports).customers[1].last_name == "Buyer1"


def test_masking_is_refused_when_the_recorded_key_id_matches_but_does_not_open() -> None:
    forged = _shipped(
        1, archived_revision=1, data_key_wrapped=b"bogus", data_key_master_id="fake-master"
    )
    ports = _ports(forged)

    report = run_retention(ports, NIGHT)

    assert (report.masked, report.mask_refused) == (0, 1)
    assert _data(ports).customers[1].masked_at is None


def test_a_retrieved_buyer_is_archived_again_and_remasked_after_30_days() -> None:
    ports = _ports(_shipped(1))
    run_retention(ports, NIGHT)
    buyer = _data(ports).customers[1]
    buyer.last_name, buyer.retrieved_at, buyer.pii_revision = "Buyer1", NIGHT, 2

    report = run_retention(ports, NIGHT + timedelta(days=31))

    assert (report.archived, report.remasked, report.masked) == (1, 1, 0)
    assert _data(ports).customers[1].last_name == MASKED_TEXT


def test_a_finished_run_is_recorded_and_audited_with_its_counts_and_actor() -> None:
    ports = _ports(_shipped(1))

    run_retention(ports, NIGHT, actor="ops-anna")

    data = _data(ports)
    run = data.runs[1]
    assert (run.as_of, run.finished_at, run.error) == (NIGHT, NIGHT, None)
    assert [(e.actor, e.action, e.subject, dict(e.detail)) for e in data.audit] == [
        (
            "ops-anna",
            RUN_FINISHED,
            "1",
            {
                "as_of": NIGHT.isoformat(),
                "shops": 1,
                "archived": 1,
                "archive_failed": 0,
                "retried": 0,
                "masked": 1,
                "remasked": 0,
                "mask_refused": 0,
                "shredded": 0,
                "verified_objects": 0,
                "integrity_problems": 0,
            },
        )
    ]


class _MaskFails(FakeCustomers):
    def mask(self, ids: object, at: object, event: object) -> int:
        raise ArchiveUnavailable("archive went away mid-run (test double)")


class _UowWhoseMaskFails(FakeUnitOfWork):
    def __enter__(self) -> Self:
        entered = super().__enter__()
        assert self._working is not None
        self.customers = _MaskFails(self._working)
        return entered


def test_a_run_that_stops_records_and_audits_why_and_keeps_the_archive_work() -> None:
    """Buyer 2 was archived the night before and is due for masking tonight; buyer 1 is due
    for archiving only (not yet 30 days): its batch commits before the mask step fails."""
    data = FakeData()
    data.customers[1] = _shipped(1, closed_at=NIGHT - timedelta(days=29, hours=12))
    data.customers[2] = _shipped(2, closed_at=NIGHT - timedelta(days=30, hours=12))
    before = fake_ports(FakeUnitOfWork(data), now=NIGHT)
    night_before = run_retention(before, NIGHT - DAY)
    assert (night_before.archived, night_before.masked) == (1, 0)
    ports = fake_ports(_UowWhoseMaskFails(_data(before)), now=NIGHT)

    with pytest.raises(ArchiveUnavailable):
        run_retention(ports, NIGHT)

    committed = _data(ports)
    why = "archive went away mid-run (test double)"
    assert (committed.runs[2].error, committed.runs[2].counts["archived"]) == (why, 1)
    assert [(e.actor, e.action, e.detail.get("error")) for e in committed.audit] == [
        ("shelflife", RUN_FINISHED, None),
        ("shelflife", RUN_FAILED, why),
    ]
    assert [(c.archived_revision, c.masked_at) for c in committed.customers.values()] == [
        (1, None),
        (1, None),
    ]


def test_a_mask_that_fails_in_the_archive_batch_takes_the_batch_back_with_it() -> None:
    """Buyers masked in their own archive batch: a failure there leaves neither the copy's
    record nor a mask; the next run archives them again."""
    data = FakeData()
    data.customers[1] = _shipped(1)
    ports = fake_ports(_UowWhoseMaskFails(data), now=NIGHT)

    with pytest.raises(ArchiveUnavailable):
        run_retention(ports, NIGHT)

    committed = _data(ports)
    assert committed.runs[1].counts["archived"] == 0
    assert (committed.customers[1].archived_revision, committed.customers[1].masked_at) == (
        None,
        None,
    )
    assert committed.copies == []


def test_a_retry_in_a_batch_that_is_taken_back_is_not_counted() -> None:
    """Buyer 1's archive failed the night before; tonight its retry's batch fails before its
    commit (the mask in the batch fails): nothing was retried, and the record says so."""
    store = InMemoryArchive()
    failing = _ports(_shipped(1), archive=FailingPut(store))
    assert run_retention(failing, NIGHT).archive_failed == 1
    ports = fake_ports(_UowWhoseMaskFails(_data(failing)), archive=store, now=NIGHT + DAY)

    with pytest.raises(ArchiveUnavailable):
        run_retention(ports, NIGHT + DAY)

    committed = _data(ports)
    assert [(r.counts["retried"], r.counts["archived"]) for r in committed.runs.values()] == [
        (0, 0),
        (0, 0),
    ]
    assert committed.customers[1].archive_failed_at is not None  # still due for its retry


def test_a_missing_master_key_stops_the_run_before_anything_is_written() -> None:
    data = FakeData()
    data.customers[1] = _shipped(1)
    ports = fake_ports(FakeUnitOfWork(data), keys=MissingKey(), now=NIGHT)

    with pytest.raises(KeyUnavailable):
        run_retention(ports, NIGHT)

    assert (_data(ports).runs, _data(ports).audit) == ({}, [])


def test_a_dry_run_counts_what_the_run_would_do_and_writes_nothing() -> None:
    ports = _ports(_shipped(1), _shipped(2, archive_failed_at=NIGHT - timedelta(days=2)))
    before = _data(ports)

    report = dry_run(ports, NIGHT)

    assert (report.archived, report.retried, report.masked, report.dry_run) == (2, 1, 2, True)
    assert _data(ports) is before
    assert (before.runs, before.audit) == ({}, [])


def _audit_at(data: FakeData, *moments: datetime) -> None:
    for moment in moments:
        last = data.audit[-1] if data.audit else None
        data.audit.append(next_entry(last, moment, "anna", "order.retrieved", "302-1"))


def test_a_run_purges_audit_entries_past_the_retention_and_the_chain_still_verifies() -> None:
    ports = _ports()
    cutoff = NIGHT - AUDIT_RETENTION
    hour = timedelta(hours=1)
    _audit_at(_data(ports), cutoff - timedelta(days=30), cutoff - hour, cutoff + hour, NIGHT - hour)

    run_retention(ports, NIGHT)

    audit = _data(ports).audit
    assert [(e.seq, e.at, e.action) for e in audit] == [
        (3, cutoff + hour, "order.retrieved"),
        (4, NIGHT - hour, "order.retrieved"),
        (5, NIGHT, RUN_FINISHED),
        (6, NIGHT, PURGE_ACTION),
    ]
    purge = audit[-1]
    assert dict(purge.detail) == {
        "anchor": audit[0].previous_hash,
        "through_seq": 2,
        "removed": 2,
        "older_than": cutoff.isoformat(),
    }
    assert verify_chain(audit, anchor=str(purge.detail["anchor"])).intact is True
    assert verify_chain(audit, anchor=GENESIS_HASH).intact is False


def test_a_run_with_nothing_past_the_retention_purges_nothing() -> None:
    ports = _ports()
    _audit_at(_data(ports), NIGHT - AUDIT_RETENTION + timedelta(hours=1))

    run_retention(ports, NIGHT)

    assert [e.action for e in _data(ports).audit] == ["order.retrieved", RUN_FINISHED]


def test_a_purge_of_every_older_entry_leaves_a_verifiable_chain_of_one() -> None:
    ports = _ports()
    _audit_at(_data(ports), NIGHT - AUDIT_RETENTION - timedelta(days=1))
    purged = _data(ports).audit

    run_retention(ports, NIGHT)

    audit = _data(ports).audit
    assert [e.action for e in audit] == [RUN_FINISHED, PURGE_ACTION]
    assert audit[-1].detail["anchor"] == purged[0].hash
    assert verify_chain(audit, anchor=purged[0].hash).intact is True


def test_each_batch_is_written_as_one_segment_and_read_back_once() -> None:
    store = Counting(InMemoryArchive())
    ports = _ports(*(_shipped(cid) for cid in (1, 2, 3)), archive=store)  # batch size 2

    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.masked) == (3, 3)
    assert (len(store.puts), store.gets, store.ranges) == (2, store.puts, [])
    assert [(s.object_key, s.record_count) for s in data.segments] == [
        (store.puts[0], 2),
        (store.puts[1], 1),
    ]
    assert [(cid, ref.object_key) for cid, ref in data.copies] == [
        (1, store.puts[0]),
        (2, store.puts[0]),
        (3, store.puts[1]),
    ]


def test_a_damaged_record_fails_only_its_buyer_and_the_others_in_the_segment_count() -> None:
    ports = _ports(_shipped(1), _shipped(2), archive=TamperedRecord(InMemoryArchive(), 2))

    report = run_retention(ports, NIGHT)

    data = _data(ports)
    assert (report.archived, report.archive_failed, report.masked) == (1, 1, 1)
    assert [cid for cid, _ref in data.copies] == [1]
    assert (data.customers[1].last_name, data.customers[2].last_name) == (MASKED_TEXT, "Buyer2")
    assert data.customers[2].archive_failure == (
        "read-back of the archive copy differs from what was written"
    )
    assert len(data.segments) == 1


def test_a_segment_whose_every_record_fails_is_not_recorded() -> None:
    ports = _ports(_shipped(1), archive=TamperedRecord(InMemoryArchive(), 1))

    report = run_retention(ports, NIGHT)

    assert (report.archived, report.archive_failed) == (0, 1)
    assert (_data(ports).segments, _data(ports).copies) == ([], [])
