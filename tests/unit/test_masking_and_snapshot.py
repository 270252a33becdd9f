"""The masking profile against the schema, and the archive snapshot's canonical encoding."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Date, String, Table, Text

from shelflife.adapters.db.tables import Base
from shelflife.domain.masking import (
    MASK_PROFILE,
    MASKED_DATE,
    MASKED_EMAIL,
    MASKED_TEXT,
    MaskKind,
    PiiField,
    all_fields,
    is_placeholder,
    mask_value,
    masked,
)
from shelflife.domain.snapshot import (
    CustomerSnapshot,
    decode,
    merge_documents_newest_first,
    merge_newest_first,
)

TABLES = Base.metadata.tables


def _table(name: str) -> Table:
    return TABLES[name]


def _string_length(field: PiiField) -> int | None:
    """The column's length limit; None for unbounded text."""
    column_type = _table(field.table).c[field.column].type
    assert isinstance(column_type, String), f"{field.table}.{field.column} is not a text column"
    return column_type.length


# --- masked() -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MaskKind))
def test_masked_keeps_none(kind: MaskKind) -> None:
    assert masked(kind, None) is None


@pytest.mark.parametrize("kind", list(MaskKind))
def test_masked_keeps_the_empty_string(kind: MaskKind) -> None:
    assert masked(kind, "") == ""


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (MaskKind.TEXT, "Erika Mustermann", "***"),
        (MaskKind.TEXT, " ", "***"),
        (MaskKind.EMAIL, "erika.mustermann@example.org", "masked@masked.invalid"),
        (MaskKind.DATE, date(1980, 5, 1), date(1900, 1, 1)),
    ],
)
def test_masked_replaces_every_other_value_with_the_kinds_mask(
    kind: MaskKind, value: object, expected: object
) -> None:
    assert masked(kind, value) == expected


def test_mask_values_per_kind() -> None:
    assert [mask_value(k) for k in MaskKind] == [MASKED_TEXT, MASKED_EMAIL, MASKED_DATE]


def test_masked_email_is_on_a_reserved_top_level_domain() -> None:
    assert MASKED_EMAIL.rsplit("@", 1)[1].endswith(".invalid")


# --- the profile against the schema ---------------------------------------------------------


def test_every_table_of_the_profile_exists() -> None:
    assert set(MASK_PROFILE) <= set(TABLES)


@pytest.mark.parametrize("field", all_fields(), ids=lambda f: f"{f.table}.{f.column}")
def test_every_pii_column_of_the_profile_exists(field: PiiField) -> None:
    assert field.column in _table(field.table).c


def test_profile_has_no_duplicate_columns() -> None:
    pairs = [(f.table, f.column) for f in all_fields()]

    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("table", sorted(MASK_PROFILE))
def test_every_profile_table_has_masked_at(table: str) -> None:
    assert "masked_at" in _table(table).c


@pytest.mark.parametrize("table", sorted(set(MASK_PROFILE) - {"customers"}))
def test_every_profile_table_but_customers_points_at_its_customer(table: str) -> None:
    column = _table(table).c["customer_id"]

    assert [fk.target_fullname for fk in column.foreign_keys] == ["customers.id"]


def test_customers_rows_are_their_own_customer() -> None:
    assert [c.name for c in _table("customers").primary_key] == ["id"]


@pytest.mark.parametrize(
    "field",
    [f for f in all_fields() if f.kind is MaskKind.DATE],
    ids=lambda f: f"{f.table}.{f.column}",
)
def test_date_fields_are_date_columns(field: PiiField) -> None:
    assert isinstance(_table(field.table).c[field.column].type, Date)


@pytest.mark.parametrize(
    "field",
    [f for f in all_fields() if f.kind is not MaskKind.DATE],
    ids=lambda f: f"{f.table}.{f.column}",
)
def test_mask_value_fits_the_column(field: PiiField) -> None:
    length = _string_length(field)
    value = mask_value(field.kind)

    assert isinstance(value, str)
    assert length is None or len(value) <= length


@pytest.mark.parametrize("kind", [MaskKind.TEXT, MaskKind.EMAIL])
def test_mask_value_fits_the_narrowest_column_of_its_kind(kind: MaskKind) -> None:
    lengths = [_string_length(f) for f in all_fields() if f.kind is kind]
    narrowest = min(n for n in lengths if n is not None)

    assert len(str(mask_value(kind))) <= narrowest


