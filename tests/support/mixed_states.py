"""A small installation with buyers in every retention state, for the dashboard and shops
pages: numbers the tests can state exactly, and PII the tests can look for in page bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shelflife.bootstrap import App
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.search import find
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order, pii_strings
from tests.support.fakes import TamperedRecord

RUN_AT = T0 + days(30)
"""The night that masks the first buyers (and fails one archive)."""
AS_OF = RUN_AT + days(2 / 24)
"""Two hours after that run: the moment the pages are looked at."""
FAILED = "302-0000000-0000001"
HELD = "305-0000000-0000001"
RETRIEVED = ("301-0000000-0000002", "301-0000000-0000003")
BUYERS = {
    "main": {
        "masked": 1,
        "retrieved": 2,
        "archive_failed": 1,
        "archived": 1,
        "ready_for_archiving": 2,
        "active": 2,
    },
    "west": {"ready_for_archiving": 1},
    "closed": {"active": 1},
}
"""Buyers per state at AS_OF, per shop (states not named: none)."""
ORDERS = {
    "main": {
        "masked": 1,
        "retrieved": 2,
        "archive_failed": 1,
        "archived": 1,
        "ready_for_archiving": 2,
        "active": 3,
    },
    "west": {"ready_for_archiving": 1},
    "closed": {"active": 1},
}
PREVIEW = {"main": (4, 0, 1, 0), "west": (1, 0, 1, 0)}
"""(archive, retry, mask, re-mask) the next run would do per enabled shop at AS_OF: main
archives the two retrieved buyers again (their revision moved), and the two reported late."""


@dataclass
class MixedStates:
    orders: list[dict[str, Any]] = field(default_factory=list)

    def pii(self) -> set[str]:
        """Every buyer's names, e-mails, addresses and notes in this data set."""
        found: set[str] = set()
        for o in self.orders:
            found |= pii_strings(o)
        return found


def build(app: App, alert_limit: int = 1) -> MixedStates:
    """Buyers in main (enabled), west (enabled) and closed (disabled), as of AS_OF:

    - masked; two retrieved (by the same user within the hour: with `alert_limit` 1, a
      retrieval-rate alert); archive failed at RUN_AT (retry from the next local day);
    - archived but held by an open second order; two reported late (ready for archiving, one
      of them masked tonight too); a shop order and an open order (active);
    - west: one reported late, archived and masked tonight; closed: an overdue buyer in a
      disabled shop (a violation, never in the preview).
    """
    app.settings = app.settings.model_copy(update={"retrieval_alert_per_hour": alert_limit})
    data = MixedStates()

    def load(*orders: dict[str, Any]) -> None:
        data.orders += orders
        assert import_lines(app, lines(*orders)).refused == []

    at(app, T0)
    load(
        order("301-0000000-0000001", shipped_at=T0, suffix="-m"),
        order(RETRIEVED[0], shipped_at=T0, suffix="-r"),
        order(RETRIEVED[1], shipped_at=T0, suffix="-n"),
        order(FAILED, shipped_at=T0, suffix="-f"),
        order(HELD, shipped_at=T0, suffix="-h"),
        order("305-0000000-0000002", suffix="-h"),
        order("SHOP-100001", shipped_at=T0, suffix="-s"),
        order("306-0000000-0000001", suffix="-o"),
        order("309-0000000-0000001", shipped_at=T0, suffix="-c", shop="closed"),
    )
    set_feature(app.ports(), "main", True, "ops")
    real = app.archive
    app.archive = TamperedRecord(real, customer_id(app, FAILED))
    run_retention(at(app, RUN_AT).ports())
    app.archive = real
    at(app, RUN_AT + days(1 / 24))
    for nr in RETRIEVED:
        retrieve_order(app.ports(), nr, "Rücksendung", "anna")
    load(
        order("303-0000000-0000001", shipped_at=T0, suffix="-z"),
        order("304-0000000-0000001", shipped_at=T0 + days(1), suffix="-y"),
        order("307-0000000-0000001", shipped_at=T0, suffix="-w", shop="west"),
    )
    set_feature(app.ports(), "west", True, "ops")
    at(app, AS_OF)
    return data


def customer_id(app: App, nr: str) -> int:
    ref = find(app.ports(), nr).orders[0].customer
    return int(ref.removeprefix("C"))
