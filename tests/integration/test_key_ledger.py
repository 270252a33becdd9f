"""The key ledger, shredding, legal retention and recovery on SQLite and PostgreSQL, with real
archive, replica, ledger and offline bytes: a recovered database reads back what was archived,
and a shredded buyer's records open nowhere."""

from __future__ import annotations

import base64
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from shelflife.adapters.archive.ledger import ledger_key, read_ledger
from shelflife.adapters.archive.segments import read_manifest
from shelflife.adapters.db.tables import Customer
from shelflife.adapters.keys.envelope import open_record
from shelflife.bootstrap import App, build_app, initialise
from shelflife.domain.errors import ArchiveCorrupt, Conflict, KeyUnavailable, NotRetrievable
from shelflife.domain.ports import WrappedKey
from shelflife.services.importing import import_lines
from shelflife.services.ledger import erase_customer
from shelflife.services.pipeline import run_retention
from shelflife.services.recovery import recover_archive, show_archived
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, lose_database, make_app, order

NR1 = "302-1111111-1111111"
NR2 = "302-2222222-2222222"
MASKED_AT = T0 + days(31)
AFTER_RETENTION = datetime(2037, 1, 1, 12, tzinfo=UTC)
"""Invoices of 2026 are kept until the end of 2036 (10 years from the end of their year)."""


def _masked_buyers(app: App) -> None:
    """Two buyers (C1, C2), shipped and invoiced in March 2026, archived and masked."""
    report = import_lines(
        app,
        lines(
            order(NR1, shipped_at=T0, invoiced_at=T0, suffix="-eins"),
            order(NR2, shipped_at=T0, invoiced_at=T0, suffix="-zwei"),
        ),
    )
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    done = run_retention(app.ports(), MASKED_AT)
    assert (done.archived, done.masked, done.shredded) == (2, 2, 0)


def _wrapped_key(app: App, customer_id: int) -> WrappedKey:
    with app.engine.connect() as conn:
        row = conn.execute(
            select(Customer.data_key_master_id, Customer.data_key_wrapped).where(
                Customer.id == customer_id
            )
        ).one()
    assert row.data_key_wrapped is not None
    return WrappedKey(row.data_key_master_id, row.data_key_wrapped)


def _segments(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*.sls"))
        if p.is_file()
    }


def _ledger_keys(folder: Path) -> dict[int, WrappedKey]:
    """Customer id -> wrapped key, over every ledger object in a ledger folder."""
    found: dict[int, WrappedKey] = {}
    for path in sorted(folder.rglob("*.keys")):
        segment = path.relative_to(folder).as_posix().removeprefix("ledger/").removesuffix(".keys")
        for entry in read_ledger(segment, path.read_bytes()):
            found[entry.customer_id] = entry.key
    return found


def _opens(app: App, segment: bytes, customer_id: int, key: WrappedKey) -> bool:
    """Whether any of the buyer's records in this segment opens with this wrapped key."""
    for entry in read_manifest(segment):
        if entry.customer_id != customer_id:
            continue
        try:
            open_record(
                segment[entry.offset : entry.offset + entry.length],
                app.keys.unwrap(key),
                where="test",
                customer_id=customer_id,
                revision=entry.revision,
                sha256=entry.sha256,
            )
        except (ArchiveCorrupt, KeyUnavailable):
            continue
        return True
    return False


def test_each_segment_has_a_ledger_object_holding_its_buyers_keys_as_the_database_does(
    app: App,
) -> None:
    _masked_buyers(app)

    home = app.settings.home.resolve()
    segments = _segments(home / "archive")
    ledgers = sorted(
        p.relative_to(home / "archive-ledger").as_posix()
        for p in (home / "archive-ledger").rglob("*.keys")
    )

    assert ledgers == [ledger_key(key) for key in segments]
    assert _ledger_keys(home / "archive-ledger") == {
        1: _wrapped_key(app, 1),
        2: _wrapped_key(app, 2),
    }


def test_recover_after_losing_the_database_reads_every_buyer_back_as_archived(app: App) -> None:
    _masked_buyers(app)
    before = {
        ref: show_archived(app.ports(), ref, "audit", "auditor").as_json() for ref in ("C1", "C2")
    }
    settings = app.settings
    lose_database(app)

    initialise(settings)  # the same home, so the same master key file
    recovered = build_app(settings, app.clock)
    try:
        report = recover_archive(recovered.ports(), "ops")
        again = recover_archive(recovered.ports(), "ops")
        after = {
            ref: show_archived(recovered.ports(), ref, "audit", "auditor").as_json()
            for ref in ("C1", "C2")
        }
    finally:
        recovered.close()

    assert (report.segments, report.copies_added, report.keys_found, report.shredded) == (
        1,
        2,
        2,
        0,
    )
    assert (report.segments_without_ledger, report.failed) == ([], [])
    assert (again.segments, again.copies_added, again.keys_found) == (1, 0, 2)
    assert after == before
    customer = after["C1"]["copies"][0]["rows"]["customers"]["1"]
    assert (customer["first_name"], customer["last_name"]) == ("Erika-eins", "Mustermann-eins")


