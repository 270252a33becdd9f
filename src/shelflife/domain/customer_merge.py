"""Which order a buyer's own record takes each value from: the newest order that has one.

A buyer's record is fed by the customer blocks of all their orders, and those blocks differ
(one order has a phone number, the next a new address). Taking the last line imported made the
record flip between orders on every re-import (a new revision and archive copy each night) and
let an order without a phone number erase the number another order gave. Instead, each group of
fields remembers the order it came from (its provenance, stored beside the record as JSON; order
numbers and times are not PII), and an order replaces a group only when it carries a value for it
and is at least as new as that order. The result depends on the set of orders alone, never on the
sequence in which they are imported or how they are batched.

Both import writers, the set-based one for new orders and the per-line one, call `merge_buyer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shelflife.domain.records import CUSTOMER_KEYS, OrderRecord, address_line, full_name

SourceKey = tuple[str, str]
"""(ordered_at in UTC as fixed-width ISO 8601, order_nr_external): the later key is the newer
order. Two orders of one buyer never share a key (order numbers are unique per shop)."""

Source = tuple[int, str, str]
"""Where a group's values came from, as stored: (completeness, ordered_at, order_nr_external).
Completeness is 1, except 0 for a postal address without street, house number, zip and city
(only a country, say): any complete address outranks it, whatever the dates, so that such an
order neither erases a buyer's street nor leaves the country empty when no order has more."""

PERSON_FIELDS = CUSTOMER_KEYS
"""The customer block's fields, each merged on its own: an order's e-mail can be newer than
the one giving the phone."""

POSTAL_FIELDS = ("name2", "street", "house_nr", "zip", "city", "state", "country")
"""One group: a street of one order and a city of another would be nobody's address."""

POSTAL_COMPLETE_WITH = ("street", "house_nr", "zip", "city")
"""A postal address with none of these (a country or state alone, as marketplaces often send for
tax) is incomplete and never replaces a complete one."""

PAYMENT_FIELDS = ("card_name", "card_nr", "card_exp", "account", "account_name")
"""One group: a card number of one order and the expiry date of another would be no card."""

GROUPS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in PERSON_FIELDS},
    "postal_address": POSTAL_FIELDS,
    "payment": PAYMENT_FIELDS,
}
"""Provenance is kept per group; the group's name is the key in `customers.pii_sources`."""

BUYER_FIELDS = (*PERSON_FIELDS, "name", *POSTAL_FIELDS, "address", *PAYMENT_FIELDS)
"""The buyer's columns the import writes; `name` and `address` are derived after merging."""


def source_key(ordered_at: datetime, order_nr_external: str) -> SourceKey:
    """The provenance key of an order; the fixed-width UTC form makes keys compare as times."""
    utc = ordered_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (utc, order_nr_external)


def order_key(rec: OrderRecord) -> SourceKey:
    return source_key(rec.ordered_at, rec.order_nr_external)


def buyer_values(rec: OrderRecord) -> dict[str, Any]:
    """What one order says about its buyer: the `customer` block, falling back to the billing
    address for names, salutation, company, e-mail and phone; the postal address comes from the
    billing address, payment from `payment`. Missing values are None; `name` and `address` are
    left to `merge_buyer`, which derives them from the merged values."""
    c, b, p = rec.customer, rec.billing_address, rec.payment
    return {
        "customer_nr_external": c.get("customer_nr_external"),
        "salutation": c.get("salutation") or b.get("salutation"),
        "first_name": c.get("first_name") or b.get("first_name"),
        "last_name": c.get("last_name") or b.get("last_name"),
        "company": c.get("company") or b.get("company"),
        "email": c.get("email") or b.get("email"),
        "phone": c.get("phone") or b.get("phone"),
        "fax": c.get("fax"),
        "birth_date": c.get("birth_date"),
        "note": c.get("note"),
        "vat_id": c.get("vat_id") or b.get("vat_id"),
        **{k: b.get(k) for k in POSTAL_FIELDS},
        **{k: p.get(k) for k in PAYMENT_FIELDS},
    }


def merge_buyer(
    current: Mapping[str, Any],
    sources: Mapping[str, Source],
    incoming: Mapping[str, Any],
    key: SourceKey,
) -> tuple[dict[str, Any], dict[str, Source]]:
    """The buyer's values and provenance after taking in one order's values (`buyer_values`).

    A group is replaced when the order gives it (a value that is not None or "") and outranks
    the order the group came from: it is newer, or it is the same order (its current state).
    A group without provenance (records from before provenance was kept, or never given) is
    replaced by any order that gives it. Values the order does not give never erase anything.
    """
    values = {name: current.get(name) for name in BUYER_FIELDS}
    merged = dict(sources)
    complete: Source = (1, *key)
    for name in PERSON_FIELDS:  # a group of one field each; spelled out: this runs per line
        value = incoming.get(name)
        if value is None or value == "":
            continue
        held = merged.get(name)
        if held is None or held <= complete:
            values[name] = value
            merged[name] = complete
    for group, fields in (("postal_address", POSTAL_FIELDS), ("payment", PAYMENT_FIELDS)):
        given = [name for name in fields if incoming.get(name) not in _ABSENT]
        if not given:
            continue
        rank = complete
        if group == "postal_address" and not set(given) & set(POSTAL_COMPLETE_WITH):
            rank = (0, *key)
        held = merged.get(group)
        if held is None or held <= rank:
            values.update({name: incoming.get(name) for name in fields})
            merged[group] = rank
    return _derive(values), merged


def sources_to_json(sources: Mapping[str, Source]) -> str | None:
    """The stored form of provenance (`customers.pii_sources`); None when there is none.

    Each source once, with the groups it gave: `[[1, "2026-03-02T09:00:00.000000+00:00",
    "302-1234567-1234567", ["email", "postal_address", …]], …]`. Most buyers have one or two
    sources, so this stays short (about 200 bytes) and cheap to write in the bulk path.
    """
    groups_of: dict[Source, list[str]] = {}
    for group in GROUPS:
        source = sources.get(group)
        if source is not None:
            groups_of.setdefault(source, []).append(group)
    if not groups_of:
        return None
    entries = [[*source, groups] for source, groups in sorted(groups_of.items())]
    return json.dumps(entries, ensure_ascii=False, separators=(",", ":"))


def sources_from_json(text: str | None) -> dict[str, Source]:
    """Provenance as stored; NULL or anything unreadable means "none yet", never an error: the
    next import of the buyer's orders sets it again."""
    if not text:
        return {}
    try:
        entries = json.loads(text)
    except ValueError:
        return {}
    found: dict[str, Source] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], int)):
            continue
        complete, ordered_at, order_nr, groups = entry
        for group in groups if isinstance(groups, list) else ():
            if group in GROUPS:
                found[group] = (complete, str(ordered_at), str(order_nr))
    return found


_ABSENT = (None, "")
"""What "not given" means: a missing key, null or an empty string."""


def _derive(values: dict[str, Any]) -> dict[str, Any]:
    values["name"] = full_name(_text(values.get("first_name")), _text(values.get("last_name")))
    values["address"] = address_line(_text(values.get("street")), _text(values.get("house_nr")))
    return values


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
