"""Retrieval on SQLite and PostgreSQL: what comes back, what stays masked, what is recorded,
and that a failed retrieval changes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from shelflife.adapters.archive.segments import pack_segment
from shelflife.adapters.db.tables import ArchiveCopy, Base, Customer, Order
from shelflife.adapters.keys.envelope import new_data_key, seal, seal_record
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    InvalidInput,
    KeyUnavailable,
    NotRetrievable,
    UnknownOrder,
)
from shelflife.domain.masking import MASKED_DATE, MASKED_EMAIL, MASKED_TEXT
from shelflife.domain.policy import MAX_CLOCK_SKEW
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import copy_plaintext, make_legacy
from tests.support.archive import data_key as buyer_data_key
from tests.support.builders import T0, at, days, iso, order
from tests.support.fakes import Counting, UnreachableArchive

NR = "302-1234567-1234567"
OTHER_NR = "303-7654321-7654321"
MASKED_AT = T0 + days(31)
RETRIEVED_AT = T0 + days(35)
PII_PARTS = (
    "customer",
    "addresses",
    "gift_message",
    "address_remarks",
    "shop_note",
    "invoices",
    "credits",
)
Dump = dict[str, list[tuple[Any, ...]]]


def _import(app: App, *records: dict[str, Any]) -> None:
    report = import_lines(app, [json.dumps(r, ensure_ascii=False) for r in records])
    assert report.refused == []


def _run(app: App, at: datetime) -> tuple[int, int, int]:
    report = run_retention(app.ports(), at)
    return report.archived, report.masked, report.remasked


def _masked(app: App, *orders: dict[str, Any]) -> None:
    """Import the orders (all of one buyer), enable retention and mask them."""
    _import(app, *orders)
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, MASKED_AT) == (1, 1, 0)


def _manual(kind: str, number: str, at: datetime) -> dict[str, Any]:
    number_key = "invoice_nr" if kind == "manual_invoice" else "credit_nr"
    return {
        "type": kind,
        "shop": "main",
        "customer_of_order": NR,
        number_key: number,
        "created_at": iso(at),
        "total": "4.00",
    }


def _pii_view(shown: dict[str, Any]) -> dict[str, Any]:
    return {k: shown[k] for k in PII_PARTS}


def _dump(app: App) -> Dump:
    """Every row of every table, in primary-key order."""
    with app.engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


# -- the reason -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        pytest.param("", "reason: a reason is required (1 to 50 characters)", id="empty"),
        pytest.param("   ", "reason: a reason is required (1 to 50 characters)", id="blank"),
        pytest.param(
            "x" * 51,
            "reason: the reason has 51 characters; at most 50 are allowed",
            id="51-chars",
        ),
    ],
)
def test_reason_outside_1_to_50_characters_is_refused_and_changes_nothing(
    app: App, reason: str, message: str
) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)

    with pytest.raises(InvalidInput) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, reason, "anna", RETRIEVED_AT)

    assert str(refused.value) == message
    assert _dump(app) == before


def test_reason_of_50_characters_is_stored_in_the_customer_history(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "x" * 50, "anna", RETRIEVED_AT)

    history = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")["customer_history"]
    assert history[-1]["text"] == "x" * 50


# -- what comes back --------------------------------------------------------------------------


def test_restores_order_pii_with_its_invoices_credits_and_manual_documents(app: App) -> None:
    full = order(NR, shipped_at=T0, invoiced_at=T0)
    full["credits"] = [
        {"credit_nr": "GS-1", "invoice_nr": f"RE-{NR}", "created_at": iso(T0), "total": "2.00"}
    ]
    _import(app, full, _manual("manual_invoice", "MR-1", T0), _manual("manual_credit", "MG-1", T0))
    original = _pii_view(show_order(app.ports(), NR, T0).model_dump(mode="json"))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, MASKED_AT) == (1, 1, 0)
    assert show_order(app.ports(), NR, MASKED_AT).customer.first_name == MASKED_TEXT

    result = retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    restored = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")
    assert _pii_view(restored) == original
    assert [(i["invoice_nr"], i["manual"]) for i in restored["invoices"]] == [
        (f"RE-{NR}", False),
        ("MR-1", True),
    ]
    assert [(c["credit_nr"], c["manual"]) for c in restored["credits"]] == [
        ("GS-1", False),
        ("MG-1", True),
    ]
    assert (result.order_nr, result.retrieved_at, result.restored_rows) == (NR, RETRIEVED_AT, 8)


def test_other_orders_of_the_buyer_stay_masked(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0), order(OTHER_NR, shipped_at=T0))

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    other = show_order(app.ports(), OTHER_NR, RETRIEVED_AT).model_dump(mode="json")
    assert other["retention"]["state"] == "masked"
    assert {a["city"] for a in other["addresses"]} == {MASKED_TEXT}
    assert other["gift_message"] == MASKED_TEXT
    assert (
        show_order(app.ports(), NR, RETRIEVED_AT).gift_message == "Alles Gute zum Geburtstag, Max!"
    )


def test_retrieval_is_recorded_with_time_user_and_reason(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "  Rücksendung  ", "anna", RETRIEVED_AT)

    assert show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")[
        "customer_history"
    ] == [
        {
            "recorded_at": MASKED_AT.isoformat(),
            "event": "masked",
            "user_name": "shelflife",
            "text": None,
        },
        {
            "recorded_at": RETRIEVED_AT.isoformat(),
            "event": "retrieved",
            "user_name": "anna",
            "text": "Rücksendung",
        },
    ]


def test_retrieved_order_shows_as_retrieved_and_read_only(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    retention = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")["retention"]
    assert retention["state"] == "retrieved"
    assert retention["read_only"] is True
    assert retention["retrieved_at"] == RETRIEVED_AT.isoformat()
    assert retention["remask_due"] == "2026-05-06"


# -- failures change nothing ------------------------------------------------------------------


def test_unreachable_archive_fails_and_changes_nothing(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)
    app.archive = UnreachableArchive()

    with pytest.raises(ArchiveUnavailable):
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert _dump(app) == before


def test_missing_key_file_fails_and_changes_nothing(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)
    app.key_path.unlink()
    fresh = build_app(app.settings, FixedClock(RETRIEVED_AT))

    try:
        with pytest.raises(KeyUnavailable) as failed:
            retrieve_order(fresh.ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)
    finally:
        fresh.close()

    assert "master key file" in str(failed.value)
    assert _dump(app) == before


@pytest.mark.parametrize(
    ("nr", "masked", "message"),
    [
        pytest.param(
            NR,
            False,
            f"order {NR!r} is not masked; its data is in the database already",
            id="amazon-not-masked",
        ),
        pytest.param(
            "SHOP-100001",
            True,
            "order 'SHOP-100001' is not an Amazon order; its data is never masked",
            id="shop-order",
        ),
    ],
)
def test_orders_that_are_not_masked_amazon_orders_are_not_retrievable(
    app: App, nr: str, masked: bool, message: str
) -> None:
    _import(app, order(nr, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    if masked:
        _run(app, MASKED_AT)
    before = _dump(app)

    with pytest.raises(NotRetrievable) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), nr, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == message
    assert _dump(app) == before


def test_an_order_retrieved_already_is_refused_with_the_date_and_changes_nothing(
    app: App,
) -> None:
    _masked(app, order(NR, shipped_at=T0), order(OTHER_NR, shipped_at=T0))
    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)
    later = RETRIEVED_AT + days(20)
    before = _dump(app)

    with pytest.raises(NotRetrievable) as refused:
        retrieve_order(at(app, later).ports(), NR, "noch einmal", "ben", later)

    assert str(refused.value) == (
        f"order {NR!r} was retrieved already on 2026-04-06; its data is in the database, "
        "read-only until it is masked again"
    )
    assert _dump(app) == before  # the re-mask stays due 30 days after the first retrieval
    # The buyer's other order, still masked, is retrieved as before.
    assert retrieve_order(at(app, later).ports(), OTHER_NR, "Rechnung", "ben", later).restored_rows


def test_unknown_order_is_reported(app: App) -> None:
    with pytest.raises(UnknownOrder):
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)


# -- several copies ---------------------------------------------------------------------------


def test_second_retrieval_merges_copies_and_returns_the_latest_values(app: App) -> None:
    first = order(NR, shipped_at=T0)
    other = order(OTHER_NR, ordered_at=T0 - days(1), shipped_at=T0)  # older: NR's data wins
    other["shipping_address"] = {**other["shipping_address"], "street": "Birkenweg"}
    _import(app, first, other)
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, T0 + days(29)) == (1, 0, 0)  # copy 1: city Köln
    moved = order(NR, shipped_at=T0)
    moved["billing_address"]["city"] = "Bonn-Beuel"
    _import(app, moved)
    assert _run(app, T0 + days(30)) == (1, 1, 0)  # copy 2: city Bonn-Beuel, then masked
    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Grund eins", "anna", RETRIEVED_AT)
    assert show_order(app.ports(), NR, RETRIEVED_AT).customer.city == "Bonn-Beuel"
    assert _run(app, RETRIEVED_AT + days(1)) == (1, 0, 0)  # copy 3: without the other order
    assert _run(app, RETRIEVED_AT + days(30)) == (0, 0, 1)
    second_at = RETRIEVED_AT + days(40)

    retrieve_order(at(app, second_at).ports(), OTHER_NR, "Grund zwei", "ben", second_at)

    shown = show_order(app.ports(), OTHER_NR, second_at).model_dump(mode="json")
    assert shown["customer"]["city"] == "Bonn-Beuel"
    assert {a["kind"]: a["street"] for a in shown["addresses"]} == {
        "billing": "Heidestraße",
        "shipping": "Birkenweg",
    }
    texts = [(h["event"], h["text"]) for h in shown["customer_history"]]
    assert texts == [
        ("masked", None),
        ("retrieved", "Grund eins"),
        ("remasked", None),
        ("retrieved", "Grund zwei"),
    ]
    assert (
        show_order(app.ports(), NR, second_at).model_dump(mode="json")["gift_message"]
        == MASKED_TEXT
    )


# -- only the buyer's own, recorded copy is restored ------------------------------------------


def _copies(app: App, nr: str) -> list[Any]:
    with app.engine.connect() as conn:
        return list(
            conn.execute(
                select(ArchiveCopy.__table__)
                .join(Order, Order.customer_id == ArchiveCopy.customer_id)
                .where(Order.order_nr_external == nr)
                .order_by(ArchiveCopy.revision)
            )
        )


def _object_path(app: App, object_key: str) -> Path:
    return app.settings.home / "archive" / object_key


def test_another_buyers_object_in_place_of_the_copy_is_refused_and_changes_nothing(
    app: App,
) -> None:
    """Observed: retrieval exited 0 with "0 records restored", marked A retrieved, and the
    next run archived the `***` placeholders as a newer copy that shadowed the genuine one."""
    _import(app, order(NR, shipped_at=T0), order(OTHER_NR, shipped_at=T0, suffix="-b"))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, MASKED_AT) == (2, 2, 0)
    for nr in (NR, OTHER_NR):  # whole objects of their own, as written before segments
        make_legacy(app, _copies(app, nr)[0])
    (copy_a,), (copy_b,) = _copies(app, NR), _copies(app, OTHER_NR)
    shutil.copyfile(_object_path(app, copy_b.object_key), _object_path(app, copy_a.object_key))
    before = _dump(app)

    with pytest.raises(ArchiveCorrupt) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == (
        f"archive copy {copy_a.object_key} does not belong to this buyer; nothing was changed "
        "(check the archive store for a replaced object)"
    )
    assert refused.value.exit_code == 1
    assert _dump(app) == before
    assert _run(app, RETRIEVED_AT + days(1)) == (0, 0, 0)
    assert _dump(app)["archive_copies"] == before["archive_copies"]


def test_a_record_moved_to_another_buyers_index_entry_is_refused_and_changes_nothing(
    app: App,
) -> None:
    _import(app, order(NR, shipped_at=T0), order(OTHER_NR, shipped_at=T0, suffix="-b"))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, MASKED_AT) == (2, 2, 0)
    (copy_a,), (copy_b,) = _copies(app, NR), _copies(app, OTHER_NR)
    assert copy_a.object_key == copy_b.object_key  # one batch, one segment
    with app.engine.begin() as conn:  # A's index entry now points at B's record, digest and all
        conn.execute(
            update(ArchiveCopy)
            .where(ArchiveCopy.id == copy_a.id)
            .values(
                record_offset=copy_b.record_offset,
                record_length=copy_b.record_length,
                ciphertext_sha256=copy_b.ciphertext_sha256,
            )
        )
    before = _dump(app)

    with pytest.raises(ArchiveCorrupt) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == (
        f"archive record {copy_a.object_key}@{copy_b.record_offset} does not belong to this "
        "buyer; nothing was changed (check the archive index for a moved record)"
    )
    assert _dump(app) == before


def test_retrieval_reads_only_its_records_byte_range_of_the_segment(app: App) -> None:
    others = [order(f"30{i}-1111111-1111111", shipped_at=T0, suffix=f"-{i}") for i in range(5)]
    original = order(NR, shipped_at=T0)
    _import(app, *others, original)
    expected = _pii_view(show_order(app.ports(), NR, T0).model_dump(mode="json"))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, MASKED_AT) == (6, 6, 0)
    (copy,) = _copies(app, NR)
    segment_size = len(app.archive.get(copy.object_key))
    counting = Counting(app.archive)
    app.archive = counting

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert (counting.gets, counting.puts) == ([], [])
    assert counting.ranges == [(copy.object_key, copy.record_offset, copy.record_length)]
    assert counting.bytes_read == copy.record_length < segment_size // 5
    shown = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")
    assert _pii_view(shown) == expected


def test_legacy_whole_object_copies_written_before_segments_are_still_retrieved(
    app: App,
) -> None:
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, T0 + days(29)) == (1, 0, 0)
    moved = order(NR, shipped_at=T0)
    moved["billing_address"]["city"] = "Bonn-Beuel"
    _import(app, moved)
    expected = _pii_view(show_order(app.ports(), NR, T0).model_dump(mode="json"))
    assert _run(app, MASKED_AT) == (1, 1, 0)
    first, second = _copies(app, NR)
    legacy_key = make_legacy(app, first)  # revision 1 as the old code wrote it, 2 in a segment
    counting = Counting(app.archive)
    app.archive = counting

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert counting.gets == [legacy_key]
    assert counting.ranges == [(second.object_key, second.record_offset, second.record_length)]
    shown = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")
    assert _pii_view(shown) == expected


def test_an_older_copy_of_the_buyer_in_place_of_the_newest_is_refused(app: App) -> None:
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert _run(app, T0 + days(29)) == (1, 0, 0)
    moved = order(NR, shipped_at=T0)
    moved["billing_address"]["city"] = "Bonn-Beuel"
    _import(app, moved)
    assert _run(app, MASKED_AT) == (1, 1, 0)
    first, second = _copies(app, NR)
    shutil.copyfile(_object_path(app, first.object_key), _object_path(app, second.object_key))
    before = _dump(app)

    with pytest.raises(ArchiveCorrupt) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == (
        f"archive record {second.object_key}@{second.record_offset} is not the recorded one; "
        "nothing was changed (check the archive store for a damaged or replaced segment)"
    )
    assert _dump(app) == before


def test_a_recorded_copy_that_restores_no_record_is_a_failure_and_changes_nothing(
    app: App,
) -> None:
    """Zero records restored is never a retrieval: here a copy of the right buyer and
    revision (and recorded digest) that holds none of the order's rows."""
    _masked(app, order(NR, shipped_at=T0))
    (copy,) = _copies(app, NR)
    empty = CustomerSnapshot(copy.customer_id, copy.revision).to_bytes()
    record = seal_record(
        buyer_data_key(app, copy.customer_id),
        app.keys.key_id,
        copy.customer_id,
        copy.revision,
        empty,
    )
    blob, (entry,) = pack_segment([(copy.customer_id, copy.revision, "k", record)], MASKED_AT)
    _object_path(app, copy.object_key).write_bytes(blob)
    with app.engine.begin() as conn:
        conn.execute(
            update(ArchiveCopy)
            .where(ArchiveCopy.id == copy.id)
            .values(
                ciphertext_sha256=entry.sha256,
                record_offset=entry.offset,
                record_length=entry.length,
            )
        )
    before = _dump(app)

    with pytest.raises(ArchiveCorrupt) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    assert str(refused.value) == (
        f"the archive copies of order {NR!r}'s buyer hold none of its records; nothing was changed"
    )
    assert _dump(app) == before


