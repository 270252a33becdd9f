"""The nightly run's per-batch queries keep plans that do not grow with the database.

Both defects below passed every functional test and showed only at 1,000,000 customers, where
each batch read the whole shop or every invoice. The plans are read with EXPLAIN QUERY PLAN of
the very statements the repositories send."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select

from shelflife.adapters.db.retention import in_shop
from shelflife.adapters.db.tables import Customer, Shop
from shelflife.bootstrap import App
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import Due, Selection
from shelflife.services.importing import import_lines
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, lines, make_app, order
from tests.support.pg_cluster import PostgresCluster

NIGHT = T0 + days(40)


@contextmanager
def _sent(app: App) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the app sends while inside, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append((sql, params))

    event.listen(app.engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(app.engine, "before_cursor_execute", seen)


def _plans(database: Path, work: Callable[[], object], app: App) -> list[str]:
    with _sent(app) as statements:
        work()
    assert statements
    db = sqlite3.connect(database)
    try:
        return [
            " / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements
        ]
    finally:
        db.close()


def _app(tmp_path: Path) -> tuple[App, Path]:
    database = tmp_path / "plans.sqlite"
    app, _clock = make_app(f"sqlite:///{database}", tmp_path / "home")
    orders = [
        order(f"304-{i:07d}-{i:07d}", shipped_at=T0, suffix=f"-q{i}", invoiced_at=T0)
        for i in range(5)
    ]
    assert import_lines(app, lines(*orders)).refused == []
    set_feature(app.ports(), "main", True, "ops")
    return app, database


@contextmanager
def _postgres_app(cluster: PostgresCluster, tmp_path: Path) -> Iterator[App]:
    """An app on a database of its own on the test cluster, dropped afterwards."""
    name = f"plans_{uuid.uuid4().hex[:12]}"
    app, _clock = make_app(cluster.create_database(name), tmp_path / "home")
    try:
        yield app
    finally:
        app.close()
        cluster.drop_database(name)


def _selection(app: App, due: Due) -> Selection:
    with app.ports().reader as reader:
        shop = reader.shops.enabled()[0]
    return Selection(due, shop.id, Cutoffs.for_shop(NIGHT, ZoneInfo(shop.time_zone)), "key")


def test_a_batch_of_due_buyers_is_read_from_the_last_id_on_not_through_the_whole_shop(
    tmp_path: Path,
) -> None:
    app, database = _app(tmp_path)
    try:
        selection = _selection(app, Due.ARCHIVE)
        ports = app.ports()

        def next_batch() -> object:
            with ports.uow as uow:
                return uow.customers.next_batch(selection, 0, 1000)

        def among() -> object:
            with ports.uow as uow:
                return uow.customers.among(_selection(app, Due.MASK), [1, 2, 3])

        batch_plan, among_plan = _plans(database, next_batch, app), _plans(database, among, app)
    finally:
        app.close()

    # Only the buyers with real PII and no current copy, from the last id on (migration 0015):
    # in a shop that has run for a while, nearly every buyer is masked and needs no copy.
    assert batch_plan[0].startswith("SEARCH customers USING INDEX ix_customers_copy_wanted (id>?)")
    assert "TEMP B-TREE" not in batch_plan[0]
    assert among_plan[0].startswith("SEARCH customers USING INTEGER PRIMARY KEY (rowid=?)")


def test_the_pdfs_leaving_the_store_are_found_through_their_partial_index(
    tmp_path: Path,
) -> None:
    app, database = _app(tmp_path)
    try:
        ports = app.ports()

        def leaving() -> object:
            with ports.uow as uow:
                return uow.pdfs.leaving(1000)

        plans = _plans(database, leaving, app)
    finally:
        app.close()

    assert plans == [
        "SCAN invoices USING INDEX ix_invoices_pdf_leaving",
        "SCAN credits USING INDEX ix_credits_pdf_leaving",
    ]


def test_the_mask_and_remask_steps_read_only_the_buyers_waiting_for_them(tmp_path: Path) -> None:
    """Buyers archived on earlier nights and not masked yet, and retrieved buyers, come from
    their partial indexes (migration 0014): walking every buyer of the shop and testing each
    against its order and invoice subqueries cost more than a small night's own work at
    1,000,000 customers. The count of buyers refused for their key reads the same indexes."""
    app, database = _app(tmp_path)
    plans: dict[Due, tuple[list[str], list[str]]] = {}
    try:
        ports = app.ports()
        for due in (Due.MASK, Due.REMASK, Due.MASK_REFUSED, Due.REMASK_REFUSED):
            selection = _selection(app, due)

            def next_batch(selection: Selection = selection) -> object:
                with ports.uow as uow:
                    return uow.customers.next_batch(selection, 0, 1000)

            def count(selection: Selection = selection) -> object:
                with ports.uow as uow:
                    return uow.customers.count(selection)

            plans[due] = (_plans(database, next_batch, app), _plans(database, count, app))
    finally:
        app.close()

    for due, index in (
        (Due.MASK, "ix_customers_mask_waiting"),
        (Due.MASK_REFUSED, "ix_customers_mask_waiting"),
        (Due.REMASK, "ix_customers_retrieved"),
        (Due.REMASK_REFUSED, "ix_customers_retrieved"),
    ):
        batch_plan, count_plan = plans[due]
        assert batch_plan[0].startswith(f"SEARCH customers USING INDEX {index} (id>?)"), due
        assert "TEMP B-TREE" not in batch_plan[0], due
        assert count_plan[0].startswith(f"SCAN customers USING INDEX {index}"), due


def test_the_expired_buyers_are_walked_by_id_not_through_a_shop_index_and_a_sort(
    tmp_path: Path,
) -> None:
    app, database = _app(tmp_path)
    try:
        ports = app.ports()
        with ports.reader as reader:
            shop_id = reader.shops.enabled()[0].id
        expired = dict.fromkeys(DocumentKind, NIGHT - days(3650))

        def shred_due() -> object:
            with ports.uow as uow:
                return uow.customers.shred_due(shop_id, expired, 0, 1000)

        plan = _plans(database, shred_due, app)
    finally:
        app.close()

    assert plan[0].startswith("SEARCH customers USING INTEGER PRIMARY KEY (rowid>?)")
    assert "TEMP B-TREE" not in plan[0]


@pytest.mark.postgres
def test_the_dry_runs_mask_counts_leave_no_exists_to_be_run_row_by_row_on_postgresql(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """The dry run counts what the mask steps will select after tonight's archive step. As one
    condition, `current copy OR (archived tonight AND ...)`, PostgreSQL ran the archive
    EXISTS inside the OR once per buyer (a SubPlan); at 1,000,000 customers, with its guess of
    the shop's size, that became a loop over every open order per buyer and a dry run that
    counted for over 8 minutes. The count now sends two disjoint conditions (2.1 s there), and
    they add up to the same number as the run's own selection."""
    with _postgres_app(postgres_cluster, tmp_path) as app:
        orders = [
            order(f"305-{i:07d}-{i:07d}", shipped_at=T0, suffix=f"-e{i}", invoiced_at=T0)
            for i in range(40)
        ]
        assert import_lines(app, lines(*orders)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        ports = app.ports()
        counted: dict[Due, int] = {}
        selections = {
            due: dataclasses.replace(_selection(app, due), tonight=True)
            for due in (Due.MASK, Due.REMASK)
        }
        with _sent(app) as statements:
            for due, tonight in selections.items():
                with ports.uow as uow:
                    counted[due] = uow.customers.count(tonight)
        with app.engine.connect() as conn:
            plans = [
                "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
                for sql, params in statements
            ]
    assert [plan for plan in plans if "SubPlan" in plan] == []
    assert len(plans) == 4
    assert counted == {Due.MASK: 40, Due.REMASK: 0}


@pytest.mark.postgres
def test_postgresql_estimates_the_buyers_of_a_shop_from_its_statistics(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """PostgreSQL gets the plain `shop_id = :shop`, not SQLite's `shop_id + 0`: to its planner
    the latter is an expression worth 0.5 % of the rows. At 1,000,000 customers that guess
    made the dry run's mask count loop over every open order for each buyer (over 8 minutes),
    and, once the walk had passed enough buyers, turned each batch of the backlog into a scan
    of the whole table and a sort (0.6 s a batch instead of 0.01 s). With statistics the
    estimate is the shop's real size."""
    with _postgres_app(postgres_cluster, tmp_path) as app:
        buyers = 400
        orders = [
            order(f"305-{i:07d}-{i:07d}", shipped_at=T0, suffix=f"-e{i}") for i in range(buyers)
        ]
        assert import_lines(app, lines(*orders)).refused == []
        with app.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE customers")
            shop_id = conn.execute(select(Shop.id)).scalar_one()
            compiled = (select(func.count()).select_from(Customer).where(in_shop(shop_id))).compile(
                dialect=conn.dialect
            )
            assert "+" not in str(compiled)
            (plan,) = conn.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params
            ).scalar_one()
        scan = plan["Plan"]["Plans"][0] if "Plans" in plan["Plan"] else plan["Plan"]
        assert scan["Plan Rows"] >= buyers * 0.9


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.postgres
def test_a_merged_batch_reads_the_buyers_orders_from_the_batch_on_not_from_the_first(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """With the shop's real size known, PostgreSQL may merge the buyers (walked by id from the
    last batch) with their orders, invoices and credits. Without a bound on the rows' side it
    read their index from its first entry for every batch: at 1,000,000 customers a steady
    night's walk took 6.9 s instead of 3.3 s. The plan is forced to merge here (a database
    this small would never choose it) and must read only the rows from the batch on."""
    with _postgres_app(postgres_cluster, tmp_path) as app:
        buyers = 120
        orders = [
            order(f"306-{i:07d}-{i:07d}", shipped_at=T0, suffix=f"-m{i}", invoiced_at=T0)
            for i in range(buyers)
        ]
        assert import_lines(app, lines(*orders)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        with app.engine.connect() as conn:
            ids = list(conn.execute(select(Customer.id).order_by(Customer.id)).scalars())
        after = ids[-11]  # the last batch: ten buyers left
        selection = _selection(app, Due.ARCHIVE)
        ports = app.ports()
        with _sent(app) as statements, ports.uow as uow:
            uow.customers.next_batch(selection, after, 1000)
        ((sql, params),) = statements
        with app.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("SET enable_nestloop = off")
            conn.exec_driver_sql("SET enable_hashjoin = off")
            (plan,) = conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params
            ).scalar_one()
            conn.rollback()
    nodes = list(_nodes(plan["Plan"]))
    assert any(n["Node Type"] == "Merge Join" for n in nodes)
    read = {
        n["Relation Name"]: n["Actual Rows"]
        for n in nodes
        if n.get("Relation Name") in ("orders", "invoices", "credits")
    }
    assert read  # the merge read the rows' side
    assert all(rows <= 10 for rows in read.values()), read
