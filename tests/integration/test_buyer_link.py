"""A buyer's link across masking, and the manual-order guard, on SQLite and PostgreSQL.

A masked buyer's next order starts a new customer record; the records share a keyed digest of
the marketplace buyer id (or relay e-mail), so each order lists the other record's orders
without restoring any personal data. Placeholders never link. A manual (non-Amazon) order that
names an Amazon buyer is refused.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.order_writer import OrderWriter
from shelflife.adapters.db.tables import Customer, Order
from shelflife.bootstrap import App
from shelflife.domain.buyer_link import MANUAL_ORDER_FOR_AMAZON_BUYER
from shelflife.domain.errors import InvalidInput
from shelflife.domain.records import OrderRecord, parse_line
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user, create_token
from shelflife.services.importing import ImportReport, LineProblem, import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order

FIRST = "302-1234567-1234567"
LATER = "302-7654321-7654321"
BUYER_ID = "A1B2C3D4E5F6G7"
RELAY = "k7xq2mbv9zt3wr1@marketplace.amazon.de"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def _import(app: App, *orders: dict[str, Any]) -> ImportReport:
    return import_lines(app, lines(*orders))


def _buyer(nr: str, suffix: str, number: str | None, email: str | None) -> dict[str, Any]:
    """An order with its own personal data (`suffix`) and the given identifying values."""
    data = order(nr, shipped_at=T0, suffix=suffix)
    data["customer"] = {**data["customer"], "customer_nr_external": number, "email": email}
    data["billing_address"] = {**data["billing_address"], "email": email}
    return data


def _customer(app: App, nr: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(
            select(Customer.__table__)
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.order_nr_external == nr)
        ).one()


def _mask_first(app: App, first: dict[str, Any]) -> None:
    assert _import(app, first).created == 1
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(31)).masked == 1


def _linked(app: App, nr: str) -> list[tuple[str, str, str]]:
    document = show_order(app.ports(), nr, T0 + days(41))
    return [(o.order_nr_external, o.customer, o.state) for o in document.linked_orders]


@pytest.mark.parametrize(
    ("number", "email"),
    [(BUYER_ID, "erika@example.org"), (None, RELAY)],
    ids=["marketplace-buyer-id", "relay-e-mail"],
)
def test_masked_buyers_later_order_lists_the_earlier_masked_orders(
    app: App, number: str | None, email: str
) -> None:
    _mask_first(app, _buyer(FIRST, "-1", number, email))
    masked = _customer(app, FIRST)

    assert _import(app, _buyer(LATER, "-2", number, email)).created == 1

    later = _customer(app, LATER)
    assert later.id != masked.id  # masking dropped the identity digest: a new record
    assert masked.identity_digest is None
    assert masked.buyer_link is not None
    assert masked.buyer_link == later.buyer_link
    assert masked.buyer_link != later.identity_digest
    assert _linked(app, LATER) == [(FIRST, f"C{masked.id}", "masked")]
    assert _linked(app, FIRST) == [(LATER, f"C{later.id}", "ready_for_archiving")]
    assert _customer(app, FIRST)._asdict() == masked._asdict()  # nothing was restored


@pytest.mark.parametrize(
    ("number", "email"),
    [
        (None, "rechnungen@amazon.example"),  # a shared invoice address: not a relay address
        (None, None),
        ("***", None),
        ("Amazon Business EU SARL", None),
    ],
    ids=["shared-invoice-e-mail", "empty", "mask-placeholder", "amazon-business-identity"],
)
def test_placeholders_never_link_two_buyers(app: App, number: str | None, email: str) -> None:
    _mask_first(app, _buyer(FIRST, "-1", number, email))

    assert _import(app, _buyer(LATER, "-2", number, email)).created == 1

    assert (_customer(app, FIRST).buyer_link, _customer(app, LATER).buyer_link) == (None, None)
    assert _linked(app, LATER) == []
    assert _linked(app, FIRST) == []


def test_link_needs_the_same_shop(app: App) -> None:
    _mask_first(app, _buyer(FIRST, "-1", BUYER_ID, None))
    other_shop = _buyer(LATER, "-2", BUYER_ID, None)
    other_shop["shop"] = "second"

    assert _import(app, other_shop).created == 1

    assert _linked(app, LATER) == []


def test_linked_orders_reach_the_api_and_the_order_page(app: App) -> None:
    _mask_first(app, _buyer(FIRST, "-1", BUYER_ID, None))
    _import(app, _buyer(LATER, "-2", BUYER_ID, None))
    at(app, T0 + days(41))
    add_user(app, "anna", "agent", PASSWORD, "setup")
    token = create_token(app, "anna", "setup").token
    masked_ref = f"C{_customer(app, FIRST).id}"

    with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
        api = client.get(f"/api/v1/orders/{LATER}", headers={"Authorization": f"Bearer {token}"})
        login = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        client.post(
            "/login",
            data={"user_name": "anna", "password": PASSWORD, "csrf_token": csrf.group(1)},
        )
        page = client.get(f"/orders/{LATER}", params={"shop": "main"})

    assert api.status_code == 200
    assert [
        (o["order_nr_external"], o["customer"], o["state"]) for o in api.json()["linked_orders"]
    ] == [(FIRST, masked_ref, "masked")]
    assert page.status_code == 200
    section = re.search(
        r'<section class="card" aria-labelledby="h-linked".*?</section>', page.text, re.S
    )
    assert section is not None
    assert f'<a href="/orders/{FIRST}?shop=main">{FIRST}</a>' in section.group(0)
    assert f"<td>{masked_ref}</td>" in section.group(0)


# -- manual orders for Amazon buyers ----------------------------------------------------------


def _manual(nr: str, number: str | None, email: str | None = "kasse@example.org") -> dict[str, Any]:
    data = order(nr, suffix="-m")
    data["customer"] = {**data["customer"], "customer_nr_external": number, "email": email}
    data["billing_address"] = {**data["billing_address"], "email": email}
    return data


def test_manual_order_naming_an_amazon_buyers_customer_number_is_refused(app: App) -> None:
    assert _import(app, order(FIRST)).created == 1

    report = _import(app, _manual("M-1001", BUYER_ID), _manual("M-1002", "K-4711"))

    assert report.created == 1
    assert report.refused == [LineProblem(1, MANUAL_ORDER_FOR_AMAZON_BUYER)]
    assert _customer(app, "M-1002").channel == "shop"
    with app.engine.connect() as conn:
        numbers = set(conn.execute(select(Order.order_nr_external)).scalars())
    assert numbers == {FIRST, "M-1002"}


def test_manual_order_in_the_same_batch_as_the_amazon_order_is_refused(app: App) -> None:
    report = _import(app, order(FIRST), _manual("M-1001", BUYER_ID))

    assert (report.created, report.refused) == (1, [LineProblem(2, MANUAL_ORDER_FOR_AMAZON_BUYER)])


def test_manual_order_for_a_masked_amazon_buyer_is_refused_by_its_link(app: App) -> None:
    _mask_first(app, order(FIRST, shipped_at=T0))
    assert _customer(app, FIRST).identity_digest is None

    report = _import(app, _manual("M-1001", BUYER_ID))

    assert report.refused == [LineProblem(1, MANUAL_ORDER_FOR_AMAZON_BUYER)]


def test_manual_order_with_an_amazon_relay_e_mail_is_refused(app: App) -> None:
    report = _import(app, _manual("M-1001", None, RELAY), _manual("M-1002", None))

    assert (report.created, report.refused) == (1, [LineProblem(1, MANUAL_ORDER_FOR_AMAZON_BUYER)])


def test_per_line_writer_refuses_a_manual_order_for_an_amazon_buyer_too(app: App) -> None:
    """The path that pins a failed bulk insert on its line applies the same guard."""
    assert _import(app, order(FIRST)).created == 1
    record = parse_line(lines(_manual("M-1001", BUYER_ID))[0])
    assert isinstance(record, OrderRecord)

    with app.engine.connect() as conn, conn.begin():
        writer = OrderWriter(conn, app.keys.identity_digest, app.clock.now())
        with pytest.raises(InvalidInput) as refused:
            writer.apply(record)

    assert str(refused.value) == MANUAL_ORDER_FOR_AMAZON_BUYER
    assert "A1B2" not in str(refused.value)


@pytest.mark.parametrize(
    ("number", "email"),
    [(BUYER_ID, "erika@example.org"), ("K-4711", RELAY)],
    ids=["amazon-customer-number", "relay-e-mail"],
)
def test_a_reimported_manual_order_that_now_names_an_amazon_buyer_is_refused(
    app: App, number: str, email: str
) -> None:
    """A manual order's next export must not carry Amazon's data into the shop customer's
    record either: a shop customer is never masked, so it would keep it for good."""
    assert _import(app, order(FIRST), _manual("M-1001", "K-4711")).created == 2
    before = _customer(app, "M-1001")
    changed = _manual("M-1001", number, email)
    changed["shipped_at"] = T0.isoformat()

    report = _import(app, changed)

    assert report.refused == [LineProblem(1, MANUAL_ORDER_FOR_AMAZON_BUYER)]
    assert _customer(app, "M-1001") == before
    with app.engine.connect() as conn:
        shipped = conn.execute(
            select(Order.shipped_at).where(Order.order_nr_external == "M-1001")
        ).scalar_one()
    assert shipped is None  # the line is refused as a whole, as a new one would be


def test_an_unchanged_reimport_of_a_manual_order_is_not_refused(app: App) -> None:
    assert _import(app, order(FIRST), _manual("M-1001", "K-4711")).created == 2

    report = _import(app, _manual("M-1001", "K-4711"))

    assert (report.unchanged, report.refused) == (1, [])
