"""One installation, one key lineage, on SQLite and PostgreSQL: `init` records the master key,
never makes a second one, every command that uses the key checks it against the recorded one,
the mask step masks only buyers whose data key the loaded key opens, and a database from before
the identity key was recorded still recognises its returning buyers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, select, update

from shelflife.adapters.db.engine import alembic_config, make_engine, schema_is_current
from shelflife.adapters.db.tables import Base, Customer, Installation, RetentionRun
from shelflife.adapters.keys.keyring import Keyring
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.bootstrap import App, build_app, initialise
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import KeyUnavailable, NotInitialised
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, make_app, order, pii_strings

NR = "302-1234567-1234567"
ARCHIVE_NIGHT = T0 + days(29)
MASK_NIGHT = T0 + days(31)
Dump = dict[str, list[tuple[Any, ...]]]


def _dump(app: App) -> Dump:
    with app.engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def _archive_files(app: App) -> dict[str, bytes]:
    root = app.settings.home / "archive"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _import(app: App, *orders: dict[str, Any]) -> None:
    report = import_lines(app, lines(*orders))
    assert report.refused == []


def _reopen(app: App, key_file: Path | None = None) -> App:
    """The same installation as a new process sees it, optionally with another key file."""
    settings = app.settings
    if key_file is not None:
        settings = settings.model_copy(update={"master_key_file": key_file})
    assert isinstance(app.clock, FixedClock)
    return build_app(settings, FixedClock(app.clock.instant))


def _key_id(path: Path) -> str:
    return str(json.loads(path.read_text())["key_id"])


def _customers(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Customer)).scalar_one())


# -- init never makes a second key -------------------------------------------------------------


def test_init_after_the_key_file_was_deleted_refuses_to_create_a_new_key(app: App) -> None:
    """Observed: `init` silently created a new key, and the next night masked a buyer whose
    only copy was sealed with the old one, unreadable for good."""
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), ARCHIVE_NIGHT).archived == 1  # sealed under the first key
    key_id = _key_id(app.key_path)
    app.key_path.unlink()
    before = _dump(app)

    with pytest.raises(KeyUnavailable) as refused:
        initialise(app.settings)

    assert str(refused.value) == (
        f"master key file {app.key_path} is missing, and this database's data is sealed under "
        f"master key {key_id}; restore the file from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to where it is); a new key is not created, because the "
        "existing archive could never be read with it"
    )
    assert refused.value.exit_code == 1
    assert not app.key_path.exists()
    assert _dump(app) == before


def test_init_refuses_a_new_key_even_before_any_buyer_was_archived(app: App) -> None:
    """The installation row alone means the database already uses a key."""
    app.key_path.unlink()

    with pytest.raises(KeyUnavailable, match=r"is missing, and this database's data is sealed"):
        initialise(app.settings)

    assert not app.key_path.exists()


def test_a_replacement_key_never_masks_a_buyer_sealed_with_the_lost_key(
    app: App, tmp_path: Path
) -> None:
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), ARCHIVE_NIGHT).archived == 1
    lost = _key_id(app.key_path)
    app.key_path.unlink()
    replacement = tmp_path / "replacement.key"
    LocalKeyProvider.create_file(replacement)
    later = _reopen(app, replacement)
    before, files = _dump(app), _archive_files(app)

    try:
        with pytest.raises(KeyUnavailable) as refused:
            run_retention(later.ports(), MASK_NIGHT)
    finally:
        later.close()

    assert str(refused.value) == (
        f"master key file {replacement} holds key {_key_id(replacement)}, but this database's "
        f"data is sealed under master key {lost}; restore that key from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to it)"
    )
    assert (_dump(app), _archive_files(app)) == (before, files)


# -- every command that uses the key checks it -------------------------------------------------


def test_run_with_another_key_file_writes_nothing_to_database_archive_or_runs(
    app: App, tmp_path: Path
) -> None:
    """Observed: `run` exited 0 and archived new buyers under the other key (a mixed-key
    archive)."""
    _import(app, order(NR, shipped_at=T0), order("303-1234567-1234567", suffix="-b"))
    set_feature(app.ports(), "main", True, "ops")
    other = tmp_path / "other.key"
    LocalKeyProvider.create_file(other)
    mixed = _reopen(app, other)
    before, files = _dump(app), _archive_files(app)

    try:
        with pytest.raises(KeyUnavailable, match=r"^master key file .* holds key mk-"):
            run_retention(mixed.ports(), MASK_NIGHT)
    finally:
        mixed.close()

    assert _dump(app) == before
    assert before["retention_runs"] == []
    assert _archive_files(app) == files == {}


def test_import_with_another_key_file_creates_no_duplicate_buyer(app: App, tmp_path: Path) -> None:
    """Observed: the identity digest derived from the configured key, so the same buyer's
    next order created a second buyer record."""
    _import(app, order(NR))
    other = tmp_path / "other.key"
    LocalKeyProvider.create_file(other)
    mixed = _reopen(app, other)
    before = _dump(app)

    try:
        with pytest.raises(KeyUnavailable, match=r"^master key file .* holds key mk-"):
            import_lines(mixed, lines(order("303-1234567-1234567")))
    finally:
        mixed.close()

    assert _dump(app) == before
    assert _customers(app) == 1


def test_retrieve_with_another_key_file_changes_nothing(app: App, tmp_path: Path) -> None:
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), MASK_NIGHT).masked == 1
    other = tmp_path / "other.key"
    LocalKeyProvider.create_file(other)
    mixed = _reopen(app, other)
    before = _dump(app)

    try:
        with pytest.raises(KeyUnavailable, match=r"^master key file .* holds key mk-"):
            retrieve_order(at(mixed, MASK_NIGHT + days(1)).ports(), NR, "Rückgabe", "anna")
    finally:
        mixed.close()

    assert _dump(app) == before


def test_key_file_with_the_recorded_id_but_other_bytes_is_refused(app: App, tmp_path: Path) -> None:
    forged = tmp_path / "forged.key"
    LocalKeyProvider.create_file(forged)
    body = json.loads(forged.read_text())
    body["key_id"] = _key_id(app.key_path)
    forged.write_text(json.dumps(body))
    mixed = _reopen(app, forged)

    try:
        with pytest.raises(KeyUnavailable) as refused:
            import_lines(mixed, lines(order(NR)))
    finally:
        mixed.close()

    assert str(refused.value) == (
        f"master key file {forged} has this installation's key id {body['key_id']} but other "
        "key bytes (it does not open the keys this database holds); restore the right file "
        "from its backup"
    )
    assert _customers(app) == 0


def test_commands_on_a_database_that_records_no_key_say_to_run_init(app: App) -> None:
    with app.engine.begin() as conn:
        conn.execute(delete(Installation))
    fresh = _reopen(app)

    try:
        with pytest.raises(NotInitialised) as refused:
            import_lines(fresh, lines(order(NR)))
    finally:
        fresh.close()

    assert str(refused.value) == "this database records no master key yet; run `shelflife init`"


def test_init_with_a_key_file_other_than_the_recorded_one_changes_nothing(
    app: App, tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    LocalKeyProvider.create_file(other)
    config = app.settings.home / "config.json"
    before = (_dump(app), config.read_text(), app.key_path.read_bytes())
    settings = app.settings.model_copy(update={"master_key_file": other})

    with pytest.raises(KeyUnavailable, match=r"^master key file .* holds key mk-"):
        initialise(settings)

    assert (_dump(app), config.read_text(), app.key_path.read_bytes()) == before


# -- the mask step ----------------------------------------------------------------------------


def _seal_under_another_key(app: App, nr: str) -> int:
    """Make a buyer's data key one sealed under another master key, as in an installation
    that was given a new key before key lineage was recorded."""
    old = LocalKeyProvider("mk-0ld00000", bytes(range(32)))
    cid = _customer_id(app, nr)
    with app.engine.begin() as conn:
        conn.execute(
            update(Customer)
            .where(Customer.id == cid)
            .values(data_key_master_id=old.key_id, data_key_wrapped=old.wrap(bytes(32)).blob)
        )
    return cid


def _damage_data_key(app: App, nr: str) -> int:
    cid = _customer_id(app, nr)
    with app.engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == cid).values(data_key_wrapped=bytes(60)))
    return cid


def _customer_id(app: App, nr: str) -> int:
    from shelflife.adapters.db.tables import Order

    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(Order.customer_id).where(Order.order_nr_external == nr)
            ).scalar_one()
        )


def _masked_at(app: App, cid: int) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(Customer.masked_at).where(Customer.id == cid)).scalar_one()


def test_masks_only_buyers_whose_data_key_opens_with_the_loaded_key(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    buyers = [
        order(f"30{i}-1234567-1234567", shipped_at=T0, suffix=f"-{i}" * (i + 1)) for i in range(5)
    ]
    _import(app, *buyers)
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), ARCHIVE_NIGHT).archived == 5
    other_key = _seal_under_another_key(app, "301-1234567-1234567")
    damaged = _damage_data_key(app, "303-1234567-1234567")
    caplog.set_level(logging.WARNING, logger="shelflife")

    report = run_retention(app.ports(), MASK_NIGHT)

    assert (report.masked, report.mask_refused) == (3, 2)
    assert report.mask_refusal_reasons == [
        "a data key did not authenticate with the master key",
        f"data keys sealed under another master key than {_key_id(app.key_path)}",
    ]
    assert (_masked_at(app, other_key), _masked_at(app, damaged)) == (None, None)
    with app.engine.connect() as conn:
        assert conn.execute(
            select(RetentionRun.masked, RetentionRun.mask_refused).order_by(RetentionRun.id.desc())
        ).first() == (3, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    key_id = _key_id(app.key_path)
    assert warnings == [
        f"1 buyer(s) due to be masked were not: their archive data key does not open with the "
        f"loaded master key {key_id} (a data key did not authenticate with the master key; "
        f"first customer ids: {damaged})",
        f"1 buyer(s) due to be masked were not: their archive data key does not open with the "
        f"loaded master key {key_id} (first customer ids: {other_key})",
    ]
    leaked = {s for o in buyers for s in pii_strings(o) if len(s) >= 6 and s in "".join(warnings)}
    assert leaked == set()


def test_remask_also_requires_a_data_key_that_opens_with_the_loaded_key(app: App) -> None:
    _import(app, order(NR, shipped_at=T0))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), MASK_NIGHT).masked == 1
    retrieved = MASK_NIGHT + days(1)
    retrieve_order(at(app, retrieved).ports(), NR, "Rückgabe", "anna", retrieved)
    assert run_retention(app.ports(), retrieved + days(1)).archived == 1
    cid = _seal_under_another_key(app, NR)

    report = run_retention(app.ports(), retrieved + days(31))

    assert (report.remasked, report.mask_refused) == (0, 1)
    with app.engine.connect() as conn:
        assert (
            conn.execute(select(Customer.retrieved_at).where(Customer.id == cid)).scalar_one()
            == retrieved
        )


# -- a database from before the identity key was recorded --------------------------------------


def _legacy_identity_key(path: Path) -> bytes:
    """How identity digests were keyed before: HKDF-SHA256 of the master key's bytes."""
    import base64

    key = base64.b64decode(json.loads(path.read_text())["key"])
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"shelflife buyer identity"
    ).derive(key)


