"""The nightly pipeline with the production archive: S3 with Object Lock (moto's server over
HTTP) and a second location, on SQLite and PostgreSQL. A copy counts only when both locations
hold it verified; retrieval falls back to the replica; no stored byte holds PII."""

from __future__ import annotations

import base64
import copy
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from shelflife.adapters.archive.ledger import read_ledger
from shelflife.adapters.db.tables import ArchiveCopy, Base, Customer
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import Settings
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.services.importing import import_lines
from shelflife.services.ledger import erase_customer
from shelflife.services.pipeline import run_retention
from shelflife.services.recovery import recover_archive, show_archived
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, make_app, order, pii_strings
from tests.support.s3_server import REGION, S3Server, free_port

ORDERS = [
    order(f"30{i}-7654321-765432{i}", shipped_at=T0, invoiced_at=T0 + days(0.1), suffix=f"-s3{i}")
    for i in range(3)
]
PII = {s for o in ORDERS for s in pii_strings(o) if len(s) >= 6}
COUNTS = ("archived", "archive_failed", "masked")


@pytest.fixture
def buckets(s3: S3Server) -> tuple[str, str]:
    """A primary and a replica bucket, both with Object Lock."""
    return s3.create_bucket(), s3.create_bucket()


@pytest.fixture
def ledgers(s3: S3Server) -> tuple[str, str]:
    """The key ledger's two buckets: mutable (no Object Lock, no versioning)."""
    return s3.create_bucket(object_lock=False), s3.create_bucket(object_lock=False)


@pytest.fixture
def app(
    database_url: str,
    tmp_path: Path,
    s3: S3Server,
    buckets: tuple[str, str],
    ledgers: tuple[str, str],
) -> Iterator[App]:
    """An installation on S3 with a replica bucket and the key ledger in two mutable buckets,
    initialised (which checks them), writing in a storage class other than the default (S3
    names no class for STANDARD)."""
    primary, replica = buckets
    application, _clock = make_app(
        database_url,
        tmp_path / "home",
        archive_url=s3.url(primary),
        archive_replica_url=s3.url(replica),
        key_ledger_url=s3.url(ledgers[0], "keys"),
        key_ledger_replica_url=s3.url(ledgers[1], "keys"),
        archive_storage_class="STANDARD_IA",
    )
    yield application
    application.close()


def _run(app: App, moment: datetime) -> dict[str, int]:
    report = run_retention(app.ports(), moment)
    return {k: getattr(report, k) for k in COUNTS}


def _start(app: App) -> None:
    assert import_lines(app, lines(*ORDERS)).refused == []
    set_feature(app.ports(), "main", True, "ops")


def _recorded_keys(app: App) -> list[str]:
    """The objects the copies point at: one segment per nightly batch, shared by its buyers."""
    with app.engine.connect() as conn:
        return sorted(set(conn.scalars(select(ArchiveCopy.object_key))))


def _masked(app: App) -> list[bool]:
    with app.engine.connect() as conn:
        return [m is not None for m in conn.scalars(select(Customer.masked_at).order_by("id"))]


def test_archive_mask_and_retrieve_on_s3_with_both_copies_locked_and_free_of_pii(
    app: App, s3: S3Server, buckets: tuple[str, str]
) -> None:
    _start(app)

    archive_night = _run(app, T0 + days(29))
    mask_night = _run(app, T0 + days(30))
    restored = retrieve_order(
        at(app, T0 + days(31)).ports(), ORDERS[1]["order_nr_external"], "Rücksendung", "anna"
    )

    assert archive_night == {"archived": 3, "archive_failed": 0, "masked": 0}
    assert mask_night == {"archived": 0, "archive_failed": 0, "masked": 3}
    assert _masked(app) == [True, True, True]
    assert restored.restored_rows > 0
    with app.engine.connect() as conn:
        emails = list(conn.scalars(select(Customer.email).order_by("id")))
    assert emails[1] == ORDERS[1]["customer"]["email"]
    recorded = _recorded_keys(app)
    assert len(recorded) == 1  # the three buyers' records in one segment
    for bucket in buckets:
        stored = dict(s3.every_object(bucket))
        assert sorted(stored) == [f"archive/{key}" for key in recorded]
        for key in stored:
            head = s3.client().head_object(Bucket=bucket, Key=key)
            assert (head["ObjectLockMode"], head["StorageClass"]) == ("COMPLIANCE", "STANDARD_IA")
            assert head["ObjectLockRetainUntilDate"].year >= 2035  # ten years from today
        leaked = {p for body in stored.values() for p in PII if p.encode() in body}
        assert leaked == set()


