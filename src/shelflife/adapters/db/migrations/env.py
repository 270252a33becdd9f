"""Alembic environment: runs on the engine shelflife built, or on `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite's procedure for rebuilding a table that others reference: enforcement off outside
    the transaction (inside one the pragma does nothing), every reference checked before the
    commit. Straight on the driver's connection, which is in autocommit mode here."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            transactional_ddl=True,  # SQLite can; Alembic assumes not and commits midway
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("a migration left rows pointing at rows that do not exist")
    finally:
        if connection.in_transaction():
            connection.rollback()
        if sqlite:
            _sqlite_foreign_keys(connection, on=True)