def _make_legacy(app: App) -> None:
    """Turn the installation into one from before schema 0002: no installation row, buyers
    whose identity digests were made with the key derived from the master key."""
    master = LocalKeyProvider.from_file(app.key_path)
    app._keys = Keyring(master, _legacy_identity_key(app.key_path), lambda _key_id: master)
    _import(app, order(NR, shipped_at=T0), order("303-1234567-1234567", suffix="-b"))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), ARCHIVE_NIGHT).archived == 1  # data keys exist, nobody masked
    command.downgrade(alembic_config(app.engine), "0001")  # every later migration undone
    app.close()


def test_upgraded_database_still_recognises_a_returning_buyer(
    database_url: str, tmp_path: Path
) -> None:
    legacy, _clock = make_app(database_url, tmp_path / "home")
    _make_legacy(legacy)
    engine = make_engine(database_url)
    try:
        assert schema_is_current(engine) is False
    finally:
        engine.dispose()

    report = initialise(legacy.settings)
    upgraded = build_app(legacy.settings, FixedClock(T0 + days(2)))
    try:
        returning = order("304-1234567-1234567", ordered_at=T0 + days(1))  # same buyer as NR
        imported = import_lines(upgraded, lines(returning))
        buyers = _customers(upgraded)
    finally:
        upgraded.close()

    assert report.done[-1] == (
        f"master key {legacy.key_path} (kept, key id {_key_id(legacy.key_path)}, now recorded)"
    )
    assert (imported.created, imported.refused) == (1, [])
    assert buyers == 2  # the two buyers imported before the upgrade, no third


