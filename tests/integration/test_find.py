"""`find` on SQLite and PostgreSQL: numbers find masked orders too; e-mail addresses and names
find only data that is not masked, never a mask placeholder; buyer references; bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Order
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput
from shelflife.domain.masking import MASKED_EMAIL, MASKED_TEXT
from shelflife.services.documents import FoundOrder
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.search import SearchBy, find
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, lines, order

MASKED_NR = "302-1234567-1234567"
OPEN_NR = "302-7654321-7654321"
AS_OF = T0 + days(31)


def _customer(app: App, nr: str) -> str:
    with app.engine.connect() as conn:
        cid = conn.execute(
            select(Order.customer_id).where(Order.order_nr_external == nr)
        ).scalar_one()
    return f"C{cid}"


def _renamed(data: dict[str, Any], first: str, last: str, email: str) -> dict[str, Any]:
    """The order with another buyer's name everywhere it appears."""
    for section in ("customer", "billing_address", "shipping_address"):
        data[section] |= {"first_name": first, "last_name": last}
    data["customer"]["email"] = data["billing_address"]["email"] = email
    for key in ("card_name", "account_name"):
        data["payment"][key] = f"{first} {last}"
    return data


@pytest.fixture
def shop(app: App) -> App:
    """Erika's order masked (with an invoice and a credit); Max Müller's open; a shop order."""
    erika = order(MASKED_NR, shipped_at=T0, invoiced_at=T0)
    erika["credits"] = [{"credit_nr": "GS-1", "created_at": T0.isoformat(), "total": "5.00"}]
    max_order = _renamed(order(OPEN_NR, suffix="-m"), "Max", "Müller", "Max@Example.ORG")
    hans = _renamed(order("SHOP-100001", suffix="-h"), "Hans", "Meier", "hans@example.org")
    manual = {
        "type": "manual_credit",
        "shop": "main",
        "customer_of_order": OPEN_NR,
        "credit_nr": "GS-M-1",
        "created_at": T0.isoformat(),
        "total": "3.00",
    }
    report = import_lines(app, [*lines(erika, max_order, hans), json.dumps(manual)])
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), AS_OF).masked == 1
    return app


def _found(app: App, query: str, limit: int = 50) -> list[tuple[str, str, str]]:
    return [
        (o.order_nr_external, o.state, o.matched)
        for o in find(app.ports(), query, limit, AS_OF).orders
    ]


def test_an_order_number_finds_the_order_with_its_state_even_when_masked(shop: App) -> None:
    (found,) = find(shop.ports(), MASKED_NR, as_of=AS_OF).orders

    assert found == FoundOrder(
        order_nr_external=MASKED_NR,
        shop="main",
        time_zone="Europe/Berlin",
        channel="amazon",
        customer=_customer(shop, MASKED_NR),
        ordered_at=T0.isoformat(),
        shipped_at=T0.isoformat(),
        cancelled_at=None,
        state="masked",
        matched="order number",
    )


def test_invoice_and_credit_numbers_find_a_masked_order(shop: App) -> None:
    assert _found(shop, f"RE-{MASKED_NR}") == [(MASKED_NR, "masked", "invoice number")]
    assert _found(shop, "GS-1") == [(MASKED_NR, "masked", "credit number")]


def test_a_manual_credit_number_finds_its_buyers_orders(shop: App) -> None:
    assert _found(shop, "GS-M-1") == [(OPEN_NR, "active", "credit number")]


def test_e_mail_and_name_match_case_insensitively_in_unmasked_data(shop: App) -> None:
    for query in ("max@example.org", "MAX@EXAMPLE.ORG", "müller", "Max M", "example.org"):
        assert (query, _found(shop, query)) == (
            query,
            ([("SHOP-100001", "active", "e-mail or name")] if query == "example.org" else [])
            + [(OPEN_NR, "active", "e-mail or name")],
        )


def test_a_masked_buyers_former_e_mail_and_name_find_nothing(shop: App) -> None:
    for query in ("erika.mustermann@example.org", "Erika", "Mustermann"):
        assert (query, _found(shop, query)) == (query, [])


@pytest.mark.parametrize("query", [MASKED_TEXT, "*", MASKED_EMAIL, "masked.invalid", "%", "_"])
def test_mask_placeholders_and_wildcards_find_nothing(shop: App, query: str) -> None:
    assert _found(shop, query) == []


def test_a_customer_reference_finds_all_of_a_buyers_orders(shop: App) -> None:
    ref = _customer(shop, MASKED_NR)

    assert _found(shop, ref) == [(MASKED_NR, "masked", "customer reference")]
    assert _found(shop, ref.lower()) == [(MASKED_NR, "masked", "customer reference")]


def test_a_number_search_ignores_names_and_a_personal_data_search_ignores_numbers(
    shop: App,
) -> None:
    def found(query: str, by: SearchBy) -> list[tuple[str, str]]:
        return [
            (o.order_nr_external, o.matched)
            for o in find(shop.ports(), query, 50, AS_OF, by).orders
        ]

    assert found(f"RE-{MASKED_NR}", SearchBy.NUMBER) == [(MASKED_NR, "invoice number")]
    assert found("GS-M-1", SearchBy.NUMBER) == [(OPEN_NR, "credit number")]
    assert found("max@example.org", SearchBy.NUMBER) == []
    assert found(_customer(shop, MASKED_NR), SearchBy.NUMBER) == []
    assert found("max@example.org", SearchBy.PERSONAL_DATA) == [(OPEN_NR, "e-mail or name")]
    assert found(OPEN_NR, SearchBy.PERSONAL_DATA) == []
    assert found(_customer(shop, OPEN_NR), SearchBy.PERSONAL_DATA) == []


def test_a_shop_order_is_found_with_its_channel(shop: App) -> None:
    (found,) = find(shop.ports(), "SHOP-100001", as_of=AS_OF).orders

    assert (found.channel, found.state) == ("shop", "active")


def test_results_are_bounded_and_say_when_more_matched(app: App) -> None:
    buyers = [order(f"30{i}-1111111-1111111", suffix=f"-{i}") for i in range(5)]
    assert import_lines(app, lines(*buyers)).refused == []

    first_two = find(app.ports(), "erika", limit=2, as_of=AS_OF)
    all_five = find(app.ports(), "erika", limit=5, as_of=AS_OF)

    assert (len(first_two.orders), first_two.truncated) == (2, True)
    assert (len(all_five.orders), all_five.truncated) == (5, False)


@pytest.mark.parametrize("query", ["", "   ", "x" * 255])
def test_an_empty_or_overlong_query_is_refused(app: App, query: str) -> None:
    with pytest.raises(InvalidInput, match=r"^give an order, invoice or credit number"):
        find(app.ports(), query)