def test_shredding_a_buyer_leaves_no_copy_anywhere_that_opens(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    replica = tmp_path / "replica"
    app, _clock = make_app(database_url, home, archive_replica_url=replica.as_uri())
    try:
        _masked_buyers(app)
        home = home.resolve()
        offline = tmp_path / "offline"
        shutil.copytree(home / "archive", offline)  # what `archive export` puts on a shelf
        old_key = _wrapped_key(app, 1)
        kept_key = _wrapped_key(app, 2)
        copies = [_segments(folder) for folder in (home / "archive", replica, offline)]
        assert all(_opens(app, s, 1, old_key) for c in copies for s in c.values())

        erased = erase_customer(at(app, AFTER_RETENTION).ports(), "C1", "Art. 17 request", "dpo")

        ledgers = [home / "archive-ledger", tmp_path / "replica-ledger"]
        assert erased.customer == "C1"
        with app.engine.connect() as conn:
            row = conn.execute(
                select(
                    Customer.data_key_wrapped, Customer.shredded_at, Customer.shredded_because
                ).where(Customer.id == 1)
            ).one()
        assert tuple(row) == (None, AFTER_RETENTION, "erasure")
        assert [_ledger_keys(folder) for folder in ledgers] == [{2: kept_key}, {2: kept_key}]
        every_key = [k for folder in ledgers for k in _ledger_keys(folder).values()]
        for copy in copies:
            for segment in copy.values():
                assert not any(_opens(app, segment, 1, key) for key in every_key)
                assert _opens(app, segment, 2, kept_key)
        # Not a byte of the destroyed wrapped key is left in any store or database file.
        needles = (old_key.blob, base64.b64encode(old_key.blob))
        stored = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert stored
        assert [p for p in stored if any(n in p.read_bytes() for n in needles)] == []
    finally:
        app.close()


def test_retrieving_a_shredded_order_says_so_with_the_date(app: App) -> None:
    _masked_buyers(app)
    erase_customer(at(app, AFTER_RETENTION).ports(), "C1", "Art. 17 request", "dpo")

    with pytest.raises(NotRetrievable) as refused:
        retrieve_order(app.ports(), NR1, "Kunde fragt", "agent", AFTER_RETENTION)
    retrieved = retrieve_order(app.ports(), NR2, "Kunde fragt", "agent", AFTER_RETENTION)

    assert str(refused.value) == (
        f"order '{NR1}' cannot be retrieved: its buyer's archived data was shredded on "
        "2037-01-01 (its archive key was destroyed)"
    )
    assert retrieved.restored_rows > 0


def test_erase_is_refused_while_the_law_keeps_an_invoice_and_names_it(app: App) -> None:
    _masked_buyers(app)
    last_hour = datetime(2036, 12, 31, 22, 59, tzinfo=UTC)  # 23:59 in Berlin

    with pytest.raises(Conflict) as refused:
        erase_customer(at(app, last_hour).ports(), "C1", "Art. 17 request", "dpo")

    assert str(refused.value) == (
        f"buyer C1 cannot be erased: the law keeps its invoice RE-{NR1} until the end of 2036 "
        "(1 document(s) still within legal retention)"
    )
    assert _wrapped_key(app, 1).blob


def test_erase_is_refused_while_the_buyers_data_is_in_the_database(app: App) -> None:
    assert import_lines(app, lines(order(NR1, shipped_at=T0, invoiced_at=T0))).refused == []

    with pytest.raises(Conflict) as refused:
        erase_customer(at(app, AFTER_RETENTION).ports(), "C1", "Art. 17 request", "dpo")

    assert str(refused.value) == (
        "buyer C1's personal data is in the database (not masked, or retrieved); it can be "
        "erased once it is masked"
    )


def test_an_erasure_is_audited_with_its_reason(app: App) -> None:
    _masked_buyers(app)

    erase_customer(at(app, AFTER_RETENTION).ports(), "C1", "Art. 17 request", "dpo")

    with app.ports().reader as reader:
        last = reader.audit.recent(1)[0]
    assert (last.actor, last.action, last.subject, dict(last.detail)) == (
        "dpo",
        "customer.erased",
        "C1",
        {"reason": "Art. 17 request"},
    )


@pytest.mark.parametrize(
    ("as_of", "shredded"),
    [
        (datetime(2036, 12, 31, 22, tzinfo=UTC), 0),  # 23:00 on 31 December in Berlin
        (datetime(2037, 1, 1, 0, tzinfo=UTC), 2),  # 01:00 on 1 January in Berlin
    ],
)
def test_the_nightly_run_shreds_buyers_whose_legal_retention_ended_and_audits_it(
    app: App, as_of: datetime, shredded: int
) -> None:
    _masked_buyers(app)

    report = run_retention(at(app, as_of).ports(), as_of)

    with app.ports().reader as reader:
        audited = [
            (e.action, e.subject, dict(e.detail))
            for e in reader.audit.recent(5)
            if e.action == "archive.shredded"
        ]
    assert report.shredded == shredded
    if shredded:
        assert audited == [
            (
                "archive.shredded",
                "main",
                {
                    "because": "retention",
                    "shredded": 2,
                    "first_customer": "C1",
                    "last_customer": "C2",
                    "as_of": as_of.isoformat(),
                },
            )
        ]
        assert _ledger_keys(app.settings.home.resolve() / "archive-ledger") == {}
    else:
        assert audited == []


def test_a_shorter_invoice_retention_from_the_settings_shreds_earlier(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(
        database_url, tmp_path / "home", retention_years_invoice=6, retention_years_order=6
    )
    try:
        _masked_buyers(app)
        as_of = datetime(2033, 1, 1, 0, tzinfo=UTC)

        report = run_retention(at(app, as_of).ports(), as_of)

        assert report.shredded == 2
    finally:
        app.close()