def test_shredding_on_s3_leaves_no_version_of_the_buyers_key_in_either_ledger_bucket(
    app: App, s3: S3Server, ledgers: tuple[str, str]
) -> None:
    _start(app)
    assert _run(app, T0 + days(30)) == {"archived": 3, "archive_failed": 0, "masked": 3}
    with app.engine.connect() as conn:
        old_key = conn.scalar(select(Customer.data_key_wrapped).where(Customer.id == 1))
    assert old_key is not None
    before = [dict(s3.every_object(bucket)) for bucket in ledgers]

    erase_customer(at(app, datetime(2037, 1, 1, 12, tzinfo=UTC)).ports(), "C1", "Art. 17", "dpo")

    after = [dict(s3.every_object(bucket)) for bucket in ledgers]
    segment = _recorded_keys(app)[0]
    assert [sorted(b) for b in before] == [sorted(a) for a in after]
    assert [sorted(a) for a in after] == [[f"keys/ledger/{segment}.keys"]] * 2
    for stored in after:
        (body,) = stored.values()
        assert [e.customer_id for e in read_ledger(segment, body)] == [2, 3]
        assert old_key not in body
        assert base64.b64encode(old_key) not in body
    assert any(base64.b64encode(old_key) in body for b in before for body in b.values())


def test_recover_from_s3_after_losing_the_database_reads_every_buyer_back(app: App) -> None:
    _start(app)
    assert _run(app, T0 + days(30)) == {"archived": 3, "archive_failed": 0, "masked": 3}
    refs = ("C1", "C2", "C3")
    before = [show_archived(app.ports(), ref, "audit", "auditor").as_json() for ref in refs]
    settings = app.settings
    with app.engine.begin() as conn:  # the database is lost; the buckets and the key remain
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))

    initialise(settings)
    recovered = build_app(settings, app.clock)
    try:
        report = recover_archive(recovered.ports(), "ops")
        after = [
            show_archived(recovered.ports(), ref, "audit", "auditor").as_json() for ref in refs
        ]
    finally:
        recovered.close()

    assert (report.segments, report.copies_added, report.keys_found, report.failed) == (1, 3, 3, [])
    assert after == before
    assert (
        after[1]["copies"][0]["rows"]["customers"]["2"]["email"] == ORDERS[1]["customer"]["email"]
    )