def _placeholders(snapshot: CustomerSnapshot) -> list[tuple[str, int, str]]:
    return [
        (table, row_id, column)
        for table, rows in snapshot.rows.items()
        for row_id, row in rows.items()
        for column, value in row.items()
        if value in (MASKED_TEXT, MASKED_EMAIL, MASKED_DATE.isoformat())
    ]


def test_copy_taken_after_a_zero_restore_holds_no_placeholders_and_the_genuine_values_return(
    app: App,
) -> None:
    """The state the foreign-object retrieval used to leave (buyer marked retrieved, its rows
    still masked) must not let the placeholders into the archive as the buyer's data."""
    original = order(NR, shipped_at=T0)
    _masked(app, original)
    buyer = _copies(app, NR)[0].customer_id
    with app.engine.begin() as conn:  # what the old retrieval wrote after restoring nothing
        conn.execute(
            update(Customer)
            .where(Customer.id == buyer)
            .values(retrieved_at=RETRIEVED_AT, pii_revision=Customer.pii_revision + 1)
        )

    assert _run(app, RETRIEVED_AT + days(1)) == (1, 0, 0)
    newest = _copies(app, NR)[-1]
    snapshot = CustomerSnapshot.from_bytes(copy_plaintext(app, newest))
    assert _placeholders(snapshot) == []
    assert _run(app, RETRIEVED_AT + days(31)) == (0, 0, 1)
    later = RETRIEVED_AT + days(40)
    retrieve_order(at(app, later).ports(), NR, "Rücksendung", "anna", later)

    shown = show_order(app.ports(), NR, later).model_dump(mode="json")
    assert (shown["customer"]["first_name"], shown["customer"]["email"]) == (
        original["customer"]["first_name"],
        original["customer"]["email"],
    )
    assert shown["customer"]["birth_date"] == original["customer"]["birth_date"]
    assert shown["gift_message"] == original["gift_message"]


