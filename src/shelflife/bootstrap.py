"""The one place that builds real adapters from settings."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import boto3
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
    key_location,
    key_references,
    read_installation,
    record_installation,
    record_key_location,
    record_wrapping_keys,
    sample_data_key,
    wrapping_key,
)
from shelflife.adapters.db.reclaim import no_run_working, run_lock
from shelflife.adapters.db.unit_of_work import SqlUnitOfWork
from shelflife.adapters.keys.keyring import Keyring, MasterKey
from shelflife.adapters.keys.kms import KmsMasterKey, kms_client
from shelflife.adapters.keys.master_key import LocalKeyProvider, WrappedKey
from shelflife.config import CONFIG_FILE, Settings, overriding_variables
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
from shelflife.domain.legal_retention import LegalRetention
from shelflife.domain.ports import KeyLocation, Limits, Ports, WrappingKey


@dataclass
class App:
    """Everything a service needs, built once per process."""

    settings: Settings
    engine: Engine
    archive: ArchiveStore
    documents: ArchiveStore
    key_path: Path
    clock: Clock
    ledger: ArchiveStore | None = None
    _keys: Keyring | None = None
    _read_engine: Engine | None = None
    _aws: boto3.session.Session | None = None

    @property
    def keys(self) -> Keyring:
        """The master key, checked against the one this database records, with the buyer-
        identity key it wraps. Every command that seals, opens, digests or wraps gets its keys
        here, so none can use another key than the installation's. Loaded lazily: `show` works
        while the key file is offline.

        While `keys rotate` works, the configured key may be the one it moves away from: the
        keyring then wraps under the new key (from where the rotation recorded it) and opens
        under both."""
        if self._keys is None:
            with self.engine.connect() as conn:
                recorded = read_installation(conn)
            if recorded is None:
                raise NotInitialised(
                    "this database records no master key yet; run `shelflife init`"
                )
            configured = self.configured_master_key(recorded.master_key_id)
            if (
                configured.key_id != recorded.master_key_id
                and configured.key_id == recorded.previous_master_key_id
            ):
                current = self.master_key_at(recorded.master_key_id)
            else:
                current = configured
            identity_key = _join_lineage(current, recorded, self._describe(current))
            self._keys = Keyring(
                current,
                identity_key,
                self._resolver(configured),
                recorded.previous_master_key_id,
            )
        return self._keys

    @property
    def aws(self) -> boto3.session.Session:
        """The process's AWS session (the standard AWS settings); one for every KMS client."""
        if self._aws is None:
            self._aws = boto3.session.Session()
        return self._aws

    def configured_master_key(self, recorded_key_id: str | None = None) -> MasterKey:
        """The master key the settings name: the key file (default) or a KMS key."""
        if self.settings.resolved_key_provider == "kms":
            return self.kms_key(_kms_key_id(self.settings))
        if not self.key_path.exists():
            raise KeyUnavailable(
                _missing_key_message(self.key_path, recorded_key_id or "an unknown key")
            )
        return LocalKeyProvider.from_file(self.key_path)

    def kms_key(self, key_ref: str) -> KmsMasterKey:
        return KmsMasterKey(kms_client(self.aws, key_ref), key_ref, self._wrapping_key)

    def master_key_at(self, key_id: str) -> MasterKey:
        """A master key of this installation other than the configured one, from where the
        database records it (a rotation records both sides)."""
        with self.read_engine.connect() as conn:
            location = key_location(conn, key_id)
        if location is None:
            raise KeyUnavailable(
                f"data keys are sealed under master key {key_id}, and this database records no "
                "location for it; configure that key (SHELFLIFE_MASTER_KEY_FILE or "
                "SHELFLIFE_KMS_KEY_ID)"
            )
        if location.provider == "kms":
            return self.kms_key(location.location)
        path = Path(location.location)
        if not path.exists():
            raise KeyUnavailable(_missing_key_message(path, key_id))
        return LocalKeyProvider.from_file(path)

    def _resolver(self, configured: MasterKey) -> Callable[[str], MasterKey]:
        def resolve(key_id: str) -> MasterKey:
            return configured if configured.key_id == key_id else self.master_key_at(key_id)

        return resolve

    def _wrapping_key(self, wrapping_id: str) -> WrappingKey | None:
        with self.read_engine.connect() as conn:
            return wrapping_key(conn, wrapping_id)

    def _describe(self, key: MasterKey) -> str:
        where = key.location()
        return f"KMS key {where.location}" if where.provider == "kms" else _file(where.location)

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
            no_run_working=partial(no_run_working, self.engine),
            documents=self.documents,
            limits=Limits(
                batch_size=self.settings.batch_size,
                retrieval_alert_per_hour=self.settings.retrieval_alert_per_hour,
                legal_retention=LegalRetention(
                    invoice_years=self.settings.retention_years_invoice,
                    credit_years=self.settings.retention_years_credit,
                    order_years=self.settings.retention_years_order,
                ),
                verify_sample_percent=self.settings.verify_sample_percent,
            ),
            ledger=self.ledger,
            background_uow=(
                partial(SqlUnitOfWork, self.engine)
                if self.engine.dialect.name == "postgresql"
                else None
            ),
            our_error=database_error,
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
    archive = build_archive(settings)
    ledger = build_ledger(settings, archive)
    engine = make_engine(settings.resolved_database_url, settings.lock_timeout)
    app = App(
        settings=settings,
        engine=engine,
        archive=archive,
        documents=build_document_store(settings),
        key_path=settings.resolved_master_key_file,
        clock=clock or SystemClock(),
        ledger=ledger,
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


def build_ledger(settings: Settings, archive: ArchiveStore) -> ArchiveStore:
    """The key ledger the settings name, with a second copy when the archive has one. It must
    be mutable (shredding rewrites it), so it is never written with Object Lock retention and
    never shares a place with the archive."""

    def store(url: str, setting: str) -> ArchiveStore:
        found = archive_from_url(url, setting, retention_days=0, clock=SystemClock())
        if url.startswith("s3:"):
            from shelflife.adapters.archive.s3 import S3Archive  # boto3 only if used
            from shelflife.adapters.archive.s3_ledger import S3KeyLedger

            assert isinstance(found, S3Archive)
            return S3KeyLedger(
                found.location, retention_days=0, storage_class="STANDARD", clock=SystemClock()
            )
        return found

    primary = store(settings.resolved_key_ledger_url, "SHELFLIFE_KEY_LEDGER_URL")
    replica_url = settings.resolved_key_ledger_replica_url
    replica = (
        None if replica_url is None else store(replica_url, "SHELFLIFE_KEY_LEDGER_REPLICA_URL")
    )
    archives = (
        {archive.primary.describe(), archive.replica.describe()}
        if isinstance(archive, ReplicatedArchive)
        else {archive.describe()}
    )
    for setting, ledger in (
        ("SHELFLIFE_KEY_LEDGER_URL", primary),
        ("SHELFLIFE_KEY_LEDGER_REPLICA_URL", replica),
    ):
        if ledger is not None and ledger.describe() in archives:
            raise InvalidInput(
                f"{setting}: names the same place as the archive; the key ledger must be a "
                "mutable folder or bucket of its own (shredding deletes from it)"
            )
    if replica is None:
        return primary
    if replica.describe() == primary.describe():
        raise InvalidInput(
            "SHELFLIFE_KEY_LEDGER_REPLICA_URL: names the same place as the key ledger; the "
            "second copy must be in another folder or bucket"
        )
    return ReplicatedArchive(primary, replica)


def build_document_store(settings: Settings) -> ArchiveStore:
    """Where the invoice and credit PDFs live while their buyers are unmasked. A PDF leaves it
    at masking, so it is never write-once: S3 objects there get no Object Lock retention."""
    store = archive_from_url(
        settings.resolved_document_store_url,
        "SHELFLIFE_DOCUMENT_STORE_URL",
        retention_days=0,
        storage_class=settings.archive_storage_class,
        clock=SystemClock(),
    )
    archives = {settings.resolved_archive_url, settings.archive_replica_url}
    if settings.resolved_document_store_url.rstrip("/") in {u.rstrip("/") for u in archives if u}:
        raise InvalidInput(
            "SHELFLIFE_DOCUMENT_STORE_URL: names the same place as the archive; the PDFs must "
            "be in their own folder or bucket, from which they are deleted at masking"
        )
    return store


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
    build_ledger(settings, build_archive(settings))  # refuse a bad URL before writing anything
    build_document_store(settings)
    if settings.resolved_key_provider == "kms":
        _kms_key_id(settings)  # and a KMS provider without a key
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
        if isinstance(app.ledger, Preparable):
            app.ledger.ensure()
        if app.ledger is not None:
            report.done.append(f"key ledger at {app.ledger.describe()}")
        if isinstance(app.documents, Preparable):
            app.documents.ensure()
        report.done.append(f"document store at {app.documents.describe()}")
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
    if app.settings.resolved_key_provider == "kms":
        _establish_kms_lineage(app, conn, report, recorded, references)
        return
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
        if recorded.master_key_id != master.key_id and recorded.previous_master_key_id:
            # `keys rotate` switched this installation to another key; the file is the old one.
            raise KeyUnavailable(
                _wrong_key_message(_file(path), master.key_id, recorded.master_key_id)
            )
        _join_lineage(master, recorded, _file(path))
        report.done.append(f"master key {path} (kept, key id {master.key_id})")
        return
    # A database from before key lineage was recorded (or one that never had data).
    if references.data_keys and master.key_id not in references.data_keys:
        raise KeyUnavailable(_wrong_key_message(_file(path), master.key_id, _named_key(references)))
    sample = sample_data_key(conn, master.key_id)
    if sample is not None:
        _join_lineage(master, InstallationRow(master.key_id, sample), _file(path))
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


def _establish_kms_lineage(
    app: App,
    conn: Connection,
    report: InitReport,
    recorded: InstallationRow | None,
    references: KeyReferences,
) -> None:
    """A KMS key as master key: recorded with a fresh identity key on a new database, checked
    against the recorded one otherwise. A database whose data is under a key file moves to
    KMS with `keys rotate`, not here."""
    master = app.configured_master_key()
    where = f"KMS key {master.location().location}"
    if recorded is not None:
        if recorded.master_key_id not in (master.key_id, recorded.previous_master_key_id):
            raise KeyUnavailable(
                f"this database's data is sealed under master key {recorded.master_key_id}, not "
                f"under {where}; keep that key configured and move to KMS with `shelflife keys "
                "rotate`"
            )
        _join_lineage(master, recorded, where)
        report.done.append(f"{where} (kept, key id {master.key_id})")
        return
    if references.any:
        raise KeyUnavailable(
            f"this database holds data sealed under {_named_key(references)}; initialise it "
            "with that key, then move to KMS with `shelflife keys rotate`"
        )
    now = app.clock.now()
    identity = master.wrap(secrets.token_bytes(32))
    if identity.wrapping_key is not None:
        record_wrapping_keys(conn, [identity.wrapping_key], now)
    record_installation(conn, master.key_id, identity.blob, now)
    record_key_location(conn, master.location(), now)
    report.done.append(f"{where} (recorded, key id {master.key_id})")


def _kms_key_id(settings: Settings) -> str:
    if not settings.kms_key_id:
        raise InvalidInput(
            "SHELFLIFE_KMS_KEY_ID: must name the KMS key (key id, ARN or alias/NAME) when "
            "SHELFLIFE_KEY_PROVIDER is kms"
        )
    return settings.kms_key_id


def _file(path: Path | str) -> str:
    return f"master key file {path}"


def _join_lineage(master: MasterKey, recorded: InstallationRow, where: str) -> bytes:
    """The loaded master key must be the recorded one and open the identity key it wraps;
    returns the identity key. `where` names the key in messages."""
    if master.key_id != recorded.master_key_id:
        raise KeyUnavailable(_wrong_key_message(where, master.key_id, recorded.master_key_id))
    try:
        return master.unwrap(WrappedKey(recorded.master_key_id, recorded.identity_key_wrapped))
    except ArchiveCorrupt:
        raise KeyUnavailable(
            f"{where} has this installation's key id {master.key_id} but other "
            "key bytes (it does not open the keys this database holds); restore the right file "
            "from its backup"
        ) from None


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


def _wrong_key_message(where: str, loaded: str, recorded: str) -> str:
    setting = "SHELFLIFE_KMS_KEY_ID" if where.startswith("KMS") else "SHELFLIFE_MASTER_KEY_FILE"
    return (
        f"{where} holds key {loaded}, but this database's data is sealed under "
        f"master key {recorded}; restore that key from its backup (or set {setting} to it)"
    )


def rotation_target(
    app: App, key_file: Path | None, kms_key: str | None
) -> tuple[LocalKeyProvider | KmsMasterKey, bool]:
    """The master key `keys rotate` moves to, and whether this call created it (a key file
    that does not exist yet is made, mode 0600, and must be backed up at once)."""
    if (key_file is None) == (kms_key is None):
        raise InvalidInput("name the new master key: a key file or a KMS key, one of the two")
    new: LocalKeyProvider | KmsMasterKey
    created = False
    if kms_key is not None:
        new = app.kms_key(kms_key)
    else:
        assert key_file is not None
        created = not key_file.exists()
        if created:
            LocalKeyProvider.create_file(key_file)
        new = LocalKeyProvider.from_file(key_file)
    with app.engine.connect() as conn:
        recorded = read_installation(conn)
    if recorded is not None and new.key_id == recorded.master_key_id:
        # Nothing to re-wrap, but config.json will name it: a damaged or forged copy of the
        # installation's key (its id, other bytes) would leave every command unable to open.
        _join_lineage(new, recorded, app._describe(new))
    return new, created


def switch_key_settings(settings: Settings, new: KeyLocation) -> list[str]:
    """Point config.json at the new master key; returns the environment variables that
    override it (they must be changed by hand)."""
    if new.provider == "kms":
        changes: dict[str, str | None] = {"key_provider": "kms", "kms_key_id": new.location}
    else:
        changes = {"key_provider": "file", "master_key_file": new.location, "kms_key_id": None}
    _update_config(settings, changes)
    return [
        f"SHELFLIFE_{name.upper()}"
        for name, value in changes.items()
        if value is not None and f"SHELFLIFE_{name.upper()}" in overriding_variables()
    ]


def _write_config(settings: Settings) -> None:
    """Store the explicitly given settings in config.json atomically (mode 0600: a database
    URL can hold a password)."""
    config = settings.home / CONFIG_FILE
    stored = settings.stored()
    if not stored and config.exists():
        return
    _update_config(settings, dict(stored))


def _update_config(settings: Settings, changes: dict[str, str | None]) -> None:
    """Set (or, with None, remove) keys of config.json, atomically."""
    config = settings.home / CONFIG_FILE
    existing = json.loads(config.read_text()) if config.exists() else {}
    for key, value in changes.items():
        if value is None:
            existing.pop(key, None)
        else:
            existing[key] = value
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
