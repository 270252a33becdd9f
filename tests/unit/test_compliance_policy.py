"""The operator's view of the policy: what tonight's run will do (`after_archive`), and how
`compliance` files an overdue buyer (violation or hold), names what holds it and says when it
will be masked. Rows one hour either side of every cut-off, as in test_policy.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from shelflife.domain.policy import (
    LEGAL_HOLDS,
    ComplianceFinding,
    CustomerFacts,
    Cutoffs,
    DocumentFacts,
    Finding,
    Hold,
    MaskBlocker,
    OrderFacts,
    after_archive,
    can_mask,
    can_remask,
    compliance_finding,
    compliance_reasons,
    expected_mask_date,
    mask_blockers,
    needs_archive,
    overdue,
)
from shelflife.domain.references import customer_ref, parse_customer_ref

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
AS_OF = datetime(2026, 4, 15, 2, 0, tzinfo=BERLIN)
CUT = Cutoffs.for_shop(AS_OF, BERLIN)
TODAY = date(2026, 4, 15)
MASK_CUT = datetime(2026, 3, 16, 23, 0, tzinfo=UTC)
"""Local midnight (CET) that starts 2026-03-17: closed before it means 30+ days old."""
TODAY_STARTS = datetime(2026, 4, 14, 22, 0, tzinfo=UTC)
"""Local midnight (CEST) that starts the run's day, 2026-04-15."""
LONG_AGO = MASK_CUT - timedelta(days=10)
NOT_ARCHIVED = MaskBlocker.NOT_ARCHIVED.value
YOUNG_ORDER = MaskBlocker.YOUNG_ORDER.value
YOUNG_DOCUMENT = MaskBlocker.YOUNG_INVOICE.value


def shipped(at: datetime, number: str = "302-0000000-0000001") -> OrderFacts:
    return OrderFacts(shipped_at=at, cancelled_at=None, number=number)


def open_order(number: str) -> OrderFacts:
    return OrderFacts(shipped_at=None, cancelled_at=None, number=number)


def buyer(
    *orders: OrderFacts,
    documents: tuple[DocumentFacts, ...] = (),
    archived: bool = False,
    feature_enabled: bool = True,
    archive_failed_at: datetime | None = None,
) -> CustomerFacts:
    return CustomerFacts(
        is_amazon=True,
        feature_enabled=feature_enabled,
        orders=orders,
        document_dates=tuple(sorted(d.created_at for d in documents)),
        pii_revision=2,
        archived_revision=2 if archived else None,
        archive_failed_at=archive_failed_at,
        masked_at=None,
        retrieved_at=None,
        documents=documents,
    )


def retrieved(at: datetime, *, archived: bool = True) -> CustomerFacts:
    return replace(
        buyer(shipped(LONG_AGO), archived=archived),
        archived_revision=2 if archived else 1,
        masked_at=LONG_AGO + timedelta(days=31),
        retrieved_at=at,
    )


# --- after_archive: what the mask steps see once tonight's archive step ran -----------------


def test_unarchived_buyer_an_hour_past_the_mask_cutoff_is_masked_tonight() -> None:
    c = buyer(shipped(MASK_CUT - HOUR))

    assert (can_mask(c, CUT), can_mask(after_archive(c, CUT), CUT)) == (False, True)


def test_unarchived_buyer_an_hour_short_of_the_mask_cutoff_is_archived_but_not_masked() -> None:
    c = buyer(shipped(MASK_CUT + HOUR))

    assert after_archive(c, CUT).archive_is_current is True
    assert can_mask(after_archive(c, CUT), CUT) is False


def test_archive_failed_an_hour_before_local_midnight_is_retried_and_masked_tonight() -> None:
    c = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS - HOUR)

    assert after_archive(c, CUT) == replace(c, archived_revision=2, archive_failed_at=None)
    assert can_mask(after_archive(c, CUT), CUT) is True


def test_archive_failed_an_hour_after_local_midnight_waits_and_is_not_masked_tonight() -> None:
    c = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS + HOUR)

    assert after_archive(c, CUT) == c
    assert can_mask(after_archive(c, CUT), CUT) is False


def test_retrieved_buyer_with_a_stale_copy_is_archived_and_remasked_tonight() -> None:
    due, not_yet = retrieved(MASK_CUT - HOUR, archived=False), retrieved(MASK_CUT + HOUR)

    assert (can_remask(due, CUT), can_remask(after_archive(due, CUT), CUT)) == (False, True)
    assert can_remask(after_archive(not_yet, CUT), CUT) is False


