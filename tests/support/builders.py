"""Builders shared by the tests: an App on a given database, and import lines with fake PII."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from shelflife.adapters.db.tables import Base
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import Settings
from shelflife.domain.clock import FixedClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday well away from DST changes; tests move from here."""


def make_app(
    database_url: str, home: Path, now: datetime = T0, **settings_given: Any
) -> tuple[App, FixedClock]:
    """Initialise a home folder on `database_url` and build the app with a fixed clock;
    `settings_given` are further `Settings` fields (an `archive_url`, a replica...)."""
    settings = Settings(home=home, database_url=database_url, **settings_given)
    initialise(settings)
    clock = FixedClock(now)
    return build_app(settings, clock), clock


def at(app: App, moment: datetime) -> App:
    """Move a test app's fixed clock to `moment` and return the app: services refuse instants
    later than their clock's now (a retrieval or shipment dated in the future)."""
    assert isinstance(app.clock, FixedClock)
    app.clock.instant = moment
    return app


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


_BASE: dict[str, Any] = {
    "shop": "main",
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
    },
    "shipping_address": {
        "first_name": "Max",
        "last_name": "Mustermann",
        "street": "Lindenallee",
        "house_nr": "3a",
        "zip": "50667",
        "city": "Köln",
        "country": "DE",
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
    "shop_note": "Stammkundin, sehr freundlich",
    "items": [{"sku": "BK-1", "title": "Notizbuch", "qty": 2, "price": "9.99"}],
}


UNSUFFIXED = ("birth_date", "country", "card_exp")
"""Kept as they are: a date, a tax field, and a 10-character column a suffix would overflow."""


def order(
    nr: str = "302-1234567-1234567",
    *,
    ordered_at: datetime = T0,
    shipped_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    invoiced_at: datetime | None = None,
    suffix: str = "",
    **overrides: Any,
) -> dict[str, Any]:
    """A complete order with distinctive fake PII. `suffix` is appended to every PII string so
    that several buyers in one test have different values; `invoiced_at` adds one invoice."""
    data = copy.deepcopy(_BASE)
    if suffix:
        for section in ("customer", "billing_address", "shipping_address", "payment"):
            data[section] = {
                k: (v + suffix if isinstance(v, str) and k not in UNSUFFIXED else v)
                for k, v in data[section].items()
            }
        for key in ("gift_message", "address_remarks", "shop_note"):
            data[key] = data[key] + suffix
    data.update(
        order_nr_external=nr,
        ordered_at=iso(ordered_at),
        shipped_at=iso(shipped_at),
        cancelled_at=iso(cancelled_at),
    )
    if invoiced_at is not None:
        data["invoices"] = [
            {"invoice_nr": f"RE-{nr}", "created_at": iso(invoiced_at), "total": "19.98"}
        ]
    data.update(overrides)
    return data


def lines(*orders: dict[str, Any]) -> list[str]:
    return [json.dumps(o, ensure_ascii=False) for o in orders]


def invoiced_buyers(count: int) -> list[str]:
    """Import lines of `count` buyers with one order each, shipped and invoiced at T0: all of
    them due for archiving and masking 30 days later."""
    return lines(
        *(
            order(f"302-0000000-{n:07d}", shipped_at=T0, invoiced_at=T0, suffix=f"-{n}")
            for n in range(count)
        )
    )


def pii_strings(o: dict[str, Any]) -> set[str]:
    """Every PII string in an order built by `order` (what must vanish after masking)."""
    found: set[str] = set()
    for section in ("customer", "billing_address", "shipping_address", "payment"):
        for k, v in (o.get(section) or {}).items():
            if isinstance(v, str) and v and k not in ("country", "card_type", "salutation"):
                found.add(v)
    for key in ("gift_message", "address_remarks", "shop_note"):
        if o.get(key):
            found.add(o[key])
    return found


def days(n: float) -> timedelta:
    return timedelta(days=n)


def _bytes(data: dict[str, Any]) -> bytes:
    """A line as an export writes it: ASCII with escapes, so lone surrogates survive."""
    return json.dumps(data).encode()


def malformed_lines() -> dict[str, bytes]:
    """One line for each way a line can be broken, each an order with its own number."""

    def bad(n: int, **changes: Any) -> dict[str, Any]:
        data = order(f"399-0000000-{n:07d}", suffix=f"-bad{n}")
        data.update(changes)
        return data

    surrogate_value = bad(2)
    surrogate_value["customer"]["last_name"] = "Muster\ud800mann"
    surrogate_key = bad(3)
    surrogate_key["billing_address"]["\udc00strasse"] = "Heidestraße 17"
    nul = bad(8)
    nul["payment"]["card_name"] = "Erika\x00Mustermann"
    return {
        "invalid UTF-8": json.dumps(bad(1), ensure_ascii=False)
        .encode()
        .replace("Köln".encode(), "Köln".encode("latin-1")),
        "lone surrogate in a value": _bytes(surrogate_value),
        "lone surrogate in a key": _bytes(surrogate_key),
        "100k-deep nesting": _bytes(bad(4))[:-1]
        + b', "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        "year 0001 with an offset": _bytes(bad(5, ordered_at="0001-01-01T00:00:00+01:00")),
        "year 9999 with an offset": _bytes(bad(6, shipped_at="9999-12-31T23:00:00-02:00")),
        "year 9999 in UTC": _bytes(bad(7, shipped_at="9999-12-31T00:00:00Z")),
        "NUL in a value": _bytes(nul),
        "wrong type": _bytes(bad(9, customer=["Erika", "Mustermann"])),
        "huge integer": _bytes(bad(10))[:-1] + b', "total": ' + b"9" * 5000 + b"}",
        "huge price": _bytes(bad(11, items=[{"sku": "X", "title": "Y", "price": 0}])).replace(
            b'"price": 0', b'"price": 1e400'
        ),
        "not an object": b'["399-0000000-0000012"]',
    }


def lose_database(app: App) -> None:
    """Everything in the database is gone (SQLite: the files too); the stores and the master
    key file remain."""
    with app.engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))
    app.close()
    url = app.settings.resolved_database_url
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
