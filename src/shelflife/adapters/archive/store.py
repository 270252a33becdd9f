"""Archive stores: where encrypted snapshots live. One interface (`domain.ports.ArchiveStore`),
several backends."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from shelflife.domain.errors import ArchiveUnavailable, InvalidInput
from shelflife.domain.ports import ArchiveStore, StoredObject

__all__ = ["ArchiveStore", "LocalFolderArchive", "StoredObject", "archive_from_url"]

TEMP_PREFIX = ".tmp-"
"""Name prefix of a file being written; one left behind is the trace of a killed write."""


class LocalFolderArchive:
    """Archive in a local folder; objects are written atomically with mode 0600.

    For production, an S3 bucket with Object Lock is the intended backend; this folder is the
    embedded default and should live on a disk that is backed up and access-controlled.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):
            raise InvalidInput(
                f"SHELFLIFE_ARCHIVE_URL: {self.root} is not a folder; use a file:// URL of a folder"
            ) from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot create the archive folder {self.root}: {exc.strerror}"
            ) from None

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ArchiveUnavailable("invalid archive object key")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            if not path.parent.is_dir():
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
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArchiveUnavailable(f"archive object {key} is missing from {self.root}") from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot read the archive folder {self.root}: {exc.strerror}"
            ) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ArchiveUnavailable("invalid archive byte range")
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except FileNotFoundError:
            raise ArchiveUnavailable(f"archive object {key} is missing from {self.root}") from None
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot read the archive folder {self.root}: {exc.strerror}"
            ) from None

    def describe(self) -> str:
        return self.root.resolve().as_uri()

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


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive_from_url(url: str) -> LocalFolderArchive:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # file://archive would silently mean the current folder: the host part is not a path
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidInput(
                "SHELFLIFE_ARCHIVE_URL: a file URL needs an absolute local path, "
                "e.g. file:///var/lib/shelflife/archive"
            )
        return LocalFolderArchive(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        raise InvalidInput(
            "SHELFLIFE_ARCHIVE_URL: the S3 archive backend is not available in this version; "
            "use a file:// URL"
        )
    raise InvalidInput(f"SHELFLIFE_ARCHIVE_URL: unsupported scheme {parsed.scheme!r}; use file://")
