"""Archive stores: where encrypted snapshots live. One interface (`domain.ports.ArchiveStore`),
several backends."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from shelflife.domain.clock import Clock, SystemClock
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, InvalidInput
from shelflife.domain.ports import ArchiveStore, StoredObject

__all__ = [
    "ArchiveStore",
    "BatchDeleting",
    "LocalFolderArchive",
    "Preparable",
    "RecordedReading",
    "StoredObject",
    "archive_from_url",
    "read_recorded",
    "resolved",
]

TEMP_PREFIX = ".tmp-"
"""Name prefix of a file being written; one left behind is the trace of a killed write."""


class LocalFolderArchive:
    """Archive in a local folder; objects are written atomically with mode 0600.

    For production, an S3 bucket with Object Lock is the intended backend; this folder is the
    embedded default and should live on a disk that is backed up and access-controlled.
    """

    def __init__(self, root: Path, setting: str = "SHELFLIFE_ARCHIVE_URL") -> None:
        self.root = root
        self.setting = setting

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):
            raise InvalidInput(
                f"{self.setting}: {self.root} is not a folder; use a file:// URL of a folder"
            ) from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot create the archive folder {self.root}: {exc.strerror}"
            ) from None

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The object's file as a plain string: the nightly run reads and deletes tens of
        thousands of PDFs, where building a `Path` per object costs more than the read."""
        if key.startswith("/") or ".." in key.split("/") or "\x00" in key:  # no file has a NUL
            raise ArchiveUnavailable("invalid archive object key")
        return os.path.join(self.root, key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            if not path.parent.is_dir():
                try:  # the root is made by `init`: never a new, empty one in its place
                    os.stat(self.root)
                except FileNotFoundError:
                    raise ArchiveUnavailable(
                        f"cannot write to the archive folder {self.root}: it is not there; run "
                        f"`shelflife init` to create it, or fix {self.setting} (is its disk "
                        "mounted?)"
                    ) from None
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                for folder in path.parent.relative_to(self.root).parents:
                    _fsync_dir(self.root / folder)  # the new folders' own entries
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)
                _fsync_dir(path.parent)  # the rename itself must survive a crash
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot write to the archive folder {self.root}: {exc.strerror}"
            ) from None

    def get(self, key: str) -> bytes:
        try:
            with open(self._file(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise ArchiveUnavailable(f"archive object {key} is missing from {self.root}") from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot read the archive folder {self.root}: {exc.strerror}"
            ) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ArchiveUnavailable(f"invalid byte range for archive object {key}")
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(start)
                data = handle.read(length)
        except FileNotFoundError:
            raise ArchiveUnavailable(f"archive object {key} is missing from {self.root}") from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot read the archive folder {self.root}: {exc.strerror}"
            ) from None
        if len(data) != length:
            raise ArchiveCorrupt(
                f"archive object {key} in {self.root} ends before the requested range"
            )
        return data

    def describe(self) -> str:
        return resolved(self.root).as_uri()

    def list_objects(self) -> Iterator[StoredObject]:
        if not self.root.is_dir():
            raise ArchiveUnavailable(f"the archive folder {self.root} does not exist")
        try:
            for folder, subfolders, files in os.walk(self.root):
                subfolders.sort()
                for name in sorted(files):
                    path = Path(folder) / name
                    try:
                        st = path.lstat()
                    except FileNotFoundError:  # renamed or removed since the folder was read
                        continue
                    if not path.is_file() or path.is_symlink():
                        continue
                    yield StoredObject(
                        key=path.relative_to(self.root).as_posix(),
                        size=st.st_size,
                        modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                        temporary=name.startswith(TEMP_PREFIX),
                    )
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot list the archive folder {self.root}: {exc.strerror}"
            ) from None

    @property
    def allows_deletion(self) -> bool:
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot delete from the archive folder {self.root}: {exc.strerror}"
            ) from None

    def delete_many(self, keys: Sequence[str]) -> None:
        """`delete` for a batch: every file unlinked, then each folder they were in synced
        once (not once per file: a night removes thousands of PDFs from a few folders)."""
        files = [self._file(key) for key in keys]
        changed: set[str] = set()
        try:
            for file in files:
                try:
                    os.unlink(file)
                except FileNotFoundError:  # already gone: nothing to do
                    continue
                changed.add(os.path.dirname(file))
            for folder in sorted(changed):
                _fsync_dir(Path(folder))
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot delete from the archive folder {self.root}: {exc.strerror}"
            ) from None


