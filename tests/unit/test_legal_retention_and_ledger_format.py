"""Legal retention per document kind (one hour either side of each cut-off, and the set-based
twin agreeing with the per-document rule), and the key ledger's object format."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shelflife.adapters.archive.ledger import (
    ledger_key,
    pack_ledger,
    read_ledger,
    segment_of_ledger_key,
)
from shelflife.domain.errors import ArchiveCorrupt
from shelflife.domain.legal_retention import DocumentKind, KeptDocument, LegalRetention, still_kept
from shelflife.domain.ports import LedgerEntry, WrappedKey

BERLIN = ZoneInfo("Europe/Berlin")
RULES = LegalRetention()
NEW_YEAR_2037 = datetime(2036, 12, 31, 23, tzinfo=UTC)
"""Midnight of 1 January 2037 in Berlin."""
HOUR = timedelta(hours=1)


def test_an_invoice_is_kept_until_the_end_of_the_tenth_year_after_its_own() -> None:
    made = datetime(2026, 3, 2, 9, tzinfo=UTC)

    assert RULES.kept_until(DocumentKind.INVOICE, made, BERLIN) == NEW_YEAR_2037


def test_the_year_of_a_document_is_its_year_in_the_shops_time_zone() -> None:
    new_year_eve = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January 2027 in Berlin

    assert RULES.kept_until(DocumentKind.CREDIT, new_year_eve, BERLIN) == datetime(
        2037, 12, 31, 23, tzinfo=UTC
    )
    assert RULES.kept_until(DocumentKind.CREDIT, new_year_eve, ZoneInfo("UTC")) == datetime(
        2037, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("now", "kept"),
    [(NEW_YEAR_2037 - HOUR, True), (NEW_YEAR_2037 + HOUR, False)],
)
def test_an_invoice_of_2026_is_kept_one_hour_before_new_year_2037_and_not_one_hour_after(
    now: datetime, kept: bool
) -> None:
    invoice = (DocumentKind.INVOICE, "RE-1", datetime(2026, 6, 1, tzinfo=UTC))

    assert bool(still_kept(RULES, [invoice], BERLIN, now)) is kept


def test_orders_are_kept_six_years_by_default_and_each_kind_can_be_configured() -> None:
    made = datetime(2026, 6, 1, tzinfo=UTC)
    rules = LegalRetention(invoice_years=8, credit_years=7, order_years=2)

    assert RULES.kept_until(DocumentKind.ORDER, made, BERLIN).year == 2032
    assert [rules.kept_until(kind, made, BERLIN).year for kind in DocumentKind] == [
        2034,
        2033,
        2028,
    ]


def test_the_document_kept_longest_comes_first() -> None:
    documents = [
        (DocumentKind.ORDER, "302-1", datetime(2026, 6, 1, tzinfo=UTC)),
        (DocumentKind.INVOICE, "RE-1", datetime(2026, 6, 2, tzinfo=UTC)),
        (DocumentKind.CREDIT, "GS-1", datetime(2025, 6, 2, tzinfo=UTC)),
    ]

    kept = still_kept(RULES, documents, BERLIN, datetime(2030, 1, 1, tzinfo=UTC))

    assert kept == [
        KeptDocument(DocumentKind.INVOICE, "RE-1", NEW_YEAR_2037),
        KeptDocument(DocumentKind.CREDIT, "GS-1", datetime(2035, 12, 31, 23, tzinfo=UTC)),
        KeptDocument(DocumentKind.ORDER, "302-1", datetime(2032, 12, 31, 23, tzinfo=UTC)),
    ]


def test_the_set_based_cut_off_agrees_with_the_per_document_rule_on_random_instants() -> None:
    rng = random.Random(7)
    zones = [BERLIN, ZoneInfo("UTC"), ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Tokyo")]
    start = datetime(2000, 1, 1, tzinfo=UTC)
    for _ in range(5000):
        zone = rng.choice(zones)
        kind = rng.choice(list(DocumentKind))
        made = start + timedelta(hours=rng.randrange(0, 24 * 365 * 30))
        now = made + timedelta(hours=rng.randrange(0, 24 * 365 * 15))
        expired = made < RULES.expired_before(kind, now, zone)
        assert expired == (RULES.kept_until(kind, made, zone) <= now), (kind, made, now, zone)


ENTRIES = [
    LedgerEntry(7, 2, WrappedKey("mk-1", b"\x00wrapped-7")),
    LedgerEntry(3, 1, WrappedKey("mk-1", b"\xffwrapped-3")),
]
SEGMENT = "segments/2026/04/02/010203-0123456789abcdef.sls"


def test_a_ledger_object_reads_back_its_entries_in_customer_order() -> None:
    data = pack_ledger(SEGMENT, ENTRIES)

    assert read_ledger(SEGMENT, data) == [ENTRIES[1], ENTRIES[0]]
    assert ledger_key(SEGMENT) == f"ledger/{SEGMENT}.keys"
    assert segment_of_ledger_key(ledger_key(SEGMENT)) == SEGMENT
    assert segment_of_ledger_key(SEGMENT) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", f"key ledger of {SEGMENT} is damaged"),
        (
            b'{"format": 1, "segment": "' + SEGMENT.encode() + b'"}',
            f"key ledger of {SEGMENT} is damaged",
        ),
        (
            pack_ledger("segments/2026/04/02/010203-ffffffffffffffff.sls", ENTRIES),
            f"key ledger of {SEGMENT} names another segment",
        ),
        (
            b'{"format": 2, "segment": "x", "keys": []}',
            f"key ledger of {SEGMENT}: format 2 unknown",
        ),
        (
            b'{"format": 1, "segment": "' + SEGMENT.encode() + b'", "keys": [[1, 1, "k", "!!"]]}',
            f"key ledger of {SEGMENT} is damaged",
        ),
        (  # int() of infinity raises OverflowError
            b'{"format": 1, "segment": "' + SEGMENT.encode() + b'", "keys": [[1e999, 1, "k", ""]]}',
            f"key ledger of {SEGMENT} is damaged",
        ),
        (b"[" * 100_000 + b"]" * 100_000, f"key ledger of {SEGMENT} is damaged"),  # too deep
    ],
)
def test_a_damaged_or_misplaced_ledger_object_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveCorrupt) as refused:
        read_ledger(SEGMENT, data)

    assert str(refused.value) == message
