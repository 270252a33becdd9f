"""`show` and the compliance report on SQLite and PostgreSQL: each retention state with its
dates, and exactly the overdue buyers, filed as violations or holds, with the reasons they
are not masked and the day they will be."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Order
from shelflife.bootstrap import App
from shelflife.domain.errors import UnknownOrder
from shelflife.domain.policy import Finding
from shelflife.services.importing import import_lines
from shelflife.services.inspection import ComplianceEntry, compliance_report, show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order
from tests.support.fakes import FailingPut, TamperedRecord

NR = "302-1234567-1234567"
NOT_ARCHIVED = "no verified archive of the current data yet"
YOUNG_ORDER = "order shipped less than 30 days ago"


def _start(app: App, *orders: dict[str, Any]) -> None:
    report = import_lines(app, lines(*orders))
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")


def _retention(**changes: object) -> dict[str, object]:
    """`show`'s retention object for the order shipped at T0 (2 March, Berlin): the defaults
    of a buyer nothing has happened to yet, with `changes` applied."""
    return {
        "state": "active",
        "amazon": True,
        "feature_enabled": True,
        "archive_due": "2026-03-31",
        "mask_due": "2026-04-01",
        "archived_at": None,
        "archive_current": False,
        "archive_failed_at": None,
        "archive_retry_at": None,
        "masked_at": None,
        "retrieved_at": None,
        "remask_due": None,
        "read_only": False,
        "expected_mask_date": "2026-04-01",
    } | changes


def _held(
    reason: str, number: str, until: str | None, kind: str = "order"
) -> dict[str, str | None]:
    return {"reason": reason, "kind": kind, "number": number, "until": until}


def _shown(app: App, as_of: datetime) -> dict[str, Any]:
    retention: dict[str, Any] = show_order(app.ports(), NR, as_of).model_dump(mode="json")[
        "retention"
    ]
    return retention


def _customer_id(app: App, nr: str) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(Order.customer_id).where(Order.order_nr_external == nr)
            ).scalar_one()
        )


# -- show: the six states ---------------------------------------------------------------------


def test_unshipped_order_is_active_without_due_dates(app: App) -> None:
    _start(app, order(NR))

    assert _shown(app, T0 + days(40)) == _retention(
        archive_due=None,
        mask_due=None,
        mask_blocked_by=["open order", NOT_ARCHIVED],
        held_by=[_held("open order", NR, None)],
        expected_mask_date=None,
    )


def test_shipped_order_younger_than_29_days_is_active(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))

    assert _shown(app, T0 + days(28)) == _retention(
        mask_blocked_by=[YOUNG_ORDER, NOT_ARCHIVED], held_by=[_held(YOUNG_ORDER, NR, "2026-04-01")]
    )


def test_order_shipped_29_days_ago_is_ready_for_archiving_before_the_run(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))

    assert _shown(app, T0 + days(29)) == _retention(
        state="ready_for_archiving",
        mask_blocked_by=[YOUNG_ORDER, NOT_ARCHIVED],
        held_by=[_held(YOUNG_ORDER, NR, "2026-04-01")],
    )


def test_failed_archive_shows_archive_failed_with_the_retry_time(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    app.archive = FailingPut(app.archive)
    failed_at = T0 + days(30)
    run_retention(app.ports(), failed_at)

    assert _shown(app, failed_at) == _retention(
        state="archive_failed",
        archive_failed_at=failed_at.isoformat(),
        archive_retry_at="2026-04-01T22:00:00+00:00",  # the next local midnight (CEST)
        mask_blocked_by=[f"archive failing since {failed_at.isoformat()}"],
        held_by=[],
        expected_mask_date="2026-04-02",  # the retry's day, not the order's mask day
    )


def test_archived_order_shows_archived_until_it_is_masked(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    archived_at = T0 + days(29)
    run_retention(app.ports(), archived_at)

    assert _shown(app, archived_at) == _retention(
        state="archived",
        archived_at=archived_at.isoformat(),
        archive_current=True,
        mask_blocked_by=[YOUNG_ORDER],
        held_by=[_held(YOUNG_ORDER, NR, "2026-04-01")],
    )


def test_masked_order_shows_masked_with_the_time(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    masked_at = T0 + days(30)
    run_retention(app.ports(), masked_at)

    assert _shown(app, masked_at) == _retention(
        state="masked",
        archived_at=masked_at.isoformat(),
        archive_current=True,
        masked_at=masked_at.isoformat(),
        expected_mask_date=None,
    )


def test_retrieved_order_shows_retrieved_read_only_with_the_remask_date(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    masked_at, retrieved_at = T0 + days(30), T0 + days(35)
    run_retention(app.ports(), masked_at)
    retrieve_order(at(app, retrieved_at).ports(), NR, "Rücksendung", "anna", retrieved_at)

    assert _shown(app, retrieved_at) == _retention(
        state="retrieved",
        archived_at=masked_at.isoformat(),
        masked_at=masked_at.isoformat(),
        retrieved_at=retrieved_at.isoformat(),
        remask_due="2026-05-06",
        read_only=True,
        expected_mask_date="2026-05-06",
    )


def test_show_of_an_unknown_order_says_so(app: App) -> None:
    _start(app, order(NR))

    with pytest.raises(UnknownOrder) as unknown:
        show_order(app.ports(), "999-9999999-9999999", T0)

    assert str(unknown.value) == (
        "no order with number '999-9999999-9999999'; check the number or import it first"
    )


def test_show_gives_the_buyers_mask_date_and_names_the_order_that_holds_it(app: App) -> None:
    young = "302-7654321-7654321"
    _start(app, order(NR, shipped_at=T0), order(young, shipped_at=T0 + days(10)))
    run_retention(app.ports(), T0 + days(31))

    shown = show_order(app.ports(), NR, T0 + days(31)).model_dump(mode="json")

    assert shown["retention"] == _retention(
        state="archived",
        archived_at=(T0 + days(31)).isoformat(),
        archive_current=True,
        mask_blocked_by=[YOUNG_ORDER],
        held_by=[_held(YOUNG_ORDER, young, "2026-04-11")],
        expected_mask_date="2026-04-11",  # the young order's day; this order's is 1 April
    )
    assert (shown["time_zone"], shown["customer"]["ref"]) == (
        "Europe/Berlin",
        f"C{_customer_id(app, NR)}",
    )


def test_show_of_a_shop_order_has_no_archive_or_mask_dates(app: App) -> None:
    _start(app, order("SHOP-100006", shipped_at=T0))

    shown = show_order(app.ports(), "SHOP-100006", T0 + days(40)).model_dump(mode="json")

    assert shown["retention"] == _retention(
        amazon=False, archive_due=None, mask_due=None, expected_mask_date=None
    )
    assert shown["customer"]["channel"] == "shop"


def test_show_lists_the_buyers_other_orders_newest_first_with_their_states(app: App) -> None:
    older, newer = "302-1111111-1111111", "302-2222222-2222222"
    stranger = order("302-3333333-3333333", shipped_at=T0, suffix="-other")
    _start(
        app,
        order(older, ordered_at=T0 - days(3), shipped_at=T0 - days(2)),
        order(NR, shipped_at=T0),
        order(newer, ordered_at=T0 + days(1)),
        stranger,
    )
    run_retention(app.ports(), T0 + days(29))

    shown = show_order(at(app, T0 + days(29)).ports(), NR, T0 + days(29)).model_dump(mode="json")

    assert shown["other_orders"] == [
        {
            "order_nr_external": newer,
            "ordered_at": (T0 + days(1)).isoformat(),
            "shipped_at": None,
            "cancelled_at": None,
            "state": "active",
        },
        {
            "order_nr_external": older,
            "ordered_at": (T0 - days(3)).isoformat(),
            "shipped_at": (T0 - days(2)).isoformat(),
            "cancelled_at": None,
            "state": "archived",
        },
    ]
    assert (
        show_order(app.ports(), "302-3333333-3333333", T0).model_dump(mode="json")["other_orders"]
        == []
    )


# -- compliance -------------------------------------------------------------------------------


def test_compliance_files_overdue_buyers_as_violations_or_holds_naming_what_holds_them(
    app: App,
) -> None:
    invoiced = order("304-0000000-0000003", shipped_at=T0, invoiced_at=T0 + days(10), suffix="-c")
    _start(
        app,
        order("301-0000000-0000001", shipped_at=T0, suffix="-a"),
        order("302-0000000-0000002", shipped_at=T0, suffix="-b"),
        order("302-0000000-0000022", suffix="-b"),
        invoiced,
        order("305-0000000-0000004", shipped_at=T0, suffix="-d"),
        order("306-0000000-0000005", shipped_at=T0 + days(20), suffix="-e"),
        order("SHOP-100006", shipped_at=T0, suffix="-f"),
        order("307-0000000-0000007", shipped_at=T0, suffix="-g", shop="outlet"),
        order("308-0000000-0000008", shipped_at=T0, suffix="-h"),
        order("308-0000000-0000088", shipped_at=T0 + days(12), suffix="-h"),
    )
    as_of = T0 + days(31)
    failing = _customer_id(app, "301-0000000-0000001")
    app.archive = TamperedRecord(app.archive, failing)
    report = run_retention(app.ports(), as_of)
    assert (report.archived, report.archive_failed, report.masked) == (4, 1, 1)

    entries = compliance_report(app.ports(), as_of)

    def entry(
        finding: Finding,
        shop: str,
        orders: list[str],
        reasons: list[str],
        expected: str | None,
        held_by: list[dict[str, str | None]] | None = None,
    ) -> ComplianceEntry:
        ref = f"C{_customer_id(app, orders[0])}"
        unnamed = [r.split(": ")[0] for r in reasons]
        return ComplianceEntry(
            finding, shop, ref, orders, reasons, "2026-04-01", expected, held_by or [], unnamed
        )

    invoice = "RE-304-0000000-0000003"
    assert entries == [
        entry(
            Finding.VIOLATION,
            "main",
            ["301-0000000-0000001"],
            [f"archive failing since {as_of.isoformat()}"],
            "2026-04-03",  # retried from the next local midnight, masked in that run
        ),
        entry(
            Finding.HOLD,
            "main",
            ["302-0000000-0000002", "302-0000000-0000022"],
            ["open order: 302-0000000-0000022"],
            None,
            [_held("open order", "302-0000000-0000022", None)],
        ),
        entry(
            Finding.HOLD,
            "main",
            ["304-0000000-0000003"],
            [f"invoice or credit younger than 30 days: invoice {invoice}"],
            "2026-04-11",
            [_held("invoice or credit younger than 30 days", invoice, "2026-04-11", "invoice")],
        ),
        entry(
            Finding.HOLD,
            "main",
            ["308-0000000-0000008", "308-0000000-0000088"],
            [f"{YOUNG_ORDER}: 308-0000000-0000088"],
            "2026-04-13",
            [_held(YOUNG_ORDER, "308-0000000-0000088", "2026-04-13")],
        ),
        entry(
            Finding.VIOLATION,
            "outlet",
            ["307-0000000-0000007"],
            ["feature disabled", NOT_ARCHIVED],
            None,
        ),
    ]


def test_a_hold_whose_last_document_ages_out_becomes_a_violation_until_the_run_masks_it(
    app: App,
) -> None:
    _start(app, order(NR, shipped_at=T0, invoiced_at=T0 + days(10)))
    run_retention(app.ports(), T0 + days(31))

    held = compliance_report(app.ports(), T0 + days(39))
    due = compliance_report(app.ports(), T0 + days(40))
    report = run_retention(app.ports(), T0 + days(40))

    assert [(e.finding, e.expected_mask_date) for e in held] == [(Finding.HOLD, "2026-04-11")]
    assert [(e.finding, e.reasons, e.expected_mask_date) for e in due] == [
        (Finding.VIOLATION, ["mask due at the next run"], "2026-04-11")
    ]
    assert report.masked == 1
    assert compliance_report(app.ports(), T0 + days(40)) == []


def test_a_retrieved_buyer_past_the_remask_day_is_a_violation(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    run_retention(app.ports(), T0 + days(30))
    retrieve_order(at(app, T0 + days(35)).ports(), NR, "Rücksendung", "anna", T0 + days(35))
    set_feature(app.ports(), "main", False, "ops")

    entries = compliance_report(app.ports(), T0 + days(65))

    assert [(e.finding, e.reasons, e.since, e.expected_mask_date) for e in entries] == [
        (
            Finding.VIOLATION,
            ["feature disabled", "retrieved data awaiting re-mask archive"],
            "2026-05-06",
            None,
        )
    ]


def test_compliance_is_empty_when_every_overdue_buyer_is_masked(app: App) -> None:
    _start(
        app,
        order("301-0000000-0000001", shipped_at=T0, suffix="-a"),
        order("302-0000000-0000002", shipped_at=T0 + days(3), suffix="-b"),
    )
    assert run_retention(app.ports(), T0 + days(31)).masked == 1
    assert [r.orders for r in compliance_report(app.ports(), T0 + days(31))] == []

    assert run_retention(app.ports(), T0 + days(34)).masked == 1

    assert compliance_report(app.ports(), T0 + days(34)) == []
    assert compliance_report(app.ports(), T0 + days(120)) == []
