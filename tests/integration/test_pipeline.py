"""The nightly run on SQLite and PostgreSQL: archive at day 29, mask at day 30 only with a
verified current copy, retries, blockers, kill-safety, re-mask and batching."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from shelflife.adapters.archive.segments import is_segment_key, read_manifest
from shelflife.adapters.db import retention
from shelflife.adapters.db.retention import load_snapshots
from shelflife.adapters.db.tables import (
    PII_TABLES,
    ArchiveCopy,
    ArchiveSegment,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    RetentionRun,
    ShopFeatureChange,
)
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import KeyUnavailable
from shelflife.domain.masking import MASK_PROFILE, MASKED_TEXT, all_fields, mask_value
from shelflife.domain.ports import pdf_object_key
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.entrypoints import cli
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import RunReport, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import configure_shop, set_feature, ship_order
from tests.support.archive import copy_plaintext
from tests.support.builders import T0, at, days, iso, lines, order, pii_strings
from tests.support.fakes import (
    AlteredGet,
    Counting,
    FailingPut,
    TamperedRecord,
    Truncating,
    Wrapping,
)

NR = "302-1234567-1234567"
COUNTS = ("archived", "archive_failed", "retried", "masked", "remasked")
PiiDump = dict[tuple[str, int, str], object]


class Killed(BaseException):
    """Stands in for the process being killed (SIGKILL, power loss) at an awkward moment."""


class KilledOnGet(Wrapping):
    """Writes succeed; the process dies on the first read-back, before any commit."""

    def get(self, key: str) -> bytes:
        raise Killed

    def describe(self) -> str:
        return "dying test double"


def _start(app: App, *orders: dict[str, Any], enable: bool = True) -> None:
    report = import_lines(app, lines(*orders))
    assert report.refused == []
    if enable:
        set_feature(app.ports(), "main", True, "ops")


def _run(app: App, at: datetime) -> dict[str, int]:
    report: RunReport = run_retention(app.ports(), at)
    return {k: getattr(report, k) for k in COUNTS}


def _only(**counts: int) -> dict[str, int]:
    """The five run counts: zero except those given."""
    return {k: counts.get(k, 0) for k in COUNTS}


def _customer(app: App, nr: str = NR) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(
            select(Customer.__table__)
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.order_nr_external == nr)
        ).one()


def _copies(app: App, customer_id: int) -> list[Any]:
    with app.engine.connect() as conn:
        return list(
            conn.execute(
                select(ArchiveCopy.__table__)
                .where(ArchiveCopy.customer_id == customer_id)
                .order_by(ArchiveCopy.revision)
            )
        )


def _snapshot(app: App, copy: Any) -> CustomerSnapshot:
    return CustomerSnapshot.from_bytes(copy_plaintext(app, copy))


def _pii_dump(app: App) -> PiiDump:
    """Every PII value in the database, keyed by (table, row id, column)."""
    dump: PiiDump = {}
    with app.engine.connect() as conn:
        for table, model in PII_TABLES.items():
            columns = [getattr(model, f.column) for f in MASK_PROFILE[table]]
            for row in conn.execute(select(model.id, *columns)):
                for f in MASK_PROFILE[table]:
                    dump[(table, row.id, f.column)] = getattr(row, f.column)
    return dump


def _unmasked_rows(app: App) -> dict[str, int]:
    """PII rows per table whose masked_at is still empty."""
    counts: dict[str, int] = {}
    with app.engine.connect() as conn:
        for table, model in PII_TABLES.items():
            ids = list(conn.execute(select(model.id).where(model.masked_at.is_(None))).scalars())
            if ids:
                counts[table] = len(ids)
    return counts


def _buyers(n: int, shipped_at: datetime = T0) -> list[dict[str, Any]]:
    return [
        order(f"30{i}-1234567-1234567", shipped_at=shipped_at, suffix=f"-{i}") for i in range(n)
    ]


# -- archive and mask at day 29 and 30, in the shop's zone ------------------------------------


def _around_cutoff(app: App, zone: str) -> tuple[str, str]:
    """Two buyers, shipped one hour before and one hour after local midnight starting 3 March."""
    cutoff = datetime(2026, 3, 3, tzinfo=ZoneInfo(zone))
    early = order("301-0000000-0000001", shipped_at=cutoff - days(1 / 24), suffix="-e")
    late = order("301-0000000-0000002", shipped_at=cutoff + days(1 / 24), suffix="-l")
    for o in (early, late):
        o["ordered_at"] = iso(cutoff - days(2))
    _start(app, early, late)
    configure_shop(app.ports(), "main", zone, None)
    return early["order_nr_external"], late["order_nr_external"]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_archives_orders_shipped_29_local_calendar_days_ago(app: App, zone: str) -> None:
    early, late = _around_cutoff(app, zone)

    counts = _run(app, datetime(2026, 3, 31, 12, tzinfo=ZoneInfo(zone)))

    assert counts == _only(archived=1)
    assert _customer(app, early).archived_revision == 1
    assert _customer(app, late).archived_revision is None
    assert len(_copies(app, _customer(app, early).id)) == 1


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_masks_orders_shipped_30_local_calendar_days_ago(app: App, zone: str) -> None:
    early, late = _around_cutoff(app, zone)
    as_of = datetime(2026, 4, 1, 12, tzinfo=ZoneInfo(zone))

    counts = _run(app, as_of)

    assert counts == _only(archived=2, masked=1)
    assert _customer(app, early).masked_at == as_of
    assert _customer(app, early).first_name == MASKED_TEXT
    assert _customer(app, late).masked_at is None
    assert _customer(app, late).first_name == "Erika-l"


def test_archive_copy_decrypts_to_the_buyers_current_pii(app: App) -> None:
    imported = order(NR, shipped_at=T0, invoiced_at=T0)
    _start(app, imported)

    assert _run(app, T0 + days(29)) == _only(archived=1)

    buyer = _customer(app)
    (stored,) = _copies(app, buyer.id)
    blob = app.archive.get(stored.object_key)
    record = blob[stored.record_offset : stored.record_offset + stored.record_length]
    plaintext = copy_plaintext(app, stored)
    with app.engine.connect() as conn:
        expected = load_snapshots(conn, [buyer.id], {buyer.id: buyer.pii_revision})[buyer.id]
        invoice_id = conn.execute(select(Invoice.id)).scalar_one()
    # The record also holds the invoice's PDF, exactly as the document store has it.
    expected.add_pdf(
        "invoices", invoice_id, app.documents.get(pdf_object_key("invoice", invoice_id))
    )
    assert plaintext == expected.to_bytes()
    assert stored.revision == buyer.pii_revision == buyer.archived_revision
    assert stored.ciphertext_sha256 == hashlib.sha256(record).hexdigest()
    assert is_segment_key(stored.object_key)
    assert [(e.customer_id, e.revision, e.offset, e.length) for e in read_manifest(blob)] == [
        (buyer.id, buyer.pii_revision, stored.record_offset, stored.record_length)
    ]
    snap = CustomerSnapshot.from_bytes(plaintext)
    assert pii_strings(imported) <= set(snap.values())
    assert snap.rows["customers"][buyer.id]["email"] == "erika.mustermann@example.org"
    assert b"Mustermann" not in blob


def test_buyer_is_not_masked_before_its_archive_is_current(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    app.archive = FailingPut(app.archive)

    assert _run(app, T0 + days(45)) == _only(archive_failed=1)

    assert _customer(app).masked_at is None
    assert _unmasked_rows(app) == {"customers": 1, "addresses": 2, "orders": 1}


def test_pii_changed_after_archiving_is_archived_again_then_masked(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    assert _run(app, T0 + days(29)) == _only(archived=1)
    changed = order(NR, shipped_at=T0)
    changed["billing_address"]["city"] = "Bonn-Beuel"
    import_lines(app, lines(changed))

    assert _run(app, T0 + days(30)) == _only(archived=1, masked=1)

    buyer = _customer(app)
    assert [c.revision for c in _copies(app, buyer.id)] == [1, 2]
    newest = _snapshot(app, _copies(app, buyer.id)[-1])
    assert newest.rows["customers"][buyer.id]["city"] == "Bonn-Beuel"
    assert buyer.archived_revision == buyer.pii_revision == 2


def test_pii_changed_after_archiving_is_never_masked_with_the_stale_copy(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    assert _run(app, T0 + days(29)) == _only(archived=1)
    changed = order(NR, shipped_at=T0)
    changed["billing_address"]["city"] = "Bonn-Beuel"
    import_lines(app, lines(changed))
    app.archive = FailingPut(app.archive)

    assert _run(app, T0 + days(30)) == _only(archive_failed=1)

    buyer = _customer(app)
    assert (buyer.archived_revision, buyer.pii_revision) == (1, 2)
    assert (buyer.masked_at, buyer.city) == (None, "Bonn-Beuel")


# -- archive failures and retries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fake", "why"),
    [
        pytest.param(FailingPut, "archive offline (test double)", id="put-unavailable"),
        pytest.param(
            AlteredGet,
            "read-back of the archive copy differs from what was written",
            id="read-back-differs",
        ),
    ],
)
def test_archive_failure_is_counted_and_leaves_the_buyer_unmasked(
    app: App, fake: type[Any], why: str
) -> None:
    _start(app, order(NR, shipped_at=T0))
    app.archive = fake(app.archive)
    as_of = T0 + days(30)

    assert _run(app, as_of) == _only(archive_failed=1)

    buyer = _customer(app)
    assert (buyer.archive_failed_at, buyer.archive_failure) == (as_of, why)
    assert (buyer.archived_revision, buyer.masked_at, buyer.first_name) == (None, None, "Erika")
    assert _copies(app, buyer.id) == []
    assert show_order(app.ports(), NR, as_of).retention["state"] == "archive_failed"


def test_failed_archive_is_retried_the_next_day_and_masked_in_the_same_run(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    real = app.archive
    app.archive = FailingPut(real)
    failed_at = T0 + days(30)  # 2026-04-01 11:00 CEST
    assert _run(app, failed_at) == _only(archive_failed=1)
    app.archive = real

    late_that_evening = failed_at + days(12 / 24)  # 23:00 CEST, the same local day
    assert _run(app, late_that_evening) == _only()
    assert _customer(app).archive_failed_at == failed_at

    retried_at = failed_at + days(14 / 24)  # 01:00 CEST the next local day
    assert _run(app, retried_at) == _only(retried=1, archived=1, masked=1)
    buyer = _customer(app)
    assert (buyer.archive_failed_at, buyer.masked_at) == (None, retried_at)


def test_one_buyers_damaged_record_does_not_stop_the_others_in_its_segment(app: App) -> None:
    buyers = _buyers(3)
    _start(app, *buyers)
    nrs = [b["order_nr_external"] for b in buyers]
    app.archive = TamperedRecord(app.archive, _customer(app, nrs[1]).id)

    assert _run(app, T0 + days(31)) == _only(archived=2, archive_failed=1, masked=2)

    assert [_customer(app, nr).masked_at is not None for nr in nrs] == [True, False, True]
    assert _customer(app, nrs[1]).archive_failure == (
        "read-back of the archive copy differs from what was written"
    )
    assert _copies(app, _customer(app, nrs[1]).id) == []


# -- what blocks masking ----------------------------------------------------------------------


def test_open_order_of_the_buyer_blocks_masking(app: App) -> None:
    _start(app, order(NR, shipped_at=T0), order("303-1234567-1234567"))

    assert _run(app, T0 + days(31)) == _only(archived=1)
    assert _customer(app).masked_at is None

    ship_order(at(app, T0 + days(31)).ports(), "303-1234567-1234567", T0 + days(2))
    assert _run(app, T0 + days(32)) == _only(masked=1)


@pytest.mark.parametrize("document", ["invoices", "credits"])
def test_young_invoice_or_credit_blocks_masking(app: App, document: str) -> None:
    young = order(NR, shipped_at=T0)
    number_key = "invoice_nr" if document == "invoices" else "credit_nr"
    young[document] = [{number_key: "DOC-1", "created_at": iso(T0 + days(5)), "total": "1.00"}]
    _start(app, young)

    assert _run(app, T0 + days(34)) == _only(archived=1)
    assert _customer(app).masked_at is None

    assert _run(app, T0 + days(35)) == _only(masked=1)


def test_disabled_feature_does_nothing_and_enabling_is_recorded(app: App) -> None:
    _start(app, order(NR, shipped_at=T0), enable=False)

    assert _run(app, T0 + days(31)) == _only()
    assert _customer(app).masked_at is None
    assert _copies(app, _customer(app).id) == []

    assert isinstance(app.clock, FixedClock)
    app.clock.instant = T0 + days(32)
    assert set_feature(app.ports(), "main", True, "lena") is True
    assert set_feature(app.ports(), "main", True, "lena") is False
    with app.engine.connect() as conn:
        changes = [
            (c.enabled, c.changed_at, c.changed_by)
            for c in conn.execute(select(ShopFeatureChange.__table__))
        ]
    assert changes == [(True, T0 + days(32), "lena")]
    assert _run(app, T0 + days(32)) == _only(archived=1, masked=1)


# -- what masking writes ----------------------------------------------------------------------


def _assert_masked_exactly(before: PiiDump, after: PiiDump) -> None:
    """Every non-empty value became its mask value; every empty one stayed as it was."""
    kinds = {(f.table, f.column): f.kind for f in all_fields()}
    wrong = {
        key: (old, after[key])
        for key, old in before.items()
        if after[key] != (old if old in (None, "") else mask_value(kinds[(key[0], key[2])]))
    }
    assert wrong == {}


def test_masking_overwrites_every_non_empty_pii_field_and_keeps_empty_ones(app: App) -> None:
    sparse = order(NR, shipped_at=T0, invoiced_at=T0, gift_message="", shop_note=None)
    sparse["customer"].update(fax="", note=None)
    sparse["billing_address"].update(name2="", state=None)
    sparse["payment"]["iban"] = ""
    sparse["credits"] = [
        {"credit_nr": "GS-1", "invoice_nr": f"RE-{NR}", "created_at": iso(T0), "total": "5.00"}
    ]
    _start(app, sparse)
    moved = copy.deepcopy(sparse)
    moved["billing_address"]["street"] = "Rosenweg"
    import_lines(app, lines(moved))
    before = _pii_dump(app)
    filled = {k[0] for k, v in before.items() if v not in (None, "")}
    empty = {k[0] for k, v in before.items() if v in (None, "")}

    assert _run(app, T0 + days(31)) == _only(archived=1, masked=1)

    _assert_masked_exactly(before, _pii_dump(app))
    assert filled == {"customers", "addresses", "address_history", "orders", "invoices", "credits"}
    assert empty >= {"customers", "addresses", "orders"}
    assert _unmasked_rows(app) == {"customer_history": 1}  # the "masked" event, no PII text


def test_second_run_at_the_same_time_finds_nothing_to_do(app: App) -> None:
    _start(app, *_buyers(3))
    assert _run(app, T0 + days(31)) == _only(archived=3, masked=3)

    assert _run(app, T0 + days(31)) == _only()
    assert _run(app, T0 + days(60)) == _only()


# -- kill-safety ------------------------------------------------------------------------------


def test_run_killed_between_archive_write_and_commit_is_completed_by_a_rerun(app: App) -> None:
    _start(app, *_buyers(2))
    real = app.archive
    app.archive = KilledOnGet(real)

    with pytest.raises(Killed):
        run_retention(app.ports(), T0 + days(31))
    (written,) = [o.key for o in real.list_objects()]  # the segment, written but unrecorded
    assert is_segment_key(written)

    assert [_customer(app, f"30{i}-1234567-1234567").archived_revision for i in (0, 1)] == [
        None,
        None,
    ]
    assert _unmasked_rows(app) == {"customers": 2, "addresses": 4, "orders": 2}
    app.archive = real
    assert _run(app, T0 + days(31)) == _only(archived=2, masked=2)
    assert _run(app, T0 + days(31)) == _only()


def test_run_killed_while_masking_leaves_nothing_half_masked(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start(app, order(NR, shipped_at=T0))
    real_mask = retention.mask_customers

    def mask_then_die(*args: Any, **kwargs: Any) -> int:
        real_mask(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(retention, "mask_customers", mask_then_die)
    with pytest.raises(Killed):
        run_retention(app.ports(), T0 + days(31))

    # The masking is one transaction: the kill takes all of it back. On SQLite it is the
    # archive batch's own, so the copy goes with it; on PostgreSQL it follows the batch's
    # commit (services.after_commit), so the verified copy stands and only masking is left.
    behind = app.engine.dialect.name == "postgresql"
    assert _customer(app).archived_revision == (1 if behind else None)
    assert _unmasked_rows(app) == {"customers": 1, "addresses": 2, "orders": 1}
    assert _customer(app).first_name == "Erika"
    monkeypatch.setattr(retention, "mask_customers", real_mask)
    assert _run(app, T0 + days(31)) == _only(archived=0 if behind else 1, masked=1)


def test_a_run_interrupted_in_the_mask_step_records_the_buyers_it_masked(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buyers archived the night before are masked in batches of 2; Ctrl-C during the second
    batch. The first batch's masking is committed: the stopped run's record counts it."""
    _start(app, *_buyers(5))
    app.settings.batch_size = 2
    assert _run(app, T0 + days(29)) == _only(archived=5)
    real_mask = retention.mask_customers
    calls: list[int] = []

    def second_interrupted(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return int(real_mask(*args, **kwargs))

    monkeypatch.setattr(retention, "mask_customers", second_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_retention(app.ports(), T0 + days(30))

    with app.engine.connect() as conn:
        masked = conn.execute(
            select(func.count()).where(Customer.masked_at.is_not(None))
        ).scalar_one()
        recorded = conn.execute(
            select(RetentionRun.masked, RetentionRun.error).order_by(RetentionRun.id.desc())
        ).first()
    assert masked == 2
    assert recorded is not None
    assert (recorded.masked, recorded.error) == (2, "interrupted")


# -- output -----------------------------------------------------------------------------------


def test_json_output_reports_each_count_as_an_integer(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HOME", "DATABASE_URL", "ARCHIVE_URL", "MASTER_KEY_FILE"):
        monkeypatch.delenv(f"SHELFLIFE_{name}", raising=False)
    _start(app, order(NR, shipped_at=T0))
    args = ["run", "--home", str(tmp_path / "home"), "--as-of", str(iso(T0 + days(31)))]

    result = CliRunner().invoke(cli.app, [*args, "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in COUNTS} == _only(archived=1, masked=1)
    assert {k: type(data[k]) for k in COUNTS} == dict.fromkeys(COUNTS, int)


# -- re-mask after retrieval ------------------------------------------------------------------


def _masked_then_retrieved(app: App, retrieved_at: datetime) -> None:
    _start(app, order(NR, shipped_at=T0))
    assert _run(app, T0 + days(31)) == _only(archived=1, masked=1)
    retrieve_order(at(app, retrieved_at).ports(), NR, "Rücksendung", "anna", retrieved_at)


def test_retrieved_data_is_masked_again_30_days_after_retrieval(app: App) -> None:
    retrieved_at = T0 + days(40)
    _masked_then_retrieved(app, retrieved_at)

    assert _run(app, retrieved_at + days(1)) == _only(archived=1)
    assert _run(app, retrieved_at + days(29)) == _only()
    assert _customer(app).first_name == "Erika"
    before = _pii_dump(app)

    assert _run(app, retrieved_at + days(30)) == _only(remasked=1)

    _assert_masked_exactly(before, _pii_dump(app))
    buyer = _customer(app)
    assert (buyer.retrieved_at, buyer.masked_at) == (None, T0 + days(31))
    with app.engine.connect() as conn:
        events = list(
            conn.execute(select(CustomerHistory.event).order_by(CustomerHistory.id)).scalars()
        )
    assert events == ["masked", "retrieved", "remasked"]


def test_retrieval_bumps_the_revision_so_the_next_run_archives_before_remasking(
    app: App,
) -> None:
    retrieved_at = T0 + days(40)
    _masked_then_retrieved(app, retrieved_at)
    buyer = _customer(app)
    assert (buyer.pii_revision, buyer.archived_revision) == (2, 1)

    assert _run(app, retrieved_at + days(30)) == _only(archived=1, remasked=1)

    assert [c.revision for c in _copies(app, buyer.id)] == [1, 2]
    newest = _snapshot(app, _copies(app, buyer.id)[-1])
    texts = sorted(row["text"] or "" for row in newest.rows["customer_history"].values())
    assert texts == ["", "Rücksendung"]


# -- batching ---------------------------------------------------------------------------------


def test_batches_smaller_than_the_work_still_process_every_buyer(app: App) -> None:
    _start(app, *_buyers(5))
    app.settings.batch_size = 2

    assert _run(app, T0 + days(31)) == _only(archived=5, masked=5)

    assert _unmasked_rows(app) == {"customer_history": 5}


def test_each_batch_is_one_segment_written_once_and_read_back_once(app: App) -> None:
    _start(app, *_buyers(5))
    app.settings.batch_size = 2
    counting = Counting(app.archive)
    app.archive = counting

    assert _run(app, T0 + days(31)) == _only(archived=5, masked=5)

    assert len(counting.puts) == 3
    assert counting.gets == counting.puts  # each segment read back once, as a whole
    assert counting.ranges == []
    with app.engine.connect() as conn:
        segments = conn.execute(select(ArchiveSegment.__table__).order_by(ArchiveSegment.id)).all()
        copies = conn.execute(select(ArchiveCopy.__table__).order_by(ArchiveCopy.id)).all()
    assert [(s.object_key, s.record_count) for s in segments] == list(
        zip(counting.puts, [2, 2, 1], strict=True)
    )
    for segment in segments:
        blob = app.archive.get(segment.object_key)
        assert (segment.size_bytes, segment.sha256) == (len(blob), hashlib.sha256(blob).hexdigest())
        # The manifest inside the segment says what the index says.
        assert [
            (e.customer_id, e.revision, e.offset, e.length, e.sha256) for e in read_manifest(blob)
        ] == [
            (c.customer_id, c.revision, c.record_offset, c.record_length, c.ciphertext_sha256)
            for c in copies
            if c.object_key == segment.object_key
        ]


def test_a_truncated_segment_masks_none_of_its_buyers(app: App) -> None:
    buyers = _buyers(3)
    _start(app, *buyers)
    app.archive = Truncating(app.archive, keep=1000)
    as_of = T0 + days(31)

    assert _run(app, as_of) == _only(archive_failed=3)

    for nr in (b["order_nr_external"] for b in buyers):
        buyer = _customer(app, nr)
        assert (buyer.masked_at, buyer.archived_revision, buyer.archive_failed_at) == (
            None,
            None,
            as_of,
        )
        assert buyer.archive_failure == "read-back of the archive segment is truncated"
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ArchiveCopy)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(ArchiveSegment)).scalar_one() == 0
    assert _unmasked_rows(app) == {"customers": 3, "addresses": 6, "orders": 3}


def test_run_without_the_master_key_writes_nothing_not_even_a_run_record(app: App) -> None:
    _start(app, order(NR, shipped_at=T0))
    app.key_path.unlink()
    fresh = build_app(app.settings, FixedClock(T0))
    try:
        with pytest.raises(KeyUnavailable, match="master key file"):
            run_retention(fresh.ports(), T0 + days(31))
        with fresh.engine.connect() as conn:
            runs = conn.execute(select(RetentionRun.error, RetentionRun.finished_at)).all()
    finally:
        fresh.close()
    assert runs == []  # a key problem stops the run before it starts
    assert (_customer(app).archived_revision, _customer(app).masked_at) == (None, None)
