"""Remove masked buyers' old values from the database files once a run has masked someone.

Masking overwrites values, but neither database overwrites the old bytes: SQLite leaves cell
images in the free space of rebuilt B-tree pages (even with `secure_delete`), PostgreSQL keeps
the old row versions in the table, TOAST and index files after a plain VACUUM. Measured on the
byte-level test's data (tests/integration/test_no_residue_in_database_files.py, 240 masked
buyers): a WAL checkpoint left values of 2 buyers in the SQLite file, incremental vacuum the
same 2, VACUUM none; PostgreSQL's VACUUM left 9,146 values of all 240 in `base/`, VACUUM FULL
none. So the reclaim rewrites: SQLite `VACUUM` of the file, PostgreSQL `VACUUM FULL` of the
PII tables. Both copy only the live rows; docs/operations.md gives their cost and locks.
(PostgreSQL's planner statistics are kept free of PII by the schema: migration 0002.)
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import OperationalError

from shelflife.adapters.db.engine import database_error
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
            _vacuum_sqlite(self.engine)
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


def _vacuum_sqlite(engine: Engine) -> None:
    """VACUUM writes a fresh copy of the live rows through the WAL; the TRUNCATE checkpoint
    then copies it over the old file, truncates the file and empties the WAL."""
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        assert isinstance(db, sqlite3.Connection)
        try:
            began = time.monotonic()
            db.execute("VACUUM")
            vacuumed = time.monotonic()
            busy, _frames, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            log.info(
                "reclaim: VACUUM %.1f s (write lock held), TRUNCATE checkpoint %.1f s",
                vacuumed - began,
                time.monotonic() - vacuumed,
            )
        except sqlite3.OperationalError as exc:
            translated = database_error(exc)
            if isinstance(translated, DatabaseBusy):
                raise DatabaseBusy(
                    NOT_RECLAIMED.format(why="another process holds the write lock")
                ) from None
            raise
        if busy:
            raise DatabaseBusy(
                NOT_RECLAIMED.format(
                    why="a reader kept the old pages in use past SHELFLIFE_LOCK_TIMEOUT"
                )
            )
    finally:
        raw.close()


def _vacuum_full_postgres(engine: Engine, tables: Sequence[str]) -> None:
    """VACUUM FULL each table in its own transaction, holding only that table's ACCESS
    EXCLUSIVE lock, so it cannot deadlock with a reader or writer.

    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in tables:
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
