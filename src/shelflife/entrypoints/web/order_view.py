"""The order page's view of `show_order`'s document: labelled fields, local times, a timeline.

Built from the document's JSON shape only (the same dict `shelflife show --json` prints), so the
page shows exactly what the CLI and the API show. A masked value stays recognisable as masked
(`is_masked`); the template shows it as a badge, never as an empty field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shelflife.domain.masking import MaskKind, is_placeholder


def is_masked(value: object) -> bool:
    """A value masking wrote (any kind's placeholder): never a buyer's data."""
    return value is not None and any(is_placeholder(kind, value) for kind in MaskKind)


def last_digits(value: object) -> object:
    """A card, account or IBAN number as people may see it: its last four characters. Masked
    and empty values pass through, so the page still shows them as masked or empty."""
    if not isinstance(value, str) or not value or is_masked(value):
        return value
    return "…" + value.replace(" ", "")[-4:]


CUSTOMER_FIELDS = (
    ("Name", "name"),
    ("Company", "company"),
    ("E-mail", "email"),
    ("Phone", "phone"),
    ("Customer number", "customer_nr_external"),
    ("Country", "country"),
    ("Note", "note"),
)
ADDRESS_FIELDS = (
    ("Name", "name"),
    ("Name 2", "name2"),
    ("Company", "company"),
    ("Contact", "contact"),
    ("Street", "address"),
    ("ZIP", "zip"),
    ("City", "city"),
    ("State", "state"),
    ("Country", "country"),
    ("Phone", "phone"),
    ("Phone 2", "phone2"),
    ("Fax", "fax"),
    ("E-mail", "email"),
    ("E-mail 2", "email2"),
    ("Note", "note"),
)
PAYMENT_FIELDS = (
    ("Card type", "card_type", False),
    ("Card holder", "card_name", False),
    ("Card number", "card_nr", True),
    ("Card expires", "card_exp", False),
    ("Account holder", "account_name", False),
    ("Account", "account", True),
    ("IBAN", "iban", True),
)
ORDER_TEXTS = (
    ("Gift message", "gift_message"),
    ("Address remarks", "address_remarks"),
    ("Shop note", "shop_note"),
)

Fields = list[tuple[str, object]]


def local_day(instant: str, time_zone: str) -> str:
    """An ISO instant as the local calendar day of a shop's time zone."""
    return datetime.fromisoformat(instant).astimezone(ZoneInfo(time_zone)).date().isoformat()


def _present(row: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> Fields:
    """The labelled fields that hold something (a value or a mask); empty ones are left out."""
    return [(label, row.get(key)) for label, key in fields if row.get(key) not in (None, "")]


@dataclass(frozen=True)
class Step:
    """One line of the retention timeline: what, when, and whether it happened yet."""

    label: str
    when: str | None
    done: bool


class OrderView:
    """Everything the order template shows, in the shop's time zone."""

    def __init__(self, doc: dict[str, Any], shop_param: str | None) -> None:
        self.doc = doc
        self.zone = ZoneInfo(doc["time_zone"])
        self.retention: dict[str, Any] = doc["retention"]
        self.shop_param = shop_param
        self.customer = _present(doc["customer"], CUSTOMER_FIELDS)
        self.addresses = [
            (a["kind"].capitalize() + " address", _present(a, ADDRESS_FIELDS))
            for a in doc["addresses"]
        ]
        billing: dict[str, Any] = next((a for a in doc["addresses"] if a["kind"] == "billing"), {})
        self.payment: Fields = [
            (label, last_digits(billing.get(key)) if digits else billing.get(key))
            for label, key, digits in PAYMENT_FIELDS
            if billing.get(key) not in (None, "")
        ]
        self.texts = _present(doc, ORDER_TEXTS)
        self.history = list(reversed(doc["customer_history"]))
        retrievals = [h for h in doc["customer_history"] if h["event"] == "retrieved"]
        self.retrieved_by: str | None = retrievals[-1]["user_name"] if retrievals else None

    @property
    def state(self) -> str:
        return str(self.retention["state"])

    @property
    def is_masked(self) -> bool:
        return self.state == "masked"

    @property
    def history_masked(self) -> bool:
        """The buyer's data (their history with it) is masked and not retrieved."""
        return bool(self.retention["masked_at"]) and not self.retention["retrieved_at"]

    @property
    def read_only(self) -> bool:
        return bool(self.retention["read_only"])

    def local(self, instant: str | None) -> str:
        """An instant of the document as the shop's local date and time."""
        if not instant:
            return ""
        return datetime.fromisoformat(instant).astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def local_day(self, instant: str | None) -> str:
        return local_day(instant, self.doc["time_zone"]) if instant else ""

    def timeline(self) -> list[Step]:
        """Shipped, archive due/done, mask due/done, retrieved, re-mask due, in that order."""
        r = self.retention
        steps = [
            Step(
                "Shipped", self.local(self.doc["shipped_at"]) or None, bool(self.doc["shipped_at"])
            )
        ]
        if self.doc["cancelled_at"]:
            steps.append(Step("Cancelled", self.local(self.doc["cancelled_at"]), True))
        steps += [
            Step("Archive due", r["archive_due"], bool(r["archived_at"])),
            Step("Archived", self.local(r["archived_at"]) or None, bool(r["archived_at"])),
        ]
        if r["archive_failed_at"]:
            steps.append(Step("Archive failed", self.local(r["archive_failed_at"]), True))
            steps.append(Step("Archive retried from", self.local(r["archive_retry_at"]), False))
        steps += [
            Step("Mask due", r["mask_due"], bool(r["masked_at"])),
            Step("Masked", self.local(r["masked_at"]) or None, bool(r["masked_at"])),
        ]
        if r["retrieved_at"]:
            steps.append(Step("Retrieved", self.local(r["retrieved_at"]), True))
            steps.append(Step("Re-mask due", r["remask_due"], False))
        return steps
