"""The SQLite reclaim's pass over the file (adapters/db/sqlite_scrub.py, adapters/db/reclaim.py).

It writes into a live database file behind SQLite's back, so the tests hold it to what makes
that safe: it changes no byte a reader looks at (the dump and `integrity_check` are the same
after it), it removes old bytes wherever SQLite leaves them (planted in a page's gap, in a
freeblock and in a freelist page, and left by real updates of varied rows), it refuses files it
cannot read with certainty without writing, and no connection that cached a page before the
pass can write the old bytes back afterwards."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event

from shelflife.adapters.db import reclaim
from shelflife.adapters.db.reclaim import reclaim_sqlite
from shelflife.adapters.db.sqlite_scrub import ScrubRefused, ScrubReport, scrub_free_space

TOKEN = b"QSECRET-TOKEN-42"


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA secure_delete=ON")
    return db


def _dump(db: sqlite3.Connection) -> list[str]:
    return list(db.iterdump())


def _checkpointed(db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0


def _buyers(path: Path, rows: int = 400, seed: int = 1) -> sqlite3.Connection:
    db = _connect(path)
    db.execute("CREATE TABLE buyers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, note TEXT)")
    db.execute("CREATE INDEX ix_buyers_email ON buyers (email)")
    rnd = random.Random(seed)
    db.execute("BEGIN")
    for i in range(rows):
        db.execute(
            "INSERT INTO buyers VALUES (?, ?, ?, ?)",
            (i, f"N{i:05d}" * rnd.randint(1, 9), f"e{i:05d}@x.de", "t" * rnd.randint(0, 3000)),
        )
    db.execute("COMMIT")
    _checkpointed(db)
    return db


def _pages(path: Path) -> tuple[bytes, int]:
    data = path.read_bytes()
    (size,) = struct.unpack_from(">H", data, 16)
    return data, 65536 if size == 1 else size


def _leaf_with_gap(path: Path, at_least: int) -> tuple[int, int]:
    """(file offset inside the gap of a table leaf page, gap length) for a gap >= at_least."""
    data, size = _pages(path)
    for number in range(2, len(data) // size + 1):
        base = (number - 1) * size
        if data[base] != 0x0D:
            continue
        cells, content = struct.unpack_from(">HH", data, base + 3)
        gap_start, gap_end = 8 + 2 * cells, content or 65536
        if gap_end - gap_start >= at_least:
            return base + gap_start, gap_end - gap_start
    raise AssertionError("no leaf page with a gap that large")


def _plant(path: Path, offset: int, what: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(what)


def test_bytes_planted_in_a_pages_gap_are_zeroed_and_nothing_a_reader_sees_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    db = _buyers(path)
    before = _dump(db)
    offset, _length = _leaf_with_gap(path, len(TOKEN) + 8)
    _plant(path, offset + 4, TOKEN)
    assert TOKEN in path.read_bytes()

    report = scrub_free_space(path)

    assert TOKEN not in path.read_bytes()
    assert report.pages_zeroed >= 1
    assert report.bytes_zeroed >= len(TOKEN)
    fresh = _connect(path)
    assert fresh.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _dump(fresh) == before
    assert scrub_free_space(path).pages_zeroed == 0  # nothing left to do a second time


def test_freeblock_bodies_and_freelist_pages_are_zeroed(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    db = _buyers(path)
    db.execute("PRAGMA secure_delete=OFF")  # as a file written without it would be
    db.execute("DELETE FROM buyers WHERE id % 7 = 3")  # freeblocks inside pages
    db.execute("DELETE FROM buyers WHERE id BETWEEN 100 AND 220")  # whole pages freed
    _checkpointed(db)
    assert db.execute("PRAGMA freelist_count").fetchone()[0] > 0
    deleted = [f"N{i:05d}".encode() for i in [3, 10, 17, *range(100, 221)]]
    data = path.read_bytes()
    assert any(value in data for value in deleted)  # what the pass must remove
    before = _dump(db)

    scrub_free_space(path)

    data = path.read_bytes()
    assert [v for v in deleted if v in data] == []
    fresh = _connect(path)
    assert fresh.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _dump(fresh) == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 600),
    page_size=st.sampled_from([512, 1024, 4096, 8192]),
)
def test_after_random_edits_no_replaced_value_is_left_and_the_database_reads_the_same(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    rows: int,
    page_size: int,
) -> None:
    """Rows of every size (in-page and overflowing), edited longer and shorter, deleted and
    re-inserted, in random order: every value that was replaced or deleted carries a token,
    and none may be left in the file after the pass. With `secure_delete` on, as shelflife
    always runs: the pass leaves the tail of an overflow page to it (a page is zeroed when
    freed); without it such tails keep old bytes (seen with seed 0, 135 rows, 512-byte pages)."""
    _edit_and_scrub(tmp_path_factory.mktemp("scrub") / "r.db", seed, rows, page_size)


def _edit_and_scrub(path: Path, seed: int, rows: int, page_size: int) -> None:
    rnd = random.Random(seed)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA secure_delete=ON")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
    db.execute("CREATE INDEX ix_t_a ON t (a)")

    def value(i: int, version: int) -> str:
        token = f"Z{i:05d}v{version:02d}Z"
        return token * rnd.randint(1, 1 + rnd.choice([2, 20, 400]))

    version = dict.fromkeys(range(rows), 0)
    db.execute("BEGIN")
    for i in range(rows):
        db.execute("INSERT INTO t VALUES (?, ?, ?)", (i, value(i, 0)[:40], value(i, 0)))
    db.execute("COMMIT")
    gone: set[str] = set()
    for _ in range(rnd.randint(1, 4)):
        db.execute("BEGIN")
        for i in rnd.sample(range(rows), rnd.randint(0, rows)):
            if version[i] < 0:
                continue
            gone.add(f"Z{i:05d}v{version[i]:02d}Z")
            if rnd.random() < 0.2:
                db.execute("DELETE FROM t WHERE id = ?", (i,))
                version[i] = -1
            else:
                version[i] += 1
                db.execute(
                    "UPDATE t SET a = ?, b = ? WHERE id = ?",
                    (value(i, version[i])[:40], value(i, version[i]), i),
                )
        db.execute("COMMIT")
    _checkpointed(db)
    before = _dump(db)
    kept = {f"Z{i:05d}v{v:02d}Z" for i, v in version.items() if v >= 0}

    scrub_free_space(path)

    data = path.read_bytes()
    left = {g for g in gone if g.encode() in data}
    assert left == set(), sorted(left)[:5]
    assert all(k.encode() in data for k in kept)  # the search is not blind
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _dump(db) == before


def test_a_file_the_pass_cannot_read_is_refused_untouched(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "n.db"
    not_sqlite.write_bytes(b"hello" * 1000)
    with pytest.raises(ScrubRefused, match="not a SQLite 3 database file"):
        scrub_free_space(not_sqlite)

    auto = tmp_path / "auto.db"
    db = sqlite3.connect(auto, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=FULL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("INSERT INTO t VALUES ('x')")
    db.close()
    original = auto.read_bytes()
    with pytest.raises(ScrubRefused, match="pointer-map"):
        scrub_free_space(auto)
    assert auto.read_bytes() == original


def test_a_malformed_page_stops_the_pass_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = _buyers(path, rows=50)
    db.close()
    data, size = _pages(path)
    number = next(n for n in range(2, len(data) // size + 1) if data[(n - 1) * size] == 0x0D)
    # The cell content area said to start before the cell pointer array ends.
    _plant(path, (number - 1) * size + 5, struct.pack(">H", 4))
    with pytest.raises(ScrubRefused, match=f"page {number}: cell area"):
        scrub_free_space(path)


def _engine(path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA secure_delete=ON")

    return engine


def test_a_connection_that_cached_a_page_before_the_reclaim_cannot_write_its_old_bytes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that reads while the pass holds the write lock caches pages as they were; the
    reclaim ends with a commit and a TRUNCATE checkpoint, so that connection finds the WAL
    changed and drops them. Without both, its write of that page brought the token back."""
    path = tmp_path / "c.db"
    _buyers(path).close()
    offset, _length = _leaf_with_gap(path, len(TOKEN) + 16)
    _plant(path, offset + 4, TOKEN)
    number = offset // _pages(path)[1] + 1
    first_on_page = _first_rowid_on(path, number)
    other = _connect(path)
    real_pass = scrub_free_space

    def read_then_scrub(file: Path) -> ScrubReport:
        # Readers are not blocked by the write lock: this one caches the planted page.
        other.execute("SELECT count(*), sum(length(note)) FROM buyers").fetchone()
        return real_pass(file)

    monkeypatch.setattr(reclaim, "scrub_free_space", read_then_scrub)
    engine = _engine(path)
    reclaim_sqlite(engine)
    engine.dispose()
    assert TOKEN not in path.read_bytes()

    # A same-size change of a row on that page: SQLite writes the whole page it holds.
    other.execute("UPDATE buyers SET email = upper(email) WHERE id = ?", (first_on_page,))
    assert (
        other.execute("SELECT email FROM buyers WHERE id = ?", (first_on_page,))
        .fetchone()[0]
        .startswith("E")
    )
    _checkpointed(other)
    assert TOKEN not in path.read_bytes()
    assert other.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _first_rowid_on(path: Path, number: int) -> int:
    data, size = _pages(path)
    base = (number - 1) * size
    (pointer,) = struct.unpack_from(">H", data, base + 8)
    cell = base + pointer
    # A table leaf cell: payload size varint, then the rowid varint.
    position = cell
    while data[position] & 0x80:
        position += 1
    position += 1
    rowid: int = 0
    while True:
        byte: int = data[position]
        rowid = (rowid << 7) | (byte & 0x7F)
        position += 1
        if not byte & 0x80:
            return rowid


