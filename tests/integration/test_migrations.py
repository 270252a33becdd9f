"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from shelflife.adapters.db.engine import (
    SCHEMA_HEAD,
    alembic_config,
    make_engine,
    schema_is_current,
    upgrade_schema,
)
from shelflife.adapters.db.tables import Base


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_schema(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_schema_head_constant_is_alembics_head(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() == SCHEMA_HEAD
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_reports_current(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert schema_is_current(engine) is False
        upgrade_schema(engine)
        upgrade_schema(engine)
        assert schema_is_current(engine) is True
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_secure_delete(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        engine.dispose()


def test_numbers_customer_service_searches_by_are_looked_up_through_an_index(
    sqlite_url: str,
) -> None:
    """The unique constraints lead with the shop; a search without the shop needs its own index."""
    engine = make_engine(sqlite_url)
    try:
        upgrade_schema(engine)
        lookups = {
            "orders": "order_nr_external",
            "invoices": "invoice_nr",
            "credits": "credit_nr",
            "archive_copies": "object_key",
        }
        with engine.connect() as conn:
            for table, column in lookups.items():
                plan = " ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(
                        f"EXPLAIN QUERY PLAN SELECT id FROM {table} WHERE {column} = 'X-1'"
                    )
                )
                assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (table, plan)
    finally:
        engine.dispose()


def test_sqlite_never_hands_a_deleted_customers_id_out_again_even_after_upgrading(
    tmp_path: Path,
) -> None:
    """Rebuilt by 0005 with its rows, foreign keys and checks intact; a reference stays unique."""
    from alembic import command

    from shelflife.services.customers import merge_customers
    from shelflife.services.importing import import_lines
    from tests.support.builders import lines, make_app, order

    application, _clock = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "home")
    engine = application.engine
    try:
        twin = order("302-0000002-0000002")
        twin["customer"]["customer_nr_external"] = "OTHERBUYER"
        assert import_lines(application, lines(order(), twin)).created == 2
        command.downgrade(alembic_config(engine), "0004")
        command.upgrade(alembic_config(engine), "head")
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            table_sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'customers'"
            ).scalar_one()
            assert "AUTOINCREMENT" in table_sql
            assert "revision_positive" in table_sql
            assert "retrieved_was_masked" in table_sql
            assert (
                conn.exec_driver_sql(
                    "SELECT count(*) FROM orders JOIN customers ON customers.id = customer_id"
                ).scalar_one()
                == 2
            )
        merge_customers(application.ports(), "C1", "C2", "test")  # deletes C2, the largest id
        third = order("302-0000003-0000003")
        third["customer"]["customer_nr_external"] = "THIRDBUYER"
        assert import_lines(application, lines(third)).created == 1
        with engine.connect() as conn:
            ids = conn.exec_driver_sql("SELECT id FROM customers ORDER BY id").scalars().all()
        assert ids == [1, 3]
    finally:
        application.close()
