"""The retention policy as pure functions: rows one hour either side of every cut-off.

Calendar days are counted in the shop's time zone, so every cut-off is a local midnight. The
nightly run is pinned at 02:00 Berlin time on 2026-04-15 unless a test needs another instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shelflife.domain.policy import (
    ARCHIVE_AFTER_DAYS,
    MASK_AFTER_DAYS,
    REMASK_AFTER_DAYS,
    CustomerFacts,
    Cutoffs,
    MaskBlocker,
    OrderFacts,
    RetentionState,
    can_mask,
    can_remask,
    compliance_reasons,
    due_on,
    is_retry,
    mask_blockers,
    needs_archive,
    order_state,
    overdue,
    validate_retrieval_reason,
)

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
UTC_ZONE = ZoneInfo("UTC")
HOUR = timedelta(hours=1)

AS_OF = datetime(2026, 4, 15, 2, 0, tzinfo=BERLIN)
CUT = Cutoffs.for_shop(AS_OF, BERLIN)
ARCHIVE_CUT = datetime(2026, 3, 17, 23, 0, tzinfo=UTC)
"""Local midnight (CET) that starts 2026-03-18: shipped before it means 29+ days old."""
MASK_CUT = datetime(2026, 3, 16, 23, 0, tzinfo=UTC)
"""Local midnight (CET) that starts 2026-03-17: shipped before it means 30+ days old."""
LONG_AGO = MASK_CUT - timedelta(days=10)
RECENTLY = AS_OF - timedelta(days=3)

OPEN = OrderFacts(shipped_at=None, cancelled_at=None)


def shipped(at: datetime) -> OrderFacts:
    return OrderFacts(shipped_at=at, cancelled_at=None)


def cancelled(at: datetime) -> OrderFacts:
    return OrderFacts(shipped_at=None, cancelled_at=at)


def buyer(
    *orders: OrderFacts,
    documents: tuple[datetime, ...] = (),
    feature_enabled: bool = True,
    is_amazon: bool = True,
    pii_revision: int = 1,
    archived_revision: int | None = None,
    archive_failed_at: datetime | None = None,
    masked_at: datetime | None = None,
    retrieved_at: datetime | None = None,
) -> CustomerFacts:
    return CustomerFacts(
        is_amazon=is_amazon,
        feature_enabled=feature_enabled,
        orders=orders,
        document_dates=documents,
        pii_revision=pii_revision,
        archived_revision=archived_revision,
        archive_failed_at=archive_failed_at,
        masked_at=masked_at,
        retrieved_at=retrieved_at,
    )


def archived(*orders: OrderFacts, documents: tuple[datetime, ...] = ()) -> CustomerFacts:
    """A buyer whose current PII is in a verified archive copy."""
    return buyer(*orders, documents=documents, pii_revision=2, archived_revision=2)


def retrieved(at: datetime, *, archived_revision: int | None = 2) -> CustomerFacts:
    """A buyer masked long ago whose PII was restored from the archive at `at`."""
    return buyer(
        OrderFacts(shipped_at=LONG_AGO, cancelled_at=None),
        pii_revision=2,
        archived_revision=archived_revision,
        masked_at=LONG_AGO + timedelta(days=31),
        retrieved_at=at,
    )


# --- the cut-off instants -------------------------------------------------------------------


def test_cutoffs_are_local_midnights_29_and_30_days_back_and_retry_is_today() -> None:
    cut = Cutoffs.for_shop(AS_OF, BERLIN)

    assert cut == Cutoffs(
        as_of=AS_OF,
        archive_before=ARCHIVE_CUT,
        mask_before=MASK_CUT,
        remask_before=MASK_CUT,
        retry_failed_before=datetime(2026, 4, 14, 22, 0, tzinfo=UTC),  # 00:00 CEST today
    )


def test_due_dates_count_calendar_days_in_the_shop_zone() -> None:
    late_evening = datetime(2026, 3, 17, 23, 30, tzinfo=BERLIN)

    assert due_on(late_evening, ARCHIVE_AFTER_DAYS, BERLIN) == date(2026, 4, 15)
    assert due_on(late_evening, MASK_AFTER_DAYS, BERLIN) == date(2026, 4, 16)
    assert due_on(late_evening, MASK_AFTER_DAYS, UTC_ZONE) == date(2026, 4, 16)
    assert due_on(datetime(2026, 3, 18, 0, 30, tzinfo=BERLIN), MASK_AFTER_DAYS, BERLIN) == date(
        2026, 4, 17
    )


@pytest.mark.parametrize(
    "as_of",
    [
        datetime(2026, 4, 15, 0, 0, tzinfo=BERLIN),
        datetime(2026, 4, 15, 12, 0, tzinfo=BERLIN),
        datetime(2026, 4, 15, 23, 59, 59, tzinfo=BERLIN),
    ],
    ids=["local-midnight", "local-noon", "last-second-of-the-day"],
)
def test_cutoffs_depend_only_on_the_local_date_of_the_run(as_of: datetime) -> None:
    cut = Cutoffs.for_shop(as_of, BERLIN)

    assert (cut.archive_before, cut.mask_before, cut.remask_before) == (
        ARCHIVE_CUT,
        MASK_CUT,
        MASK_CUT,
    )
    assert cut.retry_failed_before == datetime(2026, 4, 14, 22, 0, tzinfo=UTC)


# --- archive at 29 days ---------------------------------------------------------------------


def test_order_shipped_an_hour_before_the_archive_cutoff_is_archived() -> None:
    assert needs_archive(buyer(shipped(ARCHIVE_CUT - HOUR)), CUT) is True


def test_order_shipped_an_hour_after_the_archive_cutoff_is_not_archived_yet() -> None:
    assert needs_archive(buyer(shipped(ARCHIVE_CUT + HOUR)), CUT) is False


def test_open_order_alone_is_never_archived() -> None:
    assert needs_archive(buyer(OPEN), CUT) is False


def test_non_amazon_buyer_is_never_archived() -> None:
    assert needs_archive(buyer(shipped(LONG_AGO), is_amazon=False), CUT) is False


def test_buyer_with_a_current_archive_copy_is_not_archived_again() -> None:
    assert needs_archive(archived(shipped(LONG_AGO)), CUT) is False


def test_masked_buyer_is_not_archived_again() -> None:
    masked = buyer(shipped(LONG_AGO), masked_at=LONG_AGO + timedelta(days=31))

    assert needs_archive(masked, CUT) is False


# --- retry one calendar day after a failure ------------------------------------------------

TODAY_STARTS = datetime(2026, 4, 14, 22, 0, tzinfo=UTC)
"""Local midnight (CEST) that starts the run's day, 2026-04-15."""


