"""Two stores as one: every object is written to a primary and a replica, in another place.

A write counts only when both copies are written and read back equal to what was sent, so an
object the nightly run records as archived exists twice; a failing replica fails the write
(the buyer is then not archived tonight and retried like any failed write). Reads go to the
primary and fall back to the replica when the primary cannot deliver the object, or (for a
copy the database recorded) delivers other bytes than the recorded ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from shelflife.adapters.archive.store import (
    Preparable,
    check_recorded,
    delete_objects,
    read_recorded,
)
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable
from shelflife.domain.ports import ArchiveStore, StoredObject

log = logging.getLogger(__name__)


class ReplicatedArchive:
    """`primary` and `replica` behind the one archive interface.

    Listing shows the primary's objects (the replica holds the same ones); deletion removes
    both copies and is allowed only where both stores allow it.
    """

    def __init__(self, primary: ArchiveStore, replica: ArchiveStore) -> None:
        self.primary = primary
        self.replica = replica

    def ensure(self) -> None:
        for store in (self.primary, self.replica):
            if isinstance(store, Preparable):
                store.ensure()

    def put(self, key: str, data: bytes) -> None:
        """Write and verify both copies side by side; the first failure is raised, naming
        which copy failed."""
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="replica") as pool:
            written = [
                pool.submit(self._write_verified, store, role, key, data)
                for store, role in ((self.primary, "primary"), (self.replica, "replica"))
            ]
            for future in written:
                future.result()

    @staticmethod
    def _write_verified(store: ArchiveStore, role: str, key: str, data: bytes) -> None:
        try:
            store.put(key, data)
            if store.get(key) != data:
                raise ArchiveCorrupt("the read-back differs from what was written")
        except (ArchiveUnavailable, ArchiveCorrupt) as exc:
            raise type(exc)(f"{role} archive {store.describe()}: {exc}") from None

    def get(self, key: str) -> bytes:
        return self._read(key, lambda store: store.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._read(key, lambda store: store.get_range(key, start, length))

    def read_recorded(self, key: str, sha256: str, start: int | None, length: int | None) -> bytes:
        """The recorded bytes: a primary copy that is there but damaged or replaced falls back
        to the replica like one that cannot be read."""
        return self._read(
            key,
            lambda store: check_recorded(
                store, key, sha256, read_recorded(store, key, sha256, start, length)
            ),
        )

    def _read(self, key: str, read: Callable[[ArchiveStore], bytes]) -> bytes:
        try:
            return read(self.primary)
        except (ArchiveUnavailable, ArchiveCorrupt) as primary_failure:
            log.warning(
                "archive object %s could not be read from the primary %s (%s); "
                "reading the replica %s",
                key,
                self.primary.describe(),
                type(primary_failure).__name__,
                self.replica.describe(),
            )
            try:
                return read(self.replica)
            except (ArchiveUnavailable, ArchiveCorrupt) as replica_failure:
                raise ArchiveUnavailable(
                    f"archive object {key} cannot be read from either copy: primary: "
                    f"{primary_failure}; replica: {replica_failure}"
                ) from None

    def describe(self) -> str:
        return f"{self.primary.describe()} (replica {self.replica.describe()})"

    def list_objects(self) -> Iterator[StoredObject]:
        return self.primary.list_objects()

    @property
    def allows_deletion(self) -> bool:
        return self.primary.allows_deletion and self.replica.allows_deletion

    def delete(self, key: str) -> None:
        self.primary.delete(key)
        self.replica.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        delete_objects(self.primary, keys)
        delete_objects(self.replica, keys)
