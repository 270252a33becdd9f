"""Zero the bytes of a SQLite file that hold no row: what masking leaves of the old values.

With `secure_delete` SQLite zeroes a cell it frees and a page it puts on the freelist, but a
B-tree page it rebuilds (a balance after cells shrank or grew) is written from its cells
downwards, and the space between the cell pointer array and the first cell keeps whatever the
page held before: images of old rows. `VACUUM` removes them by copying every live row into a
new file, which costs the whole database every night. This pass reads the file once and
zeroes, in place, exactly the bytes no reader looks at:

- in every B-tree page (tables and indexes): the unallocated gap between the cell pointer
  array and the cell content area, and the body of every freeblock (its 4-byte link stays);
- every freelist leaf page, and each freelist trunk page past its list of leaves.

Only pages that change are written. Nothing a reader can see changes: the page headers, cell
pointers and cells are left byte for byte, so a page read half before and half after a write
means the same. The file format is SQLite's documented one (https://www.sqlite.org/fileformat2.html);
files this pass cannot read with certainty (auto-vacuum pointer-map pages, a page number too
large to tell an overflow page from a B-tree page by its first byte, a malformed header) are
refused before any page is written, and the caller falls back to `VACUUM`; a malformed page
found part-way stops the pass there. The fragments SQLite does not track (at most
3 bytes each) are not touched; `secure_delete` zeroed them when they were freed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

HEADER = b"SQLite format 3\x00"
BTREE_HEADER_SIZE = {0x02: 12, 0x05: 12, 0x0A: 8, 0x0D: 8}
"""Page type byte -> B-tree page header size: interior index/table 12, leaf index/table 8."""
LOCK_BYTE_OFFSET = 0x4000_0000
"""The page holding this byte offset (1 GiB) is never used by SQLite; it is skipped."""
CHUNK_BYTES = 4 << 20
MAX_PAGES = 1 << 24
"""Below this an overflow or freelist trunk page starts with a zero byte (its next page
number), so it is never taken for a B-tree page, whose first byte is 2, 5, 10 or 13."""


class ScrubRefused(Exception):
    """The file is not one this pass can read with certainty; nothing was written."""


@dataclass(frozen=True)
class ScrubReport:
    pages: int
    pages_zeroed: int
    bytes_zeroed: int


@dataclass(frozen=True)
class _Layout:
    page_size: int
    usable: int
    page_count: int
    freelist_trunk: int


def _layout(header: bytes, file_size: int) -> _Layout:
    if len(header) < 100 or not header.startswith(HEADER):
        raise ScrubRefused("not a SQLite 3 database file")
    (raw_size,) = struct.unpack_from(">H", header, 16)
    page_size = 65536 if raw_size == 1 else raw_size
    if page_size < 512 or page_size & (page_size - 1):
        raise ScrubRefused(f"page size {page_size} is not a power of two from 512")
    reserved = header[20]
    (largest_root,) = struct.unpack_from(">I", header, 52)
    if largest_root:
        raise ScrubRefused("auto-vacuum files hold pointer-map pages")
    (freelist_trunk,) = struct.unpack_from(">I", header, 32)
    page_count = file_size // page_size
    if file_size % page_size:
        raise ScrubRefused("file size is not a whole number of pages")
    if page_count >= MAX_PAGES:
        raise ScrubRefused(f"{page_count} pages: too many to tell page kinds apart")
    return _Layout(page_size, page_size - reserved, page_count, freelist_trunk)


def _zero(page: bytearray, start: int, end: int, zeros: bytes) -> int:
    """Zero page[start:end]; how many bytes were not zero already (0: untouched)."""
    if end <= start or page[start:end] == zeros[: end - start]:
        return 0
    dirty = (end - start) - page.count(0, start, end)
    page[start:end] = zeros[: end - start]
    return dirty


def _scrub_btree(page: bytearray, at: int, usable: int, number: int, zeros: bytes) -> int:
    """Zero a B-tree page's gap and freeblock bodies; bytes changed. `at`: the header's offset
    (100 on page 1, after the file header)."""
    size = BTREE_HEADER_SIZE[page[at]]
    first_free, cells, content = struct.unpack_from(">HHH", page, at + 1)
    content = content or 65536
    gap = at + size + 2 * cells
    if not gap <= content <= usable:
        raise ScrubRefused(f"page {number}: cell area {content} does not follow {gap}")
    changed = _zero(page, gap, content, zeros)
    free, last = first_free, 0
    while free:
        if free <= last or free < content or free + 4 > usable:
            raise ScrubRefused(f"page {number}: freeblock at {free} out of order or place")
        following, length = struct.unpack_from(">HH", page, free)
        if length < 4 or free + length > usable:
            raise ScrubRefused(f"page {number}: freeblock at {free} of {length} bytes")
        changed += _zero(page, free + 4, free + length, zeros)
        free, last = following, free
    return changed


def _freelist(read: _Reader, layout: _Layout) -> tuple[set[int], dict[int, int]]:
    """(leaf pages, trunk page -> bytes in use) of the freelist."""
    leaves: set[int] = set()
    trunks: dict[int, int] = {}
    trunk = layout.freelist_trunk
    while trunk:
        if trunk in trunks or not 1 < trunk <= layout.page_count:
            raise ScrubRefused(f"freelist trunk {trunk} repeats or lies outside the file")
        page = read.page(trunk)
        following, count = struct.unpack_from(">II", page, 0)
        used = 8 + 4 * count
        if used > layout.usable:
            raise ScrubRefused(f"freelist trunk {trunk} lists {count} pages")
        for (leaf,) in struct.iter_unpack(">I", page[8:used]):
            if not 1 < leaf <= layout.page_count:
                raise ScrubRefused(f"freelist leaf {leaf} lies outside the file")
            leaves.add(leaf)
        trunks[trunk] = used
        trunk = following
    return leaves, trunks


class _Reader:
    def __init__(self, fd: int, page_size: int) -> None:
        self.fd = fd
        self.page_size = page_size

    def page(self, number: int) -> bytes:
        return os.pread(self.fd, self.page_size, (number - 1) * self.page_size)


def scrub_free_space(path: Path) -> ScrubReport:
    """Zero the bytes of the database file at `path` that no row uses; see the module text.

    The caller holds SQLite's write lock and has checkpointed the WAL into this file (so that
    the file is the whole database, and nobody writes meanwhile). Raises ScrubRefused for a
    file this pass cannot read with certainty; pages zeroed before the refusal mean what they
    meant before."""
    fd = os.open(path, os.O_RDWR)
    try:
        file_size = os.fstat(fd).st_size
        layout = _layout(os.pread(fd, 100, 0), file_size)
        leaves, trunks = _freelist(_Reader(fd, layout.page_size), layout)
        lock_page = LOCK_BYTE_OFFSET // layout.page_size + 1
        zeros = bytes(layout.page_size)
        # Written chunk by chunk (memory stays bounded). A refusal part-way leaves the pages
        # before it zeroed, which changes nothing a reader sees.
        pages_zeroed = bytes_zeroed = 0
        per_chunk = max(1, CHUNK_BYTES // layout.page_size)
        for first in range(1, layout.page_count + 1, per_chunk):
            count = min(per_chunk, layout.page_count - first + 1)
            offset = (first - 1) * layout.page_size
            chunk = bytearray(os.pread(fd, count * layout.page_size, offset))
            dirty = False
            for index in range(count):
                number = first + index
                if number == lock_page:
                    continue
                start = index * layout.page_size
                page = chunk[start : start + layout.page_size]
                if number in leaves:
                    changed = _zero(page, 0, layout.usable, zeros)
                elif number in trunks:
                    changed = _zero(page, trunks[number], layout.usable, zeros)
                else:
                    at = 100 if number == 1 else 0
                    if page[at] not in BTREE_HEADER_SIZE:
                        continue  # an overflow page: its bytes belong to a row
                    changed = _scrub_btree(page, at, layout.usable, number, zeros)
                if changed:
                    chunk[start : start + layout.page_size] = page
                    pages_zeroed += 1
                    bytes_zeroed += changed
                    dirty = True
            if dirty:
                os.pwrite(fd, chunk, offset)
        if pages_zeroed:
            os.fsync(fd)
        return ScrubReport(layout.page_count, pages_zeroed, bytes_zeroed)
    finally:
        os.close(fd)