def test_archive_failed_an_hour_before_local_midnight_is_retried_today() -> None:
    failed = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS - HOUR)

    assert (needs_archive(failed, CUT), is_retry(failed, CUT)) == (True, True)


def test_archive_failed_an_hour_after_local_midnight_waits_for_tomorrow() -> None:
    failed = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS + HOUR)

    assert (needs_archive(failed, CUT), is_retry(failed, CUT)) == (False, False)


def test_last_nights_failure_is_retried_by_a_run_that_starts_a_minute_earlier() -> None:
    failed = buyer(
        shipped(LONG_AGO), archive_failed_at=AS_OF - timedelta(hours=24) + timedelta(minutes=1)
    )

    assert is_retry(failed, CUT) is True


def test_first_archive_attempt_is_not_a_retry() -> None:
    first = buyer(shipped(LONG_AGO))

    assert (needs_archive(first, CUT), is_retry(first, CUT)) == (True, False)


# --- mask at 30 days ------------------------------------------------------------------------


def test_archived_buyer_shipped_an_hour_before_the_mask_cutoff_is_masked() -> None:
    c = archived(shipped(MASK_CUT - HOUR))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (True, [])


def test_archived_buyer_shipped_an_hour_after_the_mask_cutoff_is_not_masked() -> None:
    c = archived(shipped(MASK_CUT + HOUR))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.YOUNG_ORDER])


def test_unarchived_buyer_past_the_mask_cutoff_is_not_masked() -> None:
    c = buyer(shipped(MASK_CUT - HOUR))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.NOT_ARCHIVED])


def test_buyer_without_orders_is_not_masked() -> None:
    assert can_mask(archived(), CUT) is False


