"""The retention policy: when a buyer's PII is archived, masked, retried and masked again.

Written once, here, as pure functions over plain facts. The database adapter translates the same
cut-offs into set-based SQL for the nightly run; a property test keeps the two in agreement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shelflife.domain.errors import InvalidInput

ARCHIVE_AFTER_DAYS = 29
"""Archive the PII of an order shipped this many calendar days ago (one day before masking)."""

MASK_AFTER_DAYS = 30
"""Amazon allows PII for at most 30 days after shipping."""

REMASK_AFTER_DAYS = 30
"""Retrieved PII is masked again this many calendar days after retrieval."""

RETRY_ARCHIVE_AFTER_DAYS = 1
"""A failed archive becomes "ready for archiving" again one calendar day later.

Calendar days, not 24 hours: the nightly run that starts a minute earlier than last night's
must still retry, or the buyer would be masked a day late."""

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far past this machine's "now" a given instant may lie (clocks of the machines that
report shipments or run commands disagree a little). Anything later is in the future: a
retrieval dated in 2099 would keep restored PII unmasked until then."""

DEFAULT_TIME_ZONE = "Europe/Berlin"
DEFAULT_AMAZON_ORDER_PATTERN = r"^\d{3}-\d{7}-\d{7}$"
MAX_RETRIEVAL_REASON_LENGTH = 50


class RetentionState(enum.StrEnum):
    """Where one order's PII stands, in the words a customer-service agent sees."""

    ACTIVE = "active"
    READY_FOR_ARCHIVING = "ready_for_archiving"
    ARCHIVE_FAILED = "archive_failed"
    ARCHIVED = "archived"
    MASKED = "masked"
    RETRIEVED = "retrieved"


