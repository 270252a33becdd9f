"""The masking profile: every PII column, the spec's name for it, and what it is overwritten with.

One list drives the mask UPDATEs, the archive snapshot and the restore on retrieval, so a field
cannot be archived without being masked, or masked without being archived.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date


class MaskKind(enum.Enum):
    TEXT = "text"
    EMAIL = "email"
    DATE = "date"


MASKED_TEXT = "***"
"""Short enough for the narrowest PII column, obviously not real data."""

MASKED_EMAIL = "masked@masked.invalid"
"""A syntactically valid address on a reserved top-level domain that can never be delivered."""

MASKED_DATE = date(1900, 1, 1)


def mask_value(kind: MaskKind) -> str | date:
    if kind is MaskKind.EMAIL:
        return MASKED_EMAIL
    if kind is MaskKind.DATE:
        return MASKED_DATE
    return MASKED_TEXT


def is_placeholder(kind: MaskKind, value: object) -> bool:
    """Whether a value is what masking wrote for its kind (a date also as ISO text): a
    placeholder, never a buyer's data, so it is neither archived nor restored."""
    placeholder = mask_value(kind)
    if isinstance(placeholder, date):
        return value == placeholder or value == placeholder.isoformat()
    return value == placeholder


def masked(kind: MaskKind, current: object) -> object:
    """Empty fields stay empty; every other value is replaced by the kind's mask value."""
    if current is None or current == "":
        return current
    return mask_value(kind)


TAX_FIELDS = ("vat_id", "zip", "state")
"""Fields a shop may keep unmasked on its invoices and credits, one by one, under a recorded
legal basis (reverse-charge and OSS records): the buyer's VAT ID, the billing postcode and
region. Off by default; names, street, phone and e-mail are masked whatever the shop chose."""


@dataclass(frozen=True)
class PiiField:
    table: str
    column: str
    spec_names: tuple[str, ...]
    kind: MaskKind = MaskKind.TEXT
    kept_by: str | None = None
    """The tax field (in TAX_FIELDS) under which a shop may keep this column unmasked; the
    archive copy holds it either way."""


def _fields(table: str, *specs: tuple[str, tuple[str, ...], MaskKind]) -> tuple[PiiField, ...]:
    return tuple(PiiField(table, column, names, kind) for column, names, kind in specs)


T, E, D = MaskKind.TEXT, MaskKind.EMAIL, MaskKind.DATE

CUSTOMER_FIELDS = _fields(
    "customers",
    ("customer_nr_external", ("CustomerNrExternal",), T),
    ("salutation", (), T),
    ("first_name", ("SFirstName",), T),
    ("last_name", ("SLastName",), T),
    ("name", ("SName",), T),
    ("name2", ("SName2",), T),
    ("company", (), T),
    ("address", ("SAddress",), T),
    ("street", ("SStreet",), T),
    ("house_nr", ("SHouseNr",), T),
    ("zip", ("SZIP",), T),
    ("city", ("SCity",), T),
    ("state", ("SState",), T),
    ("email", ("CeMail",), E),
    ("phone", ("CPhone",), T),
    ("fax", ("CFax",), T),
    ("vat_id", (), T),
    ("birth_date", (), D),
    ("note", ("CNote",), T),
    ("history_note", ("CHisNote",), T),
    ("card_name", ("CardName",), T),
    ("card_nr", ("CardNr",), T),
    ("card_exp", ("CardExp",), T),
    ("account", ("Account",), T),
    ("account_name", ("AccName",), T),
)

ADDRESS_FIELDS = _fields(
    "addresses",
    ("salutation", ("Anrede",), T),
    ("name", ("Name",), T),
    ("name2", ("Name2",), T),
    ("first_name", ("FirstName",), T),
    ("last_name", ("LastName",), T),
    ("company", (), T),
    ("address", ("Address",), T),
    ("street", ("Street",), T),
    ("house_nr", ("HouseNr",), T),
    ("city", ("City",), T),
    ("state", ("State",), T),
    ("zip", ("ZIP",), T),
    ("contact", ("Contact",), T),
    ("phone", ("Phone",), T),
    ("phone2", ("Phone2",), T),
    ("fax", ("Fax",), T),
    ("fax2", ("Fax2",), T),
    ("email", ("eMail",), E),
    ("email2", ("eMail2",), E),
    ("vat_id", (), T),
    ("birth_date", ("BirthDate",), D),
    ("note", ("Note",), T),
    ("card_type", ("ACardType",), T),
    ("card_name", ("ACardName",), T),
    ("card_nr", ("ACardNr",), T),
    ("card_exp", ("ACardExp",), T),
    ("account", ("AAccount",), T),
    ("account_name", ("AAccName",), T),
    ("iban", ("IBAN",), T),
)

ADDRESS_HISTORY_FIELDS = _fields("address_history", ("old_value", ("Addresses history",), T))
CUSTOMER_HISTORY_FIELDS = _fields("customer_history", ("text", ("Customer history",), T))

ORDER_FIELDS = _fields(
    "orders",
    ("gift_message", ("GiftMessage",), T),
    ("address_remarks", ("Address_Remarks",), T),
    ("shop_note", ("Shop_Note",), T),
)


def _document_fields(table: str, *extra: str) -> tuple[PiiField, ...]:
    return (
        *_fields(table, ("billing_name", (), T), ("billing_address", (), T)),
        PiiField(table, "billing_zip", (), T, kept_by="zip"),
        PiiField(table, "billing_state", (), T, kept_by="state"),
        PiiField(table, "billing_vat_id", (), T, kept_by="vat_id"),
        # The PDF prints the name and address: its digest would confirm a guessed name.
        *_fields(table, ("pdf_sha256", (), T)),
        *_fields(table, *((column, (), T) for column in extra)),
    )


INVOICE_FIELDS = _document_fields("invoices")
CREDIT_FIELDS = _document_fields("credits", "reason")
RETURN_FIELDS = _fields("returns", ("reason", (), T))

MASK_PROFILE: dict[str, tuple[PiiField, ...]] = {
    "customers": CUSTOMER_FIELDS,
    "addresses": ADDRESS_FIELDS,
    "address_history": ADDRESS_HISTORY_FIELDS,
    "customer_history": CUSTOMER_HISTORY_FIELDS,
    "orders": ORDER_FIELDS,
    "invoices": INVOICE_FIELDS,
    "credits": CREDIT_FIELDS,
    "returns": RETURN_FIELDS,
}
"""Table name -> its PII columns. Every table here has a `masked_at` column and a `customer_id`
column, except `customers`, whose own `id` is the customer id."""


def kept_when_masked(field: PiiField, kept: frozenset[str] | set[str]) -> bool:
    """Whether masking leaves this field as it is, given the tax fields a shop keeps."""
    return field.kept_by is not None and field.kept_by in kept


def all_fields() -> tuple[PiiField, ...]:
    return tuple(f for fields in MASK_PROFILE.values() for f in fields)