def test_non_amazon_buyer_is_never_masked() -> None:
    shop_customer = CustomerFacts(
        is_amazon=False,
        feature_enabled=True,
        orders=(shipped(LONG_AGO),),
        document_dates=(),
        pii_revision=1,
        archived_revision=1,
        archive_failed_at=None,
        masked_at=None,
        retrieved_at=None,
    )

    assert can_mask(shop_customer, CUT) is False


def test_already_masked_buyer_is_not_masked_again() -> None:
    c = buyer(shipped(LONG_AGO), archived_revision=1, masked_at=LONG_AGO + timedelta(days=31))

    assert can_mask(c, CUT) is False


# --- open orders, young invoices and credits ------------------------------------------------


def test_open_order_blocks_masking_of_an_otherwise_due_buyer() -> None:
    c = archived(shipped(LONG_AGO), OPEN)

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.OPEN_ORDER])


def test_open_order_does_not_stop_archiving_of_an_old_shipment() -> None:
    assert needs_archive(buyer(shipped(LONG_AGO), OPEN), CUT) is True


def test_invoice_an_hour_older_than_30_days_allows_masking() -> None:
    c = archived(shipped(LONG_AGO), documents=(MASK_CUT - HOUR,))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (True, [])


def test_invoice_an_hour_younger_than_30_days_blocks_masking() -> None:
    c = archived(shipped(LONG_AGO), documents=(MASK_CUT + HOUR,))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.YOUNG_INVOICE])


def test_young_credit_blocks_masking_even_when_its_invoice_is_old() -> None:
    old_invoice, young_credit = LONG_AGO, MASK_CUT + HOUR
    c = archived(shipped(LONG_AGO), documents=(old_invoice, young_credit))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.YOUNG_INVOICE])


def test_credit_an_hour_older_than_30_days_allows_masking() -> None:
    c = archived(shipped(LONG_AGO), documents=(LONG_AGO, MASK_CUT - HOUR))

    assert can_mask(c, CUT) is True


def test_young_invoice_does_not_delay_archiving() -> None:
    assert needs_archive(buyer(shipped(LONG_AGO), documents=(RECENTLY,)), CUT) is True


# --- cancelled orders -----------------------------------------------------------------------


def test_cancelled_never_shipped_order_closes_at_cancellation() -> None:
    assert cancelled(LONG_AGO).closed_at == LONG_AGO


def test_shipped_order_closes_at_shipping_even_if_cancelled_later() -> None:
    order = OrderFacts(shipped_at=LONG_AGO, cancelled_at=RECENTLY)

    assert order.closed_at == LONG_AGO


def test_cancellation_an_hour_before_the_archive_cutoff_is_archived() -> None:
    assert needs_archive(buyer(cancelled(ARCHIVE_CUT - HOUR)), CUT) is True


def test_cancellation_an_hour_after_the_archive_cutoff_is_not_archived_yet() -> None:
    assert needs_archive(buyer(cancelled(ARCHIVE_CUT + HOUR)), CUT) is False


def test_cancellation_an_hour_before_the_mask_cutoff_allows_masking() -> None:
    c = archived(cancelled(MASK_CUT - HOUR))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (True, [])


def test_cancellation_an_hour_after_the_mask_cutoff_blocks_masking() -> None:
    c = archived(cancelled(MASK_CUT + HOUR))

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.YOUNG_ORDER])


def test_shipped_then_cancelled_order_is_masked_by_its_shipping_date() -> None:
    c = archived(OrderFacts(shipped_at=MASK_CUT - HOUR, cancelled_at=MASK_CUT + HOUR))

    assert can_mask(c, CUT) is True


# --- one old and one young order ------------------------------------------------------------


def test_buyer_with_an_old_and_a_young_order_is_archived() -> None:
    c = buyer(shipped(LONG_AGO), shipped(RECENTLY))

    assert needs_archive(c, CUT) is True


def test_buyer_with_an_old_and_a_young_order_is_archived_but_not_masked() -> None:
    old, young = shipped(LONG_AGO), shipped(RECENTLY)
    c = archived(old, young)

    assert needs_archive(c, CUT) is False
    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.YOUNG_ORDER])
    assert order_state(c, old, True, CUT) is RetentionState.ARCHIVED
    assert order_state(c, young, True, CUT) is RetentionState.ARCHIVED
    assert overdue(c, CUT) is True
    assert compliance_reasons(c, CUT) == ["order shipped less than 30 days ago"]


