"""Remove masked buyers' old values from the database files once a run has masked someone.

Masking overwrites values, but neither database overwrites the old bytes: SQLite leaves cell
images in the free space of rebuilt B-tree pages (even with `secure_delete`), PostgreSQL keeps
the old row versions in the table, TOAST and index files after a plain VACUUM. Measured on the
byte-level test's data (tests/integration/test_no_residue_in_database_files.py, 240 masked
buyers): a WAL checkpoint left values of 2 buyers in the SQLite file, incremental vacuum the
same 2, VACUUM none; PostgreSQL's VACUUM left 9,146 values of all 240 in `base/`, VACUUM FULL
none. So the reclaim removes them: on SQLite by zeroing in place the bytes no row uses
(`sqlite_scrub`, which leaves none either, at the cost of one read of the file instead of a
rewrite), on PostgreSQL by `VACUUM FULL` of the PII tables, which copies only the live rows.
docs/operations.md gives their cost and locks.
(PostgreSQL's planner statistics are kept free of PII by the schema: migration 0002.)
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import OperationalError

from shelflife.adapters.db.engine import database_error
from shelflife.adapters.db.sqlite_scrub import ScrubRefused, scrub_free_space
from shelflife.adapters.db.tables import PII_TABLES, RetentionRun
from shelflife.domain.errors import DatabaseBusy

log = logging.getLogger(__name__)

RUN_LOCK_KEY = 0x5348_4C46  # "SHLF": the PostgreSQL advisory lock every run shares

NOT_RECLAIMED = (
    "the run masked buyers, but their old values could not be removed from the database files "
    "yet: {why}; the next run tries again"
)


def previous_run_unfinished(conn: Connection, run_id: int) -> bool:
    """Whether the run recorded before `run_id` stopped early (killed, or failed): its masks
    may have been committed without the reclaim that should have followed them."""
    row = conn.execute(
        select(RetentionRun.finished_at, RetentionRun.error)
        .where(RetentionRun.id < run_id)
        .order_by(RetentionRun.id.desc())
        .limit(1)
    ).first()
    return row is not None and (row.finished_at is None or row.error is not None)


@dataclass
class RunLock:
    """Held by a run from start to end (PostgreSQL; SQLite has one writer at a time anyway).

    Every run holds a shared advisory lock on its own idle connection; the reclaim takes it
    exclusively, so it starts once the other workers have finished their batches, and no
    worker ever waits on the rewrite's table locks mid-batch. A run that starts meanwhile
    waits for the reclaim to end.
    """

    engine: Engine
    conn: Connection | None

    def reclaim_if_needed(
        self, run_id: int, masked: bool, tables: Sequence[str] = tuple(PII_TABLES)
    ) -> None:
        """Rewrite what holds old values when this run masked or re-masked someone, or when
        the run before it stopped early (its masks may lack their reclaim).

        Raises DatabaseBusy when a lock is not granted within the lock timeout; this run then
        counts as stopped early, so the next one reclaims.
        """
        with self.engine.connect() as conn:
            earlier_stopped = previous_run_unfinished(conn, run_id)
        if not (masked or earlier_stopped):
            return
        if self.engine.dialect.name == "sqlite":
            reclaim_sqlite(self.engine)
            return
        assert self.conn is not None
        self.conn.execute(select(func.pg_advisory_unlock_shared(RUN_LOCK_KEY)))
        self.conn.execute(select(func.pg_advisory_lock(RUN_LOCK_KEY)))
        # Alone now: a run that looked unfinished only because it was still working has
        # recorded its end (each run holds its lock until then).
        if not masked and not previous_run_unfinished(self.conn, run_id):
            return
        # Every run that masked rewrites, even when another worker's rewrite came in between:
        # that rewrite may have had to keep old row versions a session of a still-working run
        # could see (tests/integration/test_no_residue_in_database_files.py found 5 buyers'
        # values left when a run skipped its own). The last run to get the lock rewrites after
        # every run's work.
        _warn_about_old_snapshots(self.conn)
        _vacuum_full_postgres(self.engine, tables)


@contextmanager
def no_run_working(engine: Engine) -> Iterator[None]:
    """Wait until no run holds its lock, and keep runs that start meanwhile waiting until the
    block ends (PostgreSQL: the run lock taken exclusively). `keys rotate` ends inside it, so
    that no run that began before the rotation wraps a data key under the old master key
    afterwards. SQLite records no runs in progress: a no-op there."""
    if engine.dialect.name != "postgresql":
        yield
        return
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.exec_driver_sql("SET lock_timeout = 0")
        conn.execute(select(func.pg_advisory_lock(RUN_LOCK_KEY)))
        yield
    finally:
        conn.invalidate()  # releases the lock with the session
        conn.close()


@contextmanager
def run_lock(engine: Engine) -> Iterator[RunLock]:
    """The lock a run holds from its start to its end; see RunLock."""
    if engine.dialect.name != "postgresql":
        yield RunLock(engine, None)
        return
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        # Waiting for other runs is expected, however long they take: no lock timeout here.
        conn.exec_driver_sql("SET lock_timeout = 0")
        conn.execute(select(func.pg_advisory_lock_shared(RUN_LOCK_KEY)))
        yield RunLock(engine, conn)
    finally:
        # Closing the session releases its advisory locks; it never goes back to the pool
        # with them or with the changed lock timeout.
        conn.invalidate()
        conn.close()


def reclaim_sqlite(engine: Engine) -> None:
    """Checkpoint the WAL into the file, then, holding the write lock, zero the bytes of the
    file that hold no row (`sqlite_scrub`); a file that pass cannot read gets a `VACUUM`.

    The pass reads the whole file but writes only the pages it changes: on a 1,000,000-customer
    database it takes a few seconds where `VACUUM` rewrote 2.5 GB. It ends with a commit (of
    `PRAGMA user_version`, on page 1, which holds no PII) and a TRUNCATE checkpoint, so that
    every other connection finds the WAL changed and drops the pages it cached from before the
    pass (a reader is not blocked by the write lock): a connection that wrote such a page back
    would bring its old bytes back (tests/integration/test_sqlite_scrub.py)."""
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        assert isinstance(db, sqlite3.Connection)
        path = _main_file(db)
        if path is None:
            _vacuum_sqlite(db)
            return
        try:
            began = time.monotonic()
            _checkpoint(db)
            db.execute("BEGIN IMMEDIATE")
            if _wal_bytes(path):  # a writer came in before the lock: checkpoint again
                db.execute("ROLLBACK")
                _checkpoint(db)
                db.execute("BEGIN IMMEDIATE")
                if _wal_bytes(path):
                    db.execute("ROLLBACK")
                    raise DatabaseBusy(
                        NOT_RECLAIMED.format(why="other writers kept the WAL from emptying")
                    )
            try:
                report = scrub_free_space(path)
            except ScrubRefused as exc:
                db.execute("ROLLBACK")
                log.info("reclaim: %s; VACUUM instead", exc)
                _vacuum_sqlite(db)
                return
            except BaseException:
                db.execute("ROLLBACK")
                raise
            (version,) = db.execute("PRAGMA user_version").fetchone()
            db.execute(f"PRAGMA user_version = {(int(version) + 1) % 2**31}")
            db.execute("COMMIT")
            _checkpoint(db)
            log.info(
                "reclaim: %d of %d pages zeroed (%d bytes) in %.1f s (write lock held)",
                report.pages_zeroed,
                report.pages,
                report.bytes_zeroed,
                time.monotonic() - began,
            )
        except sqlite3.OperationalError as exc:
            _raise_busy(exc)
            raise
    finally:
        raw.close()


def _main_file(db: sqlite3.Connection) -> Path | None:
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file) if file else None
    return None


def _wal_bytes(path: Path) -> int:
    try:
        return (path.parent / f"{path.name}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def _checkpoint(db: sqlite3.Connection) -> None:
    busy, _frames, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise DatabaseBusy(
            NOT_RECLAIMED.format(
                why="a reader kept the old pages in use past SHELFLIFE_LOCK_TIMEOUT"
            )
        )


def _raise_busy(exc: sqlite3.OperationalError) -> None:
    if isinstance(database_error(exc), DatabaseBusy):
        raise DatabaseBusy(
            NOT_RECLAIMED.format(why="another process holds the write lock")
        ) from None


def _vacuum_sqlite(db: sqlite3.Connection) -> None:
    """VACUUM writes a fresh copy of the live rows through the WAL; the TRUNCATE checkpoint
    then copies it over the old file, truncates the file and empties the WAL."""
    try:
        began = time.monotonic()
        db.execute("VACUUM")
        vacuumed = time.monotonic()
        _checkpoint(db)
        log.info(
            "reclaim: VACUUM %.1f s (write lock held), TRUNCATE checkpoint %.1f s",
            vacuumed - began,
            time.monotonic() - vacuumed,
        )
    except sqlite3.OperationalError as exc:
        _raise_busy(exc)
        raise


RECLAIM_SESSIONS = 2
"""PostgreSQL sessions rewriting PII tables at the same time. Each VACUUM FULL is one server
process (its index rebuilds aside), so one session leaves every other core idle; the largest
tables (customers, addresses, invoices, orders) are of similar size, so two sessions halve the
time on two cores (a steady night on 100,000 customers: the run took 6.5 s with one session,
5.4 s with two; docs/performance.md), while a server with one core loses nothing but a
connection. The reclaim runs while every worker of the run waits, so no batch competes."""


def _vacuum_full_postgres(engine: Engine, tables: Sequence[str]) -> None:
    """VACUUM FULL each table in its own transaction, holding only that table's ACCESS
    EXCLUSIVE lock, so it cannot deadlock with a reader or writer; `RECLAIM_SESSIONS` tables
    at a time, the largest first. After a failure no further table is started, and the
    first error is raised once the tables under way have finished."""
    with engine.connect() as conn:
        sizes = {
            str(name): int(size)
            for name, size in conn.execute(
                text(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "WHERE c.relnamespace = current_schema()::regnamespace "
                    "AND c.relname = ANY(:names)"
                ),
                {"names": list(tables)},
            )
        }
    waiting = deque(sorted(tables, key=lambda name: -sizes.get(name, 0)))
    failures: list[BaseException] = []
    guard = threading.Lock()

    def next_table() -> str | None:
        with guard:
            return waiting.popleft() if waiting and not failures else None

    def session() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while (name := next_table()) is not None:
                try:
                    _vacuum_full_table(conn, name)
                except BaseException as exc:
                    with guard:
                        failures.append(exc)
                    return

    with ThreadPoolExecutor(max_workers=RECLAIM_SESSIONS) as pool:
        sessions = [pool.submit(session) for _ in range(min(RECLAIM_SESSIONS, len(waiting)))]
        try:
            for done in sessions:
                done.result()
        except BaseException as exc:
            # Ctrl-C, or a session that could not connect: the tables under way finish (the
            # pool waits for them), no other starts.
            with guard:
                failures.append(exc)
            raise
    if failures:
        raise failures[0]


def _vacuum_full_table(conn: Connection, name: str) -> None:
    try:
        began = time.monotonic()
        conn.exec_driver_sql(f'VACUUM FULL "{name}"')
        log.info(
            "reclaim: VACUUM FULL %s %.1f s (ACCESS EXCLUSIVE lock held)",
            name,
            time.monotonic() - began,
        )
    except OperationalError as exc:
        if isinstance(database_error(exc), DatabaseBusy):
            raise DatabaseBusy(
                NOT_RECLAIMED.format(
                    why=f"another session held a lock on table {name} for longer "
                    "than SHELFLIFE_LOCK_TIMEOUT"
                )
            ) from None
        raise


def _warn_about_old_snapshots(conn: Connection) -> None:
    """VACUUM FULL must keep every row version an open transaction may still see: a session
    idle in a transaction, a long report or a pg_dump can keep the old values on disk."""
    holders = conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL"
        )
    ).scalar_one()
    slots = conn.execute(
        text("SELECT count(*) FROM pg_replication_slots WHERE xmin IS NOT NULL")
    ).scalar_one()
    if holders or slots:
        log.warning(
            "%d open transaction(s) and %d replication slot(s) hold old snapshots: VACUUM FULL "
            "keeps the row versions they can still see, which may include masked values "
            "(see docs/operations.md, 'What the reclaim does not cover')",
            holders,
            slots,
        )
