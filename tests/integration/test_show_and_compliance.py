"""`show` and the compliance report on SQLite and PostgreSQL: each retention state with its
dates, and exactly the overdue buyers with the reasons they are not masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Order
from shelflife.bootstrap import App
from shelflife.domain.errors import UnknownOrder
from shelflife.services.importing import import_lines
from shelflife.services.inspection import ComplianceRow, compliance_report, show_order
from shelflife.services.pipeline import object_key_prefix, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order
from tests.support.fakes import FailingPut

NR = "302-1234567-1234567"
NOT_ARCHIVED = "no verified archive of the current data yet"
YOUNG_ORDER = "order shipped less than 30 days ago"


def _start(app: App, *orders: dict[str, Any]) -> None:
    report = import_lines(app, lines(*orders))
    assert report.refused == []
    set_feature(app, "main", True, "ops")


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
    } | changes


def _shown(app: App, as_of: datetime) -> dict[str, Any]:
    retention: dict[str, Any] = show_order(app, NR, as_of)["retention"]
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
        archive_due=None, mask_due=None, mask_blocked_by=["open order", NOT_ARCHIVED]
    )


def test_shipped_order_younger_than_29_days_is_active(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))

    assert _shown(app, T0 + days(28)) == _retention(mask_blocked_by=[YOUNG_ORDER, NOT_ARCHIVED])


def test_order_shipped_29_days_ago_is_ready_for_archiving_before_the_run(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))

    assert _shown(app, T0 + days(29)) == _retention(
        state="ready_for_archiving", mask_blocked_by=[YOUNG_ORDER, NOT_ARCHIVED]
    )


def test_failed_archive_shows_archive_failed_with_the_retry_time(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    app.archive = FailingPut(app.archive)
    failed_at = T0 + days(30)
    run_retention(app, failed_at)

    assert _shown(app, failed_at) == _retention(
        state="archive_failed",
        archive_failed_at=failed_at.isoformat(),
        archive_retry_at="2026-04-01T22:00:00+00:00",  # the next local midnight (CEST)
        mask_blocked_by=[f"archive failing since {failed_at.isoformat()}"],
    )


def test_archived_order_shows_archived_until_it_is_masked(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    archived_at = T0 + days(29)
    run_retention(app, archived_at)

    assert _shown(app, archived_at) == _retention(
        state="archived",
        archived_at=archived_at.isoformat(),
        archive_current=True,
        mask_blocked_by=[YOUNG_ORDER],
    )


def test_masked_order_shows_masked_with_the_time(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    masked_at = T0 + days(30)
    run_retention(app, masked_at)

    assert _shown(app, masked_at) == _retention(
        state="masked",
        archived_at=masked_at.isoformat(),
        archive_current=True,
        masked_at=masked_at.isoformat(),
    )


def test_retrieved_order_shows_retrieved_read_only_with_the_remask_date(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    masked_at, retrieved_at = T0 + days(30), T0 + days(35)
    run_retention(app, masked_at)
    retrieve_order(at(app, retrieved_at), NR, "Rücksendung", "anna", retrieved_at)

    assert _shown(app, retrieved_at) == _retention(
        state="retrieved",
        archived_at=masked_at.isoformat(),
        masked_at=masked_at.isoformat(),
        retrieved_at=retrieved_at.isoformat(),
        remask_due="2026-05-06",
        read_only=True,
    )


def test_show_of_an_unknown_order_says_so(app: App) -> None:
    _start(app, order(NR))

    with pytest.raises(UnknownOrder) as unknown:
        show_order(app, "999-9999999-9999999", T0)

    assert str(unknown.value) == (
        "no order with number '999-9999999-9999999'; check the number or import it first"
    )


# -- compliance -------------------------------------------------------------------------------


def test_compliance_lists_exactly_the_overdue_buyers_with_their_reasons(app: App) -> None:
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
    )
    as_of = T0 + days(31)
    failing = _customer_id(app, "301-0000000-0000001")
    app.archive = FailingPut(app.archive, only=object_key_prefix(failing))
    report = run_retention(app, as_of)
    assert (report.archived, report.archive_failed, report.masked) == (3, 1, 1)

    rows = compliance_report(app, as_of)

    def row(shop: str, orders: list[str], reasons: list[str]) -> ComplianceRow:
        return ComplianceRow(shop, _customer_id(app, orders[0]), orders, T0.isoformat(), reasons)

    expected = [
        row("main", ["301-0000000-0000001"], [f"archive failing since {as_of.isoformat()}"]),
        row("main", ["302-0000000-0000002", "302-0000000-0000022"], ["open order"]),
        row("main", ["304-0000000-0000003"], ["invoice or credit younger than 30 days"]),
        row("outlet", ["307-0000000-0000007"], ["feature disabled", NOT_ARCHIVED]),
    ]
    assert sorted(rows, key=lambda r: (r.shop, r.customer_id)) == sorted(
        expected, key=lambda r: (r.shop, r.customer_id)
    )


def test_compliance_is_empty_when_every_overdue_buyer_is_masked(app: App) -> None:
    _start(
        app,
        order("301-0000000-0000001", shipped_at=T0, suffix="-a"),
        order("302-0000000-0000002", shipped_at=T0 + days(3), suffix="-b"),
    )
    assert run_retention(app, T0 + days(31)).masked == 1
    assert [r.orders for r in compliance_report(app, T0 + days(31))] == []

    assert run_retention(app, T0 + days(34)).masked == 1

    assert compliance_report(app, T0 + days(34)) == []
    assert compliance_report(app, T0 + days(120)) == []
