"""What an admin checks each morning and support checks before switching a shop: counts per
retention state, tonight's preview, pending archive failures, compliance, runs and alerts.

Counts, states, order numbers and staff names only: nothing here carries a buyer's data, so
the support role may see the per-shop counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from shelflife.adapters.db import dashboard as sql
from shelflife.adapters.db.reading import load_customer_facts
from shelflife.adapters.db.retention import shops as shop_rows
from shelflife.bootstrap import App
from shelflife.domain.errors import UnknownShop
from shelflife.domain.policy import Cutoffs, Finding, RetentionState, retry_at
from shelflife.domain.references import customer_ref
from shelflife.services.documents import ArchiveProblemDocument, RunView
from shelflife.services.exports import ExportWarnings, check_export_warnings
from shelflife.services.inspection import ComplianceEntry, compliance_entry
from shelflife.services.integrity import open_archive_problems
from shelflife.services.pipeline import RunReport, dry_run_shop
from shelflife.services.retrieval import RATE_ALERT
from shelflife.services.runs import list_runs

STATES = tuple(RetentionState)
"""The order the states are listed in: a buyer's way through retention."""
LIST_LIMIT = 20
"""How many failures, violations, holds and alerts the dashboard lists; it counts them all."""
RUNS_SHOWN = 10
T = TypeVar("T")


@dataclass(frozen=True)
class StateCount:
    state: str
    buyers: int
    orders: int


@dataclass(frozen=True)
class FeatureChange:
    enabled: bool
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True)
class ShopCounts:
    name: str
    time_zone: str
    retention_enabled: bool
    states: list[StateCount]
    last_change: FeatureChange | None

    @property
    def buyers(self) -> int:
        return sum(s.buyers for s in self.states)

    @property
    def orders(self) -> int:
        return sum(s.orders for s in self.states)


@dataclass(frozen=True)
class ShopPreview:
    """What the next run would do for one shop (`pipeline.dry_run_shop`)."""

    shop: str
    archive: int
    retry: int
    mask: int
    remask: int
    mask_refused: int

    @classmethod
    def of(cls, shop: str, report: RunReport) -> ShopPreview:
        return cls(
            shop=shop,
            archive=report.archived,
            retry=report.retried,
            mask=report.masked,
            remask=report.remasked,
            mask_refused=report.mask_refused,
        )


@dataclass(frozen=True)
class ArchiveFailure:
    shop: str
    customer: str
    """The buyer's reference (`C<id>`), which search accepts."""
    orders: list[str]
    failed_at: datetime
    retry_from: datetime
    """The first instant the run archives the buyer again (the next local day)."""
    reason: str | None


@dataclass(frozen=True)
class RetrievalAlert:
    at: datetime
    user: str | None
    retrievals_last_hour: int | None
    limit: int | None


@dataclass(frozen=True)
class Listed(Generic[T]):
    """The first few of a list, and how many there are in all."""

    items: list[T]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


@dataclass(frozen=True)
class Dashboard:
    as_of: datetime
    states: list[StateCount]
    shops: list[ShopCounts]
    preview: ShopPreview
    """The sum over `preview_by_shop`: what `pipeline.dry_run` reports, without counting twice."""
    preview_by_shop: list[ShopPreview]
    failures: Listed[ArchiveFailure]
    violations: Listed[ComplianceEntry]
    holds: Listed[ComplianceEntry]
    runs: list[RunView]
    alerts: Listed[RetrievalAlert]
    exports: ExportWarnings
    archive_problems: Listed[ArchiveProblemDocument]
    """Open integrity problems of the archive (violations too, see `archive verify`)."""


def shop_counts(app: App, as_of: datetime | None = None) -> list[ShopCounts]:
    """Each shop with its switch, zone, latest switch and buyers and orders per state."""
    now = as_of or app.clock.now()
    result = []
    with app.read_engine.connect() as conn:
        changes = sql.last_feature_changes(conn)
        for shop in sorted(shop_rows(conn), key=lambda s: s.name):
            counts = sql.state_counts(conn, shop, Cutoffs.for_shop(now, ZoneInfo(shop.time_zone)))
            change = changes.get(shop.id)
            result.append(
                ShopCounts(
                    name=shop.name,
                    time_zone=shop.time_zone,
                    retention_enabled=shop.retention_enabled,
                    states=[
                        StateCount(s.value, counts.buyers.get(s, 0), counts.orders.get(s, 0))
                        for s in STATES
                    ],
                    last_change=FeatureChange(change.enabled, change.changed_at, change.changed_by)
                    if change
                    else None,
                )
            )
    return result