def test_a_file_the_pass_refuses_is_vacuumed_instead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "v.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=FULL")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("INSERT INTO t VALUES (?)", ("V" * 5000,))
    db.execute("UPDATE t SET x = 'masked'")
    db.close()
    engine = _engine(path)
    with caplog.at_level(logging.INFO, logger="shelflife.adapters.db.reclaim"):
        reclaim_sqlite(engine)
    engine.dispose()
    assert "VACUUM instead" in caplog.text
    assert b"VVVVVVVV" not in path.read_bytes()


@pytest.mark.parametrize("cut", [1, 4096 + 100, 3 * 4096 - 7])
def test_a_pass_killed_mid_write_leaves_a_database_that_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """A crash or power loss can stop the pass in the middle of a write, even in the middle of
    a page. Every byte it writes is either the old one or a zero no reader looks at, so a torn
    write leaves a valid database; the next run's reclaim does the rest."""
    path = tmp_path / "k.db"
    db = _buyers(path, rows=800)
    before = _dump(db)
    db.close()
    offset, _length = _leaf_with_gap(path, len(TOKEN) + 8)
    _plant(path, offset + 4, TOKEN)
    real_pwrite = os.pwrite

    def torn(fd: int, data: bytes, at: int) -> int:
        real_pwrite(fd, data[:cut], at)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "pwrite", torn)  # what the pass calls
    with pytest.raises(OSError, match="Input/output error"):
        scrub_free_space(path)
    monkeypatch.undo()

    fresh = _connect(path)
    assert fresh.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _dump(fresh) == before
    fresh.close()
    scrub_free_space(path)  # the next reclaim finishes the work
    assert TOKEN not in path.read_bytes()
