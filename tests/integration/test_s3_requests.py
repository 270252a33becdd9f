"""S3 requests per night grow with segments, not with buyers: counted on the S3 server itself
(moto's request log), for the archive, its replica, the key ledger's two buckets and the
document store (each buyer has an invoice PDF, which leaves the store at masking), on a night
archiving 3 buyers and one archiving 60 (one segment each)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, lines, make_app, order
from tests.support.s3_server import S3Server

ARCHIVE_NIGHT = T0 + days(29.5)
MASK_NIGHT = T0 + days(31)
REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) /([^/ ?]+)[^"]*" (\d{3})')


def _requests_per_night(
    s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture, buyers: int
) -> list[Counter[tuple[str, str]]]:
    """(method, place) -> requests, for the archive night and for the mask night."""
    buckets = {
        "archive": s3.create_bucket(),
        "replica": s3.create_bucket(),
        "ledger": s3.create_bucket(object_lock=False),
        "ledger replica": s3.create_bucket(object_lock=False),
        "documents": s3.create_bucket(object_lock=False),
    }
    home = tmp_path / f"home-{buyers}"
    app, _clock = make_app(
        f"sqlite:///{tmp_path / f'db-{buyers}.sqlite'}",
        home,
        archive_url=s3.url(buckets["archive"]),
        archive_replica_url=s3.url(buckets["replica"]),
        key_ledger_url=s3.url(buckets["ledger"], "keys"),
        key_ledger_replica_url=s3.url(buckets["ledger replica"], "keys"),
        document_store_url=s3.url(buckets["documents"], "pdf"),
    )
    place = {bucket: name for name, bucket in buckets.items()}
    try:
        orders = [
            order(f"304-{i:07d}-{i:07d}", shipped_at=T0, suffix=f"-r{i}", invoiced_at=T0)
            for i in range(buyers)
        ]
        assert import_lines(app, lines(*orders)).refused == []
        assert len(list(s3.every_object(buckets["documents"]))) == buyers
        set_feature(app.ports(), "main", True, "ops")
        nights = []
        for night, counted in ((ARCHIVE_NIGHT, "archived"), (MASK_NIGHT, "masked")):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="werkzeug"):
                report = run_retention(app.ports(), night)
            assert getattr(report, counted) == buyers
            seen: Counter[tuple[str, str]] = Counter()
            for message in caplog.messages:
                found = REQUEST.search(message)
                if found is not None and found.group(2) in place:
                    seen[found.group(1), place[found.group(2)]] += 1
            nights.append(seen)
        assert list(s3.every_object(buckets["documents"])) == []  # each PDF left at masking
        return nights
    finally:
        app.close()


def test_s3_requests_per_night_do_not_grow_with_the_number_of_buyers(
    s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    few = _requests_per_night(s3, tmp_path, caplog, 3)
    many = _requests_per_night(s3, tmp_path, caplog, 60)

    archive_night, mask_night = few
    # One segment to each location and one ledger object to each ledger bucket, each read back.
    assert {p: n for (m, p), n in archive_night.items() if m == "PUT"} == {
        "archive": 1,
        "replica": 1,
        "ledger": 1,
        "ledger replica": 1,
    }
    # The PDFs are read from the document store one by one into the buyers' records: a GET
    # per document, the one kind of request that grows with buyers, counted apart.
    assert archive_night.pop(("GET", "documents")) == 3
    assert many[0].pop(("GET", "documents")) == 60
    assert many == few
    # Masking reads no archive object (the copies were verified the night before); the nightly
    # verification sample (1 % by default, at least one object) re-reads the one segment. The
    # masked buyers' PDFs leave the document store in one version listing of their folder and
    # one batch deletion.
    assert mask_night == Counter(
        {
            ("GET", "archive"): 1,
            ("GET", "replica"): 1,
            ("GET", "documents"): 1,
            ("POST", "documents"): 1,
        }
    )
