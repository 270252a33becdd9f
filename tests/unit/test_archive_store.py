"""The local archive folder's housekeeping side: listing every object and unfinished write,
deleting inside the folder only; and the object-key format the orphan check relies on."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shelflife.adapters.archive.store import LocalFolderArchive, StoredObject
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.services.pipeline import customer_of_object_key, object_key_prefix

MOMENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _store(tmp_path: Path) -> LocalFolderArchive:
    store = LocalFolderArchive(tmp_path / "archive")
    store.ensure()
    return store


def test_listing_names_every_object_and_flags_unfinished_writes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("customers/000001/1001-r000001-0a0b0c0d.slf", b"sealed")
    store.put("customers/000000/7-r000002-01020304.slf", b"sealed, longer")
    unfinished = store.root / "customers" / "000000" / ".tmp-abc123"
    unfinished.write_bytes(b"half")
    for path in store.root.rglob("*"):
        if path.is_file():
            os.utime(path, (MOMENT.timestamp(), MOMENT.timestamp()))

    listed = sorted(store.list_objects(), key=lambda o: o.key)

    assert listed == [
        StoredObject("customers/000000/.tmp-abc123", 4, MOMENT, temporary=True),
        StoredObject("customers/000000/7-r000002-01020304.slf", 14, MOMENT, temporary=False),
        StoredObject("customers/000001/1001-r000001-0a0b0c0d.slf", 6, MOMENT, temporary=False),
    ]
    assert store.allows_deletion is True


def test_delete_removes_one_object_and_only_inside_the_folder(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("customers/000000/7-r000001-01020304.slf", b"sealed")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")

    store.delete("customers/000000/7-r000001-01020304.slf")
    store.delete("customers/000000/7-r000001-01020304.slf")  # already gone: nothing to do

    assert list(store.list_objects()) == []
    with pytest.raises(ArchiveUnavailable, match="invalid archive object key"):
        store.delete("../outside.txt")
    assert outside.read_text() == "keep"


def test_listing_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ArchiveUnavailable, match=r"the archive folder .* does not exist"):
        list(LocalFolderArchive(tmp_path / "nowhere").list_objects())


def test_object_keys_name_their_buyer_and_foreign_keys_name_none() -> None:
    key = f"{object_key_prefix(123456)}r000003-0a1b2c3d.slf"

    assert (key, customer_of_object_key(key)) == (
        "customers/000123/123456-r000003-0a1b2c3d.slf",
        123456,
    )
    for foreign in (
        "customers/000124/123456-r000003-0a1b2c3d.slf",  # in another buyer's folder
        "customers/000123/123456-r000003-0a1b2c3d.slf.bak",
        "README.txt",
        "customers/000000/.tmp-abc123",
    ):
        assert (foreign, customer_of_object_key(foreign)) == (foreign, None)


def test_a_byte_range_reads_only_that_part_and_less_at_the_end(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("segments/2026/03/02/090000-0123456789abcdef.sls", b"0123456789")

    key = "segments/2026/03/02/090000-0123456789abcdef.sls"
    assert store.get_range(key, 3, 4) == b"3456"
    assert store.get_range(key, 8, 5) == b"89"
    assert store.get_range(key, 10, 5) == b""
    with pytest.raises(ArchiveUnavailable, match="is missing from"):
        store.get_range("segments/2026/03/02/090000-ffffffffffffffff.sls", 0, 1)
    with pytest.raises(ArchiveUnavailable, match="invalid archive"):
        store.get_range(key, -1, 1)