# --- the feature switch ---------------------------------------------------------------------


def test_disabled_feature_blocks_archiving_masking_and_the_due_states() -> None:
    order = shipped(LONG_AGO)
    c = buyer(order, feature_enabled=False)

    assert needs_archive(c, CUT) is False
    assert is_retry(c, CUT) is False
    assert can_mask(c, CUT) is False
    assert mask_blockers(c, CUT) == [MaskBlocker.FEATURE_DISABLED, MaskBlocker.NOT_ARCHIVED]
    assert order_state(c, order, True, CUT) is RetentionState.ACTIVE


def test_disabled_feature_blocks_masking_of_an_archived_buyer() -> None:
    c = buyer(shipped(LONG_AGO), feature_enabled=False, archived_revision=1)

    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.FEATURE_DISABLED])


def test_disabled_feature_blocks_remasking() -> None:
    c = CustomerFacts(
        is_amazon=True,
        feature_enabled=False,
        orders=(shipped(LONG_AGO),),
        document_dates=(),
        pii_revision=2,
        archived_revision=2,
        archive_failed_at=None,
        masked_at=LONG_AGO + timedelta(days=31),
        retrieved_at=MASK_CUT - timedelta(days=5),
    )

    assert can_remask(c, CUT) is False
    assert compliance_reasons(c, CUT) == ["feature disabled"]


def test_disabled_feature_is_reported_as_the_compliance_reason() -> None:
    c = buyer(shipped(LONG_AGO), feature_enabled=False)

    assert overdue(c, CUT) is True
    assert compliance_reasons(c, CUT) == [
        "feature disabled",
        "no verified archive of the current data yet",
    ]


# --- the archive must hold the current PII --------------------------------------------------


def test_archive_of_an_older_revision_blocks_masking_and_asks_for_a_new_archive() -> None:
    order = shipped(LONG_AGO)
    c = buyer(order, pii_revision=3, archived_revision=2)

    assert c.archive_is_current is False
    assert (can_mask(c, CUT), mask_blockers(c, CUT)) == (False, [MaskBlocker.NOT_ARCHIVED])
    assert needs_archive(c, CUT) is True
    assert order_state(c, order, True, CUT) is RetentionState.READY_FOR_ARCHIVING


def test_failing_archive_is_named_with_its_time_in_the_compliance_reasons() -> None:
    failed_at = AS_OF - 2 * HOUR
    c = buyer(shipped(LONG_AGO), OPEN, archive_failed_at=failed_at)

    assert mask_blockers(c, CUT) == [MaskBlocker.OPEN_ORDER, MaskBlocker.ARCHIVE_FAILING]
    assert compliance_reasons(c, CUT) == [
        "open order",
        "archive failing since 2026-04-15T00:00:00+02:00",
    ]


def test_due_buyer_with_no_blocker_is_reported_as_mask_due() -> None:
    c = archived(shipped(LONG_AGO))

    assert compliance_reasons(c, CUT) == ["mask due at the next run"]


# --- overdue (what compliance lists) --------------------------------------------------------


def test_buyer_shipped_an_hour_before_the_mask_cutoff_is_overdue() -> None:
    assert overdue(buyer(shipped(MASK_CUT - HOUR)), CUT) is True


def test_buyer_shipped_an_hour_after_the_mask_cutoff_is_not_overdue() -> None:
    assert overdue(buyer(shipped(MASK_CUT + HOUR)), CUT) is False


def test_masked_and_non_amazon_buyers_are_never_overdue() -> None:
    masked = buyer(shipped(LONG_AGO), archived_revision=1, masked_at=MASK_CUT)
    shop_customer = buyer(shipped(LONG_AGO), is_amazon=False)

    assert (overdue(masked, CUT), overdue(shop_customer, CUT)) == (False, False)


# --- re-mask 30 calendar days after retrieval -----------------------------------------------


def test_buyer_retrieved_an_hour_before_the_remask_cutoff_is_remasked() -> None:
    c = retrieved(MASK_CUT - HOUR)

    assert (can_remask(c, CUT), overdue(c, CUT)) == (True, True)
    assert compliance_reasons(c, CUT) == ["re-mask due at the next run"]


def test_buyer_retrieved_an_hour_after_the_remask_cutoff_is_not_remasked_yet() -> None:
    c = retrieved(MASK_CUT + HOUR)

    assert (can_remask(c, CUT), overdue(c, CUT)) == (False, False)