def _totals(shops: list[ShopCounts]) -> list[StateCount]:
    return [
        StateCount(
            s.value,
            sum(x.buyers for shop in shops for x in shop.states if x.state == s),
            sum(x.orders for shop in shops for x in shop.states if x.state == s),
        )
        for s in STATES
    ]


def _failures(app: App, limit: int) -> Listed[ArchiveFailure]:
    with app.read_engine.connect() as conn:
        total = sql.count_archive_failures(conn)
        rows = sql.archive_failures(conn, limit)
        numbers = sql.order_numbers(conn, [r.customer_id for r in rows])
    return Listed(
        [
            ArchiveFailure(
                shop=r.shop,
                customer=customer_ref(r.customer_id),
                orders=numbers[r.customer_id],
                failed_at=r.failed_at,
                retry_from=retry_at(r.failed_at, ZoneInfo(r.time_zone)),
                reason=r.reason,
            )
            for r in rows
        ],
        total,
    )


def _alerts(app: App, limit: int) -> Listed[RetrievalAlert]:
    with app.read_engine.connect() as conn:
        total = sql.count_actions(conn, RATE_ALERT)
        rows = sql.recent_actions(conn, RATE_ALERT, limit)
    return Listed(
        [
            RetrievalAlert(
                at=r.at,
                user=r.user,
                retrievals_last_hour=_int(r.detail.get("retrievals_last_hour")),
                limit=_int(r.detail.get("limit")),
            )
            for r in rows
        ],
        total,
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _compliance(app: App, now: datetime, finding: Finding, limit: int) -> Listed[ComplianceEntry]:
    """Violations or holds as `compliance` files them: counted and picked in SQL, and only the
    buyers listed are read and filed by the policy, so the page stays fast on the night a
    backlog of thousands of overdue buyers waits for its first run."""
    held = finding is Finding.HOLD
    total, entries = 0, list[ComplianceEntry]()
    with app.read_engine.connect() as conn:
        for shop in shop_rows(conn):  # the report's order: shops, then buyers by id
            zone = ZoneInfo(shop.time_zone)
            cutoffs = Cutoffs.for_shop(now, zone)
            total += sql.count_overdue(conn, shop.id, cutoffs, held=held)
            wanted = limit - len(entries)
            if wanted <= 0:
                continue
            ids = sql.first_overdue(conn, shop.id, cutoffs, held=held, limit=wanted)
            facts = load_customer_facts(conn, ids)
            for cid in ids:
                entry = compliance_entry(shop.name, cid, facts[cid], cutoffs, zone)
                if entry is not None and entry.finding is finding:
                    entries.append(entry)
    return Listed(entries, total)


def dashboard(app: App, as_of: datetime | None = None, limit: int = LIST_LIMIT) -> Dashboard:
    now = as_of or app.clock.now()
    shops = shop_counts(app, now)
    by_shop = [
        ShopPreview.of(s.name, dry_run_shop(app.ports(), s.name, now))
        for s in shops
        if s.retention_enabled
    ]
    return Dashboard(
        as_of=now,
        states=_totals(shops),
        shops=shops,
        preview=ShopPreview(
            shop="All shops",
            archive=sum(p.archive for p in by_shop),
            retry=sum(p.retry for p in by_shop),
            mask=sum(p.mask for p in by_shop),
            remask=sum(p.remask for p in by_shop),
            mask_refused=sum(p.mask_refused for p in by_shop),
        ),
        preview_by_shop=by_shop,
        failures=_failures(app, limit),
        violations=_compliance(app, now, Finding.VIOLATION, limit),
        holds=_compliance(app, now, Finding.HOLD, limit),
        runs=list_runs(app.ports(), RUNS_SHOWN),
        alerts=_alerts(app, limit),
        exports=check_export_warnings(app.ports(), now),
        archive_problems=_archive_problems(app, limit),
    )


def _archive_problems(app: App, limit: int) -> Listed[ArchiveProblemDocument]:
    found = open_archive_problems(app.ports())
    return Listed(found[:limit], len(found))


@dataclass(frozen=True)
class SwitchPreview:
    """What support confirms before switching: the shop as it is, and what the next run
    would do for it with the feature on."""

    shop: ShopCounts
    enable: bool
    next_run: ShopPreview

    @property
    def changes_anything(self) -> bool:
        return self.shop.retention_enabled != self.enable


def switch_preview(app: App, shop: str, enable: bool) -> SwitchPreview:
    now = app.clock.now()
    found = [s for s in shop_counts(app, now) if s.name == shop]
    if not found:
        raise UnknownShop(shop)
    return SwitchPreview(
        found[0], enable, ShopPreview.of(shop, dry_run_shop(app.ports(), shop, now))
    )