def test_buyer_of_a_disabled_shop_is_neither_archived_nor_masked_tonight() -> None:
    c = buyer(shipped(LONG_AGO), feature_enabled=False)

    assert after_archive(c, CUT) == c


# --- violations -------------------------------------------------------------------------------


def test_buyer_an_hour_past_the_mask_cutoff_with_nothing_holding_it_is_a_violation() -> None:
    c = buyer(shipped(MASK_CUT - HOUR))

    assert compliance_finding(c, CUT, BERLIN) == ComplianceFinding(
        Finding.VIOLATION, (NOT_ARCHIVED,), (NOT_ARCHIVED,), (), TODAY, TODAY
    )


def test_buyer_an_hour_short_of_the_mask_cutoff_is_not_filed() -> None:
    assert compliance_finding(buyer(shipped(MASK_CUT + HOUR)), CUT, BERLIN) is None


def test_failing_archive_is_a_violation_masked_after_tomorrows_retry() -> None:
    failed_today = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS + HOUR)
    failed_yesterday = buyer(shipped(LONG_AGO), archive_failed_at=TODAY_STARTS - HOUR)

    found = compliance_finding(failed_today, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons, found.expected_mask_date) == (
        Finding.VIOLATION,
        ("archive failing since 2026-04-14T23:00:00+00:00",),
        TODAY + timedelta(days=1),
    )
    assert expected_mask_date(failed_yesterday, CUT, BERLIN) == TODAY


def test_disabled_feature_is_a_violation_without_a_mask_date() -> None:
    c = buyer(shipped(LONG_AGO), archived=True, feature_enabled=False)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons, found.expected_mask_date) == (
        Finding.VIOLATION,
        ("feature disabled",),
        None,
    )


def test_archived_buyer_due_but_not_masked_is_a_violation_masked_today() -> None:
    c = buyer(shipped(LONG_AGO), archived=True)

    assert compliance_finding(c, CUT, BERLIN) == ComplianceFinding(
        Finding.VIOLATION,
        ("mask due at the next run",),
        ("mask due at the next run",),
        (),
        date(2026, 4, 6),  # LONG_AGO is 7 March, local time
        TODAY,
    )


def test_buyer_retrieved_an_hour_before_the_remask_cutoff_is_a_violation() -> None:
    c = retrieved(MASK_CUT - HOUR)

    assert compliance_finding(c, CUT, BERLIN) == ComplianceFinding(
        Finding.VIOLATION,
        ("re-mask due at the next run",),
        ("re-mask due at the next run",),
        (),
        TODAY,
        TODAY,
    )


def test_buyer_retrieved_an_hour_after_the_remask_cutoff_is_not_filed() -> None:
    c = retrieved(MASK_CUT + HOUR)

    assert compliance_finding(c, CUT, BERLIN) is None
    assert expected_mask_date(c, CUT, BERLIN) == TODAY + timedelta(days=1)


# --- holds ------------------------------------------------------------------------------------


def test_second_order_shipped_an_hour_short_of_the_cutoff_holds_the_buyer_until_its_day() -> None:
    c = buyer(shipped(LONG_AGO), shipped(MASK_CUT + HOUR, "302-0000000-0000002"), archived=True)

    assert compliance_finding(c, CUT, BERLIN) == ComplianceFinding(
        Finding.HOLD,
        (f"{YOUNG_ORDER}: 302-0000000-0000002",),
        (YOUNG_ORDER,),
        (Hold(MaskBlocker.YOUNG_ORDER, "order", "302-0000000-0000002", TODAY + timedelta(1)),),
        date(2026, 4, 6),  # LONG_AGO is 7 March, local time
        TODAY + timedelta(days=1),
    )


def test_second_order_shipped_an_hour_past_the_cutoff_holds_nothing() -> None:
    c = buyer(shipped(LONG_AGO), shipped(MASK_CUT - HOUR, "302-0000000-0000002"), archived=True)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.holds, found.expected_mask_date) == (Finding.VIOLATION, (), TODAY)


def test_invoice_an_hour_younger_than_30_days_holds_the_buyer_and_is_named() -> None:
    invoice = DocumentFacts("invoice", "RE-7", MASK_CUT + HOUR)
    c = buyer(shipped(LONG_AGO), documents=(invoice,), archived=True)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons, found.expected_mask_date) == (
        Finding.HOLD,
        (f"{YOUNG_DOCUMENT}: invoice RE-7",),
        TODAY + timedelta(days=1),
    )


def test_credit_an_hour_older_than_30_days_holds_nothing() -> None:
    credit = DocumentFacts("credit", "GS-7", MASK_CUT - HOUR)
    c = buyer(shipped(LONG_AGO), documents=(credit,), archived=True)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons) == (Finding.VIOLATION, ("mask due at the next run",))


