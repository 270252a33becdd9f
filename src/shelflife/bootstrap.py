"""The one place that builds real adapters from settings."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from shelflife.adapters.archive.offline import OfflineFallback
from shelflife.adapters.archive.replicated import ReplicatedArchive
from shelflife.adapters.archive.store import ArchiveStore, Preparable, archive_from_url
from shelflife.adapters.db.engine import (
    CANNOT_CONNECT,
    database_error,
    make_engine,
    make_sqlite_files_private,
    read_only_engine,
    schema_is_current,
    upgrade_schema,
)
from shelflife.adapters.db.installation import (
    InstallationRow,
    KeyReferences,
    key_references,
    read_installation,
    record_installation,
    sample_data_key,
)
from shelflife.adapters.db.reclaim import run_lock
from shelflife.adapters.db.unit_of_work import SqlUnitOfWork
from shelflife.adapters.keys.master_key import LocalKeyProvider, WrappedKey
from shelflife.config import CONFIG_FILE, Settings
from shelflife.domain.clock import Clock, SystemClock
from shelflife.domain.errors import (
    ArchiveCorrupt,
    DatabaseBusy,
    InvalidInput,
    KeyUnavailable,
    NotInitialised,
    ShelflifeError,
    Unavailable,
)
from shelflife.domain.ports import Limits, Ports


@dataclass
class App:
    """Everything a service needs, built once per process."""

    settings: Settings
    engine: Engine
    archive: ArchiveStore
    key_path: Path
    clock: Clock
    _keys: LocalKeyProvider | None = None
    _read_engine: Engine | None = None

    @property
    def keys(self) -> LocalKeyProvider:
        """The master key, checked against the one this database records, with the buyer-
        identity key it wraps. Every command that seals, opens, digests or wraps gets its keys
        here, so none can use another key than the installation's. Loaded lazily: `show` works
        while the key file is offline."""
        if self._keys is None:
            with self.engine.connect() as conn:
                recorded = read_installation(conn)
            if recorded is None:
                raise NotInitialised(
                    "this database records no master key yet; run `shelflife init`"
                )
            if not self.key_path.exists():
                raise KeyUnavailable(_missing_key_message(self.key_path, recorded.master_key_id))
            master = LocalKeyProvider.from_file(self.key_path)
            self._keys = _join_lineage(master, recorded, self.key_path)
        return self._keys

    def ports(self) -> Ports:
        """The ports for one command or request: a unit of work on the engine, a read-only
        one on `read_engine`, the archive, the key provider (loaded on first use), the clock
        and the run lock. Cheap to build; not shared between threads."""
        return Ports(
            uow=SqlUnitOfWork(self.engine),
            reader=SqlUnitOfWork(self.read_engine, read_only=True),
            archive=self.archive,
            key_provider=lambda: self.keys,
            clock=self.clock,
            run_lock=partial(run_lock, self.engine),
            limits=Limits(
                batch_size=self.settings.batch_size,
                archive_workers=self.settings.archive_workers,
                retrieval_alert_per_hour=self.settings.retrieval_alert_per_hour,
                verify_sample_percent=self.settings.verify_sample_percent,
            ),
        )

    @property
    def read_engine(self) -> Engine:
        """For work that only reads: the one read-only mechanism. On SQLite its transactions
        neither take nor wait for the write lock and its connections are query-only, so `show`
        and `compliance` answer while the nightly run writes; on PostgreSQL its transactions
        are READ ONLY."""
        if self._read_engine is None:
            self._read_engine = read_only_engine(self.engine, self.settings.lock_timeout)
        return self._read_engine

    def close(self) -> None:
        if self._read_engine is not None and self._read_engine.pool is not self.engine.pool:
            self._read_engine.dispose()
        self.engine.dispose()


def build_app(
    settings: Settings, clock: Clock | None = None, *, require_schema: bool = True
) -> App:
    engine = make_engine(settings.resolved_database_url, settings.lock_timeout)
    app = App(
        settings=settings,
        engine=engine,
        archive=build_archive(settings),
        key_path=settings.resolved_master_key_file,
        clock=clock or SystemClock(),
    )
    if require_schema:
        try:
            current = schema_is_current(app.read_engine)
        except OperationalError as exc:
            app.close()
            raise _database_failure(exc) from None
        if not current:
            app.close()
            raise NotInitialised(
                "the database is not set up (or needs an upgrade); run `shelflife init`"
            )
    return app


def build_archive(settings: Settings) -> ArchiveStore:
    """The archive store the settings name, replicated when a second location is set.

    Object Lock retention is dated by the wall clock, not by a run's simulated time: the store
    judges a retain-until date against real time."""

    def store(url: str, setting: str) -> ArchiveStore:
        return archive_from_url(
            url,
            setting,
            retention_days=settings.archive_retention_days,
            storage_class=settings.archive_storage_class,
            clock=SystemClock(),
        )

    primary = store(settings.resolved_archive_url, "SHELFLIFE_ARCHIVE_URL")
    archive = primary
    if settings.archive_replica_url is not None:
        replica = store(settings.archive_replica_url, "SHELFLIFE_ARCHIVE_REPLICA_URL")
        if replica.describe() == primary.describe():
            raise InvalidInput(
                "SHELFLIFE_ARCHIVE_REPLICA_URL: names the same place as the archive; the second "
                "copy must be in another folder or bucket, ideally in another location"
            )
        archive = ReplicatedArchive(primary, replica)
    if settings.archive_offline_dir is None:
        return archive
    return OfflineFallback(archive, _offline_folder(settings.archive_offline_dir))


def _offline_folder(folder: Path) -> Path:
    """The export folder retrieval may fall back to; it may be absent (media not mounted)."""
    if not folder.is_absolute():
        raise InvalidInput(
            "SHELFLIFE_ARCHIVE_OFFLINE_DIR: give an absolute path, e.g. /media/offline/shelflife"
        )
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(
            f"SHELFLIFE_ARCHIVE_OFFLINE_DIR: {folder} is not a folder; name the folder of an "
            "archive export"
        )
    return folder


def _database_failure(exc: OperationalError) -> ShelflifeError:
    """Busy when another process holds the lock; otherwise the database cannot be reached."""
    translated = database_error(exc)
    return translated if isinstance(translated, DatabaseBusy) else Unavailable(CANNOT_CONNECT)


@dataclass
class InitReport:
    """What `init` did, line by line; `created_key_id` is set when it created the master key,
    which must then be backed up at once."""

    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created_key_id: str | None = None


def initialise(settings: Settings, clock: Clock | None = None) -> InitReport:
    """Create or upgrade home, schema, archive folder and master key. Idempotent.

    Never creates a master key for a database that already depends on one, and never accepts
    a key file other than the one the database records. `config.json` is written last, so a
    failed init leaves none behind.
    """
    report = InitReport()
    build_archive(settings)  # refuse a bad archive URL before writing anything
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.home.chmod(0o700)  # also when it existed: it holds the database and the key
    except OSError as exc:
        raise ShelflifeError(
            f"cannot create the home folder {settings.home}: {exc.strerror}"
        ) from None
    app = build_app(settings, clock, require_schema=False)
    try:
        make_sqlite_files_private(settings.resolved_database_url)
        try:
            upgrade_schema(app.engine)
        except OperationalError as exc:
            raise _database_failure(exc) from None
        make_sqlite_files_private(settings.resolved_database_url)
        report.done.append(f"database schema is current ({_safe_url(settings)})")
        if isinstance(app.archive, Preparable):
            app.archive.ensure()
        report.done.append(f"archive at {app.archive.describe()}")
        with app.engine.begin() as conn:
            _establish_key_lineage(app, conn, report)
    finally:
        app.close()
    _write_config(settings)
    return report


def _establish_key_lineage(app: App, conn: Connection, report: InitReport) -> None:
    """Record the master key in the database, or check the key file against the recorded one."""
    path = app.key_path
    recorded = read_installation(conn)
    references = key_references(conn)
    if not path.exists():
        if recorded is not None or references.any:
            key_id = recorded.master_key_id if recorded else _named_key(references)
            raise KeyUnavailable(
                _missing_key_message(path, key_id)
                + "; a new key is not created, because the existing archive could never be "
                "read with it"
            )
        key_id = LocalKeyProvider.create_file(path)
        master = LocalKeyProvider.from_file(path)
        record_installation(
            conn, key_id, master.wrap(secrets.token_bytes(32)).blob, app.clock.now()
        )
        report.created_key_id = key_id
        report.done.append(f"master key {path} (created, mode 0600, key id {key_id})")
        return
    master = LocalKeyProvider.from_file(path)
    if recorded is not None:
        _join_lineage(master, recorded, path)
        report.done.append(f"master key {path} (kept, key id {master.key_id})")
        return
    # A database from before key lineage was recorded (or one that never had data).
    if references.data_keys and master.key_id not in references.data_keys:
        raise KeyUnavailable(_wrong_key_message(path, master.key_id, _named_key(references)))
    sample = sample_data_key(conn, master.key_id)
    if sample is not None:
        _join_lineage(master, InstallationRow(master.key_id, sample), path)
    identity_key = (
        master.legacy_identity_key()  # the digests already stored were made with it
        if references.identity_digests
        else secrets.token_bytes(32)
    )
    record_installation(conn, master.key_id, master.wrap(identity_key).blob, app.clock.now())
    report.done.append(f"master key {path} (kept, key id {master.key_id}, now recorded)")
    others = {k: n for k, n in references.data_keys.items() if k != master.key_id}
    if others:
        report.warnings.append(
            f"{sum(others.values())} buyer(s) have archive data keys sealed under other master "
            f"keys ({', '.join(sorted(others))}); with this key they are not masked (each run "
            "counts them as mask_refused) and their archive copies cannot be renewed"
        )


def _join_lineage(
    master: LocalKeyProvider, recorded: InstallationRow, path: Path
) -> LocalKeyProvider:
    """The loaded master key must be the recorded one and open the identity key it wraps."""
    if master.key_id != recorded.master_key_id:
        raise KeyUnavailable(_wrong_key_message(path, master.key_id, recorded.master_key_id))
    try:
        identity_key = master.unwrap(
            WrappedKey(recorded.master_key_id, recorded.identity_key_wrapped)
        )
    except ArchiveCorrupt:
        raise KeyUnavailable(
            f"master key file {path} has this installation's key id {master.key_id} but other "
            "key bytes (it does not open the keys this database holds); restore the right file "
            "from its backup"
        ) from None
    return master.with_identity_key(identity_key)


def _named_key(references: KeyReferences) -> str:
    if not references.data_keys:
        return "an unknown master key (the database holds identity digests or archive copies)"
    return ", ".join(sorted(references.data_keys))


def _missing_key_message(path: Path, key_id: str) -> str:
    return (
        f"master key file {path} is missing, and this database's data is sealed under master "
        f"key {key_id}; restore the file from its backup (or set SHELFLIFE_MASTER_KEY_FILE to "
        "where it is)"
    )


def _wrong_key_message(path: Path, loaded: str, recorded: str) -> str:
    return (
        f"master key file {path} holds key {loaded}, but this database's data is sealed under "
        f"master key {recorded}; restore that key from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to it)"
    )


def _write_config(settings: Settings) -> None:
    """Store the explicitly given settings in config.json atomically (mode 0600: a database
    URL can hold a password)."""
    config = settings.home / CONFIG_FILE
    stored = settings.stored()
    if not stored and config.exists():
        return
    existing = json.loads(config.read_text()) if config.exists() else {}
    existing.update(stored)
    try:
        fd, tmp = tempfile.mkstemp(dir=settings.home, prefix=".config-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(existing, indent=2, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, config)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise Unavailable(f"cannot write {config}: {exc.strerror}") from None


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