def test_narrowest_text_column_is_the_card_expiry() -> None:
    """Pins the figure the previous test relies on, so a narrower column is noticed."""
    lengths = {
        (f.table, f.column): _string_length(f) for f in all_fields() if f.kind is MaskKind.TEXT
    }
    narrowest = min(n for n in lengths.values() if n is not None)

    assert narrowest == 10
    assert sorted(k for k, n in lengths.items() if n == narrowest) == [
        ("addresses", "card_exp"),
        ("customers", "card_exp"),
    ]


def test_every_column_commented_as_pii_is_in_the_profile() -> None:
    """A column whose comment says PII must be in the profile, or it would never be masked."""
    profiled = {(f.table, f.column) for f in all_fields()}
    commented = {
        (table.name, column.name)
        for table in TABLES.values()
        for column in table.columns
        if (column.comment or "").startswith("PII")
    }

    assert commented - profiled == set()


def test_unbounded_pii_columns_are_text() -> None:
    unbounded = [
        f
        for f in all_fields()
        if f.kind is not MaskKind.DATE and isinstance(_table(f.table).c[f.column].type, Text)
    ]

    assert {(f.table, f.column) for f in unbounded} == {
        ("customers", "note"),
        ("customers", "history_note"),
        ("addresses", "note"),
        ("address_history", "old_value"),
        ("customer_history", "text"),
        ("orders", "gift_message"),
        ("orders", "address_remarks"),
        ("orders", "shop_note"),
        ("invoices", "billing_address"),
        ("credits", "billing_address"),
        ("credits", "reason"),
        ("returns", "reason"),
    }


def test_no_foreign_key_points_at_a_pii_column() -> None:
    profiled = {(f.table, f.column) for f in all_fields()}
    targets: set[tuple[str, str]] = set()
    for table in TABLES.values():
        for column in table.columns:
            for fk in column.foreign_keys:
                targets.add((fk.column.table.name, fk.column.name))

    assert targets & profiled == set()


# --- the snapshot ---------------------------------------------------------------------------

ERIKA = {
    "first_name": "Erika",
    "last_name": "Mustermann",
    "email": "erika.mustermann@example.org",
    "birth_date": date(1980, 5, 1),
    "country": "DE",  # not PII: not in the snapshot
}
BILLING = {"street": "Heidestraße", "house_nr": "17", "city": "Köln"}
SHIPPING = {"street": "Lindenallee", "house_nr": "3a", "city": "Köln"}


def _row(table: str, **values: str | None) -> dict[str, str | None]:
    """A full snapshot row: every profile column of `table`, None unless given."""
    row: dict[str, str | None] = {f.column: None for f in MASK_PROFILE[table]}
    row.update(values)
    return row


def test_snapshot_row_holds_every_profile_column_and_only_those() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=3)

    snap.add("customers", 7, ERIKA)

    assert snap.rows == {
        "customers": {
            7: _row(
                "customers",
                first_name="Erika",
                last_name="Mustermann",
                email="erika.mustermann@example.org",
                birth_date="1980-05-01",
            )
        }
    }


def test_same_data_gives_the_same_bytes_whatever_the_insertion_order() -> None:
    one = CustomerSnapshot(customer_id=7, revision=3)
    one.add("customers", 7, ERIKA)
    one.add("addresses", 11, BILLING)
    one.add("addresses", 12, SHIPPING)
    other = CustomerSnapshot(customer_id=7, revision=3)
    other.add("addresses", 12, dict(reversed(list(SHIPPING.items()))))
    other.add("addresses", 11, dict(reversed(list(BILLING.items()))))
    other.add("customers", 7, dict(reversed(list(ERIKA.items()))))

    assert one.to_bytes() == other.to_bytes()


def test_snapshot_bytes_are_a_compact_sorted_json_line() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=3)
    snap.add("customer_history", 2, {"text": "Ruft abends an\nund morgens"})

    assert snap.to_bytes() == (
        b'{"customer_id":7,"documents":{},"format":3,"revision":3,'
        b'"rows":{"customer_history":{"2":{"text":"Ruft abends an\\nund morgens"}}}}\n'
    )


