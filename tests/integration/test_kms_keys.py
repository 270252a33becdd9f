"""AWS KMS as the master key, over HTTP against moto's server (the one the S3 tests start), on
SQLite and PostgreSQL: a night's KMS requests do not grow with the number of buyers, data keys
are wrapped locally under a KMS-encrypted wrapping key kept in the database, and every buyer
comes back."""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from shelflife.adapters.db.tables import Customer, Installation, WrappingKey
from shelflife.bootstrap import App, build_app, initialise, rotation_target
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import KeyUnavailable
from shelflife.services.documents import VerificationReport
from shelflife.services.importing import import_lines
from shelflife.services.integrity import verify_archive
from shelflife.services.keys import begin_rotation, rewrap_data_keys
from shelflife.services.pipeline import RunReport, run_retention
from shelflife.services.recovery import recover_archive, show_archived
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, lose_database, make_app, order
from tests.support.relay import Relay
from tests.support.s3_server import REGION, S3Server

ARCHIVE_NIGHT = T0 + days(29.5)
MASK_NIGHT = T0 + days(31)


_T = TypeVar("_T")


@pytest.fixture
def kms(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A KMS client of the tests' own on the local server; shelflife finds the server through
    the standard AWS_ENDPOINT_URL_KMS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3.endpoint)
    return boto3.session.Session().client("kms", endpoint_url=s3.endpoint, region_name=REGION)


def _new_kms_key(kms: Any, alias: str | None = None) -> str:
    """A new KMS key; its alias when one is given, else its ARN."""
    arn: str = kms.create_key(Description="shelflife test")["KeyMetadata"]["Arn"]
    if alias is None:
        return arn
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return alias


def _kms_app(database_url: str, home: Path, key: str) -> App:
    app, _clock = make_app(database_url, home, key_provider="kms", kms_key_id=key)
    return app


def _orders(count: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        order(
            f"302-{i:07d}-{i:07d}",
            shipped_at=T0,
            suffix=f"-k{i}",
            customer={"customer_nr_external": f"K{i:013d}", "email": f"kms{i}@example.org"},
        )
        for i in range(first, first + count)
    ]