@runtime_checkable
class BatchDeleting(Protocol):
    """A store that removes many objects in one go (fewer syncs, fewer requests)."""

    def delete_many(self, keys: Sequence[str]) -> None: ...


def delete_objects(store: ArchiveStore, keys: Sequence[str]) -> None:
    """Remove `keys` from `store`: in one batch where the store can, else one by one."""
    if isinstance(store, BatchDeleting):
        store.delete_many(keys)
        return
    for key in keys:
        store.delete(key)


@runtime_checkable
class RecordedReading(Protocol):
    """A store with more than one place to read from (a replica, an offline copy): it can
    pass over a place whose bytes are not the recorded ones, not only one that fails."""

    def read_recorded(
        self, key: str, sha256: str, start: int | None, length: int | None
    ) -> bytes: ...


def read_recorded(
    store: ArchiveStore, key: str, sha256: str, start: int | None = None, length: int | None = None
) -> bytes:
    """An object (or, with `start` and `length`, a byte range of it) whose SHA-256 the database
    recorded: from the first of the store's places that holds those very bytes, so that a
    damaged or replaced primary copy is read from the replica. A plain store's bytes come as
    read: the caller checks them."""
    if isinstance(store, RecordedReading):
        return store.read_recorded(key, sha256, start, length)
    if start is None or length is None:
        return store.get(key)
    return store.get_range(key, start, length)


def check_recorded(store: ArchiveStore, key: str, sha256: str, data: bytes) -> bytes:
    """`data`, read from `store`, if it has the recorded digest; `ArchiveCorrupt` otherwise."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArchiveCorrupt(f"archive object {key} in {store.describe()} is not the recorded one")
    return data


def resolved(path: Path) -> Path:
    """`path` with its symbolic links resolved; made absolute only where a link loop stops
    that (Python 3.11 raises RuntimeError), so that using it fails with the system's error."""
    try:
        return path.resolve()
    except RuntimeError:
        return path.absolute()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@runtime_checkable
class Preparable(Protocol):
    """A store that `init` can create or check before anything is written to it."""

    def ensure(self) -> None: ...


def archive_from_url(
    url: str,
    setting: str = "SHELFLIFE_ARCHIVE_URL",
    *,
    retention_days: int = 0,
    storage_class: str = "STANDARD",
    clock: Clock | None = None,
) -> ArchiveStore:
    """The store a URL names; `InvalidInput` naming `setting` for a URL that names none.

    The S3 options apply to `s3://` URLs only; `clock` dates their Object Lock retention."""
    try:
        parsed = urlparse(url)
    except ValueError:  # e.g. an unbalanced [ or ] in the host part ("Invalid IPv6 URL")
        raise InvalidInput(f"{setting}: not a valid URL; use a file:// or s3:// URL") from None
    if parsed.scheme == "file":
        # file://archive would silently mean the current folder: the host part is not a path
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidInput(
                f"{setting}: a file URL needs an absolute local path, "
                "e.g. file:///var/lib/shelflife/archive"
            )
        return LocalFolderArchive(Path(unquote(parsed.path)), setting)
    if parsed.scheme == "s3":
        from shelflife.adapters.archive.s3 import S3Archive, parse_s3_url  # boto3 only if used

        return S3Archive(
            parse_s3_url(url, setting),
            retention_days=retention_days,
            storage_class=storage_class,
            clock=clock or SystemClock(),
        )
    raise InvalidInput(
        f"{setting}: unsupported scheme {parsed.scheme!r}; use a file:// or s3:// URL"
    )