def test_remask_is_due_on_the_30th_local_calendar_day_after_retrieval() -> None:
    retrieved_at = datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)
    c = retrieved(retrieved_at)
    last_minute_before = datetime(2026, 3, 31, 23, 59, tzinfo=BERLIN)
    first_minute_of_due_day = datetime(2026, 4, 1, 0, 0, tzinfo=BERLIN)

    assert due_on(retrieved_at, REMASK_AFTER_DAYS, BERLIN) == date(2026, 4, 1)
    assert can_remask(c, Cutoffs.for_shop(last_minute_before, BERLIN)) is False
    assert can_remask(c, Cutoffs.for_shop(first_minute_of_due_day, BERLIN)) is True


def test_retrieval_just_after_local_midnight_is_remasked_a_day_later() -> None:
    c = retrieved(datetime(2026, 3, 3, 0, 30, tzinfo=BERLIN))
    evening_before_due_day = Cutoffs.for_shop(datetime(2026, 4, 1, 23, 0, tzinfo=BERLIN), BERLIN)
    start_of_due_day = Cutoffs.for_shop(datetime(2026, 4, 2, 0, 0, tzinfo=BERLIN), BERLIN)

    assert (can_remask(c, evening_before_due_day), can_remask(c, start_of_due_day)) == (False, True)


def test_retrieved_buyer_whose_archive_is_not_current_waits_for_a_new_archive() -> None:
    c = retrieved(MASK_CUT - HOUR, archived_revision=1)

    assert can_remask(c, CUT) is False
    assert compliance_reasons(c, CUT) == ["retrieved data awaiting re-mask archive"]


def test_retrieved_buyer_is_neither_archived_again_nor_masked_by_the_first_mask_rule() -> None:
    c = retrieved(MASK_CUT - HOUR)

    assert (needs_archive(c, CUT), can_mask(c, CUT)) == (False, False)


# --- order_state ----------------------------------------------------------------------------

_MASKED_AT = LONG_AGO + timedelta(days=31)


@pytest.mark.parametrize(
    ("customer", "order", "is_amazon_order", "expected"),
    [
        pytest.param(buyer(OPEN), OPEN, True, RetentionState.ACTIVE, id="active-open"),
        pytest.param(
            buyer(shipped(ARCHIVE_CUT + HOUR)),
            shipped(ARCHIVE_CUT + HOUR),
            True,
            RetentionState.ACTIVE,
            id="active-shipped-an-hour-too-late-to-archive",
        ),
        pytest.param(
            buyer(shipped(LONG_AGO)),
            shipped(LONG_AGO),
            False,
            RetentionState.ACTIVE,
            id="active-not-an-amazon-order",
        ),
        pytest.param(
            buyer(shipped(ARCHIVE_CUT - HOUR)),
            shipped(ARCHIVE_CUT - HOUR),
            True,
            RetentionState.READY_FOR_ARCHIVING,
            id="ready-for-archiving",
        ),
        pytest.param(
            buyer(shipped(LONG_AGO), archive_failed_at=AS_OF - HOUR),
            shipped(LONG_AGO),
            True,
            RetentionState.ARCHIVE_FAILED,
            id="archive-failed-earlier-today",
        ),
        pytest.param(
            buyer(shipped(LONG_AGO), archive_failed_at=AS_OF - 25 * HOUR),
            shipped(LONG_AGO),
            True,
            RetentionState.READY_FOR_ARCHIVING,
            id="ready-again-25-hours-after-a-failure",
        ),
        pytest.param(
            archived(shipped(LONG_AGO)),
            shipped(LONG_AGO),
            True,
            RetentionState.ARCHIVED,
            id="archived",
        ),
        pytest.param(
            buyer(shipped(LONG_AGO), archived_revision=1, masked_at=_MASKED_AT),
            OrderFacts(shipped_at=LONG_AGO, cancelled_at=None, masked=True),
            True,
            RetentionState.MASKED,
            id="masked",
        ),
        pytest.param(
            retrieved(RECENTLY),
            shipped(LONG_AGO),
            True,
            RetentionState.RETRIEVED,
            id="retrieved",
        ),
    ],
)
def test_order_state_names_where_the_order_stands(
    customer: CustomerFacts,
    order: OrderFacts,
    is_amazon_order: bool,
    expected: RetentionState,
) -> None:
    assert order_state(customer, order, is_amazon_order, CUT) is expected


