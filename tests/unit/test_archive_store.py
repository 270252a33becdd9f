"""The local archive folder's housekeeping side: listing every object and unfinished write,
deleting inside the folder only; and the object-key format the orphan check relies on."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shelflife.adapters.archive import store as store_module
from shelflife.adapters.archive.store import LocalFolderArchive, StoredObject
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable
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


def test_get_range_reads_only_the_slice_asked_for(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = bytes(range(256)) * 4
    store.put("segments/s1.seg", data)

    assert store.get_range("segments/s1.seg", 0, 3) == data[:3]
    assert store.get_range("segments/s1.seg", 500, 100) == data[500:600]
    assert store.get_range("segments/s1.seg", len(data) - 1, 1) == data[-1:]
    assert store.get_range("segments/s1.seg", 9, 0) == b""


def test_get_range_past_the_end_is_corrupt_and_a_missing_object_unavailable(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    store.put("segments/s1.seg", b"0123456789")

    with pytest.raises(ArchiveCorrupt) as short:
        store.get_range("segments/s1.seg", 8, 3)
    with pytest.raises(ArchiveUnavailable) as missing:
        store.get_range("segments/s2.seg", 0, 1)
    with pytest.raises(ArchiveUnavailable, match="invalid archive object key"):
        store.get_range("../outside.txt", 0, 1)

    assert str(short.value) == (
        f"archive object segments/s1.seg in {store.root} ends before the requested range"
    )
    assert str(missing.value) == f"archive object segments/s2.seg is missing from {store.root}"


def test_delete_many_removes_the_batch_and_syncs_each_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    keys = [f"invoices/00000{n // 3}/{n}.pdf" for n in range(7)]
    for key in keys:
        store.put(key, b"%PDF")
    store.put("invoices/000001/kept.pdf", b"%PDF")
    synced: list[Path] = []
    monkeypatch.setattr(store_module, "_fsync_dir", synced.append)

    store.delete_many([*keys, "invoices/000009/never-written.pdf"])

    left = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*.pdf"))
    assert left == ["invoices/000001/kept.pdf"]
    root = store.root / "invoices"
    assert synced == [root / "000000", root / "000001", root / "000002"]


def test_delete_many_refuses_a_key_outside_the_folder_before_deleting_any(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    store.put("invoices/000000/1.pdf", b"%PDF")
    (tmp_path / "outside.pdf").write_bytes(b"%PDF")

    with pytest.raises(ArchiveUnavailable):
        store.delete_many(["invoices/000000/1.pdf", "../outside.pdf"])

    assert store.get("invoices/000000/1.pdf") == b"%PDF"
    assert (tmp_path / "outside.pdf").exists()
