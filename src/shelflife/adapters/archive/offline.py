"""The offline copy: a folder written by `shelflife archive export` (e.g. on removable media),
read as a last resort when no archive location can deliver an object.

Nothing is ever written to it by the nightly run; retrieval checks what it reads from there
against the database's index (digest, buyer, revision), exactly as it checks the archive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from shelflife.adapters.archive.replicated import ReplicatedArchive
from shelflife.adapters.archive.store import (
    LocalFolderArchive,
    Preparable,
    check_recorded,
    delete_objects,
    read_recorded,
)
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable
from shelflife.domain.ports import ArchiveStore, StoredObject

log = logging.getLogger(__name__)

OFFLINE_SETTING = "SHELFLIFE_ARCHIVE_OFFLINE_DIR"


class OfflineFallback:
    """`archive` for everything, and the export folder `offline` for reads it cannot serve."""

    def __init__(self, archive: ArchiveStore, offline: Path) -> None:
        self.archive = archive
        self.offline = LocalFolderArchive(offline, OFFLINE_SETTING)

    def ensure(self) -> None:
        if isinstance(self.archive, Preparable):
            self.archive.ensure()

    def put(self, key: str, data: bytes) -> None:
        self.archive.put(key, data)

    def get(self, key: str) -> bytes:
        return self._read(key, lambda store: store.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._read(key, lambda store: store.get_range(key, start, length))

    def read_recorded(self, key: str, sha256: str, start: int | None, length: int | None) -> bytes:
        """The recorded bytes: damaged or replaced ones in the archive fall back to the
        offline copy like ones that cannot be read."""
        return self._read(
            key,
            lambda store: check_recorded(
                store, key, sha256, read_recorded(store, key, sha256, start, length)
            ),
        )

    def _read(self, key: str, read: Callable[[ArchiveStore], bytes]) -> bytes:
        try:
            return read(self.archive)
        except (ArchiveUnavailable, ArchiveCorrupt) as archive_failure:
            log.warning(
                "archive object %s could not be read from %s (%s); reading the offline copy %s",
                key,
                self.archive.describe(),
                type(archive_failure).__name__,
                self.offline.describe(),
            )
            try:
                return read(self.offline)
            except (ArchiveUnavailable, ArchiveCorrupt) as offline_failure:
                raise ArchiveUnavailable(
                    f"{archive_failure}; offline copy: {offline_failure}"
                ) from None

    def describe(self) -> str:
        return f"{self.archive.describe()} (offline copy {self.offline.describe()})"

    def list_objects(self) -> Iterator[StoredObject]:
        return self.archive.list_objects()

    @property
    def allows_deletion(self) -> bool:
        return self.archive.allows_deletion

    def delete(self, key: str) -> None:
        self.archive.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        delete_objects(self.archive, keys)


def locations(store: ArchiveStore) -> list[tuple[str, ArchiveStore]]:
    """The places the nightly run writes every object to, by role (`primary`, `replica`):
    what a verification checks one by one (the offline copy is checked with `--from`)."""
    if isinstance(store, OfflineFallback):
        return locations(store.archive)
    if isinstance(store, ReplicatedArchive):
        return [("primary", store.primary), ("replica", store.replica)]
    return [("primary", store)]
