"""The segment format: records one after the other, a manifest that describes them (no PII),
and a trailer; a truncated or damaged segment is refused, never half-read. The sealed record
binds its buyer and revision."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from shelflife.adapters.archive.segments import (
    SEGMENT_MAGIC,
    RecordEntry,
    is_segment_key,
    pack_segment,
    read_manifest,
    segment_key,
)
from shelflife.adapters.keys.envelope import new_data_key, open_record, seal_record
from shelflife.domain.errors import ArchiveCorrupt

AT = datetime(2026, 3, 2, 1, 30, 5, tzinfo=UTC)


def _segment() -> tuple[bytes, list[RecordEntry]]:
    return pack_segment([(7, 1, "mk-1", b"first record"), (9, 3, "mk-1", b"second")], AT)


def test_manifest_gives_each_records_offset_length_and_digest() -> None:
    blob, entries = _segment()

    assert entries == [
        RecordEntry(7, 1, "mk-1", 4, 12, hashlib.sha256(b"first record").hexdigest()),
        RecordEntry(9, 3, "mk-1", 16, 6, hashlib.sha256(b"second").hexdigest()),
    ]
    assert read_manifest(blob) == entries
    assert [blob[e.offset : e.offset + e.length] for e in entries] == [b"first record", b"second"]
    assert blob.startswith(SEGMENT_MAGIC)
    assert blob.endswith(SEGMENT_MAGIC)


@pytest.mark.parametrize("keep", [0, 4, 20, -20, -1])
def test_a_truncated_segment_is_refused(keep: int) -> None:
    blob, _ = _segment()

    with pytest.raises(ArchiveCorrupt) as refused:
        read_manifest(blob[:keep])

    assert str(refused.value) == "archive segment is truncated or not a shelflife segment"


def test_a_damaged_manifest_is_refused() -> None:
    blob, _ = _segment()
    at = blob.index(b'"records"')

    with pytest.raises(ArchiveCorrupt, match="archive segment manifest is damaged"):
        read_manifest(blob[:at] + b"X" + blob[at + 1 :])


@pytest.mark.parametrize(
    "forge",
    [
        lambda manifest: manifest.replace(b",4,1,", b",1e999,1,"),  # int() of infinity
        lambda manifest: manifest.replace(
            b'"records":', b'"x":' + b"[" * 100_000 + b"]" * 100_000 + b',"records":'
        ),
    ],
    ids=["infinite offset", "deeply nested"],
)
def test_a_forged_manifest_python_cannot_read_is_refused_as_damaged(
    forge: Callable[[bytes], bytes],
) -> None:
    blob, _ = pack_segment([(7, 1, "mk-1", b"r")], AT)
    start = len(SEGMENT_MAGIC) + 1
    manifest = forge(blob[start:-12])
    forged = blob[:start] + manifest + struct.pack(">Q4s", len(manifest), SEGMENT_MAGIC)

    with pytest.raises(ArchiveCorrupt, match="archive segment manifest is damaged"):
        read_manifest(forged)


def test_a_manifest_pointing_past_the_records_is_refused() -> None:
    blob, _ = pack_segment([(7, 1, "mk-1", b"r")], AT)
    forged = blob.replace(b',4,1,"', b',4,99,"')

    with pytest.raises(ArchiveCorrupt, match="archive segment manifest is damaged"):
        read_manifest(forged)


def test_segment_keys_are_new_each_time_and_recognised() -> None:
    first, second = segment_key(AT), segment_key(AT)

    assert first != second
    assert first.startswith("segments/2026/03/02/013005-")
    assert is_segment_key(first)
    assert not is_segment_key("segments/2026/03/02/x.sls")
    assert not is_segment_key("customers/000000/7-r000001-0a0b0c0d.slf")


def test_a_record_opens_only_as_its_own_buyers_and_revision() -> None:
    key = new_data_key()
    record = seal_record(key, "mk-1", 7, 2, b"snapshot bytes")
    digest = hashlib.sha256(record).hexdigest()

    assert open_record(record, key, where="s@4", customer_id=7, revision=2, sha256=digest) == (
        b"snapshot bytes"
    )
    with pytest.raises(ArchiveCorrupt, match="does not belong to this buyer"):
        open_record(record, key, where="s@4", customer_id=8, revision=2, sha256=digest)
    with pytest.raises(ArchiveCorrupt, match="is not the recorded one"):
        open_record(record, key, where="s@4", customer_id=7, revision=1, sha256=digest)
    with pytest.raises(ArchiveCorrupt, match="is not the recorded one"):
        open_record(record, key, where="s@4", customer_id=7, revision=2, sha256="0" * 64)
    with pytest.raises(ArchiveCorrupt, match="failed authentication"):
        open_record(record, new_data_key(), where="s@4", customer_id=7, revision=2, sha256=digest)


def test_a_relabelled_record_header_fails_authentication() -> None:
    key = new_data_key()
    record = seal_record(key, "mk-1", 7, 2, b"snapshot bytes")
    relabelled = record.replace(b'"customer_id": 7', b'"customer_id": 8')

    with pytest.raises(ArchiveCorrupt, match="failed authentication"):
        open_record(
            relabelled,
            key,
            where="s@4",
            customer_id=8,
            revision=2,
            sha256=hashlib.sha256(relabelled).hexdigest(),
        )


def test_a_record_carries_no_key_material_and_no_plaintext() -> None:
    key = new_data_key()
    record = seal_record(key, "mk-1", 7, 2, b"Mustermann")

    assert b"Mustermann" not in record
    assert key not in record
    assert b"wrapped" not in record
