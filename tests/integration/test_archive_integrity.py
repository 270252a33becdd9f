"""Archive integrity on SQLite and PostgreSQL: verification finds tampered, truncated and
moved records and never lets masking rely on them; the offline export is verified and serves a
retrieval with the primary store gone; legacy copies move into segments and read back the same.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from shelflife.adapters.db.tables import ArchiveCopy, ArchiveSegment, Customer, Order
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.entrypoints import cli
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.integrity import (
    EXPORT_MANIFEST,
    export_archive,
    migrate_legacy,
    open_archive_problems,
    verify_archive,
    verify_export,
)
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import copy_plaintext, make_legacy
from tests.support.builders import T0, at, days, lines, make_app, order, pii_strings
from tests.support.s3_server import S3Server

ARCHIVED_AT = T0 + days(29)
MASKED_AT = T0 + days(31)
RETRIEVED_AT = T0 + days(35)
NRS = [f"30{i}-1234567-1234567" for i in range(3)]


def _app(database_url: str, tmp_path: Path, **settings: Any) -> App:
    app, _clock = make_app(database_url, tmp_path / "home", **settings)
    report = import_lines(
        app, lines(*(order(nr, shipped_at=T0, suffix=f"-{i}") for i, nr in enumerate(NRS)))
    )
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    return app


def _customer(app: App, nr: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(
            select(Customer.__table__)
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.order_nr_external == nr)
        ).one()


def _copies(app: App, nr: str | None = None) -> list[Any]:
    query = select(ArchiveCopy.__table__).order_by(ArchiveCopy.id)
    if nr is not None:
        query = query.where(ArchiveCopy.customer_id == _customer(app, nr).id)
    with app.engine.connect() as conn:
        return list(conn.execute(query))


def _path(app: App, key: str) -> Path:
    return app.settings.home / "archive" / key


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _problems(report: Any) -> list[tuple[str, str | None, str]]:
    return [(p.location, p.customer, p.problem) for p in report.problems]


def _pii(app: App, nr: str, when: datetime) -> dict[str, Any]:
    shown = show_order(app.ports(), nr, when).model_dump(mode="json")
    return {k: shown[k] for k in ("customer", "addresses")}


def test_a_sound_archive_verifies_without_problems_and_notes_when(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), MASKED_AT)

    report = verify_archive(at(app, MASKED_AT).ports(), 100)

    assert (report.objects_total, report.objects_checked, report.records_checked) == (1, 1, 3)
    assert report.problems == []
    with app.engine.connect() as conn:
        assert conn.execute(select(ArchiveSegment.verified_at)).scalar_one() == MASKED_AT
    assert open_archive_problems(app.ports()) == []


def test_a_tampered_record_is_found_by_the_nightly_sample_and_never_masked_over(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path, verify_sample_percent=100)
    run_retention(app.ports(), ARCHIVED_AT)
    (damaged,) = _copies(app, NRS[1])
    buyer = _customer(app, NRS[1])
    _flip(_path(app, damaged.object_key), damaged.record_offset + damaged.record_length - 3)

    report = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)

    assert (report.verified_objects, report.integrity_problems) == (1, 2)
    assert (report.archived, report.masked) == (1, 3)
    (renewed,) = _copies(app, NRS[1])
    assert renewed.object_key != damaged.object_key  # masked over a new, verified copy
    assert _customer(app, NRS[1]).masked_at == MASKED_AT
    problems = [(p.location, p.customer, p.problem) for p in open_archive_problems(app.ports())]
    assert problems == [
        ("primary", None, "SHA-256 differs from the one recorded when it was written"),
        ("primary", f"C{buyer.id}", "record SHA-256 differs from the index"),
    ]
    retrieve_order(at(app, RETRIEVED_AT).ports(), NRS[1], "Rücksendung", "anna", RETRIEVED_AT)
    assert _customer(app, NRS[1]).retrieved_at == RETRIEVED_AT


def test_a_truncated_segment_is_reported_until_the_object_is_restored(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), MASKED_AT)
    copies = _copies(app)
    path = _path(app, copies[0].object_key)
    whole = path.read_bytes()
    path.write_bytes(whole[: copies[2].record_offset + 10])

    report = verify_archive(at(app, MASKED_AT).ports(), 100)

    last = _customer(app, NRS[2]).id
    assert _problems(report) == [
        (
            "primary",
            None,
            f"is {copies[2].record_offset + 10} bytes; the index recorded {len(whole)}",
        ),
        ("primary", None, "manifest: archive segment is truncated or not a shelflife segment"),
        ("primary", f"C{last}", "record missing: the segment ends before it"),
    ]
    assert report.reset_for_archiving == []  # masked buyers: the archive is their only copy
    result = CliRunner().invoke(cli.app, ["compliance", "--home", str(app.settings.home)])
    assert result.exit_code == 1
    assert "3 archive problem(s)" in result.output

    path.write_bytes(whole)  # e.g. from the replica or an offline export
    assert verify_archive(app.ports(), 100).problems == []
    assert open_archive_problems(app.ports()) == []


def test_a_record_moved_to_another_buyer_is_refused(database_url: str, tmp_path: Path) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), MASKED_AT)
    mine, other = _copies(app, NRS[0])[0], _copies(app, NRS[1])[0]
    with app.engine.begin() as conn:
        conn.execute(
            update(ArchiveCopy)
            .where(ArchiveCopy.id == mine.id)
            .values(
                record_offset=other.record_offset,
                record_length=other.record_length,
                ciphertext_sha256=other.ciphertext_sha256,
            )
        )

    report = verify_archive(at(app, MASKED_AT).ports(), 100)

    assert _problems(report) == [
        (
            "primary",
            f"C{mine.customer_id}",
            "the segment's manifest does not list the record as the index does",
        ),
        (
            "primary",
            f"C{mine.customer_id}",
            "record belongs to another buyer or revision than the index says",
        ),
    ]


def test_a_damaged_replica_is_found_though_the_primary_is_sound(
    database_url: str, tmp_path: Path
) -> None:
    replica = tmp_path / "replica"
    app = _app(database_url, tmp_path, archive_replica_url=replica.as_uri())
    run_retention(app.ports(), MASKED_AT)
    (copy,) = _copies(app, NRS[0])
    _flip(replica / copy.object_key, copy.record_offset + 20)

    report = verify_archive(at(app, MASKED_AT).ports(), 100)

    assert report.objects_checked == 2
    assert _problems(report) == [
        ("replica", None, "SHA-256 differs from the one recorded when it was written"),
        ("replica", f"C{copy.customer_id}", "record SHA-256 differs from the index"),
    ]


def test_the_offline_export_is_verified_and_serves_a_retrieval_with_the_primary_gone(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    expected = _pii(app, NRS[0], T0)
    run_retention(app.ports(), MASKED_AT)
    offline = tmp_path / "media"

    exported = export_archive(at(app, MASKED_AT).ports(), offline, "ops")
    again = export_archive(app.ports(), offline, "ops")

    assert (exported.written, exported.unchanged, again.written, again.unchanged) == (1, 0, 0, 1)
    (copy,) = _copies(app, NRS[0])
    manifest = json.loads((offline / EXPORT_MANIFEST).read_text())
    assert [(o["key"], o["kind"]) for o in manifest["objects"]] == [(copy.object_key, "segment")]
    wrapped = _customer(app, NRS[0]).data_key_wrapped
    assert base64.b64encode(wrapped).decode() not in (offline / EXPORT_MANIFEST).read_text()
    checked = verify_export(app.ports(), offline)
    assert (checked.objects_checked, checked.records_checked, checked.problems) == (1, 3, [])
    stored = b"".join(p.read_bytes() for p in sorted(offline.rglob("*")) if p.is_file())
    pii = {v for i, nr in enumerate(NRS) for v in pii_strings(order(nr, suffix=f"-{i}"))}
    assert [v for v in pii if len(v) >= 6 and v.encode() in stored] == []

    shutil.rmtree(app.settings.home / "archive")
    settings = app.settings.model_copy(update={"archive_offline_dir": offline})
    app.close()
    restored = build_app(settings, FixedClock(RETRIEVED_AT))
    try:
        retrieve_order(restored.ports(), NRS[0], "Rücksendung", "anna", RETRIEVED_AT)
        assert _pii(restored, NRS[0], RETRIEVED_AT) == expected
    finally:
        restored.close()


def test_a_damaged_offline_copy_is_found_by_verify_from(database_url: str, tmp_path: Path) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), MASKED_AT)
    offline = tmp_path / "media"
    export_archive(at(app, MASKED_AT).ports(), offline, "ops")
    copy = _copies(app, NRS[2])[0]
    _flip(offline / copy.object_key, copy.record_offset + 30)

    result = CliRunner().invoke(
        cli.app,
        ["archive", "verify", "--from", str(offline), "--json", "--home", str(app.settings.home)],
    )

    assert result.exit_code == 1
    found = json.loads(result.output)["problems"]
    assert [(p["location"], p["customer"], p["problem"]) for p in found] == [
        ("offline", None, "SHA-256 differs from the one recorded when it was written"),
        ("offline", f"C{copy.customer_id}", "record SHA-256 differs from the index"),
    ]


def test_migration_moves_legacy_copies_into_a_segment_and_retrieval_reads_the_same(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    expected = _pii(app, NRS[0], T0)
    run_retention(app.ports(), MASKED_AT)
    before = {c.id: copy_plaintext(app, c) for c in _copies(app)}
    legacy_keys = [make_legacy(app, c) for c in _copies(app)]

    report = migrate_legacy(at(app, MASKED_AT).ports(), "ops")

    assert (report.migrated, report.segments, report.deleted, report.failed) == (3, 1, 3, 0)
    assert report.remaining == 0
    moved = _copies(app)
    assert {c.id: copy_plaintext(app, c) for c in moved} == before  # byte-identical
    assert len({c.object_key for c in moved}) == 1
    assert all(c.record_offset is not None for c in moved)
    assert not any(_path(app, key).exists() for key in legacy_keys)
    assert verify_archive(app.ports(), 100).problems == []
    assert migrate_legacy(app.ports(), "ops").migrated == 0
    retrieve_order(at(app, RETRIEVED_AT).ports(), NRS[0], "Rücksendung", "anna", RETRIEVED_AT)
    assert _pii(app, NRS[0], RETRIEVED_AT) == expected


def test_on_s3_with_object_lock_migration_leaves_the_legacy_objects_and_all_verifies(
    database_url: str, tmp_path: Path, s3: S3Server
) -> None:
    app = _app(
        database_url,
        tmp_path,
        archive_url=s3.url(s3.create_bucket()),
        archive_replica_url=s3.url(s3.create_bucket()),
        key_ledger_url=s3.url(s3.create_bucket(object_lock=False), "keys"),
        key_ledger_replica_url=s3.url(s3.create_bucket(object_lock=False), "keys"),
    )
    expected = _pii(app, NRS[1], T0)
    run_retention(app.ports(), MASKED_AT)
    before = {c.id: copy_plaintext(app, c) for c in _copies(app)}
    legacy_keys = [make_legacy(app, c) for c in _copies(app)]

    report = migrate_legacy(at(app, MASKED_AT).ports(), "ops")

    assert (report.migrated, report.deleted, report.left_in_place) == (3, 0, 3)
    assert {c.id: copy_plaintext(app, c) for c in _copies(app)} == before
    assert all(len(app.archive.get(key)) > 0 for key in legacy_keys)  # locked: still there
    checked = verify_archive(app.ports(), 100)
    # The migration's segment at both locations (the run's segment, whose copies make_legacy
    # moved out, holds nothing the index relies on: it is not re-read).
    assert (checked.objects_checked, checked.records_checked, checked.problems) == (2, 6, [])
    offline = tmp_path / "media"
    assert export_archive(app.ports(), offline, "ops").written == 1  # the one relied on
    assert verify_export(app.ports(), offline).problems == []
    retrieve_order(at(app, RETRIEVED_AT).ports(), NRS[1], "Rücksendung", "anna", RETRIEVED_AT)
    assert _pii(app, NRS[1], RETRIEVED_AT) == expected


def test_a_segment_gone_from_the_store_is_renewed_for_buyers_never_masked(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), ARCHIVED_AT)
    (key,) = {c.object_key for c in _copies(app)}
    _path(app, key).unlink()

    report = verify_archive(at(app, ARCHIVED_AT).ports(), 100)

    assert report.reset_for_archiving == [f"C{_customer(app, nr).id}" for nr in NRS]
    assert [p for _loc, p, _what in _problems(report)] == [None, *report.reset_for_archiving]
    after = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)
    assert (after.archived, after.masked) == (3, 3)
    assert {c.object_key for c in _copies(app)} != {key}


def test_a_damaged_segment_whose_copies_were_all_renewed_is_no_longer_a_problem(
    database_url: str, tmp_path: Path
) -> None:
    app = _app(database_url, tmp_path)
    run_retention(app.ports(), ARCHIVED_AT)
    (key,) = {c.object_key for c in _copies(app)}
    for copy in _copies(app):
        _flip(_path(app, key), copy.record_offset + 12)

    found = verify_archive(at(app, ARCHIVED_AT).ports(), 100)
    run_retention(at(app, MASKED_AT).ports(), MASKED_AT)  # renews all three, then masks

    assert len(found.reset_for_archiving) == 3
    assert key not in {c.object_key for c in _copies(app)}
    assert verify_archive(app.ports(), 100).problems == []
    assert open_archive_problems(app.ports()) == []


@pytest.mark.postgres
def test_a_damaged_copy_is_not_dropped_under_a_buyer_the_night_masks_meanwhile(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`archive verify` drops the damaged copies of buyers never masked, so that they are
    archived again before masking. A nightly run masking one of them at the same moment holds
    its row until it commits; the verification must then see the mask and keep the copy (the
    masked buyer's only way back), not drop it from under the mask. PostgreSQL only: on SQLite
    one write transaction at a time makes the two happen one after the other."""
    cluster = request.getfixturevalue("postgres_cluster")
    app = _app(cluster.create_database("verify_vs_mask"), tmp_path)
    try:
        run_retention(at(app, ARCHIVED_AT).ports(), ARCHIVED_AT)
        buyer = _customer(app, NRS[0])
        assert buyer.archived_revision is not None
        assert buyer.masked_at is None
        dropped: list[list[int]] = []

        def verify_drops_the_copy() -> None:
            with app.ports().uow as uow:
                dropped.append(
                    uow.archive_copies.discard_unmasked([(buyer.id, buyer.archived_revision)])
                )
                uow.commit()

        with app.engine.connect() as night:
            night.execute(
                update(Customer).where(Customer.id == buyer.id).values(masked_at=MASKED_AT)
            )
            verifying = threading.Thread(target=verify_drops_the_copy)
            verifying.start()
            verifying.join(timeout=1.0)  # waits for the night's row, or (the defect) does not
            night.commit()
        verifying.join()

        assert dropped == [[]]
        assert len(_copies(app, NRS[0])) == 1
        assert _customer(app, NRS[0]).archived_revision == buyer.archived_revision
    finally:
        app.close()
        cluster.drop_database("verify_vs_mask")