def test_upgrade_warns_about_buyers_sealed_under_another_key_beside_the_files(
    database_url: str, tmp_path: Path
) -> None:
    legacy, _clock = make_app(database_url, tmp_path / "home")
    _make_legacy(legacy)
    wrapped = LocalKeyProvider.from_file(legacy.key_path).wrap(bytes(32)).blob
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:  # as if an earlier version had sealed it under a lost key
            conn.execute(
                update(Customer)
                .where(Customer.data_key_master_id.is_not(None))
                .values(data_key_master_id="mk-0ld00000")
            )
            conn.execute(
                update(Customer)
                .where(Customer.data_key_master_id.is_(None))
                .values(data_key_master_id=_key_id(legacy.key_path), data_key_wrapped=wrapped)
            )
    finally:
        engine.dispose()

    report = initialise(legacy.settings)

    assert report.warnings == [
        "1 buyer(s) have archive data keys sealed under other master keys (mk-0ld00000); with "
        "this key they are not masked (each run counts them as mask_refused) and their archive "
        "copies cannot be renewed"
    ]


def test_upgrade_of_a_database_sealed_under_another_key_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    legacy, _clock = make_app(database_url, tmp_path / "home")
    _make_legacy(legacy)
    sealed_under = _key_id(legacy.key_path)
    legacy.key_path.unlink()
    LocalKeyProvider.create_file(legacy.key_path)

    with pytest.raises(KeyUnavailable) as refused:
        initialise(legacy.settings)

    assert str(refused.value) == (
        f"master key file {legacy.key_path} holds key {_key_id(legacy.key_path)}, but this "
        f"database's data is sealed under master key {sealed_under}; restore that key from its "
        "backup (or set SHELFLIFE_MASTER_KEY_FILE to it)"
    )
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Installation)).scalar_one() == 0
    finally:
        engine.dispose()


def test_new_installation_gets_a_random_identity_key_not_derived_from_the_master_key(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        keys = app.keys
        derived = LocalKeyProvider.from_file(app.key_path).with_identity_key(
            _legacy_identity_key(app.key_path)
        )
        text = "amazon|erika.mustermann@example.org"
        assert keys.identity_digest(text) != derived.identity_digest(text)
        with app.engine.connect() as conn:
            row = conn.execute(select(Installation.master_key_id)).one()
        assert row.master_key_id == _key_id(app.key_path)
    finally:
        app.close()
