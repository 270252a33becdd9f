"""Returns, replacement orders and credits: what a request may ask for, and how the new
documents are numbered and named as a retrieval's reason.

A return takes back at most what was ordered minus what earlier returns took back; a
replacement ships at most what was ordered minus what earlier replacements shipped; a credit
pays back at most the invoice's total minus earlier credits. Numbers follow the original:
`<order>-RET<n>` for returns, `<order>-R<n>` for replacements, `GS-<invoice>-<n>` for credits
("Gutschrift"), n counting that kind for that order or invoice from 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from shelflife.domain.errors import InvalidInput
from shelflife.domain.policy import MAX_RETRIEVAL_REASON_LENGTH

MAX_REASON_LENGTH = 500
"""A document's reason is kept in full on the document (PII, masked with the buyer)."""

MAX_ITEMS = 100
ORDER_NR_LENGTH = 100
"""orders.order_nr_external: a replacement's number must fit."""
DOCUMENT_NR_LENGTH = 64
"""credits.credit_nr and returns.return_nr."""

_ITEM = re.compile(r"(?P<sku>[^:]+):(?P<qty>[0-9]{1,6})")


@dataclass(frozen=True)
class OrderedLine:
    """One line of the original order, not PII: what may be returned or replaced."""

    sku: str
    title: str
    qty: int
    price: Decimal


def parse_items(text: str) -> dict[str, int]:
    """`SKU:QTY[,SKU:QTY…]` -> quantity per SKU (a SKU named twice is added up)."""
    wanted: dict[str, int] = {}
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or len(parts) > MAX_ITEMS:
        raise InvalidInput(f"items: give 1 to {MAX_ITEMS} items as SKU:QTY, separated by commas")
    for part in parts:
        match = _ITEM.fullmatch(part)
        if match is None:
            raise InvalidInput(f"items: {part!r} is not SKU:QTY with a whole quantity, e.g. A-1:2")
        sku, qty = match["sku"].strip(), int(match["qty"])
        if not sku or qty < 1:
            raise InvalidInput(f"items: {part!r} needs a SKU and a quantity of at least 1")
        wanted[sku] = wanted.get(sku, 0) + qty
    return wanted


def check_items(items: Mapping[str, int]) -> dict[str, int]:
    """Items given as a mapping (the API's): the same limits as `parse_items`."""
    if not items or len(items) > MAX_ITEMS:
        raise InvalidInput(f"items: give 1 to {MAX_ITEMS} items as SKU:QTY, separated by commas")
    for sku, qty in items.items():
        if not sku.strip() or "\x00" in sku or not 1 <= qty <= 999_999:
            raise InvalidInput("items: each needs a SKU and a quantity of at least 1")
    return {sku.strip(): qty for sku, qty in items.items()}


def check_quantities(
    wanted: Mapping[str, int],
    ordered: Mapping[str, int],
    earlier: Mapping[str, int],
    what: str,
) -> None:
    """Every SKU is on the order, and no more is asked for than is left (`what`: "returned")."""
    for sku, qty in wanted.items():
        if sku not in ordered:
            raise InvalidInput(f"items: SKU {sku!r} is not on this order")
        left = ordered[sku] - earlier.get(sku, 0)
        if qty > left:
            raise InvalidInput(
                f"items: SKU {sku!r}: {qty} asked for, but {left} of {ordered[sku]} ordered "
                f"can still be {what}"
            )


def check_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned or len(cleaned) > MAX_REASON_LENGTH or "\x00" in cleaned:
        raise InvalidInput(f"reason: give a reason of 1 to {MAX_REASON_LENGTH} characters")
    return cleaned


def parse_amount(text: str) -> Decimal:
    """A credit's total: positive, at most two decimal places."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInput(f"total: {text!r} is not an amount such as 19.99") from None
    if not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput(f"total: {text!r} must be above 0 with at most two decimal places")
    if amount >= Decimal("10000000000"):
        raise InvalidInput(f"total: {text!r} is too large")
    return amount.quantize(Decimal("0.01"))


def check_credit_total(total: Decimal, invoice_total: Decimal, credited: Decimal) -> None:
    left = invoice_total - credited
    if total > left:
        raise InvalidInput(
            f"total: {total} is more than the {left} of the invoice's {invoice_total} "
            "not yet credited"
        )


def _numbered(number: str, limit: int) -> str:
    if len(number) > limit:
        raise InvalidInput(
            f"the document number {number!r} would be longer than {limit} characters"
        )
    return number


def return_nr(order_nr: str, n: int) -> str:
    return _numbered(f"{order_nr}-RET{n}", DOCUMENT_NR_LENGTH)


def replacement_nr(order_nr: str, n: int) -> str:
    return _numbered(f"{order_nr}-R{n}", ORDER_NR_LENGTH)


def credit_nr(invoice_nr: str, n: int) -> str:
    return _numbered(f"GS-{invoice_nr}-{n}", DOCUMENT_NR_LENGTH)


def retrieval_reason(kind: str, number: str, reason: str) -> str:
    """ "Return 123-RET1: damaged in transit", cut to the 50 characters a retrieval's reason
    may have (ending in "…" when cut); the full reason stays on the document."""
    text = f"{kind} {number}: {reason}"
    if len(text) <= MAX_RETRIEVAL_REASON_LENGTH:
        return text
    return text[: MAX_RETRIEVAL_REASON_LENGTH - 1].rstrip() + "…"
