"""Import records: one order (or a manual invoice/credit) as the seller's system sends it.

Parsing is strict and explains itself: every problem names the field path and what was expected,
never the offending value (which may be PII).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shelflife.domain.clock import ensure_aware

CUSTOMER_KEYS = (
    "customer_nr_external",
    "salutation",
    "first_name",
    "last_name",
    "company",
    "email",
    "phone",
    "fax",
    "birth_date",
    "note",
    "vat_id",
)
ADDRESS_KEYS = (
    "salutation",
    "first_name",
    "last_name",
    "name2",
    "company",
    "street",
    "house_nr",
    "zip",
    "city",
    "state",
    "country",
    "phone",
    "email",
    "vat_id",
)
PAYMENT_KEYS = ("card_type", "card_name", "card_nr", "card_exp", "account", "account_name", "iban")
ORDER_TEXT_KEYS = ("gift_message", "address_remarks", "shop_note")
MAX_TEXT = 2000
FIELD_MAX_LENGTH: dict[str, int] = {
    "customer_nr_external": 100,
    "salutation": 30,
    "first_name": 100,
    "last_name": 100,
    "name2": 200,
    "company": 200,
    "street": 200,
    "house_nr": 20,
    "zip": 20,
    "city": 100,
    "state": 100,
    "country": 100,
    "email": 254,
    "phone": 50,
    "fax": 50,
    "card_type": 30,
    "card_name": 100,
    "card_nr": 40,
    "card_exp": 10,
    "account": 40,
    "account_name": 100,
    "iban": 34,
    "vat_id": 20,
}
"""Longest value each import field may carry: the width of the column it is stored in, so a
value that does not fit is refused by line and field instead of failing (PostgreSQL) or being
stored unchecked (SQLite). Free-text fields not listed here are capped at MAX_TEXT."""
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""Timestamps outside 2000-01-01 to 2100-12-31 (UTC, inclusive) are typing or export errors. A
year 9999 shipment would put its retention dates past what a date can hold and make the order
unreadable for good; refusing the line says so while it can still be corrected."""
RANGE_TEXT = "2000-01-01 to 2100-12-31 (UTC)"
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
"""Unknown key names are shown in refusals only when they look like a field name: anything else
could be a value (PII) or unprintable, and is described as "an unknown field"."""
VAT_ID = re.compile(r"[A-Za-z]{2}[A-Za-z0-9+*.\- ]{2,18}")
"""A VAT ID: two letters (the country prefix, "EL" for Greece, "XI" for Northern Ireland) and
2 to 18 letters, digits and the separators sellers' systems print (space, dot, hyphen; "+" and
"*" occur in Irish numbers). 4 to 20 characters in all; checksums are the tax office's job."""
CENT = Decimal("0.01")
MONEY_LIMIT = Decimal("1e10")
"""Amounts are stored as NUMERIC(12, 2): in cents, below ten billion either way."""
CURRENCY = re.compile(r"[A-Z]{3}")
DEFAULT_CURRENCY = "EUR"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # placeholder only used when parsing already failed


PROBLEMS_SHOWN = 20
NAMES_SHOWN = 10
"""A refusal names this many problems of a line (and unknown keys of an object), then counts
the rest: a line of thousands of broken items must not become a message larger than the line,
printed by the CLI and returned by the API."""


