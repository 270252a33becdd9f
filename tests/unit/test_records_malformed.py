"""Reading one import line, whatever is wrong with it: a record, or a refusal that names the
problem without quoting the line, never an exception that would end the import."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shelflife.domain.records import OrderRecord, RecordError, parse_line, parse_record
from tests.support.builders import order

RANGE = "outside the accepted range 2000-01-01 to 2100-12-31 (UTC)"
SURROGATE = "contains an invalid character (an unpaired UTF-16 surrogate)"


def _line(**changes: Any) -> dict[str, Any]:
    data = order("302-1234567-1234567")
    data.update(changes)
    return data


def refusal(raw: str | bytes) -> list[str]:
    with pytest.raises(RecordError) as info:
        parse_line(raw)
    return info.value.problems


def _raw(data: object) -> str:
    """The line as an export writes it: non-ASCII escaped, so lone surrogates survive."""
    return json.dumps(data)


# -- encoding ------------------------------------------------------------------------------------


def test_a_line_that_is_not_utf8_is_refused_naming_the_byte() -> None:
    raw = _raw(_line()).encode().replace(b"Mustermann", b"M\xfcstermann", 1)
    position = raw.index(b"\xfc") + 1

    assert refusal(raw) == [f"line: not valid UTF-8 (byte {position}); save the file as UTF-8"]


def test_a_utf8_line_given_as_bytes_is_read_like_text() -> None:
    data = _line()

    assert parse_line(json.dumps(data, ensure_ascii=False).encode()) == parse_record(data)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("customer", "first_name"), "customer.first_name"),
        (("billing_address", "city"), "billing_address.city"),
        (("shipping_address", "street"), "shipping_address.street"),
        (("payment", "card_name"), "payment.card_name"),
        (("gift_message",), "gift_message"),
        (("shop",), "shop"),
        (("order_nr_external",), "order_nr_external"),
        (("items", 0, "title"), "items[0].title"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_lone_surrogate_in_any_string_value_is_refused_by_field(
    path: tuple[Any, ...], expected: str
) -> None:
    data: Any = _line(items=[{"sku": "BK-1", "title": "Notizbuch", "price": "1.00"}])
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "Eri\ud800ka"

    assert refusal(_raw(data)) == [f"{expected}: {SURROGATE}"]


def test_a_lone_surrogate_in_a_document_number_is_refused() -> None:
    data = _line(
        invoices=[{"invoice_nr": "\udfff", "created_at": "2026-03-02T09:00:00Z", "total": 1}]
    )

    assert refusal(_raw(data)) == [f"invoices[0].invoice_nr: {SURROGATE}"]


def test_a_lone_surrogate_in_a_key_is_refused_without_showing_the_key() -> None:
    data = _line()
    data["customer"]["\ud800name"] = "Erika"

    assert refusal(_raw(data)) == ["customer: an unknown field"]


def test_a_lone_surrogate_in_an_ignored_top_level_key_does_not_matter() -> None:
    data = _line()
    data["\ud800"] = "x"

    assert isinstance(parse_line(_raw(data)), OrderRecord)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["shoe_size"], "unknown field(s) shoe_size"),
        (["erika.mustermann@example.org"], "an unknown field"),
        (["Straße"], "an unknown field"),
        (["a" * 41], "an unknown field"),
        (["\x00"], "an unknown field"),
        (["first name", "[bold]x", "shoe_size"], "unknown field(s) shoe_size and 2 unknown fields"),
        (["shoe_size", "Heidestraße 17"], "unknown field(s) shoe_size and an unknown field"),
    ],
    ids=["identifier", "e-mail", "non-ascii", "too-long", "nul", "several", "one-hidden"],
)
def test_unknown_keys_are_named_only_when_they_look_like_field_names(
    keys: list[str], message: str
) -> None:
    data = _line()
    data["billing_address"].update(dict.fromkeys(keys, "x"))

    assert refusal(_raw(data)) == [f"billing_address: {message}"]


def test_a_line_with_thousands_of_problems_is_refused_with_a_message_of_bounded_size() -> None:
    """A 7 MB line of broken items and unknown keys once gave a 22 MB message, printed and
    returned by the API as it was: the message names the first problems and counts the rest."""
    data = _line(items=[{"qty": 0, "price": "1"}] * 200_000)
    data["customer"].update(dict.fromkeys((f"k{n:06d}" for n in range(100_000)), "x"))

    with pytest.raises(RecordError) as refused:
        parse_line(_raw(data))

    shown = "".join(f"k{n:06d}, " for n in range(9)) + "k000009 and 99990 unknown fields"
    assert str(refused.value) == (
        f"customer: unknown field(s) {shown}; "
        + "".join(f"items[{n}].qty: must be a positive whole number; " for n in range(19))
        + "and 199981 more problems"
    )


# -- structure and numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("opener", ["[", '{"a":'], ids=["lists", "objects"])
def test_100k_deep_nesting_is_refused(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = opener * 100_000 + "1" * (opener != "[") + closer * 100_000

    assert refusal(raw) == ["line: nested too deeply to be an order"]


def test_deep_nesting_inside_an_order_is_refused() -> None:
    raw = _raw(_line())[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"

    assert refusal(raw) == ["line: nested too deeply to be an order"]


def test_an_integer_of_5000_digits_is_refused() -> None:
    raw = _raw(_line())[:-1] + ', "total": ' + "9" * 5000 + "}"

    assert refusal(raw) == ["line: a number in it has too many digits"]


@pytest.mark.parametrize(
    "price", ["1e400", "-1e400", "9" * 4000], ids=["inf", "-inf", "4000-digits"]
)
def test_huge_prices_are_refused_by_field(price: str) -> None:
    raw = _raw(_line(items=[{"sku": "BK-1", "title": "T", "price": 0}])).replace(
        '"price": 0', f'"price": {price}'
    )

    assert refusal(raw) == ["items[0].price: not a decimal amount like 19.99"]


@pytest.mark.parametrize(
    "qty", ["1e400", "9" * 4000, "1.5", '"2"'], ids=["inf", "huge", "float", "text"]
)
def test_huge_or_odd_quantities_are_refused_by_field(qty: str) -> None:
    raw = _raw(_line(items=[{"sku": "BK-1", "title": "T", "qty": 0, "price": 1}])).replace(
        '"qty": 0', f'"qty": {qty}'
    )

    assert refusal(raw) == ["items[0].qty: must be a positive whole number"]


def test_nul_inside_a_value_is_refused_by_field() -> None:
    assert refusal(_raw(_line(shop_note="a\x00b"))) == [
        "shop_note: must not contain NUL characters"
    ]


def test_a_raw_nul_byte_outside_strings_is_invalid_json() -> None:
    assert refusal(b'{"shop": "main",\x00}') == [
        "invalid JSON at column 17: Expecting property name enclosed in double quotes"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shop": 7}, "shop: must be a string, got int"),
        ({"customer": ["x"]}, "customer: must be an object"),
        ({"items": {"sku": "x"}}, "items: must be a list"),
        ({"type": ["order"]}, "type: must be order, manual_invoice or manual_credit"),
        ({"type": {"a": 1}}, "type: must be order, manual_invoice or manual_credit"),
        ({"ordered_at": 20260302}, "ordered_at: must be a string, got int"),
    ],
    ids=["shop-int", "customer-list", "items-object", "type-list", "type-object", "date-int"],
)
def test_wrong_types_are_refused_by_field(changes: dict[str, Any], message: str) -> None:
    assert refusal(_raw(_line(**changes))) == [message]


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # OverflowError when converted to UTC, before this check
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:00:00-02:00",  # OverflowError the other way
        "9999-12-31T00:00:00+00:00",
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30 in UTC
        "2101-01-01T00:00:00Z",
        "2100-12-31T23:30:00-01:00",  # 2101-01-01T00:30 in UTC
    ],
)
@pytest.mark.parametrize("field", ["ordered_at", "shipped_at", "cancelled_at"])
def test_timestamps_outside_2000_to_2100_in_utc_are_refused_naming_the_field(
    field: str, value: str
) -> None:
    data = _line(ordered_at="2026-03-02T09:00:00Z", shipped_at="2026-03-03T09:00:00Z")
    data[field] = value

    assert refusal(_raw(data)) == [f"{field}: {RANGE}"]


@pytest.mark.parametrize(
    "value", ["2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00", "2100-12-31T23:59:59.999999Z"]
)
def test_timestamps_at_the_edges_of_the_range_are_accepted(value: str) -> None:
    record = parse_line(_raw(_line(ordered_at=value, shipped_at=None)))

    assert isinstance(record, OrderRecord)
    assert record.ordered_at.isoformat() == value.replace("Z", "+00:00").replace(
        "2000-01-01T01:00:00+01:00", "2000-01-01T00:00:00+00:00"
    )


def test_a_document_date_in_year_9999_is_refused_with_its_path() -> None:
    invoice = {"invoice_nr": "RE-1", "created_at": "9999-12-31T23:59:59+05:00", "total": "1"}

    assert refusal(_raw(_line(invoices=[invoice]))) == [f"invoices[0].created_at: {RANGE}"]


def test_a_manual_credit_dated_year_1_is_refused() -> None:
    manual = {
        "type": "manual_credit",
        "shop": "main",
        "customer_of_order": "302-1234567-1234567",
        "credit_nr": "GS-1",
        "created_at": "0001-01-01T00:00:00+14:00",
        "total": "1",
    }

    assert refusal(_raw(manual)) == [f"created_at: {RANGE}"]
