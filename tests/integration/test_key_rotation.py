"""`keys rotate` on SQLite and PostgreSQL: every data key and the identity key re-wrapped under
a new master key (a key file or KMS) without rewriting a segment; killed midway, run again it
continues, and every buyer stays retrievable in between; beside a nightly run (PostgreSQL,
both at once) nothing is lost."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shelflife.adapters.db.tables import ArchiveCopy, AuditLogEntry, Customer, Installation
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.bootstrap import App, build_app
from shelflife.domain.clock import FixedClock
from shelflife.domain.ports import UnitOfWork
from shelflife.entrypoints.cli import app as cli_app
from shelflife.services.importing import import_lines
from shelflife.services.keys import (
    KEYS_ROTATED,
    ROTATION_STARTED,
    RotationReport,
    begin_rotation,
    rewrap_data_keys,
)
from shelflife.services.pipeline import RUN_FINISHED, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.archive import make_legacy
from tests.support.builders import T0, days, lines, make_app, order
from tests.support.s3_server import REGION, S3Server

ARCHIVE_NIGHT = T0 + days(29.5)
MASK_NIGHT = T0 + days(31)
LATER = MASK_NIGHT + days(1)


def _orders(count: int, first: int = 0, shipped_at: datetime = T0) -> list[dict[str, Any]]:
    return [
        order(
            f"302-{i:07d}-{i:07d}",
            shipped_at=shipped_at,
            suffix=f"-r{i}",
            customer={"customer_nr_external": f"R{i:013d}", "email": f"rot{i}@example.org"},
        )
        for i in range(first, first + count)
    ]


def _process(app: App, moment: datetime = LATER, **settings: Any) -> App:
    """Another process of the installation, optionally with other settings."""
    return build_app(app.settings.model_copy(update=settings), FixedClock(moment))


def _archived_and_masked(app: App, orders: list[dict[str, Any]]) -> None:
    assert import_lines(app, lines(*orders)).refused == []
    set_feature(app.ports(), "main", True, "ops")
    for night in (ARCHIVE_NIGHT, MASK_NIGHT):
        night_app = _process(app, night)
        try:
            run_retention(night_app.ports(), night)
        finally:
            night_app.close()


def _key_ids(app: App) -> dict[str | None, int]:
    with app.engine.connect() as conn:
        found: dict[str | None, int] = {}
        for key_id in conn.scalars(select(Customer.data_key_master_id)):
            found[key_id] = found.get(key_id, 0) + 1
        return found


def _archive_bytes(app: App) -> dict[str, bytes]:
    root = app.settings.home / "archive"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _retrieve_all(
    app: App, orders: list[dict[str, Any]], moment: datetime = LATER, **settings: Any
) -> list[str]:
    """Retrieve every order in a new process; returns the buyers' e-mails as restored."""
    process = _process(app, moment, **settings)
    try:
        for o in orders:
            retrieve_order(process.ports(), o["order_nr_external"], "Rückgabe", "anna")
    finally:
        process.close()
    with app.engine.connect() as conn:
        return sorted(str(e) for e in conn.scalars(select(Customer.email)))


def _emails(orders: list[dict[str, Any]]) -> list[str]:
    return sorted(o["customer"]["email"] for o in orders)


def _rotate(
    app: App, new: Any, on_batch: Any = None, batch_size: int | None = None, **settings: Any
) -> RotationReport:
    process = _process(app, batch_size=batch_size or app.settings.batch_size, **settings)
    try:
        report = begin_rotation(process.ports(), new, "ops")
        return rewrap_data_keys(process.ports(), new, report, "ops", on_batch=on_batch)
    finally:
        process.close()


def _new_key_file(path: Path) -> LocalKeyProvider:
    LocalKeyProvider.create_file(path)
    return LocalKeyProvider.from_file(path)


