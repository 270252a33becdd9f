"""Alembic environment: runs on the engine shelflife built, or on `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
