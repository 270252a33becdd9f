"""A real S3-compatible server for the tests: moto's server mode on a free loopback port.

The S3 store is tested over HTTP against it, as against any S3-compatible endpoint; boto3 is
never patched. Buckets are made per test with unique names, with Object Lock by default.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION: Final = "eu-central-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class S3Server:
    """moto's threaded server, started on a free port, answering on `endpoint`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._client: S3Client | None = None

    def start(self, timeout: float = 20) -> None:
        """Start and wait until it answers; RuntimeError when it does not in `timeout`."""
        try:
            self._server.start()
        except OSError as exc:
            raise RuntimeError(f"moto's S3 server did not start: {exc}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto's S3 server on {self.endpoint} does not answer: {exc}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self._server.stop()

    def client(self) -> S3Client:
        """A client of the tests' own (made once: a client takes long to make)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> S3Client:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )

    def create_bucket(self, *, object_lock: bool = True) -> str:
        """A new empty bucket (versioned, with Object Lock enabled unless told otherwise)."""
        name = f"shelflife-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(
            Bucket=name,
            ObjectLockEnabledForBucket=object_lock,
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        return name

    def url(self, bucket: str, prefix: str = "archive") -> str:
        """The archive URL of `bucket` on this server."""
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region={REGION}"

    def every_object(self, bucket: str) -> Iterator[tuple[str, bytes]]:
        """Every version of every object in the bucket, with its bytes."""
        client = self.client()
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                body = client.get_object(
                    Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
                )["Body"].read()
                yield version["Key"], body
