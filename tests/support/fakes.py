"""Hand-written archive fakes: the failures a real archive has, on demand."""

from __future__ import annotations

from shelflife.adapters.archive.store import ArchiveStore
from shelflife.domain.errors import ArchiveUnavailable


class FailingPut:
    """An archive that is down for writes: for every buyer, or only for keys under `only`."""

    def __init__(self, real: ArchiveStore, only: str | None = None) -> None:
        self.real, self.only = real, only

    def put(self, key: str, data: bytes) -> None:
        if self.only is None or key.startswith(self.only):
            raise ArchiveUnavailable("archive offline (test double)")
        self.real.put(key, data)

    def get(self, key: str) -> bytes:
        return self.real.get(key)

    def describe(self) -> str:
        return "failing test double"


class AlteredGet:
    """An archive that stores but reads back different bytes (silent corruption)."""

    def __init__(self, real: ArchiveStore) -> None:
        self.real = real

    def put(self, key: str, data: bytes) -> None:
        self.real.put(key, data)

    def get(self, key: str) -> bytes:
        data = self.real.get(key)
        return data[:-1] + bytes([data[-1] ^ 1])

    def describe(self) -> str:
        return "corrupting test double"


class UnreachableArchive:
    """An archive that cannot be reached at all (network down)."""

    def put(self, key: str, data: bytes) -> None:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def get(self, key: str) -> bytes:
        raise ArchiveUnavailable("archive unreachable (test double)")

    def describe(self) -> str:
        return "unreachable test double"
