"""A buyer's link across masking: which later records are the same Amazon buyer as masked ones.

Masking clears a buyer's identity digest (so that new PII never lands in a masked record), and
the buyer's next order starts a new customer record. To keep the two connected without keeping
PII, every Amazon buyer record also holds a *link*: a keyed digest (the installation's identity
key, under its own domain prefix, so it never equals an identity digest) of what identifies the
buyer on the marketplace: the marketplace buyer id (the customer number of an Amazon order) or,
without one, the buyer's relay e-mail (the per-buyer address Amazon forwards,
`…@marketplace.amazon.de`). Masking keeps the link; records that share it are one buyer.

What many buyers share never links: Amazon's business identity ("Amazon Business EU SARL"),
the shared invoice e-mail of Amazon-invoiced business orders and any other address that is not a
relay address, mask placeholders and empty values.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from shelflife.domain.duplicates import AMAZON_SHARED_IDENTITIES
from shelflife.domain.masking import MaskKind, mask_value

LINK_DOMAIN = "buyer-link"
"""The prefix hashed before the key: identity digests use the channel (`amazon|…`) instead."""

RELAY_EMAIL = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}@marketplace\.amazon\.[a-z]{2,3}(\.[a-z]{2})?")
"""Amazon's per-buyer relay address; every other address (a seller's or Amazon's shared invoice
address) can belong to many buyers and never links."""

_PLACEHOLDERS = frozenset(str(mask_value(kind)).casefold() for kind in MaskKind)


def link_key(buyer_id: object, emails: tuple[object, ...]) -> str | None:
    """What links this buyer's records, normalised; None when nothing may link them.

    `buyer_id` is the marketplace buyer id (the order's customer number); `emails` are the
    buyer's e-mail addresses in the order they are tried (customer, then billing)."""
    buyer = _usable(buyer_id)
    if buyer is not None:
        return f"id|{buyer}"
    for email in emails:
        address = _usable(email)
        if address is not None and is_relay_email(address):
            return f"relay|{address}"
    return None


def buyer_link(
    digest: Callable[[str], str], buyer_id: object, emails: tuple[object, ...]
) -> str | None:
    """The keyed digest stored in `customers.buyer_link`, or None (see `link_key`)."""
    key = link_key(buyer_id, emails)
    return None if key is None else digest(f"{LINK_DOMAIN}|{key}")


def is_relay_email(value: object) -> bool:
    """Whether an address is an Amazon relay address: data that came from Amazon."""
    address = _usable(value)
    return address is not None and RELAY_EMAIL.fullmatch(address) is not None


MANUAL_ORDER_FOR_AMAZON_BUYER = (
    "customer: this buyer's data came from Amazon, and a manual (non-Amazon) order must not "
    "use it; create a separate customer (its own customer number and e-mail) for the order"
)
"""The spec: "Do not create manual orders for customers with data which was imported from
Amazon." A manual order is any order whose number is not an Amazon order number."""


def _usable(value: object) -> str | None:
    """The text trimmed and lower-cased, unless it is empty, a placeholder or shared (or not
    text at all)."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).casefold()
    if not text or text in _PLACEHOLDERS or text in AMAZON_SHARED_IDENTITIES:
        return None
    return text