class MaskBlocker(enum.StrEnum):
    """Why a buyer whose shipment is over 30 days old still has unmasked PII."""

    FEATURE_DISABLED = "feature disabled"
    OPEN_ORDER = "open order"
    YOUNG_ORDER = "order shipped less than 30 days ago"
    YOUNG_INVOICE = "invoice or credit younger than 30 days"
    ARCHIVE_FAILING = "archive failing"
    NOT_ARCHIVED = "no verified archive of the current data yet"
    REMASK_PENDING = "retrieved data awaiting re-mask archive"


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def start_of_local_day(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def age_cutoff(as_of: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The instant before which an event is at least `days` calendar days old in `zone`.

    An event on local date d is that old when d <= today - days, i.e. when it happened before
    the local midnight that starts day (today - days + 1). Comparing instants with this cut-off
    lets SQL apply calendar-day rules without knowing about time zones.
    """
    today = local_date(as_of, zone)
    return start_of_local_day(today - timedelta(days=days - 1), zone)


def retry_at(failed_at: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which a failed archive is "ready for archiving" again."""
    return start_of_local_day(
        local_date(failed_at, zone) + timedelta(days=RETRY_ARCHIVE_AFTER_DAYS), zone
    )


def due_on(event: datetime, days: int, zone: ZoneInfo) -> date:
    """The local calendar day on which an event becomes `days` days old."""
    return local_date(event, zone) + timedelta(days=days)


@dataclass(frozen=True)
class Cutoffs:
    """All instants one run compares against, for one shop's time zone."""

    as_of: datetime
    archive_before: datetime
    mask_before: datetime
    remask_before: datetime
    retry_failed_before: datetime

    @classmethod
    def for_shop(cls, as_of: datetime, zone: ZoneInfo) -> Cutoffs:
        return cls(
            as_of=as_of,
            archive_before=age_cutoff(as_of, ARCHIVE_AFTER_DAYS, zone),
            mask_before=age_cutoff(as_of, MASK_AFTER_DAYS, zone),
            remask_before=age_cutoff(as_of, REMASK_AFTER_DAYS, zone),
            retry_failed_before=age_cutoff(as_of, RETRY_ARCHIVE_AFTER_DAYS, zone),
        )


@dataclass(frozen=True)
class OrderFacts:
    """What the policy needs to know about one order; no PII. The number, when known, names
    the order that holds a buyer's data."""

    shipped_at: datetime | None
    cancelled_at: datetime | None
    masked: bool = False
    number: str | None = None

    @property
    def closed_at(self) -> datetime | None:
        """Shipping ends an order's life; a cancelled, never-shipped order ends at cancellation."""
        return self.shipped_at if self.shipped_at is not None else self.cancelled_at


@dataclass(frozen=True)
class DocumentFacts:
    """An invoice or credit note of a buyer: its kind and number name it when it holds the
    buyer's data."""

    kind: str
    number: str | None
    created_at: datetime


@dataclass(frozen=True)
class CustomerFacts:
    """What the policy needs to know about one buyer and all their orders and documents.

    `document_dates` decide; `documents` are the same invoices and credits with their numbers,
    given where a caller must name the document that holds a buyer (compliance, `show`)."""

    is_amazon: bool
    feature_enabled: bool
    orders: tuple[OrderFacts, ...]
    document_dates: tuple[datetime, ...]
    pii_revision: int
    archived_revision: int | None
    archive_failed_at: datetime | None
    masked_at: datetime | None
    retrieved_at: datetime | None
    documents: tuple[DocumentFacts, ...] = ()

    @property
    def is_masked(self) -> bool:
        return self.masked_at is not None and self.retrieved_at is None

    @property
    def is_retrieved(self) -> bool:
        return self.retrieved_at is not None

    @property
    def archive_is_current(self) -> bool:
        """A verified archive copy holds exactly the PII the database holds now."""
        return self.archived_revision is not None and self.archived_revision == self.pii_revision

    def archive_backoff_over(self, cutoffs: Cutoffs) -> bool:
        return (
            self.archive_failed_at is None or self.archive_failed_at <= cutoffs.retry_failed_before
        )


def needs_archive(c: CustomerFacts, cutoffs: Cutoffs) -> bool:
    """Due for (re-)archiving: an order closed 29+ days ago and PII not yet in a current copy."""
    return (
        c.feature_enabled
        and c.is_amazon
        and not c.is_masked
        and not c.archive_is_current
        and c.archive_backoff_over(cutoffs)
        and any(o.closed_at is not None and o.closed_at < cutoffs.archive_before for o in c.orders)
    )


def is_retry(c: CustomerFacts, cutoffs: Cutoffs) -> bool:
    """An archive that failed before and is now attempted again."""
    return needs_archive(c, cutoffs) and c.archive_failed_at is not None


def _is_young(instant: datetime, cutoffs: Cutoffs) -> bool:
    """Less than 30 calendar days old: an order closed or a document created this recently
    keeps its buyer's data in the database."""
    return instant >= cutoffs.mask_before


def _open_orders(c: CustomerFacts) -> list[OrderFacts]:
    return [o for o in c.orders if o.closed_at is None]


def _young_orders(c: CustomerFacts, cutoffs: Cutoffs) -> list[OrderFacts]:
    return [o for o in c.orders if o.closed_at is not None and _is_young(o.closed_at, cutoffs)]


def _young_documents(c: CustomerFacts, cutoffs: Cutoffs) -> list[DocumentFacts]:
    known = c.documents or tuple(DocumentFacts("document", None, d) for d in c.document_dates)
    return [d for d in known if _is_young(d.created_at, cutoffs)]


def mask_blockers(c: CustomerFacts, cutoffs: Cutoffs) -> list[MaskBlocker]:
    """Everything that keeps an unmasked, unretrieved buyer's PII in the database."""
    blockers: list[MaskBlocker] = []
    if not c.feature_enabled:
        blockers.append(MaskBlocker.FEATURE_DISABLED)
    if _open_orders(c):
        blockers.append(MaskBlocker.OPEN_ORDER)
    if _young_orders(c, cutoffs):
        blockers.append(MaskBlocker.YOUNG_ORDER)
    if any(_is_young(d, cutoffs) for d in c.document_dates):
        blockers.append(MaskBlocker.YOUNG_INVOICE)
    if not c.archive_is_current:
        if c.archive_failed_at is not None:
            blockers.append(MaskBlocker.ARCHIVE_FAILING)
        else:
            blockers.append(MaskBlocker.NOT_ARCHIVED)
    return blockers


def can_mask(c: CustomerFacts, cutoffs: Cutoffs) -> bool:
    """All orders closed 30+ days ago, all documents 30+ days old, and a current verified copy."""
    return (
        c.is_amazon
        and c.masked_at is None
        and not c.is_retrieved
        and len(c.orders) > 0
        and not mask_blockers(c, cutoffs)
    )


def can_remask(c: CustomerFacts, cutoffs: Cutoffs) -> bool:
    """Retrieved 30+ calendar days ago and everything now in the database is in a current copy."""
    return (
        c.feature_enabled
        and c.retrieved_at is not None
        and c.retrieved_at < cutoffs.remask_before
        and c.archive_is_current
    )


def after_archive(c: CustomerFacts, cutoffs: Cutoffs) -> CustomerFacts:
    """The buyer as tonight's mask and re-mask steps see it: archived by the run's first step
    when that was due (and the archive worked). A dry run counts masking on these facts."""
    if not needs_archive(c, cutoffs):
        return c
    return replace(c, archived_revision=c.pii_revision, archive_failed_at=None)


def overdue(c: CustomerFacts, cutoffs: Cutoffs) -> bool:
    """Unmasked Amazon PII more than 30 days after a shipment: what compliance reports."""
    if not c.is_amazon or c.is_masked:
        return False
    if c.is_retrieved:
        return c.retrieved_at is not None and c.retrieved_at < cutoffs.remask_before
    return any(o.closed_at is not None and o.closed_at < cutoffs.mask_before for o in c.orders)


def _reason(blocker: MaskBlocker, c: CustomerFacts) -> str:
    if blocker is MaskBlocker.ARCHIVE_FAILING and c.archive_failed_at is not None:
        return f"{blocker.value} since {c.archive_failed_at.isoformat()}"
    return blocker.value


def compliance_reasons(c: CustomerFacts, cutoffs: Cutoffs) -> list[str]:
    """Human-readable reasons an overdue buyer is not masked yet."""
    if c.is_retrieved:
        reasons = [] if c.feature_enabled else [MaskBlocker.FEATURE_DISABLED.value]
        if not c.archive_is_current:
            if c.archive_failed_at is not None:
                reasons.append(_reason(MaskBlocker.ARCHIVE_FAILING, c))
            else:
                reasons.append(MaskBlocker.REMASK_PENDING.value)
        return reasons or ["re-mask due at the next run"]
    reasons = [_reason(blocker, c) for blocker in mask_blockers(c, cutoffs)]
    return reasons or ["mask due at the next run"]


LEGAL_HOLDS = (MaskBlocker.OPEN_ORDER, MaskBlocker.YOUNG_ORDER, MaskBlocker.YOUNG_INVOICE)
"""Blockers that are a legal reason to keep a buyer's data for now: a buyer is masked once all
their orders are shipped and all invoices and credits are 30 days old, not earlier."""


@dataclass(frozen=True)
class Hold:
    """One order, invoice or credit that legally keeps a buyer's data in the database."""

    blocker: MaskBlocker
    kind: str
    number: str | None
    ends_on: date | None
    """The local day from which it no longer holds; None while an order is open."""

    def describe(self) -> str:
        if self.number is None:
            return self.blocker.value
        if self.blocker is MaskBlocker.YOUNG_INVOICE:
            return f"{self.blocker.value}: {self.kind} {self.number}"
        return f"{self.blocker.value}: {self.number}"


def holds(c: CustomerFacts, cutoffs: Cutoffs, zone: ZoneInfo) -> list[Hold]:
    """The orders and documents behind the legal blockers of `mask_blockers`, by name."""
    found = [Hold(MaskBlocker.OPEN_ORDER, "order", o.number, None) for o in _open_orders(c)]
    found += [
        Hold(MaskBlocker.YOUNG_ORDER, "order", o.number, due_on(o.closed_at, MASK_AFTER_DAYS, zone))
        for o in _young_orders(c, cutoffs)
        if o.closed_at is not None
    ]
    found += [
        Hold(
            MaskBlocker.YOUNG_INVOICE, d.kind, d.number, due_on(d.created_at, MASK_AFTER_DAYS, zone)
        )
        for d in _young_documents(c, cutoffs)
    ]
    return found


class Finding(enum.StrEnum):
    """How `compliance` files an overdue buyer."""

    VIOLATION = "violation"
    """Past the limit because something is wrong: archive failing, feature disabled, mask or
    re-mask due but not done. Needs a person."""
    HOLD = "hold"
    """Past one order's limit, but another order or a young document keeps the data legally."""


@dataclass(frozen=True)
class ComplianceFinding:
    finding: Finding
    reasons: tuple[str, ...]
    """What keeps the buyer's data, naming the orders and documents that hold it."""
    blockers: tuple[str, ...]
    """The same without names (`compliance_reasons`): for counting buyers by reason."""
    holds: tuple[Hold, ...]
    since: date
    """The first local day the buyer's data was past a 30-day limit."""
    expected_mask_date: date | None
    """The local day from which the nightly run masks the buyer; None when nobody can tell
    (an order still open, the feature disabled)."""


def expected_mask_date(c: CustomerFacts, cutoffs: Cutoffs, zone: ZoneInfo) -> date | None:
    """The buyer's own mask date: the local day from which the nightly run masks (or
    re-masks) them, once every hold has ended and the archive can be current; today when that
    is already past. None for a buyer who is masked, not Amazon's, or whose date is unknown."""
    if not c.is_amazon or c.is_masked or not c.feature_enabled:
        return None
    if c.retrieved_at is not None:
        due = due_on(c.retrieved_at, REMASK_AFTER_DAYS, zone)
    else:
        if not c.orders or _open_orders(c):
            return None
        events = [o.closed_at for o in c.orders if o.closed_at is not None]
        due = max(due_on(e, MASK_AFTER_DAYS, zone) for e in [*events, *c.document_dates])
    if c.archive_failed_at is not None and not c.archive_is_current:
        due = max(due, local_date(retry_at(c.archive_failed_at, zone), zone))
    return max(due, local_date(cutoffs.as_of, zone))


def compliance_finding(
    c: CustomerFacts, cutoffs: Cutoffs, zone: ZoneInfo
) -> ComplianceFinding | None:
    """Files an overdue buyer as a violation or a hold; None when the buyer is not overdue.

    A legal hold (open order, order or document younger than 30 days) makes it a hold even
    when something else is wrong too: that is named in the reasons, and becomes a violation
    when the hold ends. A retrieved buyer past the re-mask day is always a violation."""
    if not overdue(c, cutoffs):
        return None
    if c.retrieved_at is not None:
        reasons = tuple(compliance_reasons(c, cutoffs))
        return ComplianceFinding(
            Finding.VIOLATION,
            reasons,
            reasons,
            (),
            due_on(c.retrieved_at, REMASK_AFTER_DAYS, zone),
            expected_mask_date(c, cutoffs, zone),
        )
    found = holds(c, cutoffs, zone)
    named: list[str] = []
    for blocker in mask_blockers(c, cutoffs):
        if blocker in LEGAL_HOLDS:
            named += [h.describe() for h in found if h.blocker is blocker]
        else:
            named.append(_reason(blocker, c))
    oldest = min(o.closed_at for o in c.orders if o.closed_at is not None)
    return ComplianceFinding(
        Finding.HOLD if found else Finding.VIOLATION,
        tuple(named or ["mask due at the next run"]),
        tuple(compliance_reasons(c, cutoffs)),
        tuple(found),
        due_on(oldest, MASK_AFTER_DAYS, zone),
        expected_mask_date(c, cutoffs, zone),
    )


def order_state(
    c: CustomerFacts, order: OrderFacts, is_amazon_order: bool, cutoffs: Cutoffs
) -> RetentionState:
    """The state one order shows; derived from facts, so it is right between runs too."""
    if order.masked:
        return RetentionState.MASKED
    if c.is_retrieved:
        return RetentionState.RETRIEVED
    if not is_amazon_order or order.closed_at is None:
        return RetentionState.ACTIVE
    if c.archive_is_current:
        return RetentionState.ARCHIVED
    if c.archive_failed_at is not None and not c.archive_backoff_over(cutoffs):
        return RetentionState.ARCHIVE_FAILED
    if c.feature_enabled and order.closed_at < cutoffs.archive_before:
        return RetentionState.READY_FOR_ARCHIVING
    return RetentionState.ACTIVE


def validate_retrieval_reason(reason: str) -> str:
    """The reason lands in the customer history: required, at most 50 characters."""
    cleaned = reason.strip()
    if not cleaned:
        raise ValueError("a reason is required (1 to 50 characters)")
    if "\x00" in cleaned:
        raise ValueError("the reason must not contain NUL characters")
    if len(cleaned) > MAX_RETRIEVAL_REASON_LENGTH:
        raise ValueError(
            f"the reason has {len(cleaned)} characters; at most "
            f"{MAX_RETRIEVAL_REASON_LENGTH} are allowed"
        )
    return cleaned


def check_not_in_future(what: str, instant: datetime, now: datetime) -> None:
    """Refuse an instant later than now (beyond the allowed clock skew)."""
    if instant > now + MAX_CLOCK_SKEW:
        raise InvalidInput(
            f"the {what} {instant.isoformat()} is in the future (now is {now.isoformat()}); "
            "give an instant that has happened"
        )


def check_retrieval_time(at: datetime, last_masked_at: datetime, now: datetime) -> None:
    """A retrieval is dated between the buyer's (latest) masking and now: earlier, its data
    was not masked yet; later, the re-mask 30 days after it would be postponed at will."""
    if at < last_masked_at:
        raise InvalidInput(
            f"the retrieval time {at.isoformat()} is before the buyer was masked "
            f"({last_masked_at.isoformat()}); a retrieval is dated between the buyer's "
            "masking and now"
        )
    check_not_in_future("retrieval time", at, now)
