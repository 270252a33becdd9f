"""The production configuration of docs/operations.md end to end, through the command line:
PostgreSQL, the archive on S3 with Object Lock and a replica bucket, the key ledger in two
mutable buckets, the PDFs in a document-store bucket, the master key in KMS, and two workers.

One installation lives through what an operator does with it: init, import, the archive night
and the mask night, compliance and a full verification, a retrieval, a key rotation to a new
KMS key, and the loss of the database followed by `archive recover`. Every object in every
bucket is read back at the end: no byte holds the buyers' personal data while they are masked.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import create_engine, text

from shelflife.adapters.db.tables import Base
from tests.e2e.test_cli import Cli, _stdin
from tests.support.builders import T0, days, order, pii_strings
from tests.support.pg_cluster import PostgresCluster
from tests.support.s3_server import REGION, S3Server

ORDERS = [
    order(f"303-{i:07d}-{i:07d}", shipped_at=T0, invoiced_at=T0 + days(0.1), suffix=f"-prod{i}")
    for i in range(1, 4)
]
PII = sorted({s for o in ORDERS for s in pii_strings(o) if len(s) >= 6})
ARCHIVE_NIGHT = "2026-03-31T02:00:00+02:00"
"""Shipped 2026-03-02 (Berlin): archived the night 29 days later, masked the night after."""
MASK_NIGHT = "2026-04-02T02:00:00+02:00"
LATER = "2026-04-03T10:00:00+02:00"


@pytest.fixture
def production(
    postgres_cluster: PostgresCluster,
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """A fresh PostgreSQL database, the buckets, a KMS key, and `shelflife init` over them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3.endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    kms = boto3.session.Session().client("kms", endpoint_url=s3.endpoint, region_name=REGION)
    name = f"shelflife_prod_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    buckets = {
        "archive": s3.create_bucket(),
        "replica": s3.create_bucket(),
        "ledger": s3.create_bucket(object_lock=False),
        "ledger_replica": s3.create_bucket(object_lock=False),
        "documents": s3.create_bucket(object_lock=False),
    }
    key = kms.create_key(Description="shelflife production test")["KeyMetadata"]["Arn"]
    cli = Cli(tmp_path / "home", url)
    settings = {
        "archive_url": s3.url(buckets["archive"]),
        "archive_replica_url": s3.url(buckets["replica"]),
        "key_ledger_url": s3.url(buckets["ledger"], "keys"),
        "key_ledger_replica_url": s3.url(buckets["ledger_replica"], "keys"),
        "document_store_url": s3.url(buckets["documents"], "pdfs"),
        "key_provider": "kms",
        "kms_key_id": key,
    }
    init = cli("init", env=cli.env(**settings))
    assert init.exit_code == 0, init.output
    try:
        yield cli, s3, kms, buckets
    finally:
        postgres_cluster.drop_database(name)


def _stored_bytes(s3: S3Server, buckets: dict[str, str], *names: str) -> bytes:
    return b"".join(body for n in names for _key, body in s3.every_object(buckets[n]))


def test_the_production_configuration_archives_masks_retrieves_rotates_and_recovers(
    production: Any,
) -> None:
    cli, s3, kms, buckets = production
    cli.ok("import", "-", input=_stdin(*ORDERS))
    pdfs_made = sorted(k for k, _ in s3.every_object(buckets["documents"]))
    cli.ok("feature", "enable", "--shop", "main")

    archived = cli.json("run", "--as-of", ARCHIVE_NIGHT, "--workers", "2")
    masked = cli.json("run", "--as-of", MASK_NIGHT, "--workers", "2")
    compliance = cli("compliance", "--as-of", LATER)
    verified = cli.json("archive", "verify")

    assert len(pdfs_made) == 3  # one invoice PDF per order, in the document-store bucket
    assert (archived["archived"], archived["archive_failed"], masked["masked"]) == (3, 0, 3)
    assert compliance.exit_code == 0, compliance.output
    assert (verified["problems"], verified["records_checked"]) == ([], 6)  # both locations
    for bucket in (buckets["archive"], buckets["replica"]):
        client = s3.client()
        (segment,) = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        head = client.head_object(Bucket=bucket, Key=segment)
        assert head["ObjectLockMode"] == "COMPLIANCE"
    assert list(s3.every_object(buckets["documents"])) == []  # the PDFs left at masking
    stored = _stored_bytes(s3, buckets, "archive", "replica", "ledger", "ledger_replica")
    assert [p for p in PII if p.encode() in stored] == []

    nr = ORDERS[0]["order_nr_external"]
    cli.ok("retrieve", nr, "--reason", "Rücksendung", "--user", "anna", "--as-of", LATER)
    shown = cli.json("show", nr, "--as-of", LATER)
    assert shown["customer"]["email"] == ORDERS[0]["customer"]["email"]
    assert len(list(s3.every_object(buckets["documents"]))) == 1  # its PDF is back

    new_key = kms.create_key(Description="shelflife rotated")["KeyMetadata"]["Arn"]
    rotated = cli("keys", "rotate", "--to-kms-key", new_key)
    assert rotated.exit_code == 0, rotated.output
    shown_c2 = cli("archive", "show", "C2", "--reason", "Betriebsprüfung")
    assert shown_c2.exit_code == 0, shown_c2.output

    engine = create_engine(cli.database_url)
    try:
        with engine.begin() as conn:  # the database is lost; buckets and KMS remain
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()
    cli.ok("init")
    recovered = cli.json("archive", "recover")
    after = cli("archive", "show", "C2", "--reason", "Betriebsprüfung")

    assert (recovered["segments"], recovered["failed"]) == (1, [])
    assert recovered["keys_found"] == 3
    assert after.exit_code == 0, after.output
    assert after.stdout == shown_c2.stdout
    assert ORDERS[1]["customer"]["email"] in after.stdout
