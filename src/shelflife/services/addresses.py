"""Correcting an order's billing or shipping address, for orders whose data is not masked.

A masked buyer's data exists only in the archive, and a retrieved one is read-only until it is
masked again: both are refused. Only the fields the import knows are editable; the joined name
and street line are derived from them as the import derives them. The audit entry names the
order, the address and the changed fields, never their values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from shelflife.adapters.db import addresses as sql
from shelflife.adapters.db import audit_log
from shelflife.adapters.db.reading import find_order, load_customer_facts
from shelflife.bootstrap import App
from shelflife.domain.errors import Conflict, InvalidInput, NotFound
from shelflife.domain.records import (
    ADDRESS_KEYS,
    FIELD_MAX_LENGTH,
    VAT_ID,
    address_line,
    full_name,
)

ADDRESS_CHANGED = "address.changed"
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
"""Unknown keys are named only when they look like a field name: anything else may be data."""


class AddressKind(enum.StrEnum):
    BILLING = "billing"
    SHIPPING = "shipping"


def check_address_changes(changes: Mapping[str, object]) -> dict[str, str | None]:
    """The changes, if every key is an editable field and every value fits its column."""
    if not changes:
        raise InvalidInput(f"nothing to change: give one or more of {', '.join(ADDRESS_KEYS)}")
    problems = []
    checked: dict[str, str | None] = {}
    for key, value in changes.items():
        if key not in ADDRESS_KEYS:
            problems.append(
                f"{key}: not an address field" if _SAFE_KEY.fullmatch(key) else "an unknown field"
            )
        elif value is None:
            checked[key] = None
        elif not isinstance(value, str):
            problems.append(f"{key}: must be a string or null")
        elif len(value) > FIELD_MAX_LENGTH[key]:
            problems.append(f"{key}: longer than {FIELD_MAX_LENGTH[key]} characters")
        elif "\x00" in value or not _encodable(value):
            problems.append(f"{key}: contains a character that cannot be stored")
        elif key == "vat_id" and value and not VAT_ID.fullmatch(value):
            problems.append(f"{key}: not a VAT ID (two letters, then 2 to 18 letters or digits)")
        else:
            checked[key] = value
    if problems:
        raise InvalidInput("; ".join(problems))
    return checked


def change_address(
    app: App,
    order_nr: str,
    kind: AddressKind,
    changes: Mapping[str, object],
    user: str,
    shop: str | None = None,
) -> list[str]:
    """Change fields of one address of an unmasked order; returns the columns that changed."""
    values = check_address_changes(changes)
    now = app.clock.now()
    with app.engine.begin() as conn:
        order = find_order(conn, order_nr, shop)
        sql.lock_buyer(conn, order.customer_id)
        facts = load_customer_facts(conn, [order.customer_id])[order.customer_id]
        if facts.is_retrieved:
            raise Conflict(
                f"order {order_nr!r} was retrieved: its data is read-only until it is masked again"
            )
        if facts.is_masked or order.masked_at is not None:
            raise Conflict(
                f"order {order_nr!r} is masked: its data is in the archive only, nothing to edit"
            )
        address = sql.order_address(conn, order.id, kind.value)
        if address is None:
            raise NotFound(f"order {order_nr!r} has no {kind.value} address")
        merged = {k: values.get(k, getattr(address, k)) for k in ADDRESS_KEYS}
        values["name"] = full_name(merged["first_name"], merged["last_name"])
        values["address"] = address_line(merged["street"], merged["house_nr"])
        changed = sql.write_address(conn, address, values, now)
        if changed:
            audit_log.append(
                conn,
                now,
                user,
                ADDRESS_CHANGED,
                order_nr,
                {"address": kind.value, "fields": ", ".join(changed)},
            )
    return changed


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