def test_a_failing_replica_archives_nobody_masks_nobody_and_the_next_night_retries(
    app: App, s3: S3Server, buckets: tuple[str, str]
) -> None:
    primary, replica = buckets
    _start(app)
    s3.client().delete_bucket(Bucket=replica)  # the second location is lost after init

    failed = run_retention(app.ports(), T0 + days(30))
    s3.client().create_bucket(
        Bucket=replica,
        ObjectLockEnabledForBucket=True,
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    next_night = _run(app, T0 + days(31))

    assert {k: getattr(failed, k) for k in COUNTS} == {
        "archived": 0,
        "archive_failed": 3,
        "masked": 0,
    }
    assert failed.archive_failure_reasons == [
        f"replica archive s3://{replica}/archive at {s3.endpoint}: S3 bucket {replica} does not "
        "exist; create it with Object Lock enabled, or fix the archive URL"
    ]
    assert next_night == {"archived": 3, "archive_failed": 0, "masked": 3}
    assert len(dict(s3.every_object(replica))) == 1  # tonight's segment
    assert len(dict(s3.every_object(primary))) == 2  # tonight's and last night's orphan


@pytest.mark.parametrize("failure", ["copy lost", "unreachable"])
def test_retrieval_reads_the_replica_when_the_primary_fails(
    app: App,
    s3: S3Server,
    buckets: tuple[str, str],
    ledgers: tuple[str, str],
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    primary, replica = buckets
    _start(app)
    assert _run(app, T0 + days(30)) == {"archive_failed": 0, "archived": 3, "masked": 3}
    if failure == "copy lost":  # a bucket without the copies, as a lost region leaves it
        failed_url, failed_store = s3.url(s3.create_bucket()), None
    else:  # nothing answers at the primary's endpoint
        endpoint = f"http://127.0.0.1:{free_port()}"
        failed_url = f"s3://{primary}/archive?endpoint={endpoint}&region={REGION}"
        failed_store = f"s3://{primary}/archive at {endpoint}"
    settings: dict[str, Any] = {
        "home": tmp_path / "home",
        "database_url": database_url,
        "archive_url": failed_url,
        "archive_replica_url": s3.url(replica),
        "key_ledger_url": s3.url(ledgers[0], "keys"),
        "key_ledger_replica_url": s3.url(ledgers[1], "keys"),
    }
    after_loss = build_app(Settings(**settings), FixedClock(T0 + days(31)))
    try:
        with caplog.at_level(logging.WARNING, logger="shelflife"):
            result = retrieve_order(
                after_loss.ports(), ORDERS[0]["order_nr_external"], "Rücksendung", "anna"
            )
    finally:
        after_loss.close()

    assert result.restored_rows > 0
    fallbacks = [r.getMessage() for r in caplog.records if "reading the replica" in r.getMessage()]
    assert len(fallbacks) == 1
    assert fallbacks[0].startswith("archive object segments/")
    described = failed_store or failed_url.split("?")[0] + f" at {s3.endpoint}"
    assert fallbacks[0].endswith(
        f"could not be read from the primary {described} (ArchiveUnavailable); reading the "
        f"replica s3://{replica}/archive at {s3.endpoint}"
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert {p for p in PII if p in logged} == set()


def test_a_file_replica_beside_s3_holds_the_same_copies_and_fails_the_night_when_unwritable(
    database_url: str, tmp_path: Path, s3: S3Server
) -> None:
    primary, replica = s3.create_bucket(), tmp_path / "replica"
    application, _clock = make_app(
        database_url,
        tmp_path / "home",
        archive_url=s3.url(primary),
        archive_replica_url=replica.as_uri(),
    )
    try:
        _start(application)
        first = _run(application, T0 + days(29))
        on_s3 = {key.removeprefix("archive/"): body for key, body in s3.every_object(primary)}
        in_folder = {
            p.relative_to(replica).as_posix(): p.read_bytes()
            for p in replica.rglob("*")
            if p.is_file()
        }
        shutil.rmtree(replica)
        replica.write_text("a plain file where the replica folder was\n")
        changed = copy.deepcopy(ORDERS[0])
        changed["billing_address"]["city"] = "Bonn-Beuel"
        assert import_lines(application, lines(changed)).refused == []
        second = run_retention(application.ports(), T0 + days(30))
        recorded = _recorded_keys(application)
    finally:
        application.close()

    assert first == {"archived": 3, "archive_failed": 0, "masked": 0}
    assert in_folder == on_s3
    assert sorted(on_s3) == recorded  # the first night's segment; the second night added none
    assert {p for body in in_folder.values() for p in PII if p.encode() in body} == set()
    assert {k: getattr(second, k) for k in COUNTS} == {
        "archived": 0,
        "archive_failed": 1,
        "masked": 2,  # the unchanged buyers' verified copies are current; the changed one waits
    }
    assert second.archive_failure_reasons == [
        f"replica archive {replica.as_uri()}: cannot write to the archive folder {replica}: "
        "Not a directory"
    ]


def test_retrieval_reads_the_replica_when_the_primary_copy_was_replaced_by_other_bytes(
    app: App, s3: S3Server, buckets: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Object Lock keeps every version, but a PUT to the same key still makes a newer one: the
    primary then answers with bytes that are not the recorded ones, as a damaged disk would."""
    primary, replica = buckets
    _start(app)
    assert _run(app, T0 + days(30)) == {"archive_failed": 0, "archived": 3, "masked": 3}
    (segment,) = _recorded_keys(app)
    stored = s3.client().get_object(Bucket=primary, Key=f"archive/{segment}")["Body"].read()
    damaged = bytearray(stored)
    damaged[60] ^= 0xFF  # inside the first buyer's record
    s3.client().put_object(Bucket=primary, Key=f"archive/{segment}", Body=bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="shelflife"):
        result = retrieve_order(
            at(app, T0 + days(31)).ports(), ORDERS[0]["order_nr_external"], "Rücksendung", "anna"
        )

    assert result.restored_rows > 0
    with app.engine.connect() as conn:
        email = conn.scalar(select(Customer.email).where(Customer.id == 1))
    assert email == ORDERS[0]["customer"]["email"]
    fallbacks = [r.getMessage() for r in caplog.records if "reading the replica" in r.getMessage()]
    assert fallbacks == [
        f"archive object {segment} could not be read from the primary s3://{primary}/archive "
        f"at {s3.endpoint} (ArchiveCorrupt); reading the replica s3://{replica}/archive at "
        f"{s3.endpoint}"
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert {p for p in PII if p in logged} == set()


def test_a_ledger_bucket_given_versioning_after_init_refuses_shredding_and_archiving(
    app: App, s3: S3Server, ledgers: tuple[str, str]
) -> None:
    _start(app)
    assert _run(app, T0 + days(30)) == {"archived": 3, "archive_failed": 0, "masked": 3}
    s3.client().put_bucket_versioning(
        Bucket=ledgers[0], VersioningConfiguration={"Status": "Enabled"}
    )
    before = sorted(s3.every_object(ledgers[0]))
    refusal = (
        f"S3 bucket {ledgers[0]} keeps old versions of its objects (versioning enabled), so a "
        "shredded key would survive in one; put the key ledger in a bucket that never had "
        "versioning or Object Lock"
    )

    with pytest.raises(ArchiveUnavailable) as refused:
        erase_customer(
            at(app, datetime(2037, 1, 1, 12, tzinfo=UTC)).ports(), "C1", "Art. 17", "dpo"
        )
    assert (
        import_lines(
            at(app, T0 + days(1)), lines(order("309-7654321-7654329", shipped_at=T0, suffix="-v"))
        ).refused
        == []
    )
    report = run_retention(app.ports(), T0 + days(31))

    assert str(refused.value).endswith(refusal)
    with app.engine.connect() as conn:
        kept = conn.execute(
            select(Customer.shredded_at, Customer.data_key_wrapped).where(Customer.id == 1)
        ).one()
    assert kept.shredded_at is None
    assert kept.data_key_wrapped is not None
    assert (report.archived, report.archive_failed) == (0, 1)
    assert report.archive_failure_reasons[0].endswith(refusal)
    # Nothing was written to the versioned bucket: no old version keeps a key.
    assert sorted(s3.every_object(ledgers[0])) == before
