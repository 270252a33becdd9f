"""Merging orders' customer blocks into the buyer's record: the newest order that gives a value
wins it, a missing value never erases one, and the result does not depend on import order."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflife.domain.customer_merge import (
    BUYER_FIELDS,
    Source,
    buyer_values,
    merge_buyer,
    order_key,
    source_key,
    sources_from_json,
    sources_to_json,
)
from shelflife.domain.records import OrderRecord, parse_record
from tests.support.builders import T0, order

Merged = tuple[dict[str, Any], dict[str, Source]]


def _record(data: dict[str, Any]) -> OrderRecord:
    record = parse_record(data)
    assert isinstance(record, OrderRecord)
    return record


def _order(nr: str, hours: int, **sections: dict[str, Any]) -> OrderRecord:
    """An order `hours` after T0 whose sections are replaced (not merged) by `sections`."""
    data = order(nr, ordered_at=T0 + timedelta(hours=hours))
    data.update(sections)
    return _record(data)


def _merge_all(records: list[OrderRecord], start: Merged | None = None) -> Merged:
    def step(state: Merged, rec: OrderRecord) -> Merged:
        return merge_buyer(*state, buyer_values(rec), order_key(rec))

    return reduce(step, records, start or ({}, {}))


OLD = _order("302-0000000-0000001", 0)
NEW = _order(
    "302-0000000-0000002",
    24,
    customer={"customer_nr_external": "KD-1", "email": "neu@example.org", "phone": None},
    billing_address={"street": "Rosenweg", "house_nr": "5", "zip": "53225", "city": "Bonn"},
    payment={"card_nr": "5500000000000004"},
)


def test_the_newest_order_wins_each_value_it_gives_whatever_the_sequence() -> None:
    for sequence in ([OLD, NEW], [NEW, OLD]):
        values, _ = _merge_all(sequence)

        assert values["email"] == "neu@example.org"
        assert values["customer_nr_external"] == "KD-1"


def test_a_value_missing_from_the_newest_order_is_kept_from_an_older_one() -> None:
    for sequence in ([OLD, NEW], [NEW, OLD]):
        values, _ = _merge_all(sequence)

        assert (values["phone"], values["birth_date"], values["first_name"]) == (
            "+49 221 1234567",
            date(1980, 5, 1),
            "Erika",
        )
        assert values["name"] == "Erika Mustermann"


def test_an_empty_string_is_missing_too() -> None:
    blank = _order(
        "302-0000000-0000003",
        48,
        customer={"phone": "", "email": "x@example.org"},
        billing_address={"phone": "", "street": "Rosenweg"},
    )

    values, _ = _merge_all([OLD, blank])

    assert (values["phone"], values["email"]) == ("+49 221 1234567", "x@example.org")


def test_the_postal_address_comes_whole_from_one_order() -> None:
    for sequence in ([OLD, NEW], [NEW, OLD]):
        values, sources = _merge_all(sequence)

        assert {k: values[k] for k in ("name2", "street", "house_nr", "zip", "city")} == {
            "name2": None,
            "street": "Rosenweg",
            "house_nr": "5",
            "zip": "53225",
            "city": "Bonn",
        }
        assert (values["state"], values["country"], values["address"]) == (None, None, "Rosenweg 5")
        assert sources["postal_address"] == (1, *order_key(NEW))


def test_the_payment_comes_whole_from_one_order() -> None:
    values, _ = _merge_all([NEW, OLD])

    assert {k: values[k] for k in ("card_name", "card_nr", "card_exp", "account")} == {
        "card_name": None,
        "card_nr": "5500000000000004",
        "card_exp": None,
        "account": None,
    }


def test_a_country_alone_neither_replaces_a_full_address_nor_is_lost() -> None:
    country_only = _order(
        "302-0000000-0000009",
        72,
        billing_address={"country": "AT"},
        customer={"email": "x@example.org"},
    )
    alone, _ = _merge_all([country_only])

    for sequence in ([OLD, country_only], [country_only, OLD]):
        values, _ = _merge_all(sequence)
        assert (values["street"], values["city"], values["country"]) == (
            "Heidestraße",
            "Köln",
            "DE",
        )
    assert (alone["street"], alone["country"]) == (None, "AT")


def test_the_same_order_again_replaces_its_own_values() -> None:
    """A re-import of an order is its current state: it is not older than itself."""
    corrected = _order("302-0000000-0000002", 24, customer={"email": "korrigiert@example.org"})

    values, _ = _merge_all([OLD, NEW, corrected])

    assert values["email"] == "korrigiert@example.org"


def test_orders_of_the_same_time_are_ordered_by_number() -> None:
    a = _order("302-0000000-0000005", 0, customer={"email": "a@example.org"})
    b = _order("302-0000000-0000006", 0, customer={"email": "b@example.org"})

    assert _merge_all([a, b])[0]["email"] == _merge_all([b, a])[0]["email"] == "b@example.org"


def test_a_record_without_provenance_takes_the_next_order_it_sees() -> None:
    """Records imported before provenance was kept: the first import after the upgrade sets it."""
    legacy = {name: "alt" for name in BUYER_FIELDS} | {"birth_date": date(1970, 1, 1)}

    values, sources = merge_buyer(legacy, {}, buyer_values(OLD), order_key(OLD))

    assert values["email"] == "erika.mustermann@example.org"
    assert values["note"] == "Bitte klingeln"
    assert sources["email"] == (1, *order_key(OLD))


def test_an_order_giving_nothing_changes_nothing() -> None:
    empty = _order("302-0000000-0000007", 99, customer={}, billing_address={}, payment={})
    before = _merge_all([OLD, NEW])

    assert _merge_all([empty], before) == before


def test_keys_compare_as_instants_whatever_the_offset_written() -> None:
    early = source_key(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "B")
    later = source_key(datetime(2026, 3, 2, 9, 0, 0, 1, tzinfo=UTC), "A")
    same = source_key(datetime.fromisoformat("2026-03-02T10:00:00+01:00"), "B")

    assert early < later
    assert same == early == ("2026-03-02T09:00:00.000000+00:00", "B")


def test_provenance_round_trips_through_its_stored_form() -> None:
    _, sources = _merge_all([OLD, NEW])

    assert sources_from_json(sources_to_json(sources)) == sources
    assert sources_to_json({}) is None


def test_provenance_is_stored_once_per_source_with_its_groups() -> None:
    _, sources = _merge_all([OLD, NEW])
    older = ["salutation", "first_name", "last_name", "company", "phone", "fax", "birth_date"]
    newer = ["customer_nr_external", "email", "postal_address", "payment"]

    assert json.loads(sources_to_json(sources) or "") == [
        [1, *order_key(OLD), [*older, "note"]],
        [1, *order_key(NEW), newer],
    ]


def test_unreadable_stored_provenance_counts_as_none() -> None:
    for stored in (None, "", "[", "{}", '[["x"]]', '[[1, "a", "b", ["unknown"]]]', '[[1, "a"]]'):
        assert sources_from_json(stored) == {}


# -- any set of orders, any sequence ---------------------------------------------------------------

maybe = st.none() | st.just("") | st.sampled_from(["a", "b", "c"])
blocks = st.fixed_dictionaries(
    {
        "customer": st.fixed_dictionaries(
            {
                "customer_nr_external": st.just("KD-1"),
                "first_name": maybe,
                "email": maybe,
                "phone": maybe,
                "birth_date": st.none() | st.sampled_from(["1980-05-01", "1990-01-02"]),
            }
        ),
        "billing_address": st.fixed_dictionaries(
            {"street": maybe, "city": maybe, "country": st.none() | st.sampled_from(["DE", "AT"])}
        ),
        "payment": st.fixed_dictionaries({"card_nr": maybe, "card_exp": maybe}),
        "hours": st.integers(0, 3),  # few distinct times: ties are decided by the number
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(blocks, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_the_merged_record_does_not_depend_on_the_sequence_of_orders(
    specs: list[dict[str, Any]], rnd: Any
) -> None:
    records = [
        _order(
            f"302-0000000-{n:07d}",
            spec["hours"],
            customer=spec["customer"],
            billing_address=spec["billing_address"],
            payment=spec["payment"],
        )
        for n, spec in enumerate(specs)
    ]
    shuffled = list(records)
    rnd.shuffle(shuffled)
    half = len(shuffled) // 2

    in_order = _merge_all(records)
    assert _merge_all(shuffled) == in_order
    assert _merge_all(shuffled[half:], _merge_all(shuffled[:half])) == in_order
    assert _merge_all(records, in_order) == in_order  # importing them again changes nothing
    newest_with_email = max(
        (r for r in records if r.customer.get("email")), key=order_key, default=None
    )
    assert in_order[0]["email"] == (
        newest_with_email.customer["email"] if newest_with_email else None
    )