def test_a_partially_restored_row_is_archived_without_its_placeholders(app: App) -> None:
    """A row restored from a copy that lacks some of its columns keeps the placeholders in
    those columns; the next copy leaves them out and retrieval still finds the values."""
    original = order(NR, shipped_at=T0)
    _masked(app, original)
    (copy,) = _copies(app, NR)
    keys = app.keys
    snapshot = CustomerSnapshot.from_bytes(copy_plaintext(app, copy))
    del snapshot.rows["customers"][copy.customer_id]["phone"]
    snapshot.revision = 2
    data_key = new_data_key()
    blob = seal(data_key, keys.wrap(data_key), copy.customer_id, 2, snapshot.to_bytes())
    app.archive.put("customers/partial.slf", blob)
    with app.engine.begin() as conn:  # a newer copy that lacks the phone number
        conn.execute(
            insert(ArchiveCopy).values(
                customer_id=copy.customer_id,
                revision=2,
                object_key="customers/partial.slf",
                ciphertext_sha256=hashlib.sha256(blob).hexdigest(),
                created_at=MASKED_AT,
                verified_at=MASKED_AT,
            )
        )
        conn.execute(
            update(Customer)
            .where(Customer.id == copy.customer_id)
            .values(pii_revision=2, archived_revision=2)
        )

    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", RETRIEVED_AT)

    shown = show_order(app.ports(), NR, RETRIEVED_AT).model_dump(mode="json")
    assert shown["customer"]["phone"] == original["customer"]["phone"]  # from the older copy
    assert _run(app, RETRIEVED_AT + days(1)) == (1, 0, 0)
    newest = _copies(app, NR)[-1]
    assert _placeholders(CustomerSnapshot.from_bytes(copy_plaintext(app, newest))) == []