def test_order_state_values_are_the_six_documented_names() -> None:
    assert [s.value for s in RetentionState] == [
        "active",
        "ready_for_archiving",
        "archive_failed",
        "archived",
        "masked",
        "retrieved",
    ]


# --- time-zone edges ------------------------------------------------------------------------


def test_shipment_at_23_30_local_is_archived_a_night_before_one_at_00_30() -> None:
    late = datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)
    early_next_day = datetime(2026, 3, 3, 0, 30, tzinfo=BERLIN)
    night_29 = Cutoffs.for_shop(datetime(2026, 3, 31, 2, 0, tzinfo=BERLIN), BERLIN)
    night_30 = Cutoffs.for_shop(datetime(2026, 4, 1, 2, 0, tzinfo=BERLIN), BERLIN)

    # the same UTC date, but different calendar days in the shop's zone
    assert late.astimezone(UTC).date() == early_next_day.astimezone(UTC).date()
    assert night_29.archive_before == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert needs_archive(buyer(shipped(late)), night_29) is True
    assert needs_archive(buyer(shipped(early_next_day)), night_29) is False
    assert needs_archive(buyer(shipped(early_next_day)), night_30) is True


def test_shipment_at_23_30_local_is_masked_a_night_before_one_at_00_30() -> None:
    late = archived(shipped(datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)))
    early_next_day = archived(shipped(datetime(2026, 3, 3, 0, 30, tzinfo=BERLIN)))
    night_30 = Cutoffs.for_shop(datetime(2026, 4, 1, 2, 0, tzinfo=BERLIN), BERLIN)
    night_31 = Cutoffs.for_shop(datetime(2026, 4, 2, 2, 0, tzinfo=BERLIN), BERLIN)

    assert (can_mask(late, night_30), can_mask(early_next_day, night_30)) == (True, False)
    assert can_mask(early_next_day, night_31) is True


DST_SWITCHES = [
    pytest.param(
        # run day, midnight starting the switch day, midnight of the day after, its length
        datetime(2026, 4, 26, 2, 0, tzinfo=BERLIN),
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # 2026-03-29 00:00 CET
        datetime(2026, 3, 29, 22, 0, tzinfo=UTC),  # 2026-03-30 00:00 CEST
        timedelta(hours=23),
        id="spring",
    ),
    pytest.param(
        datetime(2026, 11, 22, 2, 0, tzinfo=BERLIN),
        datetime(2026, 10, 24, 22, 0, tzinfo=UTC),  # 2026-10-25 00:00 CEST
        datetime(2026, 10, 25, 23, 0, tzinfo=UTC),  # 2026-10-26 00:00 CET
        timedelta(hours=25),
        id="autumn",
    ),
]


@pytest.mark.parametrize(("run", "switch_day", "day_after", "length"), DST_SWITCHES)
def test_archive_cutoff_on_a_dst_switch_day_is_that_days_local_midnight(
    run: datetime, switch_day: datetime, day_after: datetime, length: timedelta
) -> None:
    cut = Cutoffs.for_shop(run, BERLIN)

    assert cut.archive_before == switch_day
    assert needs_archive(buyer(shipped(switch_day - HOUR)), cut) is True
    assert needs_archive(buyer(shipped(switch_day + HOUR)), cut) is False


@pytest.mark.parametrize(("run", "switch_day", "day_after", "length"), DST_SWITCHES)
def test_archive_cutoff_after_a_dst_switch_moves_by_the_switch_days_length(
    run: datetime, switch_day: datetime, day_after: datetime, length: timedelta
) -> None:
    before = Cutoffs.for_shop(run, BERLIN)
    cut = Cutoffs.for_shop(run + timedelta(days=1), BERLIN)

    assert cut.archive_before == day_after
    assert cut.archive_before - before.archive_before == length
    assert needs_archive(buyer(shipped(day_after - HOUR)), cut) is True
    assert needs_archive(buyer(shipped(day_after + HOUR)), cut) is False


