"""PostgreSQL's reclaim rewrites the PII tables in `RECLAIM_SESSIONS` sessions at a time.

The residue tests (test_no_residue_in_database_files.py) show that the rewrite leaves no old
value; these show how it is shared out: every table exactly once, two at the same time, and a
table another session keeps locked stops the reclaim with that table's name without stopping
the table already under way in the other session."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, make_url, text

from shelflife.adapters.db import reclaim
from shelflife.adapters.db.tables import PII_TABLES
from shelflife.bootstrap import App
from shelflife.domain.errors import DatabaseBusy
from tests.support.builders import make_app
from tests.support.pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[App]:
    name = f"reclaim_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    built, _clock = make_app(url, tmp_path / "home", lock_timeout=0.5)
    try:
        yield built
    finally:
        built.close()
        postgres_cluster.drop_database(name)


def file_nodes(app: App) -> dict[str, int]:
    """The file node of each PII table: a VACUUM FULL gives the table a new one."""
    with app.engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT pg_relation_filenode('{name}')")).scalar_one()
            for name in PII_TABLES
        }


def test_every_table_is_rewritten_once_and_two_at_the_same_time(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of the first two tables waits at a barrier for the other: were the tables
    rewritten one after the other, the first would wait alone and the barrier break."""
    assert reclaim.RECLAIM_SESSIONS == 2
    meeting = threading.Barrier(2, timeout=20)
    entered: list[str] = []
    done: list[str] = []
    real = reclaim._vacuum_full_table

    def meeting_first(conn: Connection, name: str) -> None:
        entered.append(name)
        if len(entered) <= 2:
            meeting.wait()
        real(conn, name)
        done.append(name)

    monkeypatch.setattr(reclaim, "_vacuum_full_table", meeting_first)
    before = file_nodes(app)
    reclaim._vacuum_full_postgres(app.engine, list(PII_TABLES))
    after = file_nodes(app)
    assert sorted(done) == sorted(PII_TABLES)
    assert all(after[name] != before[name] for name in PII_TABLES)


def test_a_table_kept_locked_stops_the_reclaim_with_its_name_and_the_next_one_finishes(
    app: App,
) -> None:
    """Another session holds the customers table (a report in an open transaction) past the
    lock timeout: the reclaim says which table, leaves that one as it was, and no table is
    started after the failure; once the lock is gone a second reclaim rewrites them all."""
    url = make_url(str(app.engine.url.render_as_string(hide_password=False)))
    connect: dict[str, Any] = {
        "dbname": url.database,
        "user": url.username,
        "host": str(url.query["host"]),
        "port": int(str(url.query["port"])),
    }
    before = file_nodes(app)
    with psycopg.connect(**connect) as other:
        other.execute("LOCK TABLE customers IN ACCESS SHARE MODE")
        with pytest.raises(DatabaseBusy, match="on table customers for longer"):
            reclaim._vacuum_full_postgres(app.engine, list(PII_TABLES))
        other.rollback()
    middle = file_nodes(app)
    assert middle["customers"] == before["customers"]
    reclaim._vacuum_full_postgres(app.engine, list(PII_TABLES))
    after = file_nodes(app)
    assert all(after[name] != middle[name] for name in PII_TABLES)


def test_a_failure_keeps_the_tables_not_yet_started_from_starting(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first table fails at once, while the other session is still on its own table:
    when that one ends no further table starts, and the failure is what the caller gets."""
    started: list[str] = []
    both_started = threading.Barrier(2, timeout=20)
    first_failed = threading.Event()
    real = reclaim._vacuum_full_table

    def failing_first(conn: Connection, name: str) -> None:
        started.append(name)
        first = len(started) == 1
        if len(started) <= 2:
            both_started.wait()
        if first:
            first_failed.set()
            raise DatabaseBusy("the first table could not be locked")
        first_failed.wait(timeout=20)
        real(conn, name)

    monkeypatch.setattr(reclaim, "_vacuum_full_table", failing_first)
    with pytest.raises(DatabaseBusy, match="the first table could not be locked"):
        reclaim._vacuum_full_postgres(app.engine, list(PII_TABLES))
    assert len(started) == 2


def test_ctrl_c_lets_the_tables_under_way_finish_and_starts_no_other(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator presses Ctrl-C while the first two tables are being rewritten: both
    finish (a VACUUM FULL is atomic anyway), the interrupt reaches the caller, and the other
    six tables are left for the next run (which reclaims, the run having stopped early)."""
    started: list[str] = []
    finished: list[str] = []
    both_started = threading.Barrier(2, timeout=20)
    real = reclaim._vacuum_full_table
    main = threading.main_thread().ident
    assert main is not None

    def interrupted(conn: Connection, name: str) -> None:
        started.append(name)
        if len(started) <= 2 and both_started.wait() == 0:
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.5)  # the main thread takes the interrupt before this table ends
        real(conn, name)
        finished.append(name)

    monkeypatch.setattr(reclaim, "_vacuum_full_table", interrupted)
    # Python's own Ctrl-C handler: a library an earlier test loaded may have put its own in
    # place (in the full suite SIGINT then raised nothing).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            reclaim._vacuum_full_postgres(app.engine, list(PII_TABLES))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(finished) == sorted(started)
    assert len(started) == 2