def test_snapshot_carries_pdf_bytes_exactly() -> None:
    pdf = b"%PDF-1.3\n\x00\xff binary \xe4 body\n%%EOF\n"
    snap = CustomerSnapshot(customer_id=7, revision=3)
    snap.add_pdf("invoices", 5, pdf)
    snap.add_pdf("credits", 6, b"")

    snap.add_pdf("invoices", 4, b"four\n")

    assert snap.to_bytes() == (
        b'{"customer_id":7,"documents":{"credits":{"6":0},"invoices":{"4":5,"5":%d}},'
        b'"format":3,"revision":3,"rows":{}}\n' % len(pdf) + b"four\n" + pdf
    )
    assert CustomerSnapshot.from_bytes(snap.to_bytes()).documents == {
        "invoices": {4: b"four\n", 5: pdf},
        "credits": {6: b""},
    }


def test_format_2_snapshots_with_base64_pdfs_are_still_read() -> None:
    old = (
        b'{"customer_id":7,"documents":{"credits":{"6":""},'
        b'"invoices":{"5":"JVBERi0xLjMKAP8gYmluYXJ5IOQgYm9keQolJUVPRgo="}},'
        b'"format":2,"revision":3,"rows":{"customer_history":{"2":{"text":"Ruft an"}}}}'
    )

    snap = CustomerSnapshot.from_bytes(old)

    assert snap.documents == {
        "invoices": {5: b"%PDF-1.3\n\x00\xff binary \xe4 body\n%%EOF\n"},
        "credits": {6: b""},
    }
    assert snap.rows == {"customer_history": {2: {"text": "Ruft an"}}}


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b"12345", "bytes after its PDFs"),  # the header announces 4 bytes of PDF
        (b"123", "unreadable PDF"),
        (b"", "unreadable PDF"),
    ],
)
def test_format_3_pdf_bytes_must_match_the_header_lengths(tail: bytes, why: str) -> None:
    header = b'{"customer_id":7,"documents":{"invoices":{"5":4}},"format":3,"revision":3,"rows":{}}'

    assert CustomerSnapshot.from_bytes(header + b"\n1234").documents == {"invoices": {5: b"1234"}}
    with pytest.raises(ValueError, match=why):
        CustomerSnapshot.from_bytes(header + b"\n" + tail)


@pytest.mark.parametrize("length", ["-1", '"4"', "4.0", "null"])
def test_format_3_pdf_length_must_be_a_whole_number(length: str) -> None:
    header = f'{{"customer_id":7,"documents":{{"invoices":{{"5":{length}}}}},"format":3,'
    data = (header + '"revision":3,"rows":{}}\n1234').encode()

    with pytest.raises(ValueError, match="unreadable PDF"):
        CustomerSnapshot.from_bytes(data)


def test_format_1_snapshots_are_still_read_without_pdfs() -> None:
    old = (
        b'{"customer_id":7,"format":1,"revision":3,'
        b'"rows":{"customer_history":{"2":{"text":"Ruft abends an"}}}}'
    )

    snap = CustomerSnapshot.from_bytes(old)

    assert (snap.rows, snap.documents) == (
        {"customer_history": {2: {"text": "Ruft abends an"}}},
        {},
    )


@pytest.mark.parametrize(
    ("documents", "why"),
    [
        ('{"orders":{"1":""}}', "PDFs of an unknown table"),
        ('{"invoices":{"1":"not base64!"}}', "unreadable PDF"),
    ],
)
def test_snapshot_with_foreign_pdfs_is_refused(documents: str, why: str) -> None:
    data = f'{{"customer_id":7,"documents":{documents},"format":2,"revision":3,"rows":{{}}}}'

    with pytest.raises(ValueError, match=why):
        CustomerSnapshot.from_bytes(data.encode())


def test_only_invoices_and_credits_have_pdfs() -> None:
    with pytest.raises(ValueError, match="only invoices and credits"):
        CustomerSnapshot(7, 1).add_pdf("orders", 1, b"%PDF-")


def test_newest_copy_holding_a_pdf_wins() -> None:
    older, newer = CustomerSnapshot(7, 1), CustomerSnapshot(7, 2)
    older.add_pdf("invoices", 5, b"old five")
    older.add_pdf("invoices", 6, b"old six")
    newer.add_pdf("invoices", 5, b"new five")

    merged = merge_documents_newest_first([older, newer])

    assert merged == {"invoices": {5: b"new five", 6: b"old six"}}


