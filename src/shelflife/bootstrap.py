"""The one place that builds real adapters from settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from shelflife.adapters.archive.store import ArchiveStore, LocalFolderArchive, archive_from_url
from shelflife.adapters.db.engine import make_engine, schema_is_current, upgrade_schema
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.config import CONFIG_FILE, Settings
from shelflife.domain.clock import Clock, SystemClock
from shelflife.domain.errors import NotInitialised, ShelflifeError


@dataclass
class App:
    """Everything a service needs, built once per process."""

    settings: Settings
    engine: Engine
    archive: ArchiveStore
    key_path: Path
    clock: Clock
    _keys: LocalKeyProvider | None = None

    @property
    def keys(self) -> LocalKeyProvider:
        """Loaded lazily: `show` and `import` work even while the key file is offline."""
        if self._keys is None:
            self._keys = LocalKeyProvider.from_file(self.key_path)
        return self._keys

    def close(self) -> None:
        self.engine.dispose()


def build_app(
    settings: Settings, clock: Clock | None = None, *, require_schema: bool = True
) -> App:
    engine = make_engine(settings.resolved_database_url)
    if require_schema:
        try:
            current = schema_is_current(engine)
        except OperationalError:
            engine.dispose()
            raise ShelflifeError(
                "cannot connect to the database; check SHELFLIFE_DATABASE_URL"
            ) from None
        if not current:
            engine.dispose()
            raise NotInitialised(
                "the database is not set up (or needs an upgrade); run `shelflife init`"
            )
    return App(
        settings=settings,
        engine=engine,
        archive=archive_from_url(settings.resolved_archive_url),
        key_path=settings.resolved_master_key_file,
        clock=clock or SystemClock(),
    )


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
        except OperationalError:
            raise ShelflifeError(
                "cannot connect to the database; check SHELFLIFE_DATABASE_URL"
            ) from None
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
