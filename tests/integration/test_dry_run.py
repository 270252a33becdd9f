"""`run --dry-run` on SQLite and PostgreSQL: the counts a real run then reports, on buyers in
every state, while writing nothing (no row, no archive object, no run record), needing no
master key and taking no write lock."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from shelflife.adapters.db.tables import Base, Order, Shop
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import RunReport, dry_run, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import configure_shop, set_feature
from tests.support.builders import T0, days, lines, order
from tests.support.fakes import FailingPut, TamperedRecord

AS_OF = T0 + days(61)
COUNTS = ("shops", "archived", "archive_failed", "retried", "masked", "remasked")


def _table_dump(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: the whole database as data."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with app.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            dump[table.name] = [tuple(row) for row in conn.execute(query)]
    return dump


def _archive_listing(app: App) -> dict[str, tuple[int, str]]:
    """Every file under the archive folder with its size and digest."""
    root = Path(app.settings.home) / "archive"
    return {
        str(path.relative_to(root)): (
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _customer_of(app: App, nr: str) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(Order.customer_id).where(Order.order_nr_external == nr)
            ).scalar_one()
        )


def _at(app: App, moment: datetime) -> datetime:
    """Move the app's clock: retrievals and feature switches happen at that time."""
    assert isinstance(app.clock, FixedClock)
    app.clock.instant = moment
    return moment


def _import(app: App, *orders: dict[str, Any]) -> None:
    assert import_lines(app, lines(*orders)).refused == []


def _mixed_states(app: App) -> None:
    """Buyers in every state a night can find them in, in four shops, by AS_OF (T0 + 61 days):

    - retrieved 30 days ago (re-mask due); masked long ago (nothing to do);
    - shipped 30 days ago, reported late (archive and mask tonight), with varied row sets;
    - archived last night (mask tonight); archived last night, then edited (re-archive, mask);
    - an open second order or a young invoice (archived, held); failed last night (retried and
      masked tonight); failed earlier today (waits for tomorrow);
    - a shop order; a second enabled shop in another zone; a disabled shop with an overdue buyer.
    """
    _import(
        app,
        order("301-0000000-0000001", shipped_at=T0, suffix="-r"),
        order("301-0000000-0000002", shipped_at=T0, suffix="-m"),
    )
    set_feature(app.ports(), "main", True, "ops")
    run_retention(app.ports(), _at(app, T0 + days(30)))
    retrieve_order(
        app.ports(), "301-0000000-0000001", "Rücksendung", "anna", _at(app, T0 + days(31))
    )

    edited = order("303-0000000-0000002", shipped_at=T0 + days(31), suffix="-e")
    _import(
        app,
        order("303-0000000-0000001", shipped_at=T0 + days(31), suffix="-a"),
        edited,
        order("305-0000000-0000001", shipped_at=T0 + days(25), suffix="-h"),
        order("305-0000000-0000002", suffix="-h"),
        order("306-0000000-0000001", shipped_at=T0 + days(25), invoiced_at=T0 + days(50)),
        order("307-0000000-0000001", shipped_at=T0 + days(25), suffix="-f"),
        order("307-0000000-0000002", shipped_at=T0 + days(25), suffix="-w", shop="west"),
        order("SHOP-100001", shipped_at=T0, suffix="-s"),
        order("309-0000000-0000001", shipped_at=T0, suffix="-d", shop="closed"),
    )
    real = app.archive
    app.archive = TamperedRecord(real, _customer_of(app, "307-0000000-0000001"))
    run_retention(app.ports(), _at(app, T0 + days(60)))

    late = [
        order(f"302-0000000-000000{i}", shipped_at=T0 + days(31), suffix=f"-n{i}") for i in range(4)
    ]
    late[0]["items"] = late[0]["items"] * 7
    late.append(order("302-0000000-0000010", shipped_at=T0 + days(31), suffix="-n0"))
    late += [
        order(f"308-0000000-000000{i}", shipped_at=T0 + days(31), suffix=f"-k{i}", shop="outlet")
        for i in range(2)
    ]
    _import(app, *late, dict(edited, gift_message="Neue Nachricht"))
    configure_shop(app.ports(), "outlet", "Pacific/Auckland", None)

    # Earlier today, only the shop "west" ran, and its archive failed: it waits for tomorrow.
    _at(app, AS_OF - days(1 / 24))
    set_feature(app.ports(), "main", False, "ops")
    set_feature(app.ports(), "west", True, "ops")
    app.archive = FailingPut(real)
    run_retention(app.ports(), AS_OF - days(1 / 24))
    app.archive = real
    set_feature(app.ports(), "main", True, "ops")
    set_feature(app.ports(), "outlet", True, "ops")
    _at(app, AS_OF)


def _retention_counts(report: RunReport) -> dict[str, int]:
    counts = report.counts()
    return {k: v for k, v in counts.items() if k not in ("verified_objects", "integrity_problems")}


def test_dry_run_reports_the_counts_of_the_real_run_and_writes_nothing(app: App) -> None:
    _mixed_states(app)
    tables, objects = _table_dump(app), _archive_listing(app)

    planned = dry_run(app.ports(), AS_OF)

    assert (_table_dump(app), _archive_listing(app)) == (tables, objects)
    assert (planned.dry_run, planned.archive_failed, planned.archive_failure_reasons) == (
        True,
        0,
        [],
    )
    done = run_retention(app.ports(), AS_OF)
    # A dry run re-reads nothing: the verification sample's counts are the real run's only.
    assert (planned.verified_objects, planned.integrity_problems) == (0, 0)
    assert (done.verified_objects, done.integrity_problems) == (1, 0)
    assert _retention_counts(planned) == _retention_counts(done)
    assert _retention_counts(done) == {
        "shops": 3,
        "archived": 8,  # edited, 4 reported late, 2 in Auckland, failed last night
        "archive_failed": 0,
        "retried": 1,
        "masked": 9,  # archived last night, edited, 4 late, 2 in Auckland, failed last night
        "remasked": 1,  # its restored data was archived again the night after retrieval
        "mask_refused": 0,
    }


def test_dry_run_needs_no_master_key(app: App) -> None:
    _mixed_states(app)
    app.key_path.unlink()
    keyless = build_app(app.settings, FixedClock(T0))
    try:
        tables = _table_dump(keyless)

        planned = dry_run(keyless.ports(), AS_OF)

        assert _table_dump(keyless) == tables
    finally:
        keyless.close()
    assert (planned.archived, planned.masked) == (8, 9)


def test_dry_run_does_not_wait_for_a_writer_holding_the_database(app: App) -> None:
    """On SQLite every transaction took the write lock, so a preview waited for (or failed
    against) a nightly run; a reader must not. On PostgreSQL readers never wait either."""
    _mixed_states(app)
    writer = app.engine.connect()
    try:
        writer.begin()
        writer.execute(update(Shop).where(Shop.name == "main").values(name="main"))

        planned = dry_run(app.ports(), AS_OF)
    finally:
        writer.rollback()
        writer.close()

    assert (planned.archived, planned.masked) == (8, 9)


def test_dry_run_with_no_enabled_shop_counts_nothing(app: App) -> None:
    assert import_lines(app, lines(order(shipped_at=T0))).refused == []

    planned = dry_run(app.ports(), T0 + days(40))

    assert {k: getattr(planned, k) for k in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert planned.model_dump(mode="json")["as_of"] == (T0 + days(40)).isoformat()
    assert isinstance(planned.model_dump(mode="json")["duration_seconds"], float)
    assert datetime.fromisoformat(planned.as_of) == T0 + days(40)