def test_rotation_rewraps_every_data_key_and_the_identity_key_without_rewriting_segments(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        orders = _orders(5)
        _archived_and_masked(app, orders)
        old_id = app.keys.key_id
        digest = app.keys.identity_digest("amazon|rot1@example.org")
        segments = _archive_bytes(app)
        new = _new_key_file(tmp_path / "new.key")

        report = _rotate(app, new, batch_size=2)

        assert (report.started, report.rewrapped, report.batches, report.left) == (True, 5, 3, 0)
        assert _key_ids(app) == {new.key_id: 5}
        assert _archive_bytes(app) == segments  # not one segment byte rewritten
        with app.engine.connect() as conn:
            installation = conn.execute(
                select(Installation.master_key_id, Installation.previous_master_key_id)
            ).one()
            audit = conn.execute(
                select(AuditLogEntry.action, AuditLogEntry.subject).order_by(AuditLogEntry.seq)
            ).all()
        assert (installation.master_key_id, installation.previous_master_key_id) == (
            new.key_id,
            None,
        )
        assert [tuple(a) for a in audit if a.action.startswith("keys.")] == [
            (ROTATION_STARTED, new.key_id),
            (KEYS_ROTATED, new.key_id),
        ]
        app.key_path.unlink()  # the old key is not needed any more
        with_new = _process(app, master_key_file=tmp_path / "new.key")
        try:
            assert with_new.keys.identity_digest("amazon|rot1@example.org") == digest
        finally:
            with_new.close()
        assert old_id != new.key_id
        assert _retrieve_all(app, orders, master_key_file=tmp_path / "new.key") == _emails(orders)
    finally:
        app.close()


class Killed(Exception):
    """Stands for the rotation's process being killed in the middle of a batch."""


def test_a_rotation_killed_midway_continues_when_run_again_and_every_buyer_stays_retrievable(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        orders = _orders(6)
        _archived_and_masked(app, orders)
        old_id = app.keys.key_id
        new = _new_key_file(tmp_path / "new.key")
        seen: list[int] = []

        def killed_in_the_second_batch(_uow: UnitOfWork, ids: Sequence[int]) -> None:
            seen.append(len(ids))
            if len(seen) == 2:
                raise Killed

        with pytest.raises(Killed):
            _rotate(app, new, on_batch=killed_in_the_second_batch, batch_size=2)

        assert _key_ids(app) == {new.key_id: 2, old_id: 4}  # the second batch rolled back
        # Meanwhile a process configured with the old key and one with the new key both
        # retrieve buyers under either key (each its own: a retrieved order is not retrieved
        # again before its re-mask).
        halves = (orders[:1] + orders[-1:], orders[1:2] + orders[-2:-1])
        keys: tuple[dict[str, Any], ...] = ({}, {"master_key_file": tmp_path / "new.key"})
        for settings, half in zip(keys, halves, strict=True):
            process = _process(app, LATER, **settings)
            try:
                assert process.keys.key_id == new.key_id  # wraps under the new key already
                for o in half:
                    retrieve_order(process.ports(), o["order_nr_external"], "Rückgabe", "anna")
            finally:
                process.close()

        report = _rotate(app, new, batch_size=2)

        assert (report.started, report.rewrapped, report.left) == (False, 4, 0)
        assert _key_ids(app) == {new.key_id: 6}
        rest = orders[2:-2]  # the others are retrieved already
        assert _retrieve_all(app, rest, master_key_file=tmp_path / "new.key") == _emails(orders)
    finally:
        app.close()


def test_rotation_from_a_key_file_to_kms_asks_kms_for_one_wrapping_key_whatever_the_buyers(
    database_url: str, tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", s3.endpoint)
    kms = boto3.session.Session().client("kms", endpoint_url=s3.endpoint, region_name=REGION)
    arn = kms.create_key(Description="shelflife rotation")["KeyMetadata"]["Arn"]
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        orders = _orders(7)
        _archived_and_masked(app, orders)
        process = _process(app, batch_size=2)
        calls: list[str] = []
        process.aws.events.register("before-call.kms", lambda model, **_: calls.append(model.name))
        try:
            new = process.kms_key(arn)
            report = rewrap_data_keys(
                process.ports(), new, begin_rotation(process.ports(), new, "ops"), "ops"
            )
        finally:
            process.close()

        assert (report.rewrapped, report.batches, report.left) == (7, 4, 0)
        assert calls == ["DescribeKey", "GenerateDataKey"]  # 7 buyers, 4 batches, one key
        assert _key_ids(app) == {new.key_id: 7}
        kms_settings = {"key_provider": "kms", "kms_key_id": arn}
        app.key_path.unlink()
        assert _retrieve_all(app, orders, **kms_settings) == _emails(orders)
    finally:
        app.close()


def test_keys_rotate_on_the_command_line_points_config_json_at_the_new_key(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    orders = _orders(3)
    try:
        _archived_and_masked(app, orders)
    finally:
        app.close()
    new_key = tmp_path / "keys" / "new.key"
    env: dict[str, str | None] = {
        "SHELFLIFE_HOME": str(tmp_path / "home"),
        "SHELFLIFE_DATABASE_URL": database_url,
    }
    env.update(dict.fromkeys(("SHELFLIFE_MASTER_KEY_FILE", "SHELFLIFE_KEY_PROVIDER"), None))

    result = CliRunner().invoke(cli_app, ["keys", "rotate", "--to-key-file", str(new_key)], env=env)

    new_id = json.loads(new_key.read_text())["key_id"]
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        f"3 data key(s) re-wrapped under {new_id} in 1 batch(es)",
        f"every data key is under master key {new_id}",
    ]
    assert f"BACK UP NOW: {new_key} (new master key {new_id})" in " ".join(result.stderr.split())
    config = json.loads((tmp_path / "home" / "config.json").read_text())
    assert (config["key_provider"], config["master_key_file"]) == ("file", str(new_key))
    (tmp_path / "home" / "master.key").unlink()
    again = CliRunner().invoke(cli_app, ["keys", "rotate", "--to-key-file", str(new_key)], env=env)
    assert (again.exit_code, again.stdout.splitlines()[-1]) == (
        0,
        f"every data key is under master key {new_id}",
    )


def test_keys_rotate_to_a_file_with_the_current_key_id_but_other_bytes_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """A damaged or forged copy of the current key file names the installation's key id: the
    rotation has nothing to re-wrap, but must not point config.json at a key that opens
    nothing."""
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        _archived_and_masked(app, _orders(2))
    finally:
        app.close()
    current = json.loads((tmp_path / "home" / "master.key").read_text())
    other = tmp_path / "other.key"
    other.write_text(json.dumps({**current, "key": base64.b64encode(bytes(32)).decode()}))
    other.chmod(0o600)
    config = (tmp_path / "home" / "config.json").read_text()
    env: dict[str, str | None] = {
        "SHELFLIFE_HOME": str(tmp_path / "home"),
        "SHELFLIFE_DATABASE_URL": database_url,
    }
    env.update(dict.fromkeys(("SHELFLIFE_MASTER_KEY_FILE", "SHELFLIFE_KEY_PROVIDER"), None))

    result = CliRunner().invoke(cli_app, ["keys", "rotate", "--to-key-file", str(other)], env=env)

    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        f"error: master key file {other} has this installation's key id {current['key_id']} "
        "but other key bytes (it does not open the keys this database holds); restore the "
        "right file from its backup"
    )
    assert (tmp_path / "home" / "config.json").read_text() == config


def test_keys_rotate_to_a_key_file_whose_path_is_not_utf8_is_refused_before_creating_it(
    database_url: str, tmp_path: Path
) -> None:
    """The new key's path is recorded in the database and config.json, which hold text only;
    it failed with 'unexpected UnicodeEncodeError' after the key file was made."""
    app, _clock = make_app(database_url, tmp_path / "home")
    app.close()
    new_key = tmp_path / os.fsdecode(b"neu-\xe4.key")
    config = (tmp_path / "home" / "config.json").read_text()
    env: dict[str, str | None] = {
        "SHELFLIFE_HOME": str(tmp_path / "home"),
        "SHELFLIFE_DATABASE_URL": database_url,
    }
    env.update(dict.fromkeys(("SHELFLIFE_MASTER_KEY_FILE", "SHELFLIFE_KEY_PROVIDER"), None))

    result = CliRunner().invoke(cli_app, ["keys", "rotate", "--to-key-file", str(new_key)], env=env)

    assert result.exit_code == 2
    assert "Invalid value for '--to-key-file': contains bytes that are not UTF-8 text" in " ".join(
        result.stderr.replace("│", " ").split()
    )
    assert not new_key.exists()
    assert (tmp_path / "home" / "config.json").read_text() == config


@pytest.mark.postgres
def test_rotation_while_the_nightly_run_works_loses_nothing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Half the buyers are archived and masked already (their keys are what the rotation
    moves); the run archives and masks the other half while the rotation works."""
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("rotation_beside_run")
    app, _clock = make_app(url, tmp_path / "home", batch_size=3)
    try:
        early, late = _orders(30), _orders(30, first=100, shipped_at=T0 + days(2))
        _archived_and_masked(app, early)
        assert import_lines(app, lines(*late)).refused == []
        old_id = app.keys.key_id
        new = _new_key_file(tmp_path / "new.key")
        night = MASK_NIGHT + days(2)
        runner = _process(app, night)
        reports: list[Any] = []
        failures: list[BaseException] = []
        started = threading.Event()

        def nightly() -> None:
            try:
                reports.append(run_retention(runner.ports(), night, lambda *_: started.set()))
            except BaseException as exc:  # reported below
                failures.append(exc)

        thread = threading.Thread(target=nightly)
        thread.start()
        assert started.wait(60)  # the run has loaded its keys and archived a first batch
        rotation = _rotate(app, new, batch_size=2)
        thread.join()
        runner.close()
        with app.engine.connect() as conn:
            actions = list(conn.scalars(select(AuditLogEntry.action).order_by(AuditLogEntry.seq)))
        # The rotation began while the run worked (and ended once the run wrapped no more keys:
        # at the latest when it reached its reclaim, which comes after every step).
        assert actions[-3] == ROTATION_STARTED
        assert sorted(actions[-2:]) == sorted([KEYS_ROTATED, RUN_FINISHED])
        assert failures == []
        assert (rotation.started, rotation.left) == (True, 0)
        assert _key_ids(app) == {new.key_id: 60}  # the run's new buyers' keys included
        assert old_id not in _key_ids(app)
        masked_tonight = reports[0].masked
        catch_up = _process(app, night + days(1), master_key_file=tmp_path / "new.key")
        try:
            masked_later = run_retention(catch_up.ports(), night + days(1)).masked
        finally:
            catch_up.close()
        assert (reports[0].archived, masked_tonight + masked_later) == (30, 30)
        everyone = early + late
        new_key = {"master_key_file": tmp_path / "new.key"}
        assert _retrieve_all(app, everyone, night + days(2), **new_key) == _emails(everyone)
    finally:
        app.close()


def test_a_legacy_whole_object_copy_is_retrieved_after_the_rotation_without_the_old_key(
    database_url: str, tmp_path: Path
) -> None:
    """Its header wraps the data key under the old master key; the database's re-wrapped copy
    of the same data key opens it."""
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        orders = _orders(2)
        _archived_and_masked(app, orders)
        with app.engine.connect() as conn:
            copies = conn.execute(select(ArchiveCopy).order_by(ArchiveCopy.id)).all()
        legacy = make_legacy(app, copies[0])
        new = _new_key_file(tmp_path / "new.key")
        assert _rotate(app, new).left == 0
        app.key_path.unlink()

        assert _retrieve_all(app, orders, master_key_file=tmp_path / "new.key") == _emails(orders)
        assert legacy in _archive_bytes(app)  # read in place, never rewritten
    finally:
        app.close()


KILLED_ROTATION = """
import os, signal, sys
from pathlib import Path
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.bootstrap import build_app
from shelflife.config import Settings
from shelflife.services.keys import begin_rotation, rewrap_data_keys

home, url, new_key = sys.argv[1:4]
app = build_app(Settings(home=Path(home), database_url=url, batch_size=2))
new = LocalKeyProvider.from_file(Path(new_key))
batches = []

def kill_in_the_second_batch(uow, ids):
    batches.append(ids)
    if len(batches) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # no rollback, no clean-up: the process is gone

rewrap_data_keys(app.ports(), new, begin_rotation(app.ports(), new, "ops"), "ops",
                 on_batch=kill_in_the_second_batch)
"""


def test_a_rotation_process_killed_with_sigkill_midway_is_completed_by_running_it_again(
    database_url: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        orders = _orders(5)
        _archived_and_masked(app, orders)
        old_id = app.keys.key_id
    finally:
        app.close()
    new = _new_key_file(tmp_path / "new.key")
    home = str(tmp_path / "home")

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_ROTATION, home, database_url, str(tmp_path / "new.key")],
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert (killed.returncode, killed.stderr) == (-9, b"")
    app = build_app(app.settings, FixedClock(LATER))
    try:
        assert _key_ids(app) == {new.key_id: 2, old_id: 3}  # the first batch only
        env: dict[str, str | None] = {
            "SHELFLIFE_HOME": home,
            "SHELFLIFE_DATABASE_URL": database_url,
        }
        env.update(dict.fromkeys(("SHELFLIFE_MASTER_KEY_FILE", "SHELFLIFE_KEY_PROVIDER"), None))
        again = CliRunner().invoke(
            cli_app, ["keys", "rotate", "--to-key-file", str(tmp_path / "new.key")], env=env
        )
        assert again.exit_code == 0, again.output
        assert again.stdout.splitlines() == [
            f"3 data key(s) re-wrapped under {new.key_id} in 1 batch(es)",
            f"every data key is under master key {new.key_id}",
        ]  # it had begun already: no "begun" line
        assert _key_ids(app) == {new.key_id: 5}
    finally:
        app.close()
    assert _retrieve_all(app, orders, master_key_file=tmp_path / "new.key") == _emails(orders)
