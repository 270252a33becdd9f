"""Engines for the embedded default (SQLite) and production (PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shelflife.domain.errors import InvalidInput, ShelflifeError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "shelflife_read_only"
"""Execution option of the connections `read_only` hands out."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and secure_delete on every connection.

    `secure_delete` makes SQLite overwrite freed content with zeros, so masked values do not
    linger in free pages of the file.
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
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # The sqlite3 driver would otherwise open transactions lazily and hide BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front (no deadlock on upgrade); readers do not.
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def read_only(engine: Engine) -> Connection:
    """A connection for commands that only read (a dry run, listings).

    SQLite: a deferred transaction that takes no write lock, so it neither waits for nor holds
    up a nightly run (WAL readers see the last commit). PostgreSQL: a READ ONLY transaction, so
    the server itself refuses any write.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.connect().execution_options(**options)


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


SCHEMA_HEAD = "0003"
"""The newest migration's revision; a test keeps it equal to Alembic's head, so that every
command can check the schema without loading Alembic."""


def schema_is_current(engine: Engine) -> bool:
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
