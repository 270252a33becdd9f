"""The second location: a write counts only when both copies are written and read back
equal; reads fall back to the replica when the primary cannot deliver."""

from __future__ import annotations

import logging

import pytest

from shelflife.adapters.archive.replicated import ReplicatedArchive
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, Forbidden
from tests.support.fakes import (
    AlteredGet,
    FailingPut,
    InMemoryArchive,
    UnreachableArchive,
    WriteOnce,
)

KEY = "segments/000001.seg"
DATA = b"sealed bytes of many buyers"


def test_put_writes_both_copies() -> None:
    primary, replica = InMemoryArchive(), InMemoryArchive()

    ReplicatedArchive(primary, replica).put(KEY, DATA)

    assert primary.objects == replica.objects == {KEY: DATA}


@pytest.mark.parametrize(
    ("broken", "kind", "message"),
    [
        (
            FailingPut,
            ArchiveUnavailable,
            "replica archive failing test double: archive offline (test double)",
        ),
        (
            AlteredGet,
            ArchiveCorrupt,
            "replica archive corrupting test double: the read-back differs from what was written",
        ),
    ],
)
def test_a_replica_that_fails_or_reads_back_other_bytes_fails_the_put(
    broken: type[FailingPut | AlteredGet], kind: type[Exception], message: str
) -> None:
    primary = InMemoryArchive()

    with pytest.raises(kind) as info:
        ReplicatedArchive(primary, broken(InMemoryArchive())).put(KEY, DATA)

    assert str(info.value) == message


def test_a_failing_primary_fails_the_put_naming_the_primary() -> None:
    with pytest.raises(ArchiveUnavailable) as info:
        ReplicatedArchive(UnreachableArchive(), InMemoryArchive()).put(KEY, DATA)

    assert str(info.value) == (
        "primary archive unreachable test double: archive unreachable (test double)"
    )


def test_reads_fall_back_to_the_replica_and_say_so_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica = InMemoryArchive()
    replica.put(KEY, DATA)
    store = ReplicatedArchive(UnreachableArchive(), replica)

    with caplog.at_level(logging.WARNING, logger="shelflife"):
        whole = store.get(KEY)
        part = store.get_range(KEY, 7, 5)

    assert (whole, part) == (DATA, DATA[7:12])
    assert [r.getMessage() for r in caplog.records] == [
        f"archive object {KEY} could not be read from the primary unreachable test double "
        "(ArchiveUnavailable); reading the replica in-memory test double"
    ] * 2


def test_a_short_primary_range_falls_back_to_the_replica() -> None:
    primary, replica = InMemoryArchive(), InMemoryArchive()
    primary.objects[KEY] = DATA[:5]  # truncated
    replica.objects[KEY] = DATA

    assert ReplicatedArchive(primary, replica).get_range(KEY, 3, 10) == DATA[3:13]


def test_reading_fails_only_when_both_copies_fail_naming_both() -> None:
    store = ReplicatedArchive(UnreachableArchive(), InMemoryArchive())

    with pytest.raises(ArchiveUnavailable) as info:
        store.get(KEY)

    assert str(info.value) == (
        f"archive object {KEY} cannot be read from either copy: primary: archive unreachable "
        f"(test double); replica: archive object {KEY} not found (test double)"
    )


def test_deletion_removes_both_copies_and_is_refused_when_either_is_write_once() -> None:
    primary, replica = InMemoryArchive(), InMemoryArchive()
    store = ReplicatedArchive(primary, replica)
    store.put(KEY, DATA)
    locked = ReplicatedArchive(InMemoryArchive(), WriteOnce(InMemoryArchive()))

    store.delete(KEY)

    assert (primary.objects, replica.objects) == ({}, {})
    assert (store.allows_deletion, locked.allows_deletion) == (True, False)
    with pytest.raises(Forbidden):
        locked.delete(KEY)


def test_listing_and_description_name_the_primary_and_the_replica() -> None:
    primary = InMemoryArchive()
    store = ReplicatedArchive(primary, UnreachableArchive())
    primary.put(KEY, DATA)

    assert [o.key for o in store.list_objects()] == [KEY]
    assert store.describe() == "in-memory test double (replica unreachable test double)"
