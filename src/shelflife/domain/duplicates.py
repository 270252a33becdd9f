"""When two customer records are the same person, and when they must stay apart.

The rule is the one sellers know from their order system: the same first and last name, city,
postcode and company in the same shop. A buyer whose data is archived or masked is never
offered (its data is either gone from the database or only on loan after a retrieval), and
neither are two records that only share what Amazon writes in place of a buyer: the shared
identity of Amazon-invoiced business orders, mask placeholders, empty fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from shelflife.domain.errors import Conflict, InvalidInput
from shelflife.domain.masking import MaskKind, mask_value
from shelflife.domain.references import customer_ref

AMAZON_SHARED_IDENTITIES = frozenset({"amazon business eu sarl", "amazon eu sarl"})
"""Names Amazon prints for the invoicing entity of business orders: many buyers share them."""

_PLACEHOLDERS = frozenset(str(mask_value(kind)).casefold() for kind in MaskKind)


@dataclass(frozen=True)
class PersonFields:
    """The fields the duplicate rule compares, as stored."""

    first_name: str | None
    last_name: str | None
    city: str | None
    zip: str | None
    company: str | None


@dataclass(frozen=True)
class DuplicateCandidate:
    """A customer record the database grouped with others by the compared fields."""

    customer_id: int
    shop: str
    channel: str
    person: PersonFields
    orders: int


def duplicate_key(person: PersonFields) -> tuple[str, str, str, str, str] | None:
    """What two records must share to be the same person; None when this record can never be
    anyone's duplicate (a required field empty, a placeholder, Amazon's shared identity).

    Values compare as imported, spaces around them aside (what SQL's `trim` removes, so the
    database can group by the same key): case matters, as both databases compare it alike."""
    required = (person.first_name, person.last_name, person.city, person.zip)
    values = [(v or "").strip(" ") for v in (*required, person.company)]
    if any(not v for v in values[:4]):
        return None
    if any(v.casefold() in _PLACEHOLDERS for v in values if v):
        return None
    full_name = f"{values[0]} {values[1]}".casefold()
    if full_name in AMAZON_SHARED_IDENTITIES or values[4].casefold() in AMAZON_SHARED_IDENTITIES:
        return None
    return values[0], values[1], values[2], values[3], values[4]


@dataclass(frozen=True)
class MergeCandidate:
    """What decides whether a customer record may be merged: not its personal data."""

    customer_id: int
    shop_id: int
    channel: str
    archived: bool
    masked: bool


def check_merge(keep: MergeCandidate, other: MergeCandidate) -> None:
    """Refuse a merge that would mix archived data into the database or cross shops/channels.

    An archived buyer's copy in the archive describes the record as it was; moving orders in or
    out would leave a copy that no longer matches, and a masked buyer has no data to compare."""
    if keep.customer_id == other.customer_id:
        raise InvalidInput("give two different customers to merge")
    for candidate in (keep, other):
        if candidate.archived or candidate.masked:
            raise Conflict(
                f"customer {customer_ref(candidate.customer_id)} is archived; its data "
                "cannot be merged"
            )
    if keep.shop_id != other.shop_id:
        raise Conflict("the customers belong to different shops; only one shop's can be merged")
    if keep.channel != other.channel:
        raise Conflict(
            "one customer is an Amazon buyer and the other a shop customer; they stay separate"
        )
