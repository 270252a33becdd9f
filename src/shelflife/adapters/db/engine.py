"""Engines for the embedded default (SQLite) and production (PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shelflife.domain.errors import DatabaseBusy, InvalidInput, ShelflifeError, Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a statement waits for a lock another process holds (SHELFLIFE_LOCK_TIMEOUT)."""

BUSY = (
    "the database is busy: another shelflife process (e.g. the nightly run) holds its write "
    "lock; try again when it has finished"
)
CANNOT_CONNECT = "cannot connect to the database; check SHELFLIFE_DATABASE_URL"


def make_engine(
    url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, *, read_only: bool = False
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and secure_delete on every connection.

    `secure_delete` makes SQLite overwrite freed content with zeros, so masked values do not
    linger in free pages of the file (the run's VACUUM removes what it misses, see
    `reclaim.py`). `lock_timeout` bounds how long a statement waits for another process's
    lock before it fails with `DatabaseBusy`.

    SQLite writers start with BEGIN IMMEDIATE: they take the write lock up front instead of
    failing halfway when another writer got there first. A `read_only` engine (see
    `read_only_engine`) starts deferred and is query-only: WAL readers never wait for a writer.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise InvalidInput(
            "SHELFLIFE_DATABASE_URL: not a database URL; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/NAME"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"SHELFLIFE_DATABASE_URL: {backend!r} is not supported; use SQLite or PostgreSQL"
        )
    wait_ms = max(1, round(lock_timeout * 1000))
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ShelflifeError(
                    f"cannot create the database folder {folder}: {exc.strerror}"
                ) from None
        # hide_parameters: SQL logs and database errors must never carry buyers' data.
        engine = create_engine(url, connect_args={"timeout": lock_timeout}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The sqlite3 driver would otherwise open transactions lazily and hide BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute(f"PRAGMA busy_timeout={wait_ms}")
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front (no deadlock on upgrade); readers (the
            # read-only engine, the one way to read without the write lock) do not.
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _postgres_lock_timeout(dbapi_conn: Any, _record: Any) -> None:
        # Committed, so that the pool's rollback on check-in does not undo it.
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {wait_ms}")
        dbapi_conn.commit()

    if read_only:
        return engine.execution_options(postgresql_readonly=True)
    return engine


def read_only_engine(engine: Engine, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Engine:
    """The engine for read-only work (`show`, `compliance`, listings, the run's counts).

    SQLite: its own small pool whose transactions start deferred on query-only connections, so
    a reader never queues behind the nightly run's write lock. PostgreSQL: the same pool, with
    READ ONLY transactions (readers never wait for row locks there anyway).
    """
    if engine.dialect.name == "sqlite":
        return make_engine(
            engine.url.render_as_string(hide_password=False), lock_timeout, read_only=True
        )
    return engine.execution_options(postgresql_readonly=True)


def database_error(exc: BaseException) -> ShelflifeError | None:
    """Our error for a database library's operational failure (a lock not granted in time, a
    server not reachable), or None when `exc` is none of those.

    The library's own message is never passed on: it can quote SQL parameters, i.e. PII.
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", 0) & 0xFF
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return DatabaseBusy(BUSY)
        if code == sqlite3.SQLITE_CANTOPEN:
            return Unavailable(CANNOT_CONNECT)
        name = getattr(orig, "sqlite_errorname", "an SQLite error")
        return Unavailable(
            f"the database failed ({name}); each step is a transaction, so nothing was "
            "half-written: fix the cause and rerun"
        )
    if isinstance(orig, sqlite3.Error):
        return None
    import psycopg  # only here: SQLite installations never load the PostgreSQL driver

    if not isinstance(orig, psycopg.OperationalError):
        return None
    if orig.sqlstate == "55P03":  # lock_not_available: lock_timeout expired
        return DatabaseBusy(BUSY)
    if orig.sqlstate is None or orig.sqlstate.startswith("08"):  # no server, no connection
        return Unavailable(CANNOT_CONNECT)
    return Unavailable(
        f"the database failed (SQLSTATE {orig.sqlstate}); each step is a transaction, so "
        "nothing was half-written: fix the cause and rerun"
    )


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # Alembic is loaded only when the schema is checked

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration; safe to repeat."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


SCHEMA_HEAD = "0015"
"""The newest migration's revision; a test keeps it equal to Alembic's head, so that every
command can check the schema without loading Alembic."""


def schema_is_current(engine: Engine) -> bool:
    """Whether the schema is at SCHEMA_HEAD; give it the read-only engine, so that checking
    does not wait for a writer."""
    if not inspect(engine).has_table("alembic_version"):
        return False
    with engine.connect() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return current == SCHEMA_HEAD


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_sqlite_files_private(url: str) -> None:
    """Create the SQLite database file readable by its owner only (when it is missing), and
    make it and its -wal and -shm files mode 0600: they hold buyers' PII until masking.

    SQLite gives the -wal and -shm files it creates later the database file's mode.
    """
    path = sqlite_file(url)
    if path is None:
        return
    try:
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if file.exists():
                file.chmod(0o600)
    except OSError as exc:
        raise ShelflifeError(
            f"cannot make the database file {path} private: {exc.strerror}"
        ) from None