def test_credit_an_hour_younger_than_30_days_holds_the_buyer() -> None:
    credit = DocumentFacts("credit", "GS-7", MASK_CUT + HOUR)
    c = buyer(shipped(LONG_AGO), documents=(credit,), archived=True)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons) == (Finding.HOLD, (f"{YOUNG_DOCUMENT}: credit GS-7",))


def test_open_order_holds_the_buyer_with_no_known_mask_date() -> None:
    c = buyer(shipped(LONG_AGO), open_order("302-0000000-0000009"), archived=True)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons, found.expected_mask_date) == (
        Finding.HOLD,
        ("open order: 302-0000000-0000009",),
        None,
    )


def test_hold_in_a_disabled_shop_stays_a_hold_and_names_the_disabled_feature() -> None:
    c = buyer(shipped(LONG_AGO), open_order("302-0000000-0000009"), feature_enabled=False)

    found = compliance_finding(c, CUT, BERLIN)

    assert found is not None
    assert (found.finding, found.reasons, found.expected_mask_date) == (
        Finding.HOLD,
        ("feature disabled", "open order: 302-0000000-0000009", NOT_ARCHIVED),
        None,
    )


def test_mask_date_is_the_last_hold_s_local_day_in_the_shop_zone() -> None:
    late_evening = datetime(2026, 4, 1, 23, 30, tzinfo=BERLIN)  # 21:30 UTC, still 1 April
    c = buyer(shipped(LONG_AGO), shipped(late_evening), archived=True)

    assert expected_mask_date(c, CUT, BERLIN) == date(2026, 5, 1)
    assert expected_mask_date(c, CUT, ZoneInfo("UTC")) == date(2026, 5, 1)
    assert expected_mask_date(c, CUT, ZoneInfo("Asia/Tokyo")) == date(2026, 5, 2)


def test_masked_and_shop_buyers_have_no_mask_date() -> None:
    masked = replace(buyer(shipped(LONG_AGO), archived=True), masked_at=MASK_CUT)
    shop_customer = replace(buyer(shipped(LONG_AGO)), is_amazon=False)

    assert expected_mask_date(masked, CUT, BERLIN) is None
    assert expected_mask_date(shop_customer, CUT, BERLIN) is None


# --- consistency with mask_blockers, on random buyers ------------------------------------------

OFFSETS = [-48 * HOUR, -HOUR, HOUR, 48 * HOUR]
"""Either side of the mask cut-off: closed or created this long before or after it."""
closings = st.none() | st.sampled_from(OFFSETS).map(lambda d: MASK_CUT + d)
documents = st.builds(
    DocumentFacts,
    st.sampled_from(["invoice", "credit"]),
    st.text("0123456789", min_size=1, max_size=4),
    st.sampled_from(OFFSETS).map(lambda d: MASK_CUT + d),
)


@st.composite
def buyers(draw: st.DrawFn) -> CustomerFacts:
    orders = draw(st.lists(closings, min_size=1, max_size=3))
    docs = tuple(draw(st.lists(documents, max_size=3)))
    return buyer(
        *(OrderFacts(at, None, number=f"30{i}-0000000-0000000") for i, at in enumerate(orders)),
        documents=docs,
        archived=draw(st.booleans()),
        feature_enabled=draw(st.booleans()),
        archive_failed_at=draw(st.none() | st.sampled_from(OFFSETS).map(lambda d: AS_OF + d)),
    )


@given(c=buyers())
def test_a_buyer_is_held_exactly_when_mask_blockers_name_a_legal_hold(c: CustomerFacts) -> None:
    found = compliance_finding(c, CUT, BERLIN)
    legal = [b for b in mask_blockers(c, CUT) if b in LEGAL_HOLDS]

    assert (found is not None) == overdue(c, CUT)
    if found is not None:
        assert (found.finding is Finding.HOLD) == bool(legal)
        assert sorted({h.blocker for h in found.holds}) == sorted(legal)
        assert found.blockers == tuple(compliance_reasons(c, CUT))
        if found.finding is Finding.VIOLATION and not needs_archive(c, CUT):
            assert can_mask(c, CUT) == (found.reasons == ("mask due at the next run",))


# --- the buyer reference ------------------------------------------------------------------------


def test_customer_reference_round_trips_and_refuses_anything_else() -> None:
    assert customer_ref(42) == "C42"
    assert [parse_customer_ref(t) for t in ("C42", "c42", " C42 ", "C0", "42", "C4x", "")] == [
        42,
        42,
        42,
        None,
        None,
        None,
        None,
    ]
