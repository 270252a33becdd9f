"""The S3 archive store over HTTP against a real S3-compatible server (moto's server mode):
write-once objects under compliance retention, byte ranges, listing, and failures in our
words."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from shelflife.adapters.archive.s3 import S3Archive, S3Location
from shelflife.adapters.archive.store import archive_from_url
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, Forbidden
from tests.support.s3_server import REGION, S3Server, free_port

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""In the future of any test run: a retain-until date must lie ahead of the server's clock."""

KEY = "customers/000001/1001-r000001-0a0b0c0d.slf"
DATA = bytes(range(256)) * 40


def _store(
    s3: S3Server,
    bucket: str,
    *,
    retention_days: int = 10,
    storage_class: str = "STANDARD",
    prefix: str = "archive",
    **options: Any,
) -> S3Archive:
    return S3Archive(
        S3Location(bucket, prefix, s3.endpoint, REGION),
        retention_days=retention_days,
        storage_class=storage_class,
        clock=FixedClock(NOW),
        **options,
    )


def test_put_then_get_returns_the_exact_bytes_and_get_range_one_slice(s3: S3Server) -> None:
    store = _store(s3, s3.create_bucket())

    store.put(KEY, DATA)

    assert store.get(KEY) == DATA
    assert store.get_range(KEY, 0, 1) == DATA[:1]
    assert store.get_range(KEY, 1000, 2000) == DATA[1000:3000]
    assert store.get_range(KEY, len(DATA) - 5, 5) == DATA[-5:]
    assert store.get_range(KEY, 7, 0) == b""


def test_a_range_past_the_end_is_corrupt_and_a_missing_object_is_unavailable(
    s3: S3Server,
) -> None:
    store = _store(s3, s3.create_bucket())
    store.put(KEY, DATA)
    where = store.describe()

    with pytest.raises(ArchiveCorrupt) as beyond:
        store.get_range(KEY, len(DATA) - 5, 6)
    with pytest.raises(ArchiveCorrupt) as outside:
        store.get_range(KEY, len(DATA) + 10, 4)
    with pytest.raises(ArchiveUnavailable) as missing:
        store.get("customers/000001/1001-r000002-ffffffff.slf")

    assert (
        str(beyond.value)
        == str(outside.value)
        == (f"archive object {KEY} in {where} ends before the requested range")
    )
    assert str(missing.value) == (
        f"archive object customers/000001/1001-r000002-ffffffff.slf is missing from {where}"
    )


def test_objects_are_written_under_compliance_retention_with_the_storage_class(
    s3: S3Server,
) -> None:
    bucket = s3.create_bucket()
    store = _store(s3, bucket, retention_days=3650, storage_class="STANDARD_IA")

    store.put(KEY, DATA)

    head = s3.client().head_object(Bucket=bucket, Key=f"archive/{KEY}")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == (
        "COMPLIANCE",
        datetime(2039, 12, 30, 12, 0, tzinfo=UTC),  # NOW + 3650 days
    )
    assert (head["StorageClass"], head["ContentLength"]) == ("STANDARD_IA", len(DATA))
    assert store.allows_deletion is False


def test_put_sends_md5_and_sha256_so_that_the_store_verifies_the_bytes(s3: S3Server) -> None:
    store = _store(s3, s3.create_bucket())
    sent: list[dict[str, str]] = []

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    store.client.meta.events.register("before-send.s3.PutObject", capture)
    store.put(KEY, DATA)

    assert len(sent) == 1
    assert sent[0]["content-md5"] == base64.b64encode(hashlib.md5(DATA).digest()).decode()
    assert sent[0]["x-amz-checksum-sha256"] == (
        base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    )
    assert sent[0]["x-amz-object-lock-mode"] == "COMPLIANCE"


def test_deletion_is_refused_while_retention_applies_and_the_server_refuses_it_too(
    s3: S3Server,
) -> None:
    bucket = s3.create_bucket()
    store = _store(s3, bucket)
    store.put(KEY, DATA)

    with pytest.raises(Forbidden) as refused:
        store.delete(KEY)
    version = s3.client().head_object(Bucket=bucket, Key=f"archive/{KEY}")["VersionId"]
    with pytest.raises(ClientError) as by_server:
        s3.client().delete_object(Bucket=bucket, Key=f"archive/{KEY}", VersionId=version)

    assert str(refused.value) == (
        f"S3 bucket {bucket} is written under Object Lock retention; {KEY} stays until its "
        "retention ends"
    )
    assert by_server.value.response["Error"]["Code"] == "AccessDenied"
    assert store.get(KEY) == DATA


