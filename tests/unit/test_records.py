"""Parsing import lines: strict, complete error lists, and never a PII value in an error."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from shelflife.domain.policy import DEFAULT_AMAZON_ORDER_PATTERN
from shelflife.domain.records import (
    Document,
    Item,
    ManualDocumentRecord,
    OrderRecord,
    RecordError,
    is_amazon_order_number,
    parse_record,
)

FULL_LINE: dict[str, Any] = {
    "shop": "main",
    "order_nr_external": "302-1234567-1234567",
    "ordered_at": "2026-01-01T09:00:00Z",
    "shipped_at": "2026-01-02T10:30:00+01:00",
    "cancelled_at": None,
    "customer": {
        "customer_nr_external": "A1B2C3D4E5F6G7",
        "salutation": "Frau",
        "first_name": "Erika",
        "last_name": "Mustermann",
        "company": "Musterfirma GmbH",
        "email": "erika.mustermann@example.org",
        "phone": "+49 221 1234567",
        "fax": "+49 221 1234568",
        "birth_date": "1980-05-01",
        "note": "Bitte klingeln",
        "vat_id": "DE123456789",
    },
    "billing_address": {
        "salutation": "Frau",
        "first_name": "Erika",
        "last_name": "Mustermann",
        "name2": "c/o Hausverwaltung Beispiel",
        "company": "Musterfirma GmbH",
        "street": "Heidestraße",
        "house_nr": "17",
        "zip": "51147",
        "city": "Köln",
        "state": "NRW",
        "country": "DE",
        "phone": "+49 221 7654321",
        "email": "rechnung.mustermann@example.org",
        "vat_id": "DE 123 456 789",
    },
    "shipping_address": {
        "salutation": "Herr",
        "first_name": "Max",
        "last_name": "Mustermann",
        "name2": None,
        "company": "",
        "street": "Lindenallee",
        "house_nr": "3a",
        "zip": "50667",
        "city": "Köln",
        "state": None,
        "country": "DE",
        "phone": "+49 221 555",
        "email": "max.mustermann@example.org",
    },
    "payment": {
        "card_type": "VISA",
        "card_name": "Erika Mustermann",
        "card_nr": "4111111111111111",
        "card_exp": "12/29",
        "account": "0123456789",
        "account_name": "Erika Mustermann",
        "iban": "DE02120300000000202051",
    },
    "gift_message": "Alles Gute zum Geburtstag, Max!",
    "address_remarks": "Hinterhaus, 2. Stock",
    "shop_note": "Stammkundin",
    "items": [
        {"sku": "BK-1", "title": "Notizbuch", "qty": 2, "price": "9.99"},
        {"sku": "PEN-7", "title": "Füller", "qty": 1, "price": 24.5},
    ],
    "invoices": [
        {
            "invoice_nr": "RE-1",
            "created_at": "2026-01-02T11:00:00Z",
            "total": "44.48",
            "net": "37.38",
            "tax": 7.1,
            "currency": "EUR",
        }
    ],
    "credits": [
        {
            "credit_nr": "GS-1",
            "invoice_nr": "RE-1",
            "created_at": "2026-01-05T08:00:00+01:00",
            "total": "9.99",
        }
    ],
}


def line(**changes: Any) -> dict[str, Any]:
    """The full line with top-level keys replaced (or removed when the value is `...`)."""
    data = copy.deepcopy(FULL_LINE)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


def nested(section: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(FULL_LINE)
    data[section].update(changes)
    return data


def problems(obj: object) -> list[str]:
    with pytest.raises(RecordError) as info:
        parse_record(obj)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def parsed_order(obj: object) -> OrderRecord:
    record = parse_record(obj)
    assert isinstance(record, OrderRecord)
    return record


# --- the full line --------------------------------------------------------------------------


def test_full_issue_format_line_is_parsed_into_an_order_record() -> None:
    record = parsed_order(FULL_LINE)

    assert record == OrderRecord(
        shop="main",
        order_nr_external="302-1234567-1234567",
        ordered_at=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        shipped_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        cancelled_at=None,
        customer={
            "customer_nr_external": "A1B2C3D4E5F6G7",
            "salutation": "Frau",
            "first_name": "Erika",
            "last_name": "Mustermann",
            "company": "Musterfirma GmbH",
            "email": "erika.mustermann@example.org",
            "phone": "+49 221 1234567",
            "fax": "+49 221 1234568",
            "birth_date": date(1980, 5, 1),
            "note": "Bitte klingeln",
            "vat_id": "DE123456789",
        },
        billing_address=FULL_LINE["billing_address"],
        shipping_address={**FULL_LINE["shipping_address"], "vat_id": None},
        payment=FULL_LINE["payment"],
        texts={
            "gift_message": "Alles Gute zum Geburtstag, Max!",
            "address_remarks": "Hinterhaus, 2. Stock",
            "shop_note": "Stammkundin",
        },
        items=(
            Item("BK-1", "Notizbuch", 2, Decimal("9.99")),
            Item("PEN-7", "Füller", 1, Decimal("24.50")),
        ),
        invoices=(
            Document(
                "RE-1",
                datetime(2026, 1, 2, 11, 0, tzinfo=UTC),
                Decimal("44.48"),
                None,
                Decimal("37.38"),
                Decimal("7.10"),
                "EUR",
            ),
        ),
        credits=(
            Document("GS-1", datetime(2026, 1, 5, 7, 0, tzinfo=UTC), Decimal("9.99"), "RE-1"),
        ),
        has_shipping_address=True,
        has_billing_address=True,
        has_payment=True,
    )


def test_timestamps_are_normalised_to_utc() -> None:
    record = parsed_order(FULL_LINE)

    assert (record.ordered_at.tzinfo, record.shipped_at and record.shipped_at.tzinfo) == (UTC, UTC)


def test_minimal_line_has_empty_sections_and_no_shipping_address() -> None:
    record = parsed_order(
        {"shop": "main", "order_nr_external": "WEB-1", "ordered_at": "2026-01-01T09:00:00+00:00"}
    )

    assert record.shipped_at is None
    assert record.cancelled_at is None
    assert set(record.customer.values()) == {None}
    assert set(record.billing_address.values()) == {None}
    assert set(record.shipping_address.values()) == {None}
    assert set(record.payment.values()) == {None}
    assert (record.items, record.invoices, record.credits) == ((), (), ())
    assert (record.has_shipping_address, record.has_billing_address, record.has_payment) == (
        False,
        False,
        False,
    )


def test_order_number_is_trimmed() -> None:
    assert parsed_order(line(order_nr_external=" 302-1234567-1234567 ")).order_nr_external == (
        "302-1234567-1234567"
    )


@pytest.mark.parametrize("number", ["\u200b", "\ufeff \u2060"])
def test_an_order_number_of_invisible_characters_only_is_refused_as_empty(number: str) -> None:
    with pytest.raises(RecordError) as refused:
        parse_record(line(order_nr_external=number))

    assert refused.value.problems == ["order_nr_external: must not be empty"]


def test_item_quantity_defaults_to_one() -> None:
    record = parsed_order(line(items=[{"sku": "BK-1", "title": "Notizbuch", "price": "1.00"}]))

    assert record.items == (Item("BK-1", "Notizbuch", 1, Decimal("1.00")),)


# --- required fields ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["shop", "order_nr_external", "ordered_at"])
def test_missing_required_field_is_named(field: str) -> None:
    assert problems(line(**{field: ...})) == [f"{field}: is required"]


@pytest.mark.parametrize("field", ["shop", "order_nr_external", "ordered_at"])
def test_null_required_field_is_named(field: str) -> None:
    assert problems(line(**{field: None})) == [f"{field}: is required"]


@pytest.mark.parametrize("field", ["shop", "order_nr_external"])
def test_blank_required_text_is_refused(field: str) -> None:
    assert problems(line(**{field: "   "})) == [f"{field}: must not be empty"]


def test_every_missing_required_field_is_listed_at_once() -> None:
    assert problems({"customer": {}}) == [
        "shop: is required",
        "order_nr_external: is required",
        "ordered_at: is required",
    ]


@pytest.mark.parametrize("obj", [[], "order", 42, None], ids=["list", "string", "number", "null"])
def test_line_that_is_not_an_object_is_refused(obj: object) -> None:
    assert problems(obj) == ["line: must be a JSON object"]


def test_unknown_record_type_is_refused() -> None:
    assert problems(line(type="refund")) == ["type: must be order, manual_invoice or manual_credit"]


# --- timestamps and dates -------------------------------------------------------------------

TIMESTAMP_PROBLEM = "not an ISO 8601 timestamp with offset (e.g. 2026-01-01T09:00:00+01:00)"


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T09:00:00", "2026-01-01", "yesterday", "2026-13-01T09:00:00Z"],
    ids=["no-offset", "date-only", "garbage", "month-13"],
)
@pytest.mark.parametrize("field", ["ordered_at", "shipped_at", "cancelled_at"])
def test_bad_timestamp_is_named_with_the_expected_form(field: str, value: str) -> None:
    assert problems(line(**{field: value})) == [f"{field}: {TIMESTAMP_PROBLEM}"]


def test_empty_order_timestamp_is_refused_as_empty() -> None:
    assert problems(line(ordered_at="")) == ["ordered_at: must not be empty"]


@pytest.mark.parametrize("field", ["shipped_at", "cancelled_at"])
def test_empty_optional_timestamp_is_refused_rather_than_read_as_null(field: str) -> None:
    assert problems(line(**{field: ""})) == [f"{field}: {TIMESTAMP_PROBLEM}"]


def test_bad_invoice_timestamp_is_named_with_its_path() -> None:
    bad = [{"invoice_nr": "RE-1", "created_at": "2026-01-02 11:00", "total": "1.00"}]

    assert problems(line(invoices=bad)) == [f"invoices[0].created_at: {TIMESTAMP_PROBLEM}"]


def test_timestamp_of_the_wrong_type_is_named() -> None:
    assert problems(line(ordered_at=1767258000)) == ["ordered_at: must be a string, got int"]


@pytest.mark.parametrize("value", ["01.05.1980", "1980-02-30", "1980/05/01", "yesterday"])
def test_bad_birth_date_is_named_without_its_value(value: str) -> None:
    found = problems(nested("customer", birth_date=value))

    assert found == ["customer.birth_date: not a date of the form YYYY-MM-DD"]
    assert value not in "; ".join(found)


def test_too_long_birth_date_is_named_without_its_value() -> None:
    value = "1980-05-01T00:00:00"

    found = problems(nested("customer", birth_date=value))

    assert found == ["customer.birth_date: longer than 10 characters"]
    assert value not in "; ".join(found)


def test_empty_birth_date_means_none() -> None:
    assert parsed_order(nested("customer", birth_date="")).customer["birth_date"] is None


def test_shipment_before_the_order_is_refused() -> None:
    assert problems(line(shipped_at="2025-12-31T23:59:59Z")) == ["shipped_at: is before ordered_at"]


def test_shipment_in_the_same_instant_as_the_order_is_accepted() -> None:
    record = parsed_order(line(shipped_at="2026-01-01T10:00:00+01:00"))

    assert record.shipped_at == record.ordered_at


# --- types and unknown keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(4711, "int"), (["erika@example.org"], "list"), ({"a": "b"}, "dict"), (True, "bool")],
)
def test_pii_field_of_the_wrong_type_is_named(value: object, type_name: str) -> None:
    assert problems(nested("customer", email=value)) == [
        f"customer.email: must be a string, got {type_name}"
    ]


@pytest.mark.parametrize("section", ["customer", "billing_address", "shipping_address", "payment"])
def test_section_that_is_not_an_object_is_refused(section: str) -> None:
    assert problems(line(**{section: "Erika Mustermann"})) == [f"{section}: must be an object"]


@pytest.mark.parametrize("section", ["customer", "billing_address", "shipping_address", "payment"])
def test_unknown_keys_in_a_nested_object_are_named(section: str) -> None:
    data = nested(section, shoe_size="42", eye_colour="blue")

    assert problems(data) == [f"{section}: unknown field(s) eye_colour, shoe_size"]


def test_top_level_text_of_the_wrong_type_is_named() -> None:
    assert problems(line(gift_message=["Alles Gute"])) == [
        "gift_message: must be a string, got list"
    ]


def test_text_longer_than_2000_characters_is_refused() -> None:
    assert problems(line(shop_note="x" * 2001)) == ["shop_note: longer than 2000 characters"]


@pytest.mark.parametrize("key", ["items", "invoices", "credits"])
def test_list_section_that_is_not_a_list_is_refused(key: str) -> None:
    assert problems(line(**{key: {"0": {}}})) == [f"{key}: must be a list"]


@pytest.mark.parametrize("key", ["items", "invoices", "credits"])
def test_list_entry_that_is_not_an_object_is_refused(key: str) -> None:
    assert problems(line(**{key: ["RE-1"]})) == [f"{key}[0]: must be an object"]


# --- items ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qty",
    [0, -1, 1_000_000, 1.5, "2", True, None],
    ids=["zero", "negative", "too-large", "fraction", "string", "bool", "null"],
)
def test_bad_quantity_is_refused(qty: object) -> None:
    items = [{"sku": "BK-1", "title": "Notizbuch", "qty": qty, "price": "9.99"}]

    assert problems(line(items=items)) == ["items[0].qty: must be a positive whole number"]


@pytest.mark.parametrize(
    "price",
    ["abc", "NaN", "Infinity", "1e10", "", [9.99], True],
    ids=["garbage", "nan", "infinity", "too-large", "empty", "list", "bool"],
)
def test_bad_price_is_refused(price: object) -> None:
    items = [{"sku": "BK-1", "title": "Notizbuch", "qty": 1, "price": price}]

    assert problems(line(items=items)) == ["items[0].price: not a decimal amount like 19.99"]


def test_missing_price_is_refused() -> None:
    items = [{"sku": "BK-1", "title": "Notizbuch", "qty": 1}]

    assert problems(line(items=items)) == ["items[0].price: is required"]


def test_bad_entries_are_named_by_their_position() -> None:
    items = [
        {"sku": "BK-1", "title": "Notizbuch", "qty": 1, "price": "1.00"},
        {"sku": "BK-2", "title": "Stift", "qty": 0, "price": "x"},
    ]

    assert problems(line(items=items)) == [
        "items[1].qty: must be a positive whole number",
        "items[1].price: not a decimal amount like 19.99",
    ]


# --- invoices and credits -------------------------------------------------------------------


def test_duplicate_invoice_numbers_in_one_order_are_refused() -> None:
    invoice = {"invoice_nr": "RE-1", "created_at": "2026-01-02T11:00:00Z", "total": "1.00"}

    assert problems(line(invoices=[invoice, dict(invoice), dict(invoice)])) == [
        "invoices[1].invoice_nr: appears twice in this order",
        "invoices[2].invoice_nr: appears twice in this order",
    ]


def test_duplicate_credit_numbers_in_one_order_are_refused() -> None:
    credit = {"credit_nr": "GS-1", "created_at": "2026-01-02T11:00:00Z", "total": "1.00"}

    assert problems(line(credits=[credit, dict(credit)])) == [
        "credits[1].credit_nr: appears twice in this order"
    ]


def test_invoice_without_number_date_and_total_names_all_three() -> None:
    assert problems(line(invoices=[{}])) == [
        "invoices[0].invoice_nr: is required",
        "invoices[0].created_at: is required",
        "invoices[0].total: is required",
    ]


# --- manual invoices and credits ------------------------------------------------------------


def test_manual_invoice_is_parsed() -> None:
    record = parse_record(
        {
            "type": "manual_invoice",
            "shop": "main",
            "customer_of_order": " 302-1234567-1234567 ",
            "invoice_nr": "RE-M-1",
            "created_at": "2026-02-01T10:00:00+01:00",
            "total": "12.5",
        }
    )

    assert record == ManualDocumentRecord(
        kind="manual_invoice",
        shop="main",
        customer_of_order="302-1234567-1234567",
        document=Document("RE-M-1", datetime(2026, 2, 1, 9, 0, tzinfo=UTC), Decimal("12.50")),
    )


def test_manual_credit_is_parsed_with_the_invoice_it_corrects() -> None:
    record = parse_record(
        {
            "type": "manual_credit",
            "shop": "main",
            "customer_of_order": "302-1234567-1234567",
            "credit_nr": "GS-M-1",
            "invoice_nr": "RE-M-1",
            "created_at": "2026-02-03T10:00:00Z",
            "total": "-5.00",
        }
    )

    assert record == ManualDocumentRecord(
        kind="manual_credit",
        shop="main",
        customer_of_order="302-1234567-1234567",
        document=Document(
            "GS-M-1", datetime(2026, 2, 3, 10, 0, tzinfo=UTC), Decimal("-5.00"), "RE-M-1"
        ),
    )


def test_manual_invoice_missing_everything_names_every_field() -> None:
    assert problems({"type": "manual_invoice"}) == [
        "shop: is required",
        "customer_of_order: is required",
        "invoice_nr: is required",
        "created_at: is required",
        "total: is required",
    ]


def test_manual_credit_with_a_bad_timestamp_is_refused() -> None:
    obj = {
        "type": "manual_credit",
        "shop": "main",
        "customer_of_order": "302-1234567-1234567",
        "credit_nr": "GS-M-1",
        "created_at": "03.02.2026",
        "total": "5.00",
    }

    assert problems(obj) == [f"created_at: {TIMESTAMP_PROBLEM}"]


# --- no PII in error messages ---------------------------------------------------------------


def test_error_for_a_long_email_does_not_contain_the_value() -> None:
    value = "erika.mustermann." * 120 + "@example.org"

    found = problems(nested("customer", email=value))

    assert found == ["customer.email: longer than 254 characters"]
    assert "erika.mustermann" not in "; ".join(found)


def test_error_for_an_email_of_the_wrong_type_does_not_contain_the_value() -> None:
    found = problems(nested("customer", email=["erika.mustermann@example.org"]))

    assert "erika.mustermann@example.org" not in "; ".join(found)


def test_error_for_a_bad_birth_date_does_not_contain_the_value() -> None:
    found = problems(nested("customer", birth_date="01.05.1980"))

    assert "01.05.1980" not in "; ".join(found)
    assert "1980" not in "; ".join(found)


def test_error_for_pii_in_a_timestamp_field_does_not_contain_the_value() -> None:
    found = problems(line(shipped_at="Erika Mustermann, Heidestraße 17"))

    assert found == [f"shipped_at: {TIMESTAMP_PROBLEM}"]
    assert "Mustermann" not in "; ".join(found)
    assert "Heidestraße" not in "; ".join(found)


def test_error_for_a_line_full_of_problems_contains_none_of_its_pii() -> None:
    data = copy.deepcopy(FULL_LINE)
    data["customer"]["birth_date"] = "01.05.1980"
    data["customer"]["phone"] = 4922112345
    data["billing_address"]["iban"] = "DE02120300000000202051"
    data["items"][0]["price"] = "Erika Mustermann"
    data["shipped_at"] = "Heidestraße 17, 51147 Köln"

    with pytest.raises(RecordError) as info:
        parse_record(data)

    message = str(info.value)
    assert len(info.value.problems) == 5
    for value in (
        "01.05.1980",
        "4922112345",
        "DE02120300000000202051",
        "Mustermann",
        "Heidestraße",
        "51147",
    ):
        assert value not in message


# --- Amazon order numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "nr", ["302-1234567-1234567", "028-0000000-9999999", "999-9999999-0000000"]
)
def test_amazon_order_number_matches_the_default_pattern(nr: str) -> None:
    assert is_amazon_order_number(nr, DEFAULT_AMAZON_ORDER_PATTERN) is True


@pytest.mark.parametrize(
    "nr",
    [
        "WEB-000001",
        "302-1234567-123456",
        "302-1234567-12345678",
        "3021-234567-1234567",
        "302 1234567 1234567",
        "3021234567-1234567",
        "302-1234567-1234567\n",
        " 302-1234567-1234567",
        "X302-1234567-1234567",
        "302-1234567-1234567-1",
        "30A-1234567-1234567",
        "",
    ],
)
def test_other_order_numbers_do_not_match_the_default_pattern(nr: str) -> None:
    assert is_amazon_order_number(nr, DEFAULT_AMAZON_ORDER_PATTERN) is False


def test_order_number_pattern_is_configurable() -> None:
    assert is_amazon_order_number("AMZ-42", r"AMZ-\d+") is True
    assert is_amazon_order_number("AMZ-42x", r"AMZ-\d+") is False


# --- tax fields and amounts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("customer", "DE"),  # too short
        ("customer", "D1234567"),  # no two-letter prefix
        ("billing_address", "DE12/345"),
        ("billing_address", "DE123\n456"),
        ("billing_address", "DE 12;DROP"),
        ("customer", " DE123456789"),
    ],
)
def test_a_malformed_vat_id_is_refused_by_field_without_its_value(where: str, value: str) -> None:
    line = copy.deepcopy(FULL_LINE)
    line[where]["vat_id"] = value

    assert problems(line) == [
        f"{where}.vat_id: not a VAT ID (two letters, then 2 to 18 letters, digits, "
        "spaces, dots or hyphens)"
    ]


def test_a_vat_id_longer_than_its_column_is_refused() -> None:
    line = copy.deepcopy(FULL_LINE)
    line["customer"]["vat_id"] = "DE" + "1" * 19

    assert problems(line) == ["customer.vat_id: longer than 20 characters"]


@pytest.mark.parametrize(
    "value", ["ATU12345678", "EL123456789", "IE1234567FA", "IE1+23456X", "XI 123.456-78"]
)
def test_vat_ids_of_several_member_states_are_accepted(value: str) -> None:
    line = copy.deepcopy(FULL_LINE)
    line["customer"]["vat_id"] = value

    assert parsed_order(line).customer["vat_id"] == value


def test_a_vat_id_of_another_type_is_refused() -> None:
    line = copy.deepcopy(FULL_LINE)
    line["customer"]["vat_id"] = 123456789

    assert problems(line) == ["customer.vat_id: must be a string, got int"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"net": "abc"}, "invoices[0].net: not a decimal amount like 19.99"),
        ({"tax": "1e400"}, "invoices[0].tax: not a decimal amount like 19.99"),
        ({"net": "30.00"}, "invoices[0].net: net and tax do not add up to total"),
        ({"currency": "eur"}, "invoices[0].currency: not a three-letter ISO 4217 code like EUR"),
        ({"currency": "EURO"}, "invoices[0].currency: longer than 3 characters"),
        ({"currency": 978}, "invoices[0].currency: must be a string, got int"),
    ],
)
def test_malformed_net_tax_or_currency_is_refused(changes: dict[str, Any], problem: str) -> None:
    line = copy.deepcopy(FULL_LINE)
    line["invoices"][0].update(changes)

    assert problems(line) == [problem]


def test_amounts_default_to_none_and_the_currency_to_eur() -> None:
    line = copy.deepcopy(FULL_LINE)
    line["credits"][0].pop("currency", None)

    credit = parsed_order(line).credits[0]

    assert (credit.net, credit.tax, credit.currency) == (None, None, "EUR")
