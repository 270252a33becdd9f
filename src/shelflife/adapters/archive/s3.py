"""The S3 archive store: objects in a bucket with Object Lock, through boto3.

Credentials, region and endpoint come from the standard AWS chain (environment, shared config
and credentials files, SSO, instance or task role); `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
point it at any S3-compatible store. An `endpoint` or `region` in the URL's query overrides
them for this one store (a replica at another provider or in another region).

boto3's and botocore's exceptions stop here: every failure becomes `ArchiveUnavailable` (or
`ArchiveCorrupt` when bytes arrived altered) with a message naming the bucket and key and what
to check. Keys name buyer ids at most; no message carries object content.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    NoCredentialsError,
)

from shelflife.domain.clock import Clock
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, Forbidden, InvalidInput
from shelflife.domain.ports import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import StorageClassType
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

LOCK_MODE: Final = "COMPLIANCE"
"""Compliance mode: nobody, not even the account's root user, can shorten or lift it."""

_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_ALTERED = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
DELETE_CHUNK: Final = 1000
"""The most keys one `DeleteObjects` request takes."""


@dataclass(frozen=True)
class S3Location:
    """Where a store's objects go: a bucket, a key prefix, and optional per-store endpoint and
    region (otherwise the AWS chain's)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint}" if self.endpoint else where


class S3Archive:
    """Write-once archive in an S3 bucket.

    Every object is written with Object Lock retention in compliance mode for
    `retention_days` from `clock`'s now (0: no retention, for buckets without Object Lock) and
    with `storage_class`. PutObject carries Content-MD5 and a SHA-256 checksum, so S3 refuses
    bytes altered on the way. The client is made on first use (boto3 clients are thread-safe;
    the archive's worker threads share it).
    """

    def __init__(
        self,
        location: S3Location,
        *,
        retention_days: int,
        storage_class: str,
        clock: Clock,
        attempts: int = 3,
        page_size: int = 1000,
    ) -> None:
        self.location = location
        self.retention_days = retention_days
        self.storage_class = storage_class
        self.clock = clock
        self.attempts = attempts
        self.page_size = page_size
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ArchiveUnavailable("invalid archive object key")
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    @property
    def client(self) -> S3Client:
        with self._client_lock:
            if self._client is None:
                config = Config(
                    retries={"mode": "standard", "max_attempts": self.attempts},
                    connect_timeout=10,
                    read_timeout=60,
                )
                try:
                    self._client = boto3.session.Session().client(
                        "s3",
                        endpoint_url=self.location.endpoint,
                        region_name=self.location.region,
                        config=config,
                    )
                except (BotoCoreError, ValueError) as exc:
                    raise ArchiveUnavailable(
                        f"cannot set up the S3 client for bucket {self.bucket} "
                        f"({type(exc).__name__}); check AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, "
                        "the region and the AWS configuration files"
                    ) from None
            return self._client

    def ensure(self) -> None:
        """Check that the bucket exists, can be reached with these credentials and, when
        retention is asked for, has Object Lock enabled. Buckets are not created here: Object
        Lock must be chosen when a bucket is made, with its region and policies."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            if self.retention_days == 0:
                return
            try:
                config = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = config["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = False
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "checking", None) from None
        if not enabled:
            raise ArchiveUnavailable(
                f"S3 bucket {self.bucket} has no Object Lock; create the archive bucket with "
                "Object Lock enabled (it cannot be added to every existing bucket), or set "
                "SHELFLIFE_ARCHIVE_RETENTION_DAYS=0 to write without retention"
            )

    def put(self, key: str, data: bytes) -> None:
        target = self._key(key)
        sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        storage_class = cast("StorageClassType", self.storage_class)  # checked by the settings
        try:
            if self.retention_days:
                until = self.clock.now() + timedelta(days=self.retention_days)
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=target,
                    Body=data,
                    ContentMD5=md5,
                    ChecksumSHA256=sha256,
                    StorageClass=storage_class,
                    ObjectLockMode=LOCK_MODE,
                    ObjectLockRetainUntilDate=until,
                )
            else:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=target,
                    Body=data,
                    ContentMD5=md5,
                    ChecksumSHA256=sha256,
                    StorageClass=storage_class,
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "writing", key) from None
        echoed = response.get("ChecksumSHA256")
        if echoed is not None and echoed != sha256:
            raise ArchiveCorrupt(
                f"S3 bucket {self.bucket} stored other bytes than sent for {key}; "
                "check the network path and the endpoint"
            )

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
            return response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "reading", key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ArchiveUnavailable(f"invalid byte range for archive object {key}")
        if length == 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
            )
            data = response["Body"].read()
        except ClientError as exc:
            if _code(exc) == "InvalidRange":
                raise _short(key, self.describe()) from None
            raise self._failure(exc, "reading", key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "reading", key) from None
        if len(data) != length:
            raise _short(key, self.describe())
        return data

    def describe(self) -> str:
        return self.location.describe()

    def list_objects(self) -> Iterator[StoredObject]:
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"].removeprefix(prefix),
                        size=item["Size"],
                        modified_at=item["LastModified"],
                        temporary=False,  # a PUT is atomic: S3 has no half-written objects
                    )
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "listing", None) from None

    @property
    def allows_deletion(self) -> bool:
        """False while objects are written under retention: they cannot be removed before
        their retain-until date, by us or anyone."""
        return self.retention_days == 0

    def delete(self, key: str) -> None:
        """Remove every version of the object (in a versioned bucket a plain DELETE would only
        hide it behind a delete marker)."""
        if not self.allows_deletion:
            raise Forbidden(
                f"S3 bucket {self.bucket} is written under Object Lock retention; "
                f"{key} stays until its retention ends"
            )
        target = self._key(key)
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=target
            )
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if item["Key"] == target:
                        self.client.delete_object(
                            Bucket=self.bucket, Key=target, VersionId=item["VersionId"]
                        )
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "deleting", key) from None

    def delete_many(self, keys: Sequence[str]) -> None:
        """`delete` for a batch, in requests per folder and per 1,000 versions rather than per
        object: one version listing of each folder the keys are in (a document folder holds
        at most 1,000 documents), then `DeleteObjects` of the keys' versions."""
        if not keys:
            return
        if not self.allows_deletion:
            raise Forbidden(
                f"S3 bucket {self.bucket} is written under Object Lock retention; "
                "its objects stay until their retention ends"
            )
        wanted = {self._key(key) for key in keys}
        folders = sorted({_folder_of(target) for target in wanted})
        try:
            versions: list[ObjectIdentifierTypeDef] = []
            for folder in folders:
                pages = self.client.get_paginator("list_object_versions").paginate(
                    Bucket=self.bucket, Prefix=folder
                )
                for page in pages:
                    for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if item["Key"] in wanted:
                            versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            for start in range(0, len(versions), DELETE_CHUNK):
                chunk = versions[start : start + DELETE_CHUNK]
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
                if errors := answer.get("Errors"):
                    first = errors[0]
                    raise ArchiveUnavailable(
                        f"S3 error {first.get('Code', 'unknown')} while deleting "
                        f"{len(errors)} of {len(chunk)} objects in S3 bucket {self.bucket}; "
                        "check the bucket and the credentials"
                    )
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "deleting", None) from None

    def _failure(
        self, exc: BotoCoreError | ClientError, action: str, key: str | None
    ) -> ArchiveUnavailable | ArchiveCorrupt:
        """The library's error in our words: what failed, where, and what to check.

        Failures of the bucket as a whole (missing, denied, unreachable) name no object key,
        so that a night's many failed writes share one reason in the run report."""
        bucket_what = f"{_PHRASES[action]} S3 bucket {self.bucket}"
        object_what = f"{action} {key} in S3 bucket {self.bucket}" if key else bucket_what
        if isinstance(exc, NoCredentialsError):
            return ArchiveUnavailable(
                f"no AWS credentials for {bucket_what}; provide them the standard AWS way "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role)"
            )
        if isinstance(exc, FlexibleChecksumError):
            return ArchiveCorrupt(
                f"{object_what}: the bytes received do not match the checksum S3 stored; "
                "check the network path, or read the replica"
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return ArchiveUnavailable(
                f"cannot reach S3 for {bucket_what} ({type(exc).__name__}); check the network, "
                "AWS_ENDPOINT_URL_S3 (or the URL's endpoint) and the region"
            )
        if isinstance(exc, BotoCoreError):
            return ArchiveUnavailable(
                f"S3 client error {type(exc).__name__} while {bucket_what}; check the AWS "
                "configuration and the network"
            )
        code = _code(exc)
        if code == "NoSuchBucket" or (key is None and code in _MISSING):
            return ArchiveUnavailable(
                f"S3 bucket {self.bucket} does not exist; create it with Object Lock enabled, "
                "or fix the archive URL"
            )
        if code in _DENIED:
            locked = ", and that no Object Lock retention holds it" if action == "deleting" else ""
            return ArchiveUnavailable(
                f"access denied ({code}) while {bucket_what}; check the credentials and that "
                f"their IAM policy grants the permissions listed in docs/operations.md{locked}"
            )
        if code in _MISSING and key is not None:
            return ArchiveUnavailable(f"archive object {key} is missing from {self.describe()}")
        if code in _ALTERED:
            return ArchiveCorrupt(
                f"S3 refused {object_what}: the bytes arrived altered ({code}); nothing was "
                "stored; check the network path"
            )
        if code == "InvalidRequest" and action == "writing" and self.retention_days:
            return ArchiveUnavailable(
                f"S3 refused {bucket_what} (InvalidRequest); check that the bucket has Object "
                "Lock enabled, or set SHELFLIFE_ARCHIVE_RETENTION_DAYS=0"
            )
        return ArchiveUnavailable(
            f"S3 error {code} while {object_what}; check the bucket, the credentials and the "
            "endpoint"
        )


def _folder_of(key: str) -> str:
    """The listing prefix that finds `key`: its folder, or the key itself at the top."""
    return key.rpartition("/")[0] + "/" if "/" in key else key


_PHRASES = {
    "writing": "writing to",
    "reading": "reading from",
    "listing": "listing",
    "deleting": "deleting from",
    "checking": "checking",
}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


def _short(key: str, where: str) -> ArchiveCorrupt:
    return ArchiveCorrupt(f"archive object {key} in {where} ends before the requested range")


_BUCKET_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")


def parse_s3_url(url: str, setting: str) -> S3Location:
    """`s3://bucket[/prefix][?endpoint=URL&region=NAME]`, checked; `InvalidInput` naming the
    setting otherwise (the URL itself holds no secret, but is not echoed either)."""
    from urllib.parse import parse_qs, urlparse

    parsed = urlparse(url)
    example = "e.g. s3://my-archive-bucket/shelflife"
    bucket = parsed.netloc
    if not bucket:
        raise InvalidInput(f"{setting}: an S3 URL needs a bucket name, {example}")
    if (
        not 3 <= len(bucket) <= 63
        or not set(bucket) <= _BUCKET_CHARS
        or not (bucket[0].isalnum() and bucket[-1].isalnum())
        or ".." in bucket
    ):
        raise InvalidInput(
            f"{setting}: {bucket!r} is not a valid S3 bucket name (3 to 63 lowercase letters, "
            f"digits, dots and hyphens), {example}"
        )
    prefix = parsed.path.strip("/")
    if ".." in prefix.split("/") or "//" in prefix:
        raise InvalidInput(
            f"{setting}: the key prefix of an S3 URL must be a plain path, {example}"
        )
    try:
        query = parse_qs(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query))
    except ValueError:
        query = {"": []}
    unknown = sorted(set(query) - {"endpoint", "region"})
    if unknown or any(len(v) != 1 or not v[0] for v in query.values()):
        raise InvalidInput(
            f"{setting}: an S3 URL's query may only hold endpoint=URL and region=NAME, once each"
        )
    endpoint = query.get("endpoint", [None])[0]
    if endpoint is not None:
        try:
            target = urlparse(endpoint)
            valid = target.scheme in ("http", "https") and bool(target.hostname)
        except ValueError:  # e.g. an unbalanced [ or ] in its host part
            valid = False
        if not valid:
            raise InvalidInput(
                f"{setting}: the endpoint of an S3 URL must be an http:// or https:// URL"
            )
        if target.username is not None or target.password is not None:
            raise InvalidInput(
                f"{setting}: the endpoint of an S3 URL must hold no credentials; give them the "
                "standard AWS way"
            )
    return S3Location(bucket, prefix, endpoint, query.get("region", [None])[0])
