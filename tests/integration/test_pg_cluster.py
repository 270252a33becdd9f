"""The ``database_url`` fixture yields a working, empty, private database on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

_seen_urls: set[str] = set()


def test_database_url_round_trips_rows(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
            conn.execute(
                sa.text("INSERT INTO probe (id, name) VALUES (:id, :name)"),
                [{"id": 1, "name": "Jürgen Weiß"}, {"id": 2, "name": "Ada"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM probe ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "Jürgen Weiß"), (2, "Ada")]


def test_database_url_dialect_matches_backend(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["database_url"]
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == backend
            if backend == "postgresql":
                assert conn.dialect.driver == "psycopg"
                assert conn.execute(sa.text("SELECT current_setting('fsync')")).scalar() == "off"
    finally:
        engine.dispose()


@pytest.mark.parametrize("use", ["first", "second"])
def test_database_url_uses_are_isolated(database_url: str, use: str) -> None:
    # Both uses create the same table without IF NOT EXISTS and expect to see only their own row:
    # whichever runs second would fail if it shared a database with the other.
    assert database_url not in _seen_urls
    _seen_urls.add(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE isolation_probe (use TEXT NOT NULL)"))
            conn.execute(sa.text("INSERT INTO isolation_probe (use) VALUES (:use)"), {"use": use})
        with engine.connect() as conn:
            uses = conn.execute(sa.text("SELECT use FROM isolation_probe")).scalars().all()
    finally:
        engine.dispose()
    assert uses == [use]