def test_snapshot_keeps_non_ascii_text_as_utf8() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=1)
    snap.add("addresses", 11, BILLING)

    assert "Heidestraße".encode() in snap.to_bytes()


def test_different_revisions_give_different_bytes() -> None:
    one = CustomerSnapshot(customer_id=7, revision=3)
    other = CustomerSnapshot(customer_id=7, revision=4)

    assert one.to_bytes() != other.to_bytes()


def test_snapshot_round_trips_through_bytes() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=3)
    snap.add("customers", 7, ERIKA)
    snap.add("addresses", 11, BILLING)
    snap.add("orders", 21, {"gift_message": "Alles Gute!"})

    back = CustomerSnapshot.from_bytes(snap.to_bytes())

    assert (back.customer_id, back.revision, back.rows) == (7, 3, snap.rows)
    assert back.to_bytes() == snap.to_bytes()


def test_snapshot_values_are_the_non_empty_strings() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=3)
    snap.add("customers", 7, {**ERIKA, "company": ""})

    assert sorted(snap.values()) == [
        "1980-05-01",
        "Erika",
        "Mustermann",
        "erika.mustermann@example.org",
    ]


def test_snapshot_leaves_mask_placeholders_out() -> None:
    """A row that still holds placeholders (a partial restore) is archived without them."""
    snap = CustomerSnapshot(customer_id=7, revision=3)

    snap.add(
        "customers",
        7,
        {
            "first_name": "Erika",
            "last_name": MASKED_TEXT,
            "email": MASKED_EMAIL,
            "birth_date": MASKED_DATE,
            "phone": None,
        },
    )

    row = snap.rows["customers"][7]
    assert (row["first_name"], row["phone"]) == ("Erika", None)
    assert {"last_name", "email", "birth_date"} & set(row) == set()
    for placeholder in (MASKED_TEXT, MASKED_EMAIL, MASKED_DATE.isoformat()):
        assert placeholder.encode() not in snap.to_bytes()


def test_snapshot_read_from_a_copy_holding_placeholders_drops_them() -> None:
    """Copies written before placeholders were left out are read as if they lacked them."""
    data = (
        b'{"customer_id":7,"format":1,"revision":3,"rows":{"customers":{"7":'
        b'{"birth_date":"1900-01-01","email":"masked@masked.invalid","first_name":"***",'
        b'"phone":"0221","fax":null}}}}'
    )

    assert CustomerSnapshot.from_bytes(data).rows == {
        "customers": {7: {"phone": "0221", "fax": None}}
    }


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (MaskKind.TEXT, MASKED_TEXT, True),
        (MaskKind.TEXT, "****", False),
        (MaskKind.TEXT, None, False),
        (MaskKind.EMAIL, MASKED_EMAIL, True),
        (MaskKind.EMAIL, MASKED_TEXT, False),
        (MaskKind.DATE, MASKED_DATE, True),
        (MaskKind.DATE, "1900-01-01", True),
        (MaskKind.DATE, date(1900, 1, 2), False),
    ],
)
def test_placeholders_are_the_mask_value_of_their_kind(
    kind: MaskKind, value: object, expected: bool
) -> None:
    assert is_placeholder(kind, value) is expected


def test_snapshot_of_an_unknown_format_is_refused() -> None:
    data = b'{"customer_id":7,"format":4,"revision":3,"rows":{}}'

    with pytest.raises(ValueError, match=r"^unknown archive snapshot format$"):
        CustomerSnapshot.from_bytes(data)


def test_snapshot_naming_an_unknown_table_is_refused() -> None:
    data = b'{"customer_id":7,"format":1,"revision":3,"rows":{"shops":{"1":{"name":"x"}}}}'

    with pytest.raises(ValueError, match=r"^archive snapshot names an unknown table$"):
        CustomerSnapshot.from_bytes(data)


def _snapshot(revision: int, rows: dict[str, dict[int, dict[str, str | None]]]) -> CustomerSnapshot:
    return CustomerSnapshot(customer_id=7, revision=revision, rows=rows)