@pytest.mark.parametrize(("run", "switch_day", "day_after", "length"), DST_SWITCHES)
def test_mask_cutoff_after_a_dst_switch_is_the_next_local_midnight(
    run: datetime, switch_day: datetime, day_after: datetime, length: timedelta
) -> None:
    cut = Cutoffs.for_shop(run + timedelta(days=2), BERLIN)

    assert cut.mask_before == day_after
    assert can_mask(archived(shipped(day_after - HOUR)), cut) is True
    assert can_mask(archived(shipped(day_after + HOUR)), cut) is False


def test_run_just_after_local_midnight_in_summer_time_uses_the_local_date() -> None:
    # 00:30 CEST on 2026-04-27 is still 2026-04-26 in UTC
    as_of = datetime(2026, 4, 26, 22, 30, tzinfo=UTC)

    cut = Cutoffs.for_shop(as_of, BERLIN)

    assert cut.archive_before == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.mark.parametrize(
    "run_day",
    _days(date(2026, 3, 20), date(2026, 5, 5)) + _days(date(2026, 10, 15), date(2026, 12, 1)),
    ids=str,
)
def test_every_cutoff_is_a_local_midnight_around_both_dst_switches(run_day: date) -> None:
    for clock_time in (time(0, 0), time(12, 0), time(23, 59)):
        cut = Cutoffs.for_shop(datetime.combine(run_day, clock_time, tzinfo=BERLIN), BERLIN)

        assert _local(cut.archive_before) == (run_day - timedelta(days=28), time(0, 0))
        assert _local(cut.mask_before) == (run_day - timedelta(days=29), time(0, 0))
        assert _local(cut.remask_before) == (run_day - timedelta(days=29), time(0, 0))


def _local(instant: datetime) -> tuple[date, time]:
    local = instant.astimezone(BERLIN)
    return local.date(), local.time()


def test_shop_in_another_zone_gets_its_own_cutoff_instant_for_the_same_run() -> None:
    as_of = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)

    berlin = Cutoffs.for_shop(as_of, BERLIN)
    los_angeles = Cutoffs.for_shop(as_of, LOS_ANGELES)

    assert berlin.archive_before == datetime(2026, 3, 17, 23, 0, tzinfo=UTC)
    assert los_angeles.archive_before == datetime(2026, 3, 18, 7, 0, tzinfo=UTC)
    assert los_angeles.mask_before == datetime(2026, 3, 17, 7, 0, tzinfo=UTC)
    assert los_angeles.retry_failed_before == datetime(2026, 4, 15, 7, 0, tzinfo=UTC)
    assert berlin.retry_failed_before == datetime(2026, 4, 14, 22, 0, tzinfo=UTC)


def test_same_shipment_is_due_in_los_angeles_but_not_yet_in_berlin() -> None:
    as_of = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
    # 2026-03-17 20:00 in Los Angeles, 2026-03-18 04:00 in Berlin
    c = buyer(shipped(datetime(2026, 3, 18, 3, 0, tzinfo=UTC)))

    assert needs_archive(c, Cutoffs.for_shop(as_of, LOS_ANGELES)) is True
    assert needs_archive(c, Cutoffs.for_shop(as_of, BERLIN)) is False


def test_run_date_is_the_shops_local_date_not_the_utc_date() -> None:
    # 22:00 on 2026-04-14 in Los Angeles is already 2026-04-15 in UTC and in Berlin
    as_of = datetime(2026, 4, 15, 5, 0, tzinfo=UTC)

    cut = Cutoffs.for_shop(as_of, LOS_ANGELES)

    assert cut.archive_before == datetime(2026, 3, 17, 7, 0, tzinfo=UTC)


# --- the retrieval reason -------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_retrieval_reason_must_not_be_empty(reason: str) -> None:
    with pytest.raises(ValueError, match=r"^a reason is required \(1 to 50 characters\)$"):
        validate_retrieval_reason(reason)


def test_retrieval_reason_of_50_characters_is_accepted() -> None:
    assert validate_retrieval_reason("r" * 50) == "r" * 50


def test_retrieval_reason_of_51_characters_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^the reason has 51 characters; at most 50 are allowed$"):
        validate_retrieval_reason("r" * 51)


def test_retrieval_reason_is_trimmed_before_it_is_counted() -> None:
    assert validate_retrieval_reason("  " + "r" * 50 + "  ") == "r" * 50