class RecordError(ValueError):
    """One or more problems in one import line; each names a field path."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown = [*shown, f"and {len(problems) - len(shown)} more problems"]
        super().__init__("; ".join(shown))
        self.problems = problems


@dataclass(frozen=True)
class Item:
    sku: str
    title: str
    qty: int
    price: Decimal


@dataclass(frozen=True)
class Document:
    """An invoice or credit note. `invoice_nr` on a credit names the invoice it corrects."""

    number: str
    created_at: datetime
    total: Decimal
    invoice_nr: str | None = None
    net: Decimal | None = None
    tax: Decimal | None = None
    currency: str = DEFAULT_CURRENCY
    """`total` is the gross amount; `net` and `tax` are optional, and when both are given
    they add up to it."""


@dataclass(frozen=True)
class OrderRecord:
    shop: str
    order_nr_external: str
    ordered_at: datetime
    shipped_at: datetime | None
    cancelled_at: datetime | None
    customer: dict[str, str | date | None]
    billing_address: dict[str, str | None]
    shipping_address: dict[str, str | None]
    payment: dict[str, str | None]
    texts: dict[str, str | None]
    items: tuple[Item, ...] = ()
    invoices: tuple[Document, ...] = ()
    credits: tuple[Document, ...] = ()
    has_shipping_address: bool = False
    has_billing_address: bool = False
    has_payment: bool = False
    """Whether the line carries these objects (non-empty): on a re-import, a missing object
    keeps what is stored for the order, a present one replaces it."""


@dataclass(frozen=True)
class ManualDocumentRecord:
    """An invoice or credit written for a buyer outside any order (e.g. a goodwill credit)."""

    kind: str  # "manual_invoice" or "manual_credit"
    shop: str
    customer_of_order: str
    document: Document


@dataclass
class _Parser:
    problems: list[str] = field(default_factory=list)

    def text(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        required: bool = False,
        max_len: int = MAX_TEXT,
    ) -> str | None:
        value = obj.get(key)
        where = f"{path}{key}"
        if value is None:
            if required:
                self.problems.append(f"{where}: is required")
            return None
        if not isinstance(value, str):
            self.problems.append(f"{where}: must be a string, got {type(value).__name__}")
            return None
        if required and not value.strip():
            self.problems.append(f"{where}: must not be empty")
            return None
        if "\x00" in value:
            self.problems.append(f"{where}: must not contain NUL characters")
            return None
        if not value.isascii() and not _encodable(value):
            self.problems.append(
                f"{where}: contains an invalid character (an unpaired UTF-16 surrogate)"
            )
            return None
        if len(value) > max_len:
            self.problems.append(f"{where}: longer than {max_len} characters")
            return None
        return value

    def instant(
        self, obj: dict[str, Any], key: str, path: str, required: bool = False
    ) -> datetime | None:
        raw = self.text(obj, key, path, required=required, max_len=64)
        if raw is None:
            return None
        instant: datetime | None
        try:
            instant = ensure_aware(datetime.fromisoformat(raw.replace("Z", "+00:00")))
        except ValueError:
            self.problems.append(
                f"{path}{key}: not an ISO 8601 timestamp with offset "
                "(e.g. 2026-01-01T09:00:00+01:00)"
            )
            return None
        except OverflowError:  # year 1 or 9999 moved past the calendar's edge by its offset
            instant = None
        if instant is None or not EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
            self.problems.append(f"{path}{key}: outside the accepted range {RANGE_TEXT}")
            return None
        return instant

    def day(self, obj: dict[str, Any], key: str, path: str) -> date | None:
        raw = self.text(obj, key, path, max_len=10)
        if raw is None or raw == "":
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.problems.append(f"{path}{key}: not a date of the form YYYY-MM-DD")
            return None

    def money(self, obj: dict[str, Any], key: str, path: str) -> Decimal:
        value = obj.get(key)
        if value is None:
            self.problems.append(f"{path}{key}: is required")
            return Decimal(0)
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.problems.append(f"{path}{key}: not a decimal amount like 19.99")
            return Decimal(0)
        # Checked again once rounded to cents: 9999999999.995 becomes 10000000000.00, more
        # than the columns hold.
        if amount.is_finite() and abs(amount) < MONEY_LIMIT:
            cents = amount.quantize(CENT)
            if abs(cents) < MONEY_LIMIT:
                return cents
        self.problems.append(f"{path}{key}: not a decimal amount like 19.99")
        return Decimal(0)

    def mapping(
        self, obj: dict[str, Any], key: str, path: str, allowed: tuple[str, ...]
    ) -> dict[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{path}{key}: must be an object")
            return {}
        unknown = set(value) - set(allowed)
        if unknown:
            self.problems.append(f"{path}{key}: {_describe_unknown(unknown)}")
        return value

    def texts(self, obj: dict[str, Any], keys: tuple[str, ...], path: str) -> dict[str, str | None]:
        return {k: self.field(obj, k, path) for k in keys}

    def field(self, obj: dict[str, Any], key: str, path: str) -> str | None:
        """An import field, within its column's width; a VAT ID also of its form."""
        value = self.text(obj, key, path, max_len=FIELD_MAX_LENGTH.get(key, MAX_TEXT))
        if key == "vat_id" and value and not VAT_ID.fullmatch(value):
            self.problems.append(
                f"{path}{key}: not a VAT ID (two letters, then 2 to 18 letters, digits, "
                "spaces, dots or hyphens)"
            )
            return None
        return value

    def optional_money(self, obj: dict[str, Any], key: str, path: str) -> Decimal | None:
        return None if obj.get(key) is None else self.money(obj, key, path)

    def listing(self, obj: dict[str, Any], key: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.append(f"{key}: must be a list")
            return []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                self.problems.append(f"{key}[{i}]: must be an object")
                return []
        return value

    def document(self, obj: dict[str, Any], number_key: str, path: str) -> Document:
        number = self.text(obj, number_key, path, required=True, max_len=64) or ""
        created = self.instant(obj, "created_at", path, required=True)
        total = self.money(obj, "total", path)
        ref = self.text(obj, "invoice_nr", path, max_len=64) if number_key == "credit_nr" else None
        before = len(self.problems)
        net = self.optional_money(obj, "net", path)
        tax = self.optional_money(obj, "tax", path)
        amounts_read = len(self.problems) == before
        if amounts_read and net is not None and tax is not None and net + tax != total:
            self.problems.append(f"{path}net: net and tax do not add up to total")
        currency = self.text(obj, "currency", path, max_len=3)
        if currency is not None and not CURRENCY.fullmatch(currency):
            self.problems.append(f"{path}currency: not a three-letter ISO 4217 code like EUR")
            currency = None
        return Document(
            number, created or _EPOCH, total, ref, net, tax, currency or DEFAULT_CURRENCY
        )


def parse_line(raw: str | bytes) -> OrderRecord | ManualDocumentRecord:
    """Decode and validate one line of an import file; raise RecordError saying what is wrong.

    Bytes are decoded here, line by line, so that one line in another encoding is refused alone
    instead of ending the file. Whatever the line holds (any nesting depth, any number size),
    the outcome is a record or a RecordError whose message names no value.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(
                [f"line: not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"]
            ) from None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RecordError([f"invalid JSON at column {exc.colno}: {exc.msg}"]) from None
    except RecursionError:
        raise RecordError(["line: nested too deeply to be an order"]) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise RecordError(["line: a number in it has too many digits"]) from None
    return parse_record(obj)


def parse_record(obj: object) -> OrderRecord | ManualDocumentRecord:
    """Validate one decoded JSON line; raise RecordError listing every problem found."""
    if not isinstance(obj, dict):
        raise RecordError(["line: must be a JSON object"])
    kind = obj.get("type", "order")
    if kind in ("manual_invoice", "manual_credit"):
        return _parse_manual(obj, kind)
    if kind != "order":
        raise RecordError(["type: must be order, manual_invoice or manual_credit"])
    p = _Parser()
    shop = p.text(obj, "shop", "", required=True, max_len=100)
    nr = p.text(obj, "order_nr_external", "", required=True, max_len=100)
    ordered_at = p.instant(obj, "ordered_at", "", required=True)
    shipped_at = p.instant(obj, "shipped_at", "")
    cancelled_at = p.instant(obj, "cancelled_at", "")
    cust = p.mapping(obj, "customer", "", CUSTOMER_KEYS)
    customer: dict[str, str | date | None] = {
        k: p.field(cust, k, "customer.") for k in CUSTOMER_KEYS if k != "birth_date"
    }
    customer["birth_date"] = p.day(cust, "birth_date", "customer.")
    billing_raw = p.mapping(obj, "billing_address", "", ADDRESS_KEYS)
    billing = p.texts(billing_raw, ADDRESS_KEYS, "billing_address.")
    shipping_raw = p.mapping(obj, "shipping_address", "", ADDRESS_KEYS)
    shipping = p.texts(shipping_raw, ADDRESS_KEYS, "shipping_address.")
    payment_raw = p.mapping(obj, "payment", "", PAYMENT_KEYS)
    payment = p.texts(payment_raw, PAYMENT_KEYS, "payment.")
    texts = p.texts(obj, ORDER_TEXT_KEYS, "")
    items = []
    for i, raw in enumerate(p.listing(obj, "items")):
        path = f"items[{i}]."
        qty = raw.get("qty", 1)
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty < 1_000_000:
            p.problems.append(f"{path}qty: must be a positive whole number")
            qty = 1
        items.append(
            Item(
                p.text(raw, "sku", path, max_len=100) or "",
                p.text(raw, "title", path, max_len=500) or "",
                qty,
                p.money(raw, "price", path),
            )
        )
    invoices = [
        p.document(raw, "invoice_nr", f"invoices[{i}].")
        for i, raw in enumerate(p.listing(obj, "invoices"))
    ]
    credits = [
        p.document(raw, "credit_nr", f"credits[{i}].")
        for i, raw in enumerate(p.listing(obj, "credits"))
    ]
    if ordered_at and shipped_at and shipped_at < ordered_at:
        p.problems.append("shipped_at: is before ordered_at")
    if nr is not None and not trim_number(nr):
        p.problems.append("order_nr_external: must not be empty")
    _unique(p, [d.number for d in invoices], "invoices", "invoice_nr")
    _unique(p, [d.number for d in credits], "credits", "credit_nr")
    if p.problems:
        raise RecordError(p.problems)
    if shop is None or nr is None or ordered_at is None:  # pragma: no cover - reported above
        raise RecordError(["line: required fields missing"])
    return OrderRecord(
        shop=shop,
        order_nr_external=trim_number(nr),
        ordered_at=ordered_at,
        shipped_at=shipped_at,
        cancelled_at=cancelled_at,
        customer=customer,
        billing_address=billing,
        shipping_address=shipping,
        payment=payment,
        texts=texts,
        items=tuple(items),
        invoices=tuple(invoices),
        credits=tuple(credits),
        has_shipping_address=bool(shipping_raw),
        has_billing_address=bool(billing_raw),
        has_payment=bool(payment_raw),
    )


def _unique(p: _Parser, numbers: list[str], key: str, field_name: str) -> None:
    seen: set[str] = set()
    for i, number in enumerate(numbers):
        if number and number in seen:
            p.problems.append(f"{key}[{i}].{field_name}: appears twice in this order")
        seen.add(number)


def _parse_manual(obj: dict[str, Any], kind: str) -> ManualDocumentRecord:
    p = _Parser()
    shop = p.text(obj, "shop", "", required=True, max_len=100)
    order = p.text(obj, "customer_of_order", "", required=True, max_len=100)
    doc = p.document(obj, "invoice_nr" if kind == "manual_invoice" else "credit_nr", "")
    if order is not None and not trim_number(order):
        p.problems.append("customer_of_order: must not be empty")
    if p.problems:
        raise RecordError(p.problems)
    if shop is None or order is None:  # pragma: no cover - reported above
        raise RecordError(["line: required fields missing"])
    return ManualDocumentRecord(kind, shop, trim_number(order), doc)


def trim_number(value: str) -> str:
    """An order number without the blanks and invisible format characters around it (a
    byte-order mark, a zero-width space): left in, they would hide an Amazon number from the
    shop's pattern, and the buyer of an Amazon order would count as the shop's, never masked."""
    start, end = 0, len(value)
    while start < end and _is_padding(value[start]):
        start += 1
    while end > start and _is_padding(value[end - 1]):
        end -= 1
    return value[start:end]


def _is_padding(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"


def _encodable(value: str) -> bool:
    """False for text that cannot be stored or printed as UTF-8 (a JSON "\\ud800" escape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def looks_like_field_name(key: object) -> bool:
    """Whether an unknown key may be named in a refusal (else it may be a value, PII)."""
    return isinstance(key, str) and _SAFE_KEY.fullmatch(key) is not None


def _describe_unknown(keys: set[object]) -> str:
    shown = sorted(k for k in keys if isinstance(k, str) and _SAFE_KEY.fullmatch(k))[:NAMES_SHOWN]
    hidden = len(keys) - len(shown)
    parts = [f"unknown field(s) {', '.join(shown)}"] if shown else []
    if hidden == 1:
        parts.append("an unknown field")
    elif hidden > 1:
        parts.append(f"{hidden} unknown fields")
    return " and ".join(parts)


AMAZON_PATTERN_FLAGS = re.ASCII
"""Shops' order-number patterns match as ASCII: Amazon writes its numbers in ASCII digits, and
Python's default `\\d` also matches full-width or Arabic-Indic digits, which would make a shop's
own number that merely looks alike an Amazon order (its buyer archived and masked)."""


def is_amazon_order_number(order_nr: str, pattern: str) -> bool:
    """Amazon orders are recognised at import by their external order number alone."""
    return re.fullmatch(pattern, order_nr, AMAZON_PATTERN_FLAGS) is not None


def full_name(first: str | None, last: str | None) -> str | None:
    joined = " ".join(part for part in (first, last) if part)
    return joined or None


def address_line(street: str | None, house_nr: str | None) -> str | None:
    joined = " ".join(part for part in (street, house_nr) if part)
    return joined or None