def test_merge_takes_each_row_from_the_newest_copy_that_holds_it() -> None:
    first = _snapshot(
        1,
        {
            "customers": {7: _row("customers", first_name="Erika", email="old@example.org")},
            "addresses": {11: _row("addresses", city="Bonn"), 12: _row("addresses", city="Köln")},
        },
    )
    # address 11 was masked before revision 2 was archived, so revision 2 lacks it
    second = _snapshot(
        2,
        {
            "customers": {7: _row("customers", first_name="Erika", email="new@example.org")},
            "addresses": {12: _row("addresses", city="Düsseldorf")},
        },
    )
    third = _snapshot(3, {"orders": {21: _row("orders", gift_message="Alles Gute!")}})

    expected = {
        "customers": {7: _row("customers", first_name="Erika", email="new@example.org")},
        "addresses": {
            11: _row("addresses", city="Bonn"),
            12: _row("addresses", city="Düsseldorf"),
        },
        "orders": {21: _row("orders", gift_message="Alles Gute!")},
    }
    assert merge_newest_first([first, second, third]) == expected
    assert merge_newest_first([third, first, second]) == expected


def test_merge_keeps_an_older_copys_value_for_a_column_a_newer_copy_lacks() -> None:
    """A newer copy taken while a row held placeholders lacks those columns; it must not
    erase the genuine values an older copy holds."""
    older = _snapshot(1, {"customers": {7: _row("customers", first_name="Erika", phone="0221")}})
    newer = _snapshot(2, {"customers": {7: {"first_name": "Erika-Maria", "fax": None}}})

    merged = merge_newest_first([newer, older])

    assert merged == {
        "customers": {7: _row("customers", first_name="Erika-Maria", phone="0221", fax=None)}
    }


def test_merge_keeps_a_newer_copys_empty_value() -> None:
    """None is a known value (the field was emptied), not a missing column."""
    older = _snapshot(1, {"customers": {7: _row("customers", phone="0221")}})
    newer = _snapshot(2, {"customers": {7: _row("customers")}})

    assert merge_newest_first([older, newer])["customers"][7]["phone"] is None


def test_merge_of_no_copies_is_empty() -> None:
    assert merge_newest_first([]) == {}


def test_decode_turns_dates_back_into_dates() -> None:
    row = _row("customers", first_name="Erika", birth_date="1980-05-01")

    decoded = decode("customers", row)

    assert decoded["birth_date"] == date(1980, 5, 1)
    assert decoded["first_name"] == "Erika"
    assert decoded["email"] is None
    assert set(decoded) == {f.column for f in MASK_PROFILE["customers"]}


def test_decode_drops_columns_outside_the_profile() -> None:
    assert decode("addresses", {"city": "Köln", "country": "DE", "kind": "billing"}) == {
        "city": "Köln"
    }


def test_decode_keeps_a_missing_date_as_none() -> None:
    assert decode("addresses", {"birth_date": None}) == {"birth_date": None}


def test_snapshot_survives_add_decode_round_trip() -> None:
    snap = CustomerSnapshot(customer_id=7, revision=1)
    snap.add("customers", 7, ERIKA)

    decoded = decode("customers", CustomerSnapshot.from_bytes(snap.to_bytes()).rows["customers"][7])

    assert {k: v for k, v in decoded.items() if v is not None} == {
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": "erika.mustermann@example.org",
        "birth_date": date(1980, 5, 1),
    }


def test_every_import_field_limit_fits_the_columns_it_is_stored_in() -> None:
    from shelflife.adapters.db.tables import Address, Customer
    from shelflife.domain.records import ADDRESS_KEYS, CUSTOMER_KEYS, FIELD_MAX_LENGTH, PAYMENT_KEYS

    targets: list[tuple[type[Any], str]] = [
        (Customer, k) for k in CUSTOMER_KEYS if k != "birth_date"
    ]
    targets += [(Address, k) for k in (*ADDRESS_KEYS, *PAYMENT_KEYS)]
    targets += [(Customer, k) for k in PAYMENT_KEYS if hasattr(Customer, k)]
    too_long = []
    for model, key in targets:
        length = getattr(model.__table__.c[key].type, "length", None)
        if length is not None and FIELD_MAX_LENGTH.get(key, 10**9) > length:
            too_long.append(f"{model.__tablename__}.{key}")
    assert too_long == []
    # Joined values (first + " " + last) fit the name columns too.
    assert getattr(Customer.__table__.c["name"].type, "length", None) == (
        FIELD_MAX_LENGTH["first_name"] + 1 + FIELD_MAX_LENGTH["last_name"]
    )
