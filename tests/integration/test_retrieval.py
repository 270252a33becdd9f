"""Retrieval on SQLite and PostgreSQL: what comes back, what stays masked, what is recorded,
and that a failed retrieval changes nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Base
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import (
    ArchiveUnavailable,
    InvalidInput,
    KeyUnavailable,
    NotRetrievable,
    UnknownOrder,
)
from shelflife.domain.masking import MASKED_TEXT
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, iso, order
from tests.support.fakes import UnreachableArchive

NR = "302-1234567-1234567"
OTHER_NR = "303-7654321-7654321"
MASKED_AT = T0 + days(31)
RETRIEVED_AT = T0 + days(35)
PII_PARTS = (
    "customer",
    "addresses",
    "gift_message",
    "address_remarks",
    "shop_note",
    "invoices",
    "credits",
)
Dump = dict[str, list[tuple[Any, ...]]]


def _import(app: App, *records: dict[str, Any]) -> None:
    report = import_lines(app, [json.dumps(r, ensure_ascii=False) for r in records])
    assert report.refused == []


def _run(app: App, at: datetime) -> tuple[int, int, int]:
    report = run_retention(app, at)
    return report.archived, report.masked, report.remasked


def _masked(app: App, *orders: dict[str, Any]) -> None:
    """Import the orders (all of one buyer), enable retention and mask them."""
    _import(app, *orders)
    set_feature(app, "main", True, "ops")
    assert _run(app, MASKED_AT) == (1, 1, 0)


def _manual(kind: str, number: str, at: datetime) -> dict[str, Any]:
    number_key = "invoice_nr" if kind == "manual_invoice" else "credit_nr"
    return {
        "type": kind,
        "shop": "main",
        "customer_of_order": NR,
        number_key: number,
        "created_at": iso(at),
        "total": "4.00",
    }


def _pii_view(shown: dict[str, Any]) -> dict[str, Any]:
    return {k: shown[k] for k in PII_PARTS}


def _dump(app: App) -> Dump:
    """Every row of every table, in primary-key order."""
    with app.engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


# -- the reason -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        pytest.param("", "--reason: a reason is required (1 to 50 characters)", id="empty"),
        pytest.param("   ", "--reason: a reason is required (1 to 50 characters)", id="blank"),
        pytest.param(
            "x" * 51,
            "--reason: the reason has 51 characters; at most 50 are allowed",
            id="51-chars",
        ),
    ],
)
def test_reason_outside_1_to_50_characters_is_refused_and_changes_nothing(
    app: App, reason: str, message: str
) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)

    with pytest.raises(InvalidInput) as refused:
        retrieve_order(app, NR, reason, "anna", RETRIEVED_AT)

    assert str(refused.value) == message
    assert _dump(app) == before


def test_reason_of_50_characters_is_stored_in_the_customer_history(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(app, NR, "x" * 50, "anna", RETRIEVED_AT)

    history = show_order(app, NR, RETRIEVED_AT)["customer_history"]
    assert history[-1]["text"] == "x" * 50


# -- what comes back --------------------------------------------------------------------------


def test_restores_order_pii_with_its_invoices_credits_and_manual_documents(app: App) -> None:
    full = order(NR, shipped_at=T0, invoiced_at=T0)
    full["credits"] = [
        {"credit_nr": "GS-1", "invoice_nr": f"RE-{NR}", "created_at": iso(T0), "total": "2.00"}
    ]
    _import(app, full, _manual("manual_invoice", "MR-1", T0), _manual("manual_credit", "MG-1", T0))
    original = _pii_view(show_order(app, NR, T0))
    set_feature(app, "main", True, "ops")
    assert _run(app, MASKED_AT) == (1, 1, 0)
    assert show_order(app, NR, MASKED_AT)["customer"]["first_name"] == MASKED_TEXT

    result = retrieve_order(app, NR, "Rücksendung", "anna", RETRIEVED_AT)

    restored = show_order(app, NR, RETRIEVED_AT)
    assert _pii_view(restored) == original
    assert [(i["invoice_nr"], i["manual"]) for i in restored["invoices"]] == [
        (f"RE-{NR}", False),
        ("MR-1", True),
    ]
    assert [(c["credit_nr"], c["manual"]) for c in restored["credits"]] == [
        ("GS-1", False),
        ("MG-1", True),
    ]
    assert (result.order_nr, result.retrieved_at, result.restored_rows) == (NR, RETRIEVED_AT, 8)


def test_other_orders_of_the_buyer_stay_masked(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0), order(OTHER_NR, shipped_at=T0))

    retrieve_order(app, NR, "Rücksendung", "anna", RETRIEVED_AT)

    other = show_order(app, OTHER_NR, RETRIEVED_AT)
    assert other["retention"]["state"] == "masked"
    assert {a["city"] for a in other["addresses"]} == {MASKED_TEXT}
    assert other["gift_message"] == MASKED_TEXT
    assert show_order(app, NR, RETRIEVED_AT)["gift_message"] == "Alles Gute zum Geburtstag, Max!"


def test_retrieval_is_recorded_with_time_user_and_reason(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(app, NR, "  Rücksendung  ", "anna", RETRIEVED_AT)

    assert show_order(app, NR, RETRIEVED_AT)["customer_history"] == [
        {
            "recorded_at": MASKED_AT.isoformat(),
            "event": "masked",
            "user_name": "shelflife",
            "text": None,
        },
        {
            "recorded_at": RETRIEVED_AT.isoformat(),
            "event": "retrieved",
            "user_name": "anna",
            "text": "Rücksendung",
        },
    ]


def test_retrieved_order_shows_as_retrieved_and_read_only(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(app, NR, "Rücksendung", "anna", RETRIEVED_AT)

    retention = show_order(app, NR, RETRIEVED_AT)["retention"]
    assert retention["state"] == "retrieved"
    assert retention["read_only"] is True
    assert retention["retrieved_at"] == RETRIEVED_AT.isoformat()
    assert retention["remask_due"] == "2026-05-06"


# -- failures change nothing ------------------------------------------------------------------


def test_unreachable_archive_fails_and_changes_nothing(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)
    app.archive = UnreachableArchive()

    with pytest.raises(ArchiveUnavailable):
        retrieve_order(app, NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert _dump(app) == before


def test_missing_key_file_fails_and_changes_nothing(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)
    app.key_path.unlink()
    fresh = build_app(app.settings, FixedClock(RETRIEVED_AT))

    try:
        with pytest.raises(KeyUnavailable) as failed:
            retrieve_order(fresh, NR, "Rücksendung", "anna", RETRIEVED_AT)
    finally:
        fresh.close()

    assert "master key file" in str(failed.value)
    assert _dump(app) == before


@pytest.mark.parametrize(
    ("nr", "masked", "message"),
    [
        pytest.param(
            NR,
            False,
            f"order {NR!r} is not masked; its data is in the database already",
            id="amazon-not-masked",
        ),
        pytest.param(
            "SHOP-100001",
            True,
            "order 'SHOP-100001' is not an Amazon order; its data is never masked",
            id="shop-order",
        ),
    ],
)
def test_orders_that_are_not_masked_amazon_orders_are_not_retrievable(
    app: App, nr: str, masked: bool, message: str
) -> None:
    _import(app, order(nr, shipped_at=T0))
    set_feature(app, "main", True, "ops")
    if masked:
        _run(app, MASKED_AT)
    before = _dump(app)

    with pytest.raises(NotRetrievable) as refused:
        retrieve_order(app, nr, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == message
    assert _dump(app) == before


def test_unknown_order_is_reported(app: App) -> None:
    with pytest.raises(UnknownOrder):
        retrieve_order(app, NR, "Rücksendung", "anna", RETRIEVED_AT)


# -- several copies ---------------------------------------------------------------------------


def test_second_retrieval_merges_copies_and_returns_the_latest_values(app: App) -> None:
    first = order(NR, shipped_at=T0)
    other = order(OTHER_NR, ordered_at=T0 - days(1), shipped_at=T0)  # older: NR's data wins
    other["shipping_address"] = {**other["shipping_address"], "street": "Birkenweg"}
    _import(app, first, other)
    set_feature(app, "main", True, "ops")
    assert _run(app, T0 + days(29)) == (1, 0, 0)  # copy 1: city Köln
    moved = order(NR, shipped_at=T0)
    moved["billing_address"]["city"] = "Bonn-Beuel"
    _import(app, moved)
    assert _run(app, T0 + days(30)) == (1, 1, 0)  # copy 2: city Bonn-Beuel, then masked
    retrieve_order(app, NR, "Grund eins", "anna", RETRIEVED_AT)
    assert show_order(app, NR, RETRIEVED_AT)["customer"]["city"] == "Bonn-Beuel"
    assert _run(app, RETRIEVED_AT + days(1)) == (1, 0, 0)  # copy 3: without the other order
    assert _run(app, RETRIEVED_AT + days(30)) == (0, 0, 1)
    second_at = RETRIEVED_AT + days(40)

    retrieve_order(app, OTHER_NR, "Grund zwei", "ben", second_at)

    shown = show_order(app, OTHER_NR, second_at)
    assert shown["customer"]["city"] == "Bonn-Beuel"
    assert {a["kind"]: a["street"] for a in shown["addresses"]} == {
        "billing": "Heidestraße",
        "shipping": "Birkenweg",
    }
    texts = [(h["event"], h["text"]) for h in shown["customer_history"]]
    assert texts == [
        ("masked", None),
        ("retrieved", "Grund eins"),
        ("remasked", None),
        ("retrieved", "Grund zwei"),
    ]
    assert show_order(app, NR, second_at)["gift_message"] == MASKED_TEXT
