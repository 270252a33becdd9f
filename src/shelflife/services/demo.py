"""`shelflife demo`: a guided tour of the whole retention cycle on fake data.

Orders arrive night by night as a shop would see them (placed, shipped, invoiced, credited),
the nightly run archives, masks and re-masks, one night the archive is unreachable so the
retry shows, and at the end one order is retrieved as customer service would.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from shelflife.adapters.archive.store import ArchiveStore, StoredObject
from shelflife.adapters.db.tables import Order
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import Settings
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.sample_data import SampleSpec, generate_orders
from shelflife.services.importing import import_lines
from shelflife.services.inspection import compliance_report, show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature

DEMO_START = datetime(2026, 1, 1, tzinfo=UTC)
ORDER_DAYS = 45
OUTAGE_NIGHT = 40
"""On this night the demo's archive is "unreachable", to show failure and next-day retry."""


class _OutageArchive:
    """Wraps the real archive and fails while `down` is set (the demo's simulated outage)."""

    def __init__(self, inner: ArchiveStore) -> None:
        self.inner = inner
        self.down = False

    def put(self, key: str, data: bytes) -> None:
        if self.down:
            raise ArchiveUnavailable("archive unreachable (simulated outage)")
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        if self.down:
            raise ArchiveUnavailable("archive unreachable (simulated outage)")
        return self.inner.get(key)

    def describe(self) -> str:
        return self.inner.describe()

    def list_objects(self) -> Iterator[StoredObject]:
        return self.inner.list_objects()

    @property
    def allows_deletion(self) -> bool:
        return self.inner.allows_deletion

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def view_as_of(order: dict[str, Any], moment: datetime) -> dict[str, Any] | None:
    """The order as the shop system exports it at `moment`; None before it was placed."""
    if _ts(order["ordered_at"]) > moment:
        return None
    view = dict(order)
    for key in ("shipped_at", "cancelled_at"):
        if view.get(key) and _ts(view[key]) > moment:
            view[key] = None
    for key in ("invoices", "credits"):
        view[key] = [d for d in order.get(key) or [] if _ts(d["created_at"]) <= moment]
    return view


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def run_demo(home: Path, *, fresh: bool, customers: int, nights: int, console: Console) -> None:
    if fresh and home.exists():
        shutil.rmtree(home)
    settings = Settings(home=home)
    for line in initialise(settings):
        console.print(Text.assemble(("ok ", "green"), line))
    spec = SampleSpec(customers=customers, start=DEMO_START, days=ORDER_DAYS, seed=7)
    orders = list(generate_orders(spec))
    shops = sorted({str(o["shop"]) for o in orders})
    clock = FixedClock(DEMO_START)
    app = build_app(settings, clock)
    outage = _OutageArchive(app.archive)
    app.archive = outage
    quiet = logging.getLogger("shelflife")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the simulated outage's warnings are in the table already
    try:
        import_lines(app, [])  # loads the key once so that a bad key fails before the loop
        _simulate(app, clock, outage, orders, shops, nights, console)
        _explain_overdue(app, clock, console)
        retrieved = _retrieve_one(app, clock, console)
    finally:
        quiet.setLevel(level)
        app.close()
    exe = sys.argv[0] if Path(sys.argv[0]).name == "shelflife" else "shelflife"
    console.print(Text("\nWhat to look at next", style="bold"))
    for cmd in (
        f"{exe} --help",
        f"SHELFLIFE_HOME={home} {exe} shop list",
        f"SHELFLIFE_HOME={home} {exe} compliance",
        f"SHELFLIFE_HOME={home} {exe} show {retrieved or '<order number>'}",
        f"find {home}/archive -type f | head   # sealed copies, one per buyer and revision",
    ):
        console.print(f"  {cmd}", highlight=False, soft_wrap=True)


def _simulate(
    app: App,
    clock: FixedClock,
    outage: _OutageArchive,
    orders: list[dict[str, Any]],
    shops: list[str],
    nights: int,
    console: Console,
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    seen: dict[str, str] = {}
    table = Table(
        title=f"{nights} simulated nights ({len(orders)} orders, shops {', '.join(shops)})",
        box=None,
        pad_edge=False,
    )
    for col in (
        "night",
        "date",
        "imported",
        "archived",
        "failed",
        "retried",
        "masked",
        "remasked",
        "overdue",
    ):
        table.add_column(col, justify="right", min_width=len(col), no_wrap=True)
    enabled: set[str] = set()
    for night in range(1, nights + 1):
        day = (DEMO_START + timedelta(days=night)).date()
        moment = datetime.combine(day, time(2, 0), tzinfo=berlin).astimezone(UTC)
        clock.instant = moment
        changed = []
        for order in orders:
            view = view_as_of(order, moment)
            if view is None:
                continue
            line = json.dumps(view, ensure_ascii=False)
            key = f"{view['shop']}|{view['order_nr_external']}"
            if seen.get(key) != line:
                seen[key] = line
                changed.append(line)
        report = import_lines(app, changed)
        for shop in {json.loads(line)["shop"] for line in changed} - enabled:
            set_feature(app, shop, True, "demo")  # on from a shop's first night: a backlog
            enabled.add(shop)
        outage.down = night == OUTAGE_NIGHT
        result = run_retention(app, moment)
        outage.down = False
        overdue = len(compliance_report(app, moment))
        table.add_row(
            str(night),
            day.strftime("%m-%d"),
            str(report.created + report.updated),
            str(result.archived),
            str(result.archive_failed),
            str(result.retried),
            str(result.masked),
            str(result.remasked),
            str(overdue),
        )
    console.print(table)


def _explain_overdue(app: App, clock: FixedClock, console: Console) -> None:
    """Buyers still past 30 days at the end, grouped by why: what `compliance` reports."""
    reasons = Counter(r for row in compliance_report(app, clock.instant) for r in row.blockers)
    if reasons:
        console.print("Still overdue at the end, and why (see `shelflife compliance`):")
        for reason, count in reasons.most_common():
            console.print(f"  {count:>4}  {reason}", highlight=False)


def _retrieve_one(app: App, clock: FixedClock, console: Console) -> str | None:
    with app.engine.connect() as conn:
        order_nr = conn.execute(
            select(Order.order_nr_external)
            .where(Order.masked_at.is_not(None))
            .order_by(Order.id)
            .limit(1)
        ).scalar()
    if order_nr is None:
        console.print("no order was masked; run the demo with more --nights")
        return None
    clock.instant = clock.instant + timedelta(hours=8)
    retrieve_order(app, order_nr, "Demo: buyer returned an item", "demo-agent")
    data = show_order(app, order_nr)
    r = data["retention"]
    console.print(
        f"\nRetrieved order {order_nr}: state {r['state']}, read-only, "
        f"masked again on {r['remask_due']}",
        highlight=False,
    )
    console.print(
        f"  customer: {data['customer']['name']}, {data['customer']['city']}", highlight=False
    )
    for h in data["customer_history"][-1:]:
        console.print(f"  history: {h['event']} by {h['user_name']}: {h['text']}", highlight=False)
    return str(order_nr)
