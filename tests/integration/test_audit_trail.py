"""What lands in the audit log from the work itself: retrievals with their reason, the
retrieval-rate alert, and feature switches; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from shelflife.bootstrap import App
from shelflife.services.audit import recent_entries, verify_audit_log
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import RATE_ALERT, RETRIEVED, retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, order

MASKED_AT = T0 + days(31)


def _mask_buyers(app: App, count: int) -> list[str]:
    numbers = [f"30{i}-1234567-123456{i}" for i in range(count)]
    orders = [order(nr, shipped_at=T0, suffix=f"-{i}") for i, nr in enumerate(numbers)]
    assert import_lines(app, [json.dumps(o) for o in orders]).refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(at(app, MASKED_AT).ports(), MASKED_AT).masked == count
    return numbers


def test_a_retrieval_is_audited_with_user_order_and_reason(app: App) -> None:
    (nr,) = _mask_buyers(app, 1)
    retrieve_order(at(app, MASKED_AT + days(1)).ports(), nr, "return of 2 items", "anna")
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject) == ("anna", RETRIEVED, nr)
    assert entry.detail["reason"] == "return of 2 items"
    assert entry.at == MASKED_AT + days(1)
    assert verify_audit_log(app.ports()).intact


def test_the_audit_entry_keeps_the_reason_after_the_remask(app: App) -> None:
    (nr,) = _mask_buyers(app, 1)
    retrieve_order(at(app, MASKED_AT + days(1)).ports(), nr, "return of 2 items", "anna")
    later = MASKED_AT + days(40)
    assert run_retention(at(app, later).ports(), later).remasked == 1
    entries = [e for e in recent_entries(app.ports(), 50) if e.action == RETRIEVED]
    assert [e.detail["reason"] for e in entries] == ["return of 2 items"]


def test_more_retrievals_in_an_hour_than_allowed_raise_one_alert(app: App) -> None:
    numbers = _mask_buyers(app, 4)
    app.settings = app.settings.model_copy(update={"retrieval_alert_per_hour": 2})
    start = MASKED_AT + days(1)
    for minute, nr in enumerate(numbers):
        retrieve_order(at(app, start + minute * days(1 / 1440)).ports(), nr, "returns", "anna")
    alerts = [e for e in recent_entries(app.ports(), 50) if e.action == RATE_ALERT]
    assert len(alerts) == 1  # raised when the third came in, not again for the fourth
    assert (alerts[0].subject, alerts[0].detail["retrievals_last_hour"]) == ("anna", 3)


def test_retrievals_spread_over_more_than_an_hour_raise_no_alert(app: App) -> None:
    numbers = _mask_buyers(app, 3)
    app.settings = app.settings.model_copy(update={"retrieval_alert_per_hour": 2})
    start = MASKED_AT + days(1)
    for hour, nr in enumerate(numbers):
        retrieve_order(at(app, start + hour * days(1 / 24)).ports(), nr, "returns", "anna")
    assert RATE_ALERT not in [e.action for e in recent_entries(app.ports(), 50)]


def test_feature_switches_are_audited(app: App) -> None:
    import_lines(app, [json.dumps(order())])
    set_feature(app.ports(), "main", True, "sam")
    set_feature(app.ports(), "main", True, "sam")  # no change, no entry
    set_feature(app.ports(), "main", False, "sam")
    actions = [(e.actor, e.action, e.subject) for e in reversed(recent_entries(app.ports(), 10))]
    assert actions == [("sam", "feature.enabled", "main"), ("sam", "feature.disabled", "main")]