class Process:
    """A new process of the installation (its own App) whose KMS requests are counted."""

    def __init__(self, app: App, moment: datetime) -> None:
        self.app = build_app(app.settings, FixedClock(moment))
        self.calls: Counter[str] = Counter()
        self.app.aws.events.register("before-call.kms", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.close()


@contextmanager
def _kms_gone(
    app: App, moment: datetime, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Process]:
    """A new process of `app`'s installation whose KMS endpoint goes away once it has loaded
    its key (a real relay, cut), and is back after the block."""
    relay = Relay(s3.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", relay.endpoint)
    try:
        with Process(app, moment) as process:
            process.app.keys  # noqa: B018 - the key is loaded while KMS answers
            relay.cut()
            yield process
    finally:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3.endpoint)


def _night_calls(database_url: str, home: Path, key: str, buyers: int) -> list[dict[str, int]]:
    app = _kms_app(database_url, home, key)
    try:
        assert import_lines(app, lines(*_orders(buyers))).refused == []
        set_feature(app.ports(), "main", True, "ops")
        calls = []
        for night, expected in ((ARCHIVE_NIGHT, "archived"), (MASK_NIGHT, "masked")):
            with Process(app, night) as process:
                report = run_retention(process.app.ports(), night)
                assert getattr(report, expected) == buyers
                calls.append(dict(process.calls))
        return calls
    finally:
        app.close()


def test_kms_requests_per_night_do_not_grow_with_the_number_of_buyers(
    database_url: str, tmp_path: Path, kms: Any
) -> None:
    few = _night_calls(
        database_url, tmp_path / "few", _new_kms_key(kms, f"alias/few-{uuid.uuid4().hex}"), 3
    )
    many = _night_calls(
        _second_database(database_url, tmp_path),
        tmp_path / "many",
        _new_kms_key(kms, f"alias/many-{uuid.uuid4().hex}"),
        40,
    )

    # Archive night: the key's description, the identity key's wrapping key opened, one
    # wrapping key made for the night's data keys. Mask night: the same description and
    # identity, and the one wrapping key of the archive night opened for all its buyers.
    assert (
        few
        == many
        == [
            {"DescribeKey": 1, "Decrypt": 1, "GenerateDataKey": 1},
            {"DescribeKey": 1, "Decrypt": 2},
        ]
    )


def _second_database(url: str, tmp_path: Path) -> str:
    """Another database of the same backend (one installation per database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'many.db'}"
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"{parsed.database}_many"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def kms_app(database_url: str, tmp_path: Path, kms: Any) -> Iterator[App]:
    app = _kms_app(database_url, tmp_path / "home", _new_kms_key(kms))
    yield app
    app.close()


def test_a_kms_installation_keeps_only_kms_encrypted_wrapping_keys_and_retrieves_every_buyer(
    kms_app: App, kms: Any
) -> None:
    orders = _orders(5)
    assert import_lines(kms_app, lines(*orders)).refused == []
    set_feature(kms_app.ports(), "main", True, "ops")
    for night in (ARCHIVE_NIGHT, MASK_NIGHT):
        with Process(kms_app, night) as process:
            run_retention(process.app.ports(), night)

    with kms_app.engine.connect() as conn:
        key_ids = set(conn.scalars(select(Customer.data_key_master_id)))
        installation = conn.execute(select(Installation.master_key_id)).scalar_one()
        wrapping = conn.execute(
            select(WrappingKey.id, WrappingKey.master_key_id, WrappingKey.encrypted)
        ).all()
    assert key_ids == {installation}
    assert installation.startswith("kms-")
    assert [k for _id, k, _blob in wrapping] == [installation, installation]  # init's, night's
    for wrapping_id, _key, blob in wrapping:
        # What the database keeps opens only through KMS, back to a 32-byte key.
        context = {"purpose": "shelflife wrapping key", "wrapping_key_id": wrapping_id}
        opened = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]
        assert len(opened) == 32
        assert opened not in blob

    with Process(kms_app, MASK_NIGHT + days(1)) as process:
        for o in orders:
            retrieve_order(process.app.ports(), o["order_nr_external"], "Rückgabe", "anna")
    with kms_app.engine.connect() as conn:
        emails = sorted(str(e) for e in conn.scalars(select(Customer.email)))
    assert emails == sorted(o["customer"]["email"] for o in orders)


def test_a_kms_key_that_does_not_exist_stops_with_a_message_naming_it(
    kms_app: App, kms: Any
) -> None:
    settings = kms_app.settings.model_copy(update={"kms_key_id": "alias/missing"})
    app = build_app(settings, FixedClock(T0))
    try:
        with pytest.raises(KeyUnavailable) as stopped:
            app.keys  # noqa: B018 - loading is what fails
    finally:
        app.close()
    assert str(stopped.value) == (
        "KMS refused DescribeKey with key alias/missing (NotFoundException); check that the key "
        "exists, is enabled, and that this machine's AWS role may use it"
    )


def test_a_kms_key_without_an_aws_region_stops_with_a_message_saying_to_set_one(
    kms_app: App, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key id or alias does not say its region (an ARN does): with no region configured,
    boto3 cannot even make the client."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    settings = kms_app.settings.model_copy(update={"kms_key_id": "alias/no-region"})
    app = build_app(settings, FixedClock(T0))
    try:
        with pytest.raises(KeyUnavailable) as stopped:
            app.keys  # noqa: B018 - loading is what fails
    finally:
        app.close()
    assert str(stopped.value) == (
        "KMS key alias/no-region: no AWS region is configured; set AWS_REGION, or name the key "
        "by its ARN (which holds the region)"
    )


def test_a_database_on_a_key_file_is_not_switched_to_kms_by_init(
    database_url: str, tmp_path: Path, kms: Any
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        assert import_lines(app, lines(*_orders(1))).refused == []
        set_feature(app.ports(), "main", True, "ops")
        run_retention(at(app, ARCHIVE_NIGHT).ports(), ARCHIVE_NIGHT)
        with app.engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(WrappingKey)).scalar_one()
        kms_settings = app.settings.model_copy(
            update={"key_provider": "kms", "kms_key_id": _new_kms_key(kms)}
        )
        from shelflife.bootstrap import initialise

        with pytest.raises(KeyUnavailable) as refused:
            initialise(kms_settings)
    finally:
        app.close()
    assert before == 0
    assert str(refused.value) == (
        f"this database's data is sealed under master key {_file_key_id(app)}, not under KMS "
        f"key {kms_settings.kms_key_id}; keep that key configured and move to KMS with "
        "`shelflife keys rotate`"
    )


def _file_key_id(app: App) -> str:
    import json

    return str(json.loads(app.key_path.read_text())["key_id"])


def test_a_kms_installation_recovers_after_losing_the_database_from_the_ledger_and_kms_alone(
    kms_app: App,
) -> None:
    """The wrapping keys were in the lost database only: the ledger carries them too."""
    orders = _orders(4)
    assert import_lines(kms_app, lines(*orders)).refused == []
    set_feature(kms_app.ports(), "main", True, "ops")
    for night in (ARCHIVE_NIGHT, MASK_NIGHT):
        with Process(kms_app, night) as process:
            run_retention(process.app.ports(), night)
    refs = [f"C{i}" for i in range(1, 5)]
    before = [show_archived(kms_app.ports(), ref, "audit", "auditor").as_json() for ref in refs]
    settings = kms_app.settings
    lose_database(kms_app)

    initialise(settings)
    with Process(build_app(settings, FixedClock(MASK_NIGHT)), MASK_NIGHT) as process:
        report = recover_archive(process.app.ports(), "ops")
        after = [
            show_archived(process.app.ports(), ref, "audit", "auditor").as_json() for ref in refs
        ]
        with process.app.engine.connect() as conn:
            recorded = conn.scalar(select(func.count()).select_from(WrappingKey))

    assert (report.segments, report.copies_added, report.keys_found, report.failed) == (
        1,
        4,
        4,
        [],
    )
    assert after == before
    # The new init's wrapping key (identity key) and, from the ledger, the archive night's.
    assert recorded == 2
    # Recovery and reading opened the identity key and the archive night's wrapping key once.
    assert dict(process.calls) == {"DescribeKey": 1, "Decrypt": 2}


def _with_2_and_6_buyers(
    database_url: str, tmp_path: Path, scenario: Callable[[str, Path, int], _T]
) -> list[tuple[int, _T]]:
    """`scenario(database url, home, buyers)` with 2 buyers and with 6, each installation in a
    database of its own: what a night's KMS requests must not grow with."""
    second = _second_database(database_url, tmp_path)
    return [
        (buyers, scenario(url, tmp_path / f"home-{buyers}", buyers))
        for buyers, url in ((2, database_url), (6, second))
    ]


def _night_without_kms(
    database_url: str,
    home: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    buyers: int,
) -> tuple[dict[str, int], list[str], dict[str, int], int]:
    """A night whose KMS endpoint goes away after the process loaded its key, then the next
    night with KMS back: (tonight's counts, reasons, KMS requests; next night's archived)."""
    key = _new_kms_key(kms)
    app = _kms_app(database_url, home, key)
    try:
        assert import_lines(app, lines(*_orders(buyers))).refused == []
        set_feature(app.ports(), "main", True, "ops")
        with _kms_gone(app, ARCHIVE_NIGHT, s3, monkeypatch) as process:
            failed = run_retention(process.app.ports(), ARCHIVE_NIGHT)
            calls = dict(process.calls)
        with Process(app, ARCHIVE_NIGHT + days(1)) as process:
            next_night = run_retention(process.app.ports(), ARCHIVE_NIGHT + days(1))
        counts = {k: getattr(failed, k) for k in ("archived", "archive_failed", "masked")}
        return counts, failed.archive_failure_reasons, calls, next_night.archived
    finally:
        app.close()


def test_kms_going_away_mid_run_fails_each_batch_with_one_request_and_the_next_night_retries(
    database_url: str, tmp_path: Path, kms: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _with_2_and_6_buyers(
        database_url,
        tmp_path,
        lambda url, home, buyers: _night_without_kms(url, home, kms, s3, monkeypatch, buyers),
    )

    for buyers, (counts, reasons, calls, retried) in found:
        assert counts == {"archived": 0, "archive_failed": buyers, "masked": 0}
        assert len(reasons) == 1
        assert reasons[0].startswith("KMS cannot be reached for GenerateDataKey with key arn:")
        assert reasons[0].endswith(
            "(EndpointConnectionError); check the AWS region, endpoint (AWS_ENDPOINT_URL_KMS) "
            "and credentials"
        )
        # One batch: one failed request for its data keys, not one per buyer.
        assert calls == {"DescribeKey": 1, "Decrypt": 1, "GenerateDataKey": 1}
        assert retried == buyers


def _mask_night_without_kms(
    database_url: str,
    home: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    buyers: int,
) -> tuple[RunReport, dict[str, int], RunReport]:
    """Buyers archived with KMS up, every other one edited since (to be sealed again with its
    data key), then a mask night whose KMS endpoint goes away after the process loaded its
    key, then the next night with KMS back: (tonight's report, KMS requests, next night's)."""
    key = _new_kms_key(kms)
    app = _kms_app(database_url, home, key)
    try:
        orders = _orders(buyers)
        assert import_lines(app, lines(*orders)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        with Process(app, ARCHIVE_NIGHT) as process:
            assert run_retention(process.app.ports(), ARCHIVE_NIGHT).archived == buyers
        edits = [dict(o, gift_message="Neue Nachricht") for o in orders[::2]]
        assert import_lines(at(app, ARCHIVE_NIGHT + days(0.5)), lines(*edits)).refused == []
        with _kms_gone(app, MASK_NIGHT, s3, monkeypatch) as process:
            tonight = run_retention(process.app.ports(), MASK_NIGHT)
            calls = dict(process.calls)
        with Process(app, MASK_NIGHT + days(1)) as process:
            next_night = run_retention(process.app.ports(), MASK_NIGHT + days(1))
        return tonight, calls, next_night
    finally:
        app.close()


def test_kms_going_away_before_masking_asks_once_per_wrapping_key_and_the_next_night_masks(
    database_url: str, tmp_path: Path, kms: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _with_2_and_6_buyers(
        database_url,
        tmp_path,
        lambda url, home, buyers: _mask_night_without_kms(url, home, kms, s3, monkeypatch, buyers),
    )

    # The key's description and the identity key's wrapping key, while KMS answered; then one
    # failed Decrypt of the archive night's wrapping key for the whole night (the verification
    # sample, the edited buyers' new copies, the masking), not one per buyer and step.
    assert [calls for _buyers, (_tonight, calls, _next) in found] == [
        {"DescribeKey": 1, "Decrypt": 2}
    ] * 2
    for buyers, (tonight, _calls, next_night) in found:
        edited = buyers // 2
        assert tonight.counts() == {
            "shops": 1,
            "archived": 0,
            "archive_failed": edited,
            "retried": 0,
            "masked": 0,
            "remasked": 0,
            "mask_refused": buyers - edited,
            "verified_objects": 1,  # the segment, its records checked up to their header
            "integrity_problems": 0,
        }
        assert len(tonight.archive_failure_reasons) == 1
        assert tonight.mask_refusal_reasons == tonight.archive_failure_reasons
        why = tonight.mask_refusal_reasons[0]
        assert why.startswith("KMS cannot be reached for Decrypt with key arn:aws:kms:")
        assert why.endswith(
            "(EndpointConnectionError); check the AWS region, endpoint (AWS_ENDPOINT_URL_KMS) "
            "and credentials"
        )
        assert (next_night.archived, next_night.masked, next_night.mask_refused) == (
            edited,
            buyers,
            0,
        )


def _archived_then_kms_gone(
    database_url: str,
    home: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    buyers: int,
    command: Callable[[App], object],
    caplog: pytest.LogCaptureFixture,
) -> tuple[object, dict[str, int], list[str]]:
    """Buyers archived and masked with KMS up, then `command` in a process whose KMS endpoint
    went away after it loaded its key: (what the command returned, or the `KeyUnavailable` it
    raised; KMS requests; warnings logged)."""
    app = _kms_app(database_url, home, _new_kms_key(kms))
    try:
        assert import_lines(app, lines(*_orders(buyers))).refused == []
        set_feature(app.ports(), "main", True, "ops")
        for night in (ARCHIVE_NIGHT, MASK_NIGHT):
            with Process(app, night) as process:
                run_retention(process.app.ports(), night)
        with _kms_gone(app, MASK_NIGHT + days(1), s3, monkeypatch) as process:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="shelflife"):
                try:
                    outcome = command(process.app)
                except KeyUnavailable as exc:
                    outcome = exc
            warnings = [r.getMessage() for r in caplog.records if r.name.startswith("shelflife")]
            return outcome, dict(process.calls), warnings
    finally:
        app.close()


def _both(
    database_url: str,
    tmp_path: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    command: Callable[[App], object],
    caplog: pytest.LogCaptureFixture,
) -> list[tuple[int, object, dict[str, int], list[str]]]:
    """`_archived_then_kms_gone` with 2 buyers and with 6: (buyers, outcome, requests, warnings)."""
    found = _with_2_and_6_buyers(
        database_url,
        tmp_path,
        lambda url, home, buyers: _archived_then_kms_gone(
            url, home, kms, s3, monkeypatch, buyers, command, caplog
        ),
    )
    return [(buyers, *outcome) for buyers, outcome in found]


KMS_GONE = (
    "(EndpointConnectionError); check the AWS region, endpoint (AWS_ENDPOINT_URL_KMS) and "
    "credentials"
)


def test_archive_verify_with_kms_gone_asks_kms_once_and_says_what_it_could_not_decrypt(
    database_url: str,
    tmp_path: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    found = _both(
        database_url,
        tmp_path,
        kms,
        s3,
        monkeypatch,
        lambda app: verify_archive(app.ports(), 100.0, "ops"),
        caplog,
    )

    for buyers, report, calls, warnings in found:
        # The identity key's wrapping key while KMS answered, then one failed Decrypt of the
        # archive night's wrapping key for every buyer under it.
        assert calls == {"DescribeKey": 1, "Decrypt": 2}
        assert isinstance(report, VerificationReport)
        assert (report.objects_checked, report.records_checked, report.problems) == (1, buyers, [])
        (warning,) = warnings
        assert warning.startswith(
            f"the data keys of {buyers} buyer(s) did not open, so their records were checked "
            "up to their header only, not decrypted: KMS cannot be reached for Decrypt with "
            "key arn:aws:kms:"
        )
        assert warning.endswith(KMS_GONE)


def test_keys_rotate_with_kms_gone_stops_at_the_first_key_naming_kms(
    database_url: str,
    tmp_path: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def rotate(app: App) -> object:
        new, _created = rotation_target(app, app.settings.home / "new.key", None)
        report = begin_rotation(app.ports(), new, "ops")
        return rewrap_data_keys(app.ports(), new, report, "ops")

    found = _both(database_url, tmp_path, kms, s3, monkeypatch, rotate, caplog)

    for _buyers, stopped, calls, _warnings in found:
        assert calls == {"DescribeKey": 1, "Decrypt": 2}
        assert isinstance(stopped, KeyUnavailable)
        assert str(stopped).startswith("KMS cannot be reached for Decrypt with key arn:aws:kms:")
        assert str(stopped).endswith(KMS_GONE)


def test_a_retrieval_with_kms_gone_fails_with_one_request_naming_kms(
    database_url: str,
    tmp_path: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def retrieve(app: App) -> object:
        with pytest.raises(KeyUnavailable) as stopped:
            retrieve_order(app.ports(), _orders(1)[0]["order_nr_external"], "Rückgabe", "anna")
        return stopped.value

    stopped, calls, _warnings = _archived_then_kms_gone(
        database_url, tmp_path / "home", kms, s3, monkeypatch, 2, retrieve, caplog
    )

    assert calls == {"DescribeKey": 1, "Decrypt": 2}
    assert isinstance(stopped, KeyUnavailable)
    assert str(stopped).startswith("KMS cannot be reached for Decrypt with key arn:aws:kms:")
    assert str(stopped).endswith(KMS_GONE)


def _recovery_with_kms_gone(
    database_url: str,
    home: Path,
    kms: Any,
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    buyers: int,
) -> tuple[KeyUnavailable, dict[str, int]]:
    """Buyers archived in segments of two, the database lost and initialised again, then
    `archive recover` in a process whose KMS endpoint went away after it loaded its key."""
    app = _kms_app(database_url, home, _new_kms_key(kms))
    settings = app.settings
    try:
        for first in range(0, buyers, 2):
            orders = _orders(2, first)
            assert import_lines(at(app, T0 + days(first)), lines(*orders)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        with Process(app, ARCHIVE_NIGHT + days(buyers)) as process:
            assert run_retention(process.app.ports(), ARCHIVE_NIGHT + days(buyers)).archived == (
                buyers
            )
        lose_database(app)
    finally:
        app.close()
    initialise(settings)
    with _kms_gone(app, MASK_NIGHT, s3, monkeypatch) as process:  # the settings of `app`
        with pytest.raises(KeyUnavailable) as stopped:
            recover_archive(process.app.ports(), "ops")
        return stopped.value, dict(process.calls)


def test_archive_recover_with_kms_gone_stops_at_once_naming_kms(
    database_url: str, tmp_path: Path, kms: Any, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _with_2_and_6_buyers(
        database_url,
        tmp_path,
        lambda url, home, buyers: _recovery_with_kms_gone(url, home, kms, s3, monkeypatch, buyers),
    )

    assert [calls for _buyers, (_stopped, calls) in found] == [{"DescribeKey": 1, "Decrypt": 2}] * 2
    for _buyers, (stopped, _calls) in found:
        assert str(stopped).startswith("KMS cannot be reached for Decrypt with key arn:aws:kms:")
        assert str(stopped).endswith(
            f"{KMS_GONE}; the recovery stopped at {_only_segment(stopped)} (the segments "
            "before it are recorded): run it again once KMS answers"
        )


def _only_segment(stopped: KeyUnavailable) -> str:
    (segment,) = re.findall(r"segments/[^ ]+\.sls", str(stopped))
    return str(segment)
