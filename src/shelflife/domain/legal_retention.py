"""How long the law makes us keep a buyer's archived documents, and when they may be shredded.

Tax law counts retention from the end of the calendar year in which a document was made
(Germany, HGB §257 / AO §147: invoices and credits 10 years, commercial letters 6), so a
document made in year Y may be destroyed from 1 January of year Y + years + 1, in the shop's
time zone. A buyer's archive may be shredded only when every one of its documents may be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT = "credit"
    ORDER = "order"


@dataclass(frozen=True)
class LegalRetention:
    """Years each document kind is kept after the end of the year it was made in."""

    invoice_years: int = 10
    credit_years: int = 10
    order_years: int = 6
    """Orders without an invoice are commercial letters; an invoiced order's invoice rules."""

    def years(self, kind: DocumentKind) -> int:
        match kind:
            case DocumentKind.INVOICE:
                return self.invoice_years
            case DocumentKind.CREDIT:
                return self.credit_years
            case DocumentKind.ORDER:
                return self.order_years

    def kept_until(self, kind: DocumentKind, made_at: datetime, zone: ZoneInfo) -> datetime:
        """The first instant (UTC) at which a document of `kind` made at `made_at` may go."""
        local_year = made_at.astimezone(zone).year
        return _new_year(local_year + self.years(kind) + 1, zone)

    def expired_before(self, kind: DocumentKind, now: datetime, zone: ZoneInfo) -> datetime:
        """Documents of `kind` made before this instant (UTC) may go as of `now`: the set-based
        twin of `kept_until` (made_at < expired_before  <=>  kept_until <= now)."""
        return _new_year(now.astimezone(zone).year - self.years(kind), zone)


@dataclass(frozen=True)
class KeptDocument:
    """A document that keeps a buyer's archive: which, its number (not PII), until when."""

    kind: DocumentKind
    number: str
    kept_until: datetime


def _new_year(year: int, zone: ZoneInfo) -> datetime:
    return datetime(year, 1, 1, tzinfo=zone).astimezone(UTC)


def still_kept(
    rules: LegalRetention,
    documents: Iterable[tuple[DocumentKind, str, datetime]],
    zone: ZoneInfo,
    now: datetime,
) -> list[KeptDocument]:
    """The documents (kind, number, made at) that the law still keeps as of `now`, the one
    kept longest first: an erasure must wait for all of them."""
    kept = [
        KeptDocument(kind, number, until)
        for kind, number, made_at in documents
        if (until := rules.kept_until(kind, made_at, zone)) > now
    ]
    return sorted(kept, key=lambda d: (d.kept_until, d.kind.value, d.number), reverse=True)
