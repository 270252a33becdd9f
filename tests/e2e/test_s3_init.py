"""`shelflife init` with the archive on S3 and a replica: both locations are checked before
anything is stored, and a location that is not usable stops init with what to do."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from shelflife.config import Settings
from shelflife.entrypoints.cli import app
from tests.support.s3_server import S3Server

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = tuple(f"SHELFLIFE_{name.upper()}" for name in Settings.model_fields)


def _init(home: Path, primary: str, replica: str, ledgers: tuple[str, str]) -> Result:
    env: dict[str, str | None] = dict.fromkeys(VARIABLES)
    env.update(
        SHELFLIFE_HOME=str(home),
        SHELFLIFE_ARCHIVE_URL=primary,
        SHELFLIFE_ARCHIVE_REPLICA_URL=replica,
        SHELFLIFE_KEY_LEDGER_URL=ledgers[0],
        SHELFLIFE_KEY_LEDGER_REPLICA_URL=ledgers[1],
    )
    result = CliRunner().invoke(app, ["init"], env=env)
    assert "Traceback" not in result.output
    return result


def _ledgers(s3: S3Server) -> tuple[str, str]:
    """Two mutable buckets (no Object Lock, no versioning) for the key ledger."""
    return (
        s3.url(s3.create_bucket(object_lock=False), "keys"),
        s3.url(s3.create_bucket(object_lock=False), "keys"),
    )


def test_init_checks_both_s3_locations_and_stores_their_urls(s3: S3Server, tmp_path: Path) -> None:
    primary, replica = s3.create_bucket(), s3.create_bucket()
    home = tmp_path / "home"
    ledgers = _ledgers(s3)

    result = _init(home, s3.url(primary), s3.url(replica), ledgers)

    assert result.exit_code == 0, result.output
    assert (
        f"archive at s3://{primary}/archive at {s3.endpoint} "
        f"(replica s3://{replica}/archive at {s3.endpoint})"
    ) in result.stdout
    stored = json.loads((home / "config.json").read_text())
    assert (stored["archive_url"], stored["archive_replica_url"]) == (
        s3.url(primary),
        s3.url(replica),
    )
    assert (stored["key_ledger_url"], stored["key_ledger_replica_url"]) == ledgers


def test_init_refuses_a_key_ledger_bucket_that_keeps_old_versions(
    s3: S3Server, tmp_path: Path
) -> None:
    locked = s3.create_bucket()  # Object Lock turns versioning on
    ledgers = (s3.url(locked, "keys"), _ledgers(s3)[1])

    result = _init(
        tmp_path / "home", s3.url(s3.create_bucket()), s3.url(s3.create_bucket()), ledgers
    )

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: S3 bucket {locked} keeps old versions of its objects (versioning enabled), so a "
        "shredded key would survive in one; put the key ledger in a bucket that never had "
        "versioning or Object Lock\n"
    )
    assert not (tmp_path / "home" / "config.json").exists()


def test_init_with_a_missing_replica_bucket_stops_naming_it_and_stores_nothing(
    s3: S3Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"

    result = _init(
        home, s3.url(s3.create_bucket()), s3.url("shelflife-replica-missing"), _ledgers(s3)
    )

    assert (result.exit_code, result.stdout) == (1, "")
    message = (
        "S3 bucket shelflife-replica-missing does not exist; create it with Object Lock "
        "enabled, or fix the archive URL"
    )
    assert result.stderr == f"error: {message}\n"
    assert not (home / "config.json").exists()
    operations = " ".join((ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split())
    assert message.replace("shelflife-replica-missing", "acme-shelflife-archive") in operations


def test_init_refuses_a_bucket_without_object_lock_while_retention_is_asked_for(
    s3: S3Server, tmp_path: Path
) -> None:
    plain = s3.create_bucket(object_lock=False)

    result = _init(tmp_path / "home", s3.url(s3.create_bucket()), s3.url(plain), _ledgers(s3))

    assert (result.exit_code, result.stderr) == (
        1,
        f"error: S3 bucket {plain} has no Object Lock; create the archive bucket with Object "
        "Lock enabled (it cannot be added to every existing bucket), or set "
        "SHELFLIFE_ARCHIVE_RETENTION_DAYS=0 to write without retention\n",
    )
