"""One typed settings object, built once at start-up and passed down.

Precedence: environment (SHELFLIFE_*) over the home folder's `config.json` over defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shelflife.domain.errors import InvalidInput

CONFIG_FILE = "config.json"
STORED_KEYS = ("database_url", "archive_url", "master_key_file")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHELFLIFE_", extra="ignore")

    home: Path = Field(default=Path(".shelflife"), description="Home folder of shelflife's data")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite")
    archive_url: str | None = Field(default=None, description="file:// URL of the archive")
    master_key_file: Path | None = Field(default=None, description="Path of the master key")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="Rows per batch")
    archive_workers: int = Field(
        default=8, ge=1, le=64, description="Archive copies written in parallel per batch"
    )
    lock_timeout: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Seconds to wait for a database lock another process holds",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home.resolve() / 'shelflife.db'}"

    @property
    def resolved_archive_url(self) -> str:
        return self.archive_url or (self.home.resolve() / "archive").as_uri()

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home.resolve() / "master.key"

    def stored(self) -> dict[str, str]:
        """What `init` writes to config.json: only values the user gave explicitly."""
        values = {
            "database_url": self.database_url,
            "archive_url": self.archive_url,
            "master_key_file": str(self.master_key_file) if self.master_key_file else None,
        }
        return {k: v for k, v in values.items() if v}


def load_settings(home: Path | None = None) -> Settings:
    """Build settings; `home` (from --home) wins over SHELFLIFE_HOME."""
    base = Settings() if home is None else Settings(home=home)
    path = base.home / CONFIG_FILE
    if not path.exists():
        return base
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        raise InvalidInput(
            f"{path}: not valid JSON; fix or delete it and run `shelflife init`"
        ) from None
    if not isinstance(stored, dict):
        raise InvalidInput(f"{path}: must hold a JSON object")
    merged = {k: v for k, v in stored.items() if k in STORED_KEYS}
    for key in STORED_KEYS:
        if os.environ.get(f"SHELFLIFE_{key.upper()}"):
            merged.pop(key, None)
    return base.model_copy(
        update={k: (Path(v) if k == "master_key_file" else v) for k, v in merged.items()}
    )
