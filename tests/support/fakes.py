"""Hand-written archive fakes: the failures a real archive has, on demand."""

from __future__ import annotations

from collections.abc import Iterator

from shelflife.adapters.archive.store import ArchiveStore, StoredObject
from shelflife.domain.errors import ArchiveUnavailable, Forbidden


class Wrapping:
    """Base of the fakes that wrap a real store: everything they do not change passes through."""

    def __init__(self, real: ArchiveStore) -> None:
        self.real = real

    def put(self, key: str, data: bytes) -> None:
        self.real.put(key, data)

    def get(self, key: str) -> bytes:
        return self.real.get(key)

    def describe(self) -> str:
        return self.real.describe()

    def list_objects(self) -> Iterator[StoredObject]:
        return self.real.list_objects()

    @property
    def allows_deletion(self) -> bool:
        return self.real.allows_deletion

    def delete(self, key: str) -> None:
        self.real.delete(key)


class FailingPut(Wrapping):
    """An archive that is down for writes: for every buyer, or only for keys under `only`."""

    def __init__(self, real: ArchiveStore, only: str | None = None) -> None:
        super().__init__(real)
        self.only = only

    def put(self, key: str, data: bytes) -> None:
        if self.only is None or key.startswith(self.only):
            raise ArchiveUnavailable("archive offline (test double)")
        self.real.put(key, data)

    def describe(self) -> str:
        return "failing test double"


class AlteredGet(Wrapping):
    """An archive that stores but reads back different bytes (silent corruption)."""

    def get(self, key: str) -> bytes:
        data = self.real.get(key)
        return data[:-1] + bytes([data[-1] ^ 1])

    def describe(self) -> str:
        return "corrupting test double"


class WriteOnce(Wrapping):
    """A write-once store (Object Lock, WORM media): it lists, but refuses every deletion."""

    @property
    def allows_deletion(self) -> bool:
        return False

    def delete(self, key: str) -> None:
        raise Forbidden("write-once test double: deletion refused")


class UnreachableArchive:
    """An archive that cannot be reached at all (network down)."""

    def put(self, key: str, data: bytes) -> None:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def get(self, key: str) -> bytes:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def describe(self) -> str:
        return "unreachable test double"

    def list_objects(self) -> Iterator[StoredObject]:
        raise ArchiveUnavailable("archive unreachable (test double)")

    @property
    def allows_deletion(self) -> bool:
        return True

    def delete(self, key: str) -> None:
        raise ArchiveUnavailable("archive unreachable (test double)")
