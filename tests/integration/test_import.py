"""Import on SQLite and PostgreSQL: Amazon identification, buyer identity, re-import rules,
bad lines, and manual documents."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from shelflife.adapters.db import bulk_orders
from shelflife.adapters.db.order_writer import OrderWriter, Outcome
from shelflife.adapters.db.tables import (
    Address,
    AddressHistory,
    ArchiveCopy,
    Credit,
    Customer,
    Invoice,
    Order,
    Shop,
)
from shelflife.bootstrap import App
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.records import OrderRecord, parse_line
from shelflife.services import importing
from shelflife.services.importing import ImportReport, LineNotice, LineProblem, import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import configure_shop, set_feature, ship_order
from tests.support.builders import (
    T0,
    at,
    days,
    iso,
    lines,
    malformed_lines,
    order,
    pii_strings,
)

AMAZON_NR = "302-1234567-1234567"
MASKED_NOTICE = "order is masked: personal data in this line was ignored, status updated"
RETRIEVED_REFUSAL = (
    "order was retrieved and is read-only: personal data changes refused "
    "(status fields were updated)"
)


def _import(app: App, *orders: dict[str, Any]) -> ImportReport:
    return import_lines(app, lines(*orders))


def _order_row(app: App, nr: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(Order.__table__).where(Order.order_nr_external == nr)).one()


def _customer_row(app: App, nr: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(
            select(Customer.__table__)
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.order_nr_external == nr)
        ).one()


def _count(app: App, model: type[Any]) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def _buyer(nr: str, **customer: Any) -> dict[str, Any]:
    """An order whose customer section is replaced by `customer` merged onto the default."""
    base = order(nr, shipped_at=T0)
    base["customer"] = {**base["customer"], **customer}
    return base


def _mask(app: App, nr: str = AMAZON_NR) -> None:
    """Import a shipped order, enable retention and run past day 30, so the order is masked."""
    _import(app, order(nr, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    report = run_retention(app.ports(), T0 + days(31))
    assert (report.archived, report.masked) == (1, 1)


# -- Amazon identification --------------------------------------------------------------------


def _shop_order(nr: str, **overrides: Any) -> dict[str, Any]:
    """A shop order of the same person as `order()`'s Amazon buyer, under the shop's own
    customer number (the Amazon buyer's number would make it a refused manual order)."""
    data = order(nr, **overrides)
    data["customer"] = {**data["customer"], "customer_nr_external": "K-100001"}
    return data


def test_default_pattern_identifies_amazon_orders_by_their_number(app: App) -> None:
    report = _import(
        app,
        order(AMAZON_NR),
        _shop_order("SHOP-100001"),
        order("302-1234567-123456", suffix="-x"),
    )

    assert report.created == 3
    assert _order_row(app, AMAZON_NR).is_amazon is True
    assert _order_row(app, "SHOP-100001").is_amazon is False
    assert _order_row(app, "302-1234567-123456").is_amazon is False
    assert _customer_row(app, AMAZON_NR).channel == "amazon"
    assert _customer_row(app, "SHOP-100001").channel == "shop"


@pytest.mark.parametrize(
    "nr",
    [
        "３０２-１２３４５６７-１２３４５６７",  # full-width digits
        "٣٠٢-١٢٣٤٥٦٧-١٢٣٤٥٦٧",  # Arabic-Indic digits
        "302-1234567-１２３４５６７",  # ASCII and full-width mixed
    ],
)
def test_order_numbers_of_other_digits_than_ascii_are_not_amazon_orders(app: App, nr: str) -> None:
    """Amazon writes its order numbers in ASCII digits; a number that only looks alike in
    another script is the shop's own and must not make its buyer an Amazon buyer."""
    report = _import(app, _shop_order(nr))

    assert (report.created, report.refused) == (1, [])
    assert _order_row(app, nr).is_amazon is False
    assert _customer_row(app, nr).channel == "shop"


@pytest.mark.parametrize(
    "given",
    [
        f"\ufeff{AMAZON_NR}",  # the byte-order mark of a CSV file concatenated into the export
        f"{AMAZON_NR}\u200b",  # a zero-width space pasted with the number
        f" \u2060{AMAZON_NR}\u200b ",
    ],
    ids=["bom", "zero-width-space", "mixed"],
)
def test_invisible_characters_around_an_amazon_number_are_trimmed_like_blanks(
    app: App, given: str
) -> None:
    """Left in, they hide the number from the pattern: the Amazon order would be stored as the
    shop's own, its buyer never masked, and the order not found by its number."""
    report = _import(app, order(given))
    manual = {
        "type": "manual_invoice",
        "shop": "main",
        "customer_of_order": given,
        "invoice_nr": "RE-M-1",
        "created_at": iso(T0),
        "total": "1.00",
    }
    documents = import_lines(app, [json.dumps(manual)])

    assert (report.created, report.refused) == (1, [])
    assert (documents.created, documents.refused) == (1, [])
    assert _order_row(app, AMAZON_NR).is_amazon is True
    assert _customer_row(app, AMAZON_NR).channel == "amazon"


def test_shop_pattern_decides_for_orders_imported_after_it_changed(app: App) -> None:
    _import(app, order("SHOP-100001"))
    configure_shop(app.ports(), "main", None, r"^AMZ-\d{6}$")

    _import(app, order("AMZ-000042", suffix="-a"), order("302-7654321-7654321", suffix="-b"))

    assert _order_row(app, "AMZ-000042").is_amazon is True
    assert _order_row(app, "302-7654321-7654321").is_amazon is False


def test_amazon_flag_never_changes_on_reimport(app: App) -> None:
    _import(app, order(AMAZON_NR), order("AMZ-000042", suffix="-a"))
    configure_shop(app.ports(), "main", None, r"^AMZ-\d{6}$")

    report = _import(
        app,
        order(AMAZON_NR, shipped_at=T0 + days(1)),
        order("AMZ-000042", shipped_at=T0 + days(1), suffix="-a"),
    )

    assert report.updated == 2
    assert _order_row(app, AMAZON_NR).is_amazon is True
    assert _order_row(app, "AMZ-000042").is_amazon is False


# -- buyer identity ---------------------------------------------------------------------------


def test_same_customer_number_is_one_buyer_whatever_the_other_data(app: App) -> None:
    _import(
        app,
        _buyer(AMAZON_NR, email="erika@example.org"),
        _buyer("303-1234567-1234567", email="e.m@example.net", first_name="Eri"),
    )

    assert _customer_row(app, AMAZON_NR).id == _customer_row(app, "303-1234567-1234567").id
    assert _count(app, Customer) == 1


def test_without_customer_number_the_email_identifies_the_buyer(app: App) -> None:
    _import(
        app,
        _buyer(AMAZON_NR, customer_nr_external=None, email="erika.m@example.org"),
        _buyer("303-1234567-1234567", customer_nr_external=None, email="Erika.M@Example.org"),
        _buyer("304-1234567-1234567", customer_nr_external=None, email="max.m@example.org"),
    )

    first = _customer_row(app, AMAZON_NR).id
    assert _customer_row(app, "303-1234567-1234567").id == first
    assert _customer_row(app, "304-1234567-1234567").id != first
    assert _count(app, Customer) == 2


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t"])
def test_a_blank_customer_number_counts_as_absent_and_the_email_identifies_the_buyer(
    app: App, blank: str
) -> None:
    """Exports pad empty fields with blanks; a blank number must not make every order of the
    buyer a record of its own, whether the orders arrive in one batch or in several."""
    email = "erika.m@example.org"
    _import(app, _buyer(AMAZON_NR, customer_nr_external=blank, email=email))
    _import(
        app,
        _buyer("303-1234567-1234567", customer_nr_external=blank, email=email),
        _buyer("304-1234567-1234567", customer_nr_external=None, email=email),
    )

    first = _customer_row(app, AMAZON_NR).id
    assert _customer_row(app, "303-1234567-1234567").id == first
    assert _customer_row(app, "304-1234567-1234567").id == first
    assert _count(app, Customer) == 1


def test_amazon_buyer_and_shop_buyer_with_the_same_person_data_are_separate_records(
    app: App,
) -> None:
    _import(app, order(AMAZON_NR), _shop_order("SHOP-100001"))

    amazon, shop = _customer_row(app, AMAZON_NR), _customer_row(app, "SHOP-100001")
    assert amazon.id != shop.id
    assert (amazon.channel, shop.channel) == ("amazon", "shop")
    assert (amazon.email, shop.email) == (shop.email, "erika.mustermann@example.org")


# -- re-import --------------------------------------------------------------------------------


def test_reimport_of_active_order_replaces_pii_and_keeps_old_address_values(app: App) -> None:
    original = order(AMAZON_NR)
    _import(app, original)
    changed = order(AMAZON_NR)
    changed["billing_address"] = {
        **original["billing_address"],
        "street": "Rosenweg",
        "house_nr": "5",
    }
    changed["customer"] = {**original["customer"], "phone": "+49 228 9876543"}

    report = _import(app, changed)

    assert (report.created, report.updated) == (0, 1)
    customer = _customer_row(app, AMAZON_NR)
    assert (customer.street, customer.house_nr, customer.address) == ("Rosenweg", "5", "Rosenweg 5")
    assert customer.phone == "+49 228 9876543"
    assert customer.pii_revision == 2
    with app.engine.connect() as conn:
        billing = conn.execute(
            select(Address.street, Address.house_nr).where(Address.kind == "billing")
        ).one()
        history = set(conn.execute(select(AddressHistory.field, AddressHistory.old_value)).all())
    assert tuple(billing) == ("Rosenweg", "5")
    assert history == {
        ("street", "Heidestraße"),
        ("house_nr", "17"),
        ("address", "Heidestraße 17"),
    }
    assert _count(app, Order) == 1


def test_reimport_of_identical_line_changes_nothing(app: App) -> None:
    _import(app, order(AMAZON_NR))

    report = _import(app, order(AMAZON_NR))

    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert _customer_row(app, AMAZON_NR).pii_revision == 1


def test_reimport_of_masked_order_ignores_pii_but_updates_status_and_invoices(app: App) -> None:
    _mask(app)
    before = _customer_row(app, AMAZON_NR)
    again = order(AMAZON_NR, shipped_at=T0 + days(1), invoiced_at=T0 + days(40), suffix="-neu")

    report = _import(app, again)

    assert report.pii_ignored_masked == 1
    assert report.notices == [LineNotice(1, "pii_ignored_masked")]
    assert report.notices[0].message == MASKED_NOTICE
    assert report.refused == []
    after = _customer_row(app, AMAZON_NR)
    assert after._asdict() == before._asdict()
    assert after.first_name == MASKED_TEXT
    row = _order_row(app, AMAZON_NR)
    assert row.shipped_at == T0 + days(1)
    assert row.gift_message == MASKED_TEXT
    with app.engine.connect() as conn:
        invoice = conn.execute(select(Invoice.__table__)).one()
    assert invoice.invoice_nr == f"RE-{AMAZON_NR}"
    assert invoice.created_at == T0 + days(40)
    assert invoice.billing_name == MASKED_TEXT
    assert invoice.masked_at is not None


def test_masked_buyers_next_order_starts_a_new_customer_record(app: App) -> None:
    """A masked record is sealed: new PII never lands on it, or it would stay unmasked."""
    _mask(app)
    masked_buyer = _customer_row(app, AMAZON_NR)

    report = _import(app, order("302-7654321-7654321", ordered_at=T0 + days(40)))

    assert report.created == 1
    fresh = _customer_row(app, "302-7654321-7654321")
    assert fresh.id != masked_buyer.id
    assert (fresh.first_name, fresh.masked_at, fresh.identity_digest is not None) == (
        "Erika",
        None,
        True,
    )
    assert _customer_row(app, AMAZON_NR)._asdict() == masked_buyer._asdict()


def test_reimport_changing_pii_of_retrieved_order_is_refused_but_status_updates(
    app: App,
) -> None:
    _mask(app)
    retrieve_order(at(app, T0 + days(35)).ports(), AMAZON_NR, "Rücksendung", "anna", T0 + days(35))
    again = order(AMAZON_NR, shipped_at=T0 + days(1), suffix="-neu")

    report = _import(app, again)

    assert report.refused == [LineProblem(1, RETRIEVED_REFUSAL)]
    assert (report.updated, report.pii_ignored_masked) == (0, 0)
    customer = _customer_row(app, AMAZON_NR)
    assert (customer.first_name, customer.email) == ("Erika", "erika.mustermann@example.org")
    assert _order_row(app, AMAZON_NR).shipped_at == T0 + days(1)
    assert _order_row(app, AMAZON_NR).gift_message == "Alles Gute zum Geburtstag, Max!"


# -- bad lines --------------------------------------------------------------------------------


def test_bad_lines_are_reported_by_number_and_good_lines_are_imported(app: App) -> None:
    missing = order("303-1234567-1234567", suffix="-m")
    del missing["ordered_at"]
    bad_date = order("304-1234567-1234567", suffix="-d")
    bad_date["shipped_at"] = "2026-13-01T09:00:00Z"
    batch = [
        *lines(order(AMAZON_NR)),
        "{not json",
        *lines(missing, bad_date),
        *lines(order("305-1234567-1234567", suffix="-g")),
    ]

    report = import_lines(app, batch)

    assert report.created == 2
    assert report.refused == [
        LineProblem(
            2, "invalid JSON at column 2: Expecting property name enclosed in double quotes"
        ),
        LineProblem(3, "ordered_at: is required"),
        LineProblem(
            4,
            "shipped_at: not an ISO 8601 timestamp with offset (e.g. 2026-01-01T09:00:00+01:00)",
        ),
    ]
    with app.engine.connect() as conn:
        numbers = set(conn.execute(select(Order.order_nr_external)).scalars())
    assert numbers == {AMAZON_NR, "305-1234567-1234567"}
    assert _count(app, Customer) == 2


def test_line_refused_while_writing_leaves_nothing_behind(app: App) -> None:
    first = order(AMAZON_NR, invoiced_at=T0)
    clash = order("303-1234567-1234567", suffix="-c")
    clash["invoices"] = first["invoices"]  # this invoice number already belongs to order 1

    report = _import(app, first, clash, order("304-1234567-1234567", suffix="-ok"))

    assert report.created == 2
    assert [p.line for p in report.refused] == [2]
    assert (_count(app, Order), _count(app, Customer)) == (2, 2)
    assert (_count(app, Address), _count(app, Invoice)) == (4, 1)
    with app.engine.connect() as conn:
        names = set(conn.execute(select(Customer.first_name)).scalars())
    assert names == {"Erika", "Erika-ok"}


def test_a_line_refused_while_writing_leaves_no_new_shop_behind(app: App) -> None:
    """A new shop is created by its first stored order, never by a refused line: a stray shop
    would have retention disabled and stay listed as if it held orders."""
    relayed = order("M-1001", shop="typo", suffix="-m")
    relayed["customer"]["email"] = "k7xq2mbv9zt3wr1@marketplace.amazon.de"

    report = _import(app, relayed, order(AMAZON_NR, shop="second"))

    assert (report.created, [p.line for p in report.refused]) == (1, [1])
    with app.engine.connect() as conn:
        shops = set(conn.execute(select(Shop.name)).scalars())
    assert shops == {"second"}


def test_value_longer_than_its_column_is_refused_by_line_number(app: App) -> None:
    too_long = order("303-1234567-1234567", suffix="-x")
    too_long["payment"]["card_exp"] = "12/2029 (Ablauf)"  # the column holds 10 characters

    report = _import(app, order(AMAZON_NR), too_long, order("304-1234567-1234567", suffix="-y"))

    assert report.created == 2
    assert [p.line for p in report.refused] == [2]
    assert "payment.card_exp" in report.refused[0].message
    assert _count(app, Order) == 2


def test_error_messages_name_fields_never_pii_values(app: App) -> None:
    _import(app, order(AMAZON_NR, invoiced_at=T0))
    leaky_date = order("303-1234567-1234567", suffix="-k")
    leaky_date["shipped_at"] = "erika.mustermann@example.org"
    leaky_date["customer"]["birth_date"] = "Mustermann"
    long_name = order("304-1234567-1234567", suffix="-n")
    long_name["customer"]["last_name"] = "Mustermann-" * 200
    clash = order("305-1234567-1234567", suffix="-c", invoiced_at=T0)
    clash["invoices"] = [{"invoice_nr": f"RE-{AMAZON_NR}", "created_at": iso(T0), "total": "1"}]
    cut_json = json.dumps(order("306-1234567-1234567"), ensure_ascii=False)[:300]
    manual = {
        "type": "manual_credit",
        "shop": "main",
        "customer_of_order": "999-0000000-0000000",
        "credit_nr": "GS-1",
        "created_at": "Heidestraße 17",
        "total": "5.00",
    }

    report = import_lines(app, [*lines(leaky_date, long_name, clash), cut_json, json.dumps(manual)])

    assert sorted(p.line for p in report.refused) == [1, 2, 3, 4, 5]
    secrets = {
        s
        for s in pii_strings(order(AMAZON_NR)) | pii_strings(leaky_date) | pii_strings(long_name)
        if len(s) >= 6
    } | {"Mustermann", "Heidestraße"}
    leaks = [(p.line, s) for p in report.refused for s in secrets if s in p.message]
    assert leaks == []


# -- manual documents -------------------------------------------------------------------------


def test_manual_invoice_and_credit_attach_to_the_buyer_without_an_order(app: App) -> None:
    _import(app, order(AMAZON_NR))
    manual = [
        {
            "type": "manual_invoice",
            "shop": "main",
            "customer_of_order": AMAZON_NR,
            "invoice_nr": "MR-1",
            "created_at": iso(T0 + days(2)),
            "total": "12.50",
        },
        {
            "type": "manual_credit",
            "shop": "main",
            "customer_of_order": AMAZON_NR,
            "credit_nr": "GS-1",
            "created_at": iso(T0 + days(3)),
            "total": "5.00",
        },
    ]

    report = import_lines(app, [json.dumps(m) for m in manual])

    assert (report.created, report.refused) == (2, [])
    buyer = _customer_row(app, AMAZON_NR).id
    with app.engine.connect() as conn:
        invoice = conn.execute(select(Invoice.__table__)).one()
        credit = conn.execute(select(Credit.__table__)).one()
    for doc in (invoice, credit):
        assert (doc.customer_id, doc.order_id) == (buyer, None)
        assert doc.billing_name == "Erika Mustermann"
        assert doc.billing_address == "Heidestraße 17\n51147 Köln"
    assert (invoice.invoice_nr, str(invoice.total)) == ("MR-1", "12.50")
    assert (credit.credit_nr, str(credit.total)) == ("GS-1", "5.00")
    assert _customer_row(app, AMAZON_NR).pii_revision == 3


def test_manual_document_for_unknown_order_is_refused(app: App) -> None:
    _import(app, order(AMAZON_NR))
    manual = {
        "type": "manual_invoice",
        "shop": "main",
        "customer_of_order": "999-0000000-0000000",
        "invoice_nr": "MR-1",
        "created_at": iso(T0),
        "total": "1.00",
    }

    report = import_lines(app, [json.dumps(manual)])

    assert report.refused == [
        LineProblem(1, "customer_of_order: no order '999-0000000-0000000' in shop 'main'")
    ]
    assert _count(app, Invoice) == 0


# -- malformed lines: each refused alone ------------------------------------------------------


def _stored_numbers(app: App) -> set[str]:
    with app.engine.connect() as conn:
        return set(conn.execute(select(Order.order_nr_external)).scalars())


def test_each_malformed_line_is_refused_alone_and_the_good_lines_of_its_batch_are_stored(
    app: App,
) -> None:
    bad = malformed_lines()
    raw: list[bytes] = []
    good: list[str] = []
    bad_at: list[int] = []
    for n, line in enumerate(bad.values()):
        nr = f"302-0000000-{n:07d}"
        good.append(nr)
        raw.append(json.dumps(order(nr, suffix=f"-{n}"), ensure_ascii=False).encode() + b"\n")
        raw.append(line + b"\r\n")
        bad_at.append(len(raw))

    report = import_lines(app, raw, batch_size=3)  # every batch mixes good and bad lines

    assert [p.line for p in report.refused] == bad_at
    assert (report.created, report.updated, report.unchanged) == (len(good), 0, 0)
    assert _stored_numbers(app) == set(good)
    messages = dict(zip(bad, (p.message for p in report.refused), strict=True))
    assert messages == {
        "invalid UTF-8": f"line: not valid UTF-8 (byte {bad['invalid UTF-8'].index(b'K') + 2}); "
        "save the file as UTF-8",
        "lone surrogate in a value": "customer.last_name: contains an invalid character "
        "(an unpaired UTF-16 surrogate)",
        "lone surrogate in a key": "billing_address: an unknown field",
        "100k-deep nesting": "line: nested too deeply to be an order",
        "year 0001 with an offset": "ordered_at: outside the accepted range "
        "2000-01-01 to 2100-12-31 (UTC)",
        "year 9999 with an offset": "shipped_at: outside the accepted range "
        "2000-01-01 to 2100-12-31 (UTC)",
        "year 9999 in UTC": "shipped_at: outside the accepted range 2000-01-01 to 2100-12-31 (UTC)",
        "NUL in a value": "payment.card_name: must not contain NUL characters",
        "wrong type": "customer: must be an object",
        "huge integer": "line: a number in it has too many digits",
        "huge price": "items[0].price: not a decimal amount like 19.99",
        "not an object": "line: must be a JSON object",
    }


def test_an_amount_that_rounds_past_the_largest_storable_one_is_refused_naming_its_field(
    app: App,
) -> None:
    """9999999999.995 is below 1e10 but rounds to 10000000000.00: more than a NUMERIC(12, 2)
    holds. The line is refused by its field, on both databases, and never stored."""
    largest = order("302-0000000-0000001", suffix="-1")
    largest["items"] = [{"sku": "X", "title": "Y", "price": "9999999999.99"}]
    too_large = order("302-0000000-0000002", suffix="-2")
    too_large["items"] = [{"sku": "X", "title": "Y", "price": "9999999999.995"}]
    too_large["invoices"] = [{"invoice_nr": "RE-2", "created_at": iso(T0), "total": 9999999999.996}]

    report = _import(app, largest, too_large)

    assert report.created == 1
    assert report.refused == [
        LineProblem(
            2,
            "items[0].price: not a decimal amount like 19.99; "
            "invoices[0].total: not a decimal amount like 19.99",
        )
    ]
    assert _stored_numbers(app) == {"302-0000000-0000001"}


def test_a_line_that_is_not_utf8_late_in_a_file_costs_only_that_line(app: App) -> None:
    """Line 31 of 40 in batches of 10 (as line 3001 in batches of 1000): the batches before and
    after it are stored, and the line is named."""
    raw = [
        json.dumps(order(f"302-0000000-{n:07d}", suffix=f"-{n}"), ensure_ascii=False).encode()
        for n in range(1, 41)
    ]
    raw[30] = raw[30].replace("Köln".encode(), b"K\xf6ln")

    report = import_lines(app, raw, batch_size=10)

    assert [p.line for p in report.refused] == [31]
    assert report.created == 39
    assert len(_stored_numbers(app)) == 39


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_line_one(app: App) -> None:
    """Windows editors save UTF-8 with a BOM; only at the very start is it not data."""
    lines = [json.dumps(order(f"302-0000000-{n:07d}", suffix=f"-{n}")) for n in (1, 2)]
    as_bytes = [b"\xef\xbb\xbf" + lines[0].encode(), lines[1].encode()]

    from_bytes = import_lines(app, as_bytes)
    assert (from_bytes.created, from_bytes.refused) == (2, [])

    again_as_text = import_lines(app, ["\ufeff" + lines[0], lines[1]])
    assert (again_as_text.unchanged, again_as_text.refused) == (2, [])

    bom_later = import_lines(app, [lines[0], "\ufeff" + lines[1]])
    assert [p.line for p in bom_later.refused] == [2]


def test_an_unexpected_error_while_reading_a_line_refuses_only_that_line(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(raw: str | bytes) -> Any:
        if "303-" in str(raw):
            raise KeyError("erika.mustermann@example.org")
        return parse_line(raw)

    monkeypatch.setattr(importing, "parse_line", broken)

    report = _import(app, order(AMAZON_NR), order("303-1234567-1234567", suffix="-x"))

    assert report.refused == [LineProblem(2, "could not be read (unexpected KeyError)")]
    assert _stored_numbers(app) == {AMAZON_NR}


def test_a_database_error_on_one_line_refuses_only_that_line(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any database error (here one that is neither a conflict nor a bad value) is pinned on its
    line by the per-line fallback; its message, which could quote PII, is never shown."""
    failing = "303-1234567-1234567"
    error = OperationalError(
        "INSERT INTO customers …", {"email": "erika.mustermann@example.org"}, Exception("Erika")
    )
    bulk, per_line = bulk_orders.create_orders, OrderWriter.apply

    def create_orders(writer: OrderWriter, records: Any) -> None:
        if any(r.order_nr_external == failing for r in records):
            raise error
        bulk(writer, records)

    def apply(self: OrderWriter, rec: OrderRecord) -> Outcome:
        if rec.order_nr_external == failing:
            raise error
        return per_line(self, rec)

    monkeypatch.setattr(importing, "create_orders", create_orders)
    monkeypatch.setattr(OrderWriter, "apply", apply)

    report = _import(
        app,
        order(AMAZON_NR),
        order(failing, suffix="-x"),
        order("304-1234567-1234567", suffix="-y"),
    )

    assert report.refused == [LineProblem(2, "the database refused this line (OperationalError)")]
    assert report.created == 2
    assert _stored_numbers(app) == {AMAZON_NR, "304-1234567-1234567"}


def test_a_ship_date_in_year_9999_is_refused_and_the_order_stays_readable(app: App) -> None:
    """Accepted, such a date made `show` of the order fail for good."""
    _import(app, order(AMAZON_NR))
    far = order(AMAZON_NR)
    far["shipped_at"] = "9999-12-31T00:00:00+00:00"
    new_far = order("303-1234567-1234567", suffix="-n")
    new_far["shipped_at"] = "9999-12-31T23:59:59Z"

    report = _import(app, far, new_far)

    message = "shipped_at: outside the accepted range 2000-01-01 to 2100-12-31 (UTC)"
    assert report.refused == [LineProblem(1, message), LineProblem(2, message)]
    assert _stored_numbers(app) == {AMAZON_NR}
    shown = show_order(app.ports(), AMAZON_NR, T0 + days(400)).model_dump(mode="json")
    assert (shown["shipped_at"], shown["retention"]["state"]) == (None, "active")


# -- a recorded shipment or cancellation is never cleared -------------------------------------


@pytest.mark.parametrize("how", ["null", "missing"])
def test_a_shipment_recorded_by_ship_is_kept_when_a_reimport_has_no_shipped_at(
    app: App, how: str
) -> None:
    line = order(AMAZON_NR)
    _import(app, line)
    ship_order(at(app, T0 + days(2)).ports(), AMAZON_NR, T0 + days(1))
    if how == "missing":
        del line["shipped_at"]

    report = _import(app, line)

    assert (report.updated, report.unchanged, report.refused) == (0, 1, [])
    assert _order_row(app, AMAZON_NR).shipped_at == T0 + days(1)


@pytest.mark.parametrize("how", ["null", "missing"])
def test_an_imported_cancellation_is_kept_when_a_reimport_has_no_cancelled_at(
    app: App, how: str
) -> None:
    _import(app, order(AMAZON_NR, cancelled_at=T0 + days(2)))
    line = order(AMAZON_NR)
    if how == "missing":
        del line["cancelled_at"]

    report = _import(app, line)

    assert (report.updated, report.unchanged) == (0, 1)
    assert _order_row(app, AMAZON_NR).cancelled_at == T0 + days(2)


def test_a_credit_imported_before_its_invoice_is_linked_to_it_when_the_invoice_arrives(
    app: App,
) -> None:
    """The credit's line names the invoice it corrects every time; once the invoice is stored,
    the reference must land instead of being dropped for good."""
    credit = {"credit_nr": "GS-1", "invoice_nr": "RE-1", "created_at": iso(T0), "total": "1.00"}
    first = order(AMAZON_NR, credits=[credit])
    assert _import(app, first).created == 1
    invoice = {"invoice_nr": "RE-1", "created_at": iso(T0), "total": "5.00"}

    report = _import(app, order(AMAZON_NR, credits=[credit], invoices=[invoice]))
    again = _import(app, order(AMAZON_NR, credits=[credit], invoices=[invoice]))

    assert (report.updated, again.unchanged) == (1, 1)
    with app.engine.connect() as conn:
        linked = conn.execute(
            select(Invoice.invoice_nr).join(Credit, Credit.invoice_id == Invoice.id)
        ).scalar_one()
    assert linked == "RE-1"


def test_a_different_shipping_time_replaces_the_recorded_one(app: App) -> None:
    _import(app, order(AMAZON_NR))
    ship_order(at(app, T0 + days(2)).ports(), AMAZON_NR, T0 + days(1))

    report = _import(app, order(AMAZON_NR, shipped_at=T0 + days(3)))

    assert report.updated == 1
    assert _order_row(app, AMAZON_NR).shipped_at == T0 + days(3)


def test_shipped_by_command_then_reimported_without_shipped_at_the_buyer_is_masked(
    app: App,
) -> None:
    """The nightly export still says "not shipped": the shipment stands, and the buyer is
    archived and masked 30 days after it."""
    line = order(AMAZON_NR)
    _import(app, line)
    set_feature(app.ports(), "main", True, "ops")
    ship_order(at(app, T0 + days(2)).ports(), AMAZON_NR, T0 + days(1))

    for night in range(2, 33):
        _import(app, line)
        run_retention(app.ports(), T0 + days(night))

    assert _order_row(app, AMAZON_NR).shipped_at == T0 + days(1)
    assert _customer_row(app, AMAZON_NR).masked_at is not None
    assert _customer_row(app, AMAZON_NR).first_name == MASKED_TEXT


# -- identical re-imports change nothing ------------------------------------------------------

OTHER_NR = "303-1234567-1234567"


def _two_orders_of_one_buyer() -> list[dict[str, Any]]:
    """Two shipped orders of one buyer (same customer number) whose customer blocks differ:
    the older has a phone and no birth date, the newer a birth date, no phone and a new
    address and e-mail."""
    older = order(AMAZON_NR, shipped_at=T0)
    older["customer"] = {**older["customer"], "birth_date": None}
    newer = order(OTHER_NR, ordered_at=T0 + days(1), shipped_at=T0 + days(1), suffix="-neu")
    newer["customer"] = {
        **newer["customer"],
        "customer_nr_external": older["customer"]["customer_nr_external"],
        "phone": None,
    }
    newer["billing_address"]["phone"] = None
    return [older, newer]


def _archive_copies(app: App) -> int:
    return _count(app, ArchiveCopy)


def test_identical_reimport_changes_nothing_and_the_next_run_archives_nothing_new(
    app: App,
) -> None:
    orders = _two_orders_of_one_buyer()
    _import(app, *orders)
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(29)).archived == 1
    revision = _customer_row(app, AMAZON_NR).pii_revision

    for sequence in (orders, orders[::-1]):
        report = _import(app, *sequence)

        assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
        assert _customer_row(app, AMAZON_NR).pii_revision == revision
    assert run_retention(app.ports(), T0 + days(29.5)).archived == 0
    assert _archive_copies(app) == 1


def test_the_buyer_keeps_each_value_from_the_newest_order_that_has_one(app: App) -> None:
    older, newer = _two_orders_of_one_buyer()

    for sequence in ([older, newer], [newer, older]):
        _import(app, *sequence)
        buyer = _customer_row(app, AMAZON_NR)

        assert buyer.id == _customer_row(app, OTHER_NR).id
        assert (buyer.phone, buyer.birth_date) == ("+49 221 1234567", date(1980, 5, 1))
        assert (buyer.email, buyer.street, buyer.city) == (
            "erika.mustermann@example.org-neu",
            "Heidestraße-neu",
            "Köln-neu",
        )


def test_identical_reimport_of_a_retrieved_buyers_orders_is_unchanged_not_refused(
    app: App,
) -> None:
    orders = _two_orders_of_one_buyer()
    _import(app, *orders)
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(40)).masked == 1
    retrieve_order(at(app, T0 + days(41)).ports(), AMAZON_NR, "Rücksendung", "anna", T0 + days(41))
    revision = _customer_row(app, AMAZON_NR).pii_revision

    report = _import(app, *orders)

    assert report.refused == []
    assert (report.unchanged, report.pii_ignored_masked) == (1, 1)  # the other order is masked
    assert [(n.line, n.kind) for n in report.notices] == [(2, "pii_ignored_masked")]
    assert _customer_row(app, AMAZON_NR).pii_revision == revision


def test_a_retrieved_orders_changed_pii_is_still_refused(app: App) -> None:
    orders = _two_orders_of_one_buyer()
    _import(app, *orders)
    set_feature(app.ports(), "main", True, "ops")
    run_retention(app.ports(), T0 + days(40))
    retrieve_order(at(app, T0 + days(41)).ports(), OTHER_NR, "Rücksendung", "anna", T0 + days(41))
    changed = copy.deepcopy(orders[1])
    changed["customer"]["email"] = "anders@example.org"

    report = _import(app, changed)

    assert report.refused == [LineProblem(1, RETRIEVED_REFUSAL)]


# -- an order's own addresses -----------------------------------------------------------------


def _billing_row(app: App) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(Address.__table__).where(Address.kind == "billing")).one()


@pytest.mark.parametrize("how", ["missing", "null", "empty"])
def test_a_reimport_without_billing_address_and_payment_keeps_the_stored_ones(
    app: App, how: str
) -> None:
    _import(app, order(AMAZON_NR))
    before = _billing_row(app)
    line = order(AMAZON_NR)
    for section in ("billing_address", "payment"):
        if how == "missing":
            del line[section]
        else:
            line[section] = None if how == "null" else {}
    line["customer"]["birth_date"] = None

    report = _import(app, line)

    assert (report.updated, report.unchanged) == (0, 1)
    assert _billing_row(app)._asdict() == before._asdict()
    assert (before.street, before.card_nr, before.birth_date) == (
        "Heidestraße",
        "4111111111111111",
        date(1980, 5, 1),
    )


def test_a_present_billing_address_replaces_the_stored_one_including_missing_keys(
    app: App,
) -> None:
    _import(app, order(AMAZON_NR))
    line = order(AMAZON_NR)
    line["billing_address"] = {"street": "Rosenweg", "house_nr": "5", "city": "Bonn"}

    report = _import(app, line)

    assert report.updated == 1
    billing = _billing_row(app)
    assert (billing.street, billing.city, billing.zip, billing.name2, billing.address) == (
        "Rosenweg",
        "Bonn",
        None,
        None,
        "Rosenweg 5",
    )
    assert billing.card_nr == "4111111111111111"  # the payment was given unchanged


# -- notices ----------------------------------------------------------------------------------


def test_notices_have_a_kind_and_are_summarised_by_kind(app: App) -> None:
    _mask(app)

    report = _import(app, order(AMAZON_NR, shipped_at=T0), order(AMAZON_NR, shipped_at=T0))

    assert [(n.line, n.kind) for n in report.notices] == [
        (1, "pii_ignored_masked"),
        (2, "pii_ignored_masked"),
    ]
    assert report.document().model_dump(mode="json")["notice_summary"] == [
        {"kind": "pii_ignored_masked", "lines": 2, "message": MASKED_NOTICE}
    ]
    assert report.document().model_dump(mode="json")["notices"][1] == {
        "line": 2,
        "kind": "pii_ignored_masked",
        "message": MASKED_NOTICE,
    }
