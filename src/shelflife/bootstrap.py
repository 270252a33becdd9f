"""The one place that builds real adapters from settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shelflife.adapters.archive.store import ArchiveStore, LocalFolderArchive, archive_from_url
from shelflife.adapters.db.engine import (
    CANNOT_CONNECT,
    database_error,
    make_engine,
    read_only_engine,
    schema_is_current,
    upgrade_schema,
)
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.config import CONFIG_FILE, Settings
from shelflife.domain.clock import Clock, SystemClock
from shelflife.domain.errors import DatabaseBusy, NotInitialised, ShelflifeError, Unavailable


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
        """Loaded lazily: `show` and `import` work even while the key file is offline."""
        if self._keys is None:
            self._keys = LocalKeyProvider.from_file(self.key_path)
        return self._keys

    @property
    def read_engine(self) -> Engine:
        """For work that only reads. On SQLite its transactions neither take nor wait for the
        write lock, so `show` and `compliance` answer while the nightly run writes."""
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
        archive=archive_from_url(settings.resolved_archive_url),
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


def _database_failure(exc: OperationalError) -> ShelflifeError:
    """Busy when another process holds the lock; otherwise the database cannot be reached."""
    translated = database_error(exc)
    return translated if isinstance(translated, DatabaseBusy) else Unavailable(CANNOT_CONNECT)


def initialise(settings: Settings) -> list[str]:
    """Create or upgrade home, schema, archive folder and master key. Idempotent."""
    done: list[str] = []
    archive_from_url(settings.resolved_archive_url)  # refuse a bad URL before writing anything
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = settings.home / CONFIG_FILE
    stored = settings.stored()
    if stored or not config.exists():
        existing = json.loads(config.read_text()) if config.exists() else {}
        existing.update(stored)
        config.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    app = build_app(settings, require_schema=False)
    try:
        try:
            upgrade_schema(app.engine)
        except OperationalError as exc:
            raise _database_failure(exc) from None
        done.append(f"database schema is current ({_safe_url(settings)})")
        if isinstance(app.archive, LocalFolderArchive):
            app.archive.ensure()
        done.append(f"archive at {app.archive.describe()}")
        if app.key_path.exists():
            LocalKeyProvider.from_file(app.key_path)
            done.append(f"master key {app.key_path} (kept)")
        else:
            LocalKeyProvider.create_file(app.key_path)
            done.append(f"master key {app.key_path} (created, mode 0600)")
    finally:
        app.close()
    return done


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