def test_without_retention_delete_removes_every_version_of_the_object(s3: S3Server) -> None:
    bucket = s3.create_bucket(object_lock=False)
    store = _store(s3, bucket, retention_days=0)
    store.put(KEY, DATA)
    store.put("customers/000001/1001-r000002-0a0b0c0d.slf", b"kept")

    store.delete(KEY)
    store.delete(KEY)  # already gone: nothing to do

    assert store.allows_deletion is True
    assert [k for k, _ in s3.every_object(bucket)] == [
        "archive/customers/000001/1001-r000002-0a0b0c0d.slf"
    ]
    assert "ObjectLockMode" not in s3.client().head_object(
        Bucket=bucket, Key="archive/customers/000001/1001-r000002-0a0b0c0d.slf"
    )


def test_listing_pages_through_every_object_under_the_prefix_only(s3: S3Server) -> None:
    bucket = s3.create_bucket()
    store = _store(s3, bucket, page_size=2)
    keys = [f"customers/000000/{n}-r000001-0a0b0c0d.slf" for n in range(1, 6)]
    for n, key in enumerate(keys):
        store.put(key, b"x" * n)
    _store(s3, bucket, prefix="other").put(KEY, DATA)

    listed = sorted(store.list_objects(), key=lambda o: o.key)

    assert [(o.key, o.size, o.temporary) for o in listed] == [
        (key, n, False) for n, key in enumerate(keys)
    ]
    assert all(o.modified_at.tzinfo is not None for o in listed)


def test_a_deletion_the_server_refuses_is_access_denied_in_our_words(s3: S3Server) -> None:
    bucket = s3.create_bucket()
    _store(s3, bucket).put(KEY, DATA)  # locked for ten days
    unlocked_view = _store(s3, bucket, retention_days=0)

    with pytest.raises(ArchiveUnavailable) as info:
        unlocked_view.delete(KEY)

    assert str(info.value) == (
        f"access denied (AccessDenied) while deleting from S3 bucket {bucket}; check the "
        "credentials and that their IAM policy grants the permissions listed in "
        "docs/operations.md, and that no Object Lock retention holds it"
    )
    assert unlocked_view.get(KEY) == DATA


def test_init_check_accepts_a_locked_bucket_and_refuses_one_without_object_lock(
    s3: S3Server,
) -> None:
    plain = s3.create_bucket(object_lock=False)
    _store(s3, s3.create_bucket()).ensure()
    _store(s3, plain, retention_days=0).ensure()

    with pytest.raises(ArchiveUnavailable) as refused:
        _store(s3, plain).ensure()

    assert str(refused.value) == (
        f"S3 bucket {plain} has no Object Lock; create the archive bucket with Object Lock "
        "enabled (it cannot be added to every existing bucket), or set "
        "SHELFLIFE_ARCHIVE_RETENTION_DAYS=0 to write without retention"
    )


def test_a_missing_bucket_is_named_with_what_to_do(s3: S3Server) -> None:
    store = _store(s3, "shelflife-no-such-bucket")

    with pytest.raises(ArchiveUnavailable) as on_put:
        store.put(KEY, DATA)
    with pytest.raises(ArchiveUnavailable) as on_init:
        store.ensure()

    assert (
        str(on_put.value)
        == str(on_init.value)
        == (
            "S3 bucket shelflife-no-such-bucket does not exist; create it with Object Lock "
            "enabled, or fix the archive URL"
        )
    )


def test_an_unreachable_endpoint_is_unavailable_naming_what_to_check(s3: S3Server) -> None:
    store = S3Archive(
        S3Location("shelflife-archive", "archive", f"http://127.0.0.1:{free_port()}", REGION),
        retention_days=10,
        storage_class="STANDARD",
        clock=FixedClock(NOW),
        attempts=1,
    )

    with pytest.raises(ArchiveUnavailable) as info:
        store.get(KEY)

    assert str(info.value) == (
        "cannot reach S3 for reading from S3 bucket shelflife-archive "
        "(EndpointConnectionError); check the network, AWS_ENDPOINT_URL_S3 (or the URL's "
        "endpoint) and the region"
    )


def test_missing_credentials_are_named_without_a_traceback(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3, "shelflife-archive")

    with pytest.raises(ArchiveUnavailable) as info:
        store.put(KEY, DATA)

    assert str(info.value) == (
        "no AWS credentials for writing to S3 bucket shelflife-archive; provide them "
        "the standard AWS way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
        "instance role)"
    )


def test_the_standard_aws_endpoint_variable_points_the_store_at_the_server(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.create_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    store = archive_from_url(f"s3://{bucket}/archive", retention_days=1, clock=FixedClock(NOW))

    store.put(KEY, DATA)

    assert s3.client().get_object(Bucket=bucket, Key=f"archive/{KEY}")["Body"].read() == DATA
