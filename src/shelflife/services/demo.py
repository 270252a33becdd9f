"""`shelflife demo`: a guided tour of the whole retention cycle on fake data.

Orders arrive night by night as a shop would see them (placed, shipped, invoiced, credited),
the nightly run archives, masks and re-masks, one night the archive is unreachable so the
retry shows, and at the end one order is retrieved as customer service would.
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from shelflife.config import settings_for_folder
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import ArchiveUnavailable, Conflict, NotInitialised
from shelflife.sample_data import SampleSpec, generate_orders
from shelflife.services.accounts import add_user, change_password
from shelflife.services.importing import import_lines
from shelflife.services.inspection import compliance_report, show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature

DEMO_START = datetime(2026, 1, 1, tzinfo=UTC)
DEMO_ZONE = ZoneInfo("Europe/Berlin")
"""The shops' zone: each simulated night's run starts at 02:00 there."""
MARKER = ".shelflife-demo"
MARKER_TEXT = (
    "Made by `shelflife demo`: this folder holds fake demo data only.\n"
    "`shelflife demo --fresh` deletes it; the demo refuses every folder without this file that "
    "is not empty.\n"
)
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

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if self.down:
            raise ArchiveUnavailable("archive unreachable (simulated outage)")
        return self.inner.get_range(key, start, length)

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


def run_demo(
    home: Path,
    *,
    fresh: bool,
    customers: int,
    nights: int,
    console: Console,
    overriding: Sequence[str] = (),
) -> None:
    """The tour, printed to `console` (the CLI's data console, which shows data as itself).

    `overriding`: SHELFLIFE_* variables set in the caller's environment that would make the
    suggested commands look elsewhere than at the demo's folder.
    """
    settings = settings_for_folder(home)  # a bad setting stops the demo before it writes
    claim_folder(home, fresh=fresh)
    for line in initialise(settings).done:
        console.print(Text("ok", style="green"), line)
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
        retrieved = _retrieve_one(app, clock, console)
        _explain_overdue(app, clock, console)
    finally:
        quiet.setLevel(level)
        app.close()
    _suggest_next(home, clock.instant, retrieved, overriding, console)


def claim_folder(home: Path, *, fresh: bool) -> None:
    """Make `home` the demo's before anything is written: a new or empty folder gets the
    marker first; a folder with the marker is reused (with `fresh`: deleted and made again).
    Anything else may be a real installation and is refused untouched."""
    folder = home.resolve()
    if folder.exists() and not folder.is_dir():
        raise Conflict(f"{home} is not a folder; the demo needs a new or empty folder")
    if folder.is_dir() and not (folder / MARKER).is_file():
        if any(folder.iterdir()):
            raise Conflict(
                f"{home} is not empty and was not made by the demo (it has no {MARKER} file); "
                "the demo only uses a new or empty folder, so that it never touches real "
                "data. Choose another folder"
            )
    elif folder.is_dir() and fresh:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    marker = folder / MARKER
    if not marker.is_file():
        marker.write_text(MARKER_TEXT, encoding="utf-8")


def _suggest_next(
    home: Path,
    as_of: datetime,
    retrieved: str | None,
    overriding: Sequence[str],
    console: Console,
) -> None:
    """Commands to paste, dated at the demo's last simulated moment so that they show what the
    demo just described rather than today, months after its calendar."""
    exe = shlex.quote(sys.argv[0] if Path(sys.argv[0]).name == "shelflife" else "shelflife")
    when = as_of.astimezone(DEMO_ZONE).isoformat()
    folder = shlex.quote(str(home))
    console.print()
    console.print(Text("What to look at next", style="bold"))
    console.print(
        f"The demo's calendar ended at {when}; these commands look at the data as of then "
        "(without --as-of, a command acts as of now)."
    )
    if overriding:
        console.print(
            f"{' and '.join(overriding)} set in this environment would win over the demo "
            "folder's settings: unset them before pasting these."
        )
    commands = [
        f"{exe} --help",
        f"{exe} shop list --home {folder}",
        f"{exe} compliance --home {folder} --as-of {when}",
    ]
    if retrieved:
        commands.append(f"{exe} show {shlex.quote(retrieved)} --home {folder} --as-of {when}")
    commands.append(
        f"find {shlex.quote(str(home / 'archive'))} -type f | head   "
        "# sealed copies, one per buyer and revision"
    )
    for command in commands:
        console.print(f"  {command}")


def _simulate(
    app: App,
    clock: FixedClock,
    outage: _OutageArchive,
    orders: list[dict[str, Any]],
    shops: list[str],
    nights: int,
    console: Console,
) -> None:
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
        moment = datetime.combine(day, time(2, 0), tzinfo=DEMO_ZONE).astimezone(UTC)
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
            set_feature(app.ports(), shop, True, "demo")  # on from a shop's first night: a backlog
            enabled.add(shop)
        outage.down = night == OUTAGE_NIGHT
        result = run_retention(app.ports(), moment)
        outage.down = False
        overdue = len(compliance_report(app.ports(), moment))
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
    reasons = Counter(
        r for row in compliance_report(app.ports(), clock.instant) for r in row.blockers
    )
    if reasons:
        console.print("Still overdue at the end, and why (see `shelflife compliance`):")
        for reason, count in reasons.most_common():
            console.print(f"  {count:>4}  {reason}")


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
    retrieve_order(app.ports(), order_nr, "Demo: buyer returned an item", "demo-agent")
    data = show_order(app.ports(), order_nr)
    r = data.retention
    console.print()
    console.print(
        f"Retrieved order {order_nr}: state {r['state']}, read-only, "
        f"masked again on {r['remask_due']}"
    )
    console.print(f"  customer: {data.customer.name}, {data.customer.city}")
    for h in data.customer_history[-1:]:
        console.print(f"  history: {h.event} by {h.user_name}: {h.text}")
    return str(order_nr)


DEMO_LOGINS = (("agent", "agent"), ("admin", "admin"), ("support", "support"))
"""(user name, role): one login per role, so that each role's view can be tried."""
DEMO_ACTOR = "shelflife demo"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    name: str
    password: str


def demo_logins(home: Path) -> list[DemoLogin]:
    """One web login per role in a folder the demo made, each with a new random password
    (printed once by the caller, stored as an argon2 hash like any other): no fixed password
    ever works on a demo someone left running. A login that exists gets a new password."""
    if not (home / MARKER).is_file():
        raise NotInitialised(f"{home} was not made by the demo (it has no {MARKER} file)")
    app = build_app(settings_for_folder(home))
    logins = []
    try:
        for name, role in DEMO_LOGINS:
            password = secrets.token_urlsafe(12)  # 16 characters from 96 random bits
            try:
                add_user(app, name, role, password, DEMO_ACTOR)
            except Conflict:
                change_password(app, name, password, DEMO_ACTOR)
            logins.append(DemoLogin(role, name, password))
    finally:
        app.close()
    return logins