# -- when a retrieval may be dated --------------------------------------------------------------

JUST_TOO_LATE = RETRIEVED_AT + MAX_CLOCK_SKEW + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        pytest.param(
            JUST_TOO_LATE,
            f"the retrieval time {JUST_TOO_LATE.isoformat()} is in the future (now is "
            f"{RETRIEVED_AT.isoformat()}); give an instant that has happened",
            id="future",
        ),
        pytest.param(
            datetime(2099, 1, 1, tzinfo=UTC),
            f"the retrieval time 2099-01-01T00:00:00+00:00 is in the future (now is "
            f"{RETRIEVED_AT.isoformat()}); give an instant that has happened",
            id="2099",
        ),
        pytest.param(
            MASKED_AT - timedelta(seconds=1),
            f"the retrieval time {(MASKED_AT - timedelta(seconds=1)).isoformat()} is before the "
            f"buyer was masked ({MASKED_AT.isoformat()}); a retrieval is dated between the "
            "buyer's masking and now",
            id="before-masking",
        ),
    ],
)
def test_retrieval_dated_outside_masking_and_now_is_refused_and_changes_nothing(
    app: App, as_of: datetime, message: str
) -> None:
    """Observed: a retrieval dated in 2099 made the restored PII permanent (re-mask due in
    2099, invisible to compliance)."""
    _masked(app, order(NR, shipped_at=T0))
    before = _dump(app)

    with pytest.raises(InvalidInput) as refused:
        retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", as_of)

    assert str(refused.value) == message
    assert refused.value.exit_code == 2
    assert _dump(app) == before


@pytest.mark.parametrize(
    "as_of",
    [MASKED_AT, RETRIEVED_AT - days(1), RETRIEVED_AT + MAX_CLOCK_SKEW],
    ids=["at-masking", "yesterday", "within-clock-skew"],
)
def test_retrieval_dated_between_masking_and_now_is_accepted(app: App, as_of: datetime) -> None:
    _masked(app, order(NR, shipped_at=T0))

    result = retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "Rücksendung", "anna", as_of)

    assert (result.retrieved_at, result.restored_rows) == (as_of, 4)


def test_retrieval_after_a_remask_is_dated_after_the_remask(app: App) -> None:
    _masked(app, order(NR, shipped_at=T0))
    retrieve_order(at(app, RETRIEVED_AT).ports(), NR, "eins", "anna", RETRIEVED_AT)
    remasked_at = RETRIEVED_AT + days(31)
    assert _run(app, remasked_at) == (1, 0, 1)

    with pytest.raises(InvalidInput, match=r"is before the buyer was masked"):
        retrieve_order(
            at(app, remasked_at + days(1)).ports(), NR, "zwei", "anna", remasked_at - days(1)
        )
