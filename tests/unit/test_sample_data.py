"""The sample data generator: deterministic, lazy, and in the import format."""

from __future__ import annotations

import io
import itertools
import json
import re
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shelflife.domain import records
from shelflife.sample_data import SampleSpec, generate_orders, write_jsonl

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
CUSTOMERS = 2_000

AMAZON_NR = re.compile(r"^\d{3}-\d{7}-\d{7}$")
SHOP_NR = re.compile(r"^WEB-\d{6,}$")
BUYER_ID = re.compile(r"^A[0-9A-Z]{13}$")
SHOP_CUSTOMER_NR = re.compile(r"^K\d{7,}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONEY = re.compile(r"^\d+\.\d{2}$")
EMAIL = re.compile(r"^[a-z0-9.]+@example\.(org|com|net)$")

ORDER_KEYS = {
    "shop",
    "order_nr_external",
    "ordered_at",
    "shipped_at",
    "cancelled_at",
    "customer",
    "billing_address",
    "shipping_address",
    "payment",
    "gift_message",
    "address_remarks",
    "shop_note",
    "items",
    "invoices",
    "credits",
}
# The generator must speak exactly the import format that the parser accepts.
CUSTOMER_KEYS = set(records.CUSTOMER_KEYS)
ADDRESS_KEYS = set(records.ADDRESS_KEYS)
PAYMENT_KEYS = set(records.PAYMENT_KEYS)

Order = dict[str, Any]


def spec(customers: int = CUSTOMERS, **changes: Any) -> SampleSpec:
    return SampleSpec(customers=customers, start=START, days=DAYS, **changes)


def jsonl(sample: SampleSpec) -> str:
    out = io.StringIO()
    write_jsonl(sample, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def orders() -> list[Order]:
    return [json.loads(line) for line in jsonl(spec()).splitlines()]


def is_amazon(order: Order) -> bool:
    return bool(AMAZON_NR.match(order["order_nr_external"]))


def moment(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def test_same_seed_gives_the_same_bytes() -> None:
    assert jsonl(spec(300)) == jsonl(spec(300))


def test_another_seed_gives_other_data() -> None:
    first = jsonl(spec(300)).splitlines()
    second = jsonl(spec(300, seed=2)).splitlines()
    assert not set(first) & set(second)


def test_write_jsonl_returns_the_number_of_lines() -> None:
    out = io.StringIO()
    count = write_jsonl(spec(300), out)
    text = out.getvalue()
    assert text.endswith("\n")
    assert count == len(text.splitlines()) == len(list(generate_orders(spec(300))))


def test_every_order_has_exactly_the_import_shape(orders: list[Order]) -> None:
    for order in orders:
        assert set(order) == ORDER_KEYS
        assert order["shop"] in ("main", "outlet")
        assert set(order["customer"]) == CUSTOMER_KEYS
        assert set(order["billing_address"]) == ADDRESS_KEYS
        assert set(order["shipping_address"]) == ADDRESS_KEYS
        assert order["payment"] is None or set(order["payment"]) == PAYMENT_KEYS
        for key in ("gift_message", "address_remarks", "shop_note"):
            assert order[key] is None or isinstance(order[key], str)
        for part in ("customer", "billing_address", "shipping_address", "payment"):
            for value in (order[part] or {}).values():
                assert value is None or (isinstance(value, str) and value)
        assert all(set(item) == {"sku", "title", "qty", "price"} for item in order["items"])
        assert all(set(inv) == {"invoice_nr", "created_at", "total"} for inv in order["invoices"])
        assert all(
            set(credit) == {"credit_nr", "invoice_nr", "created_at", "total"}
            for credit in order["credits"]
        )


def test_timestamps_are_iso_with_offset_and_inside_the_window(orders: list[Order]) -> None:
    end = START + timedelta(days=DAYS)
    for order in orders:
        stamps = [order["ordered_at"], order["shipped_at"], order["cancelled_at"]]
        stamps += [doc["created_at"] for doc in order["invoices"] + order["credits"]]
        for stamp in stamps:
            if stamp is not None:
                assert START <= moment(stamp) < end
        birth_date = order["customer"]["birth_date"]
        if birth_date is not None:
            assert DATE.match(birth_date)
            assert date(1930, 1, 1) < date.fromisoformat(birth_date) < date(2009, 1, 1)


def test_order_numbers_are_unique_and_well_formed(orders: list[Order]) -> None:
    numbers = [order["order_nr_external"] for order in orders]
    assert len(set(numbers)) == len(numbers)
    amazon = [nr for nr in numbers if AMAZON_NR.match(nr)]
    assert len(amazon) >= round(0.7 * CUSTOMERS)  # every Amazon customer orders at least once
    assert all(SHOP_NR.match(nr) for nr in numbers if not AMAZON_NR.match(nr))


def test_customer_numbers_follow_the_channel(orders: list[Order]) -> None:
    without_nr = 0
    for order in orders:
        nr = order["customer"]["customer_nr_external"]
        if not is_amazon(order):
            assert SHOP_CUSTOMER_NR.match(nr)
        elif nr is None:
            without_nr += 1
        else:
            assert BUYER_ID.match(nr)
        assert EMAIL.match(order["customer"]["email"])
    assert 0 < without_nr < len(orders) // 10  # a few Amazon buyers are known by e-mail only


def test_each_buyer_is_one_identity_with_one_to_three_chronological_orders(
    orders: list[Order],
) -> None:
    by_email: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        by_email[order["customer"]["email"]].append(order)
    assert len(by_email) == CUSTOMERS
    sizes = Counter(len(group) for group in by_email.values())
    assert set(sizes) == {1, 2, 3}
    assert sizes[1] > sizes[2] > sizes[3]
    for group in by_email.values():
        assert len({json.dumps(order["customer"]) for order in group}) == 1
        assert len({(order["shop"], is_amazon(order)) for order in group}) == 1
        times = [moment(order["ordered_at"]) for order in group]
        assert times == sorted(times)


def test_amazon_share_is_exact(orders: list[Order]) -> None:
    amazon_buyers = {order["customer"]["email"] for order in orders if is_amazon(order)}
    assert len(amazon_buyers) == round(0.7 * CUSTOMERS)


@pytest.mark.parametrize(("share", "customers", "expected"), [(0.0, 50, 0), (0.25, 400, 100)])
def test_amazon_share_follows_the_spec(share: float, customers: int, expected: int) -> None:
    lines = jsonl(spec(customers, amazon_share=share)).splitlines()
    amazon_buyers = {o["customer"]["email"] for o in map(json.loads, lines) if is_amazon(o)}
    assert len(amazon_buyers) == expected


def test_shipping_cancelling_and_invoicing_are_consistent(orders: list[Order]) -> None:
    end = START + timedelta(days=DAYS)
    invoice_numbers: list[str] = []
    credit_numbers: list[str] = []
    for order in orders:
        ordered_at = moment(order["ordered_at"])
        total = Decimal(0)
        for item in order["items"]:
            assert MONEY.match(item["price"])
            assert item["qty"] in (1, 2, 3)
            total += Decimal(item["price"]) * item["qty"]
        assert 1 <= len(order["items"]) <= 3
        if order["shipped_at"] is None:
            assert order["invoices"] == []
            assert order["credits"] == []
            if order["cancelled_at"] is None:  # still open: only near the end of the window
                assert ordered_at >= end - timedelta(days=4)
            else:
                assert moment(order["cancelled_at"]) >= ordered_at
        else:
            assert order["cancelled_at"] is None
            shipped_at = moment(order["shipped_at"])
            assert ordered_at + timedelta(days=1) <= shipped_at <= ordered_at + timedelta(days=4)
            [invoice] = order["invoices"]
            assert invoice["created_at"] == order["shipped_at"]
            assert Decimal(invoice["total"]) == total
            assert MONEY.match(invoice["total"])
            invoice_numbers.append(invoice["invoice_nr"])
            for credit in order["credits"]:
                assert credit["invoice_nr"] == invoice["invoice_nr"]
                credited_at = moment(credit["created_at"])
                assert shipped_at + timedelta(days=5) <= credited_at
                assert credited_at <= shipped_at + timedelta(days=20)
                assert 0 < Decimal(credit["total"]) <= total
                credit_numbers.append(credit["credit_nr"])
    assert len(set(invoice_numbers)) == len(invoice_numbers)
    assert all(re.match(r"^RE-2026-\d{6}$", nr) for nr in invoice_numbers)
    assert len(set(credit_numbers)) == len(credit_numbers) > 0
    assert all(re.match(r"^GS-2026-\d{6}$", nr) for nr in credit_numbers)


def test_optional_parts_appear_at_roughly_their_rates(orders: list[Order]) -> None:
    def share(predicate: Any) -> float:
        return sum(1 for order in orders if predicate(order)) / len(orders)

    assert 0.01 < share(lambda o: o["cancelled_at"] is not None) < 0.06
    assert 0.05 < share(lambda o: o["gift_message"] is not None) < 0.15
    assert 0.05 < share(lambda o: o["address_remarks"] is not None) < 0.15
    assert 0.02 < share(lambda o: o["shop_note"] is not None) < 0.09
    assert 0.14 < share(lambda o: o["shipping_address"] != o["billing_address"]) < 0.26
    assert 0.5 < share(lambda o: o["payment"] is not None) < 0.7
    assert share(lambda o: (o["payment"] or {}).get("iban") is not None) > 0.2
    assert share(lambda o: (o["payment"] or {}).get("card_nr") is not None) > 0.2
    assert 0.5 < share(lambda o: o["billing_address"]["country"] == "DE") < 0.9


def test_the_generator_is_lazy() -> None:
    list(generate_orders(spec(1)))  # Faker's locale modules are imported once, outside the trace
    tracemalloc.start()
    try:
        first = list(itertools.islice(generate_orders(spec(10**7)), 5))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 5
    assert peak < 8 * 2**20  # a list of 10**7 anything would need 80 MB


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        SampleSpec(customers=1, start=datetime(2026, 1, 1), days=1)
