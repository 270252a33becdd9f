"""One typed settings object, built once at start-up and passed down.

Precedence: environment (SHELFLIFE_*) over the home folder's `config.json` over defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args

from annotated_types import Ge, Gt, Le
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shelflife.domain.errors import InvalidInput

CONFIG_FILE = "config.json"

StorageClass = Literal["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]
"""S3 storage classes whose objects can be read at once (GLACIER and DEEP_ARCHIVE need a restore
before each read: neither the read-back before masking nor a retrieval could work)."""
KeyProviderName = Literal["file", "kms"]
STORED_KEYS = (
    "database_url",
    "archive_url",
    "archive_replica_url",
    "key_ledger_url",
    "key_ledger_replica_url",
    "document_store_url",
    "master_key_file",
    "key_provider",
    "kms_key_id",
)


class Settings(BaseSettings):
    # An empty variable counts as unset (SHELFLIFE_HOME= would otherwise mean the current folder).
    model_config = SettingsConfigDict(
        env_prefix="SHELFLIFE_", extra="ignore", env_ignore_empty=True
    )

    home: Path = Field(default=Path(".shelflife"), description="Home folder of shelflife's data")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite")
    archive_url: str | None = Field(default=None, description="file:// or s3:// URL of the archive")
    archive_replica_url: str | None = Field(
        default=None, description="file:// or s3:// URL of the archive's second copy"
    )
    key_ledger_url: str | None = Field(
        default=None,
        description="file:// or s3:// URL of the key ledger (mutable: no Object Lock); default "
        "a folder beside a file archive, else $SHELFLIFE_HOME/key-ledger",
    )
    key_ledger_replica_url: str | None = Field(
        default=None,
        description="file:// or s3:// URL of the key ledger's second copy; default a folder "
        "beside a file replica (required with an s3:// replica)",
    )
    retention_years_invoice: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Years invoices are kept after the end of the year they were made in",
    )
    retention_years_credit: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Years credits are kept after the end of the year they were made in",
    )
    retention_years_order: int = Field(
        default=6,
        ge=0,
        le=100,
        description="Years orders are kept after the end of the year they were placed in",
    )
    archive_retention_days: int = Field(
        default=3650,
        ge=0,
        le=36_500,
        description="Days each S3 archive object is locked (compliance mode); 0: no lock",
    )
    archive_storage_class: StorageClass = Field(
        default="STANDARD", description="S3 storage class of archive objects"
    )
    document_store_url: str | None = Field(
        default=None,
        description="file:// or s3:// URL of the invoice and credit PDFs (without Object Lock)",
    )
    master_key_file: Path | None = Field(default=None, description="Path of the master key")
    key_provider: KeyProviderName | None = Field(
        default=None,
        description="Where the master key is: file (the master key file, default) or kms",
    )
    kms_key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="The AWS KMS key (id, ARN or alias) used as master key with key_provider kms",
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="Rows per batch")
    archive_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes of a nightly run on PostgreSQL (SQLite: always one)",
    )
    retrieval_alert_per_hour: int = Field(
        default=30,
        ge=1,
        le=10_000,
        description="Retrievals by one user within an hour above which an alert is raised",
    )
    verify_sample_percent: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Share of archive objects the nightly run re-reads and checks; 0: none",
    )
    archive_offline_dir: Path | None = Field(
        default=None,
        description="Folder of an `archive export`, read when neither archive copy can be",
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
    def resolved_document_store_url(self) -> str:
        return self.document_store_url or (self.home.resolve() / "documents").as_uri()

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home.resolve() / "master.key"

    @property
    def resolved_key_ledger_url(self) -> str:
        return self.key_ledger_url or _beside(
            self.resolved_archive_url, self.home.resolve() / "key-ledger"
        )

    @property
    def resolved_key_ledger_replica_url(self) -> str | None:
        """None without an archive replica; with an s3:// replica it must be given."""
        if self.key_ledger_replica_url or self.archive_replica_url is None:
            return self.key_ledger_replica_url
        if not self.archive_replica_url.startswith("file:"):
            raise InvalidInput(
                "SHELFLIFE_KEY_LEDGER_REPLICA_URL: must be set when the archive replica is not a "
                "file:// folder (a bucket or prefix without Object Lock, near the replica)"
            )
        return _beside(self.archive_replica_url, None)

    @property
    def resolved_key_provider(self) -> str:
        return self.key_provider or "file"

    def stored(self) -> dict[str, str]:
        """What `init` writes to config.json: only values the user gave explicitly."""
        values = {
            "database_url": self.database_url,
            "archive_url": self.archive_url,
            "archive_replica_url": self.archive_replica_url,
            "key_ledger_url": self.key_ledger_url,
            "key_ledger_replica_url": self.key_ledger_replica_url,
            "document_store_url": self.document_store_url,
            "master_key_file": str(self.master_key_file) if self.master_key_file else None,
            "key_provider": self.key_provider,
            "kms_key_id": self.kms_key_id,
        }
        return {k: v for k, v in values.items() if v}


def _beside(archive_url: str, otherwise: Path | None) -> str:
    """The folder next to a file:// archive folder, named after it with `-ledger`; for any
    other archive, `otherwise`."""
    if archive_url.startswith("file:") and archive_url.rstrip("/") != "file:":
        return archive_url.rstrip("/") + "-ledger"
    if otherwise is None:
        raise InvalidInput(f"no folder beside {archive_url} for the key ledger")
    return otherwise.as_uri()


def load_settings(home: Path | None = None) -> Settings:
    """Build settings; `home` (from --home) wins over SHELFLIFE_HOME.

    A bad value stops here with `InvalidInput` naming the variable or `config.json` key and
    what it allows, never the value (a database URL can hold a password).
    """
    given: dict[str, Any] = {} if home is None else {"home": home}
    base = _validated(given)
    if base.home.exists() and not base.home.is_dir():
        raise InvalidInput(
            f"home folder {base.home} exists but is not a folder; set SHELFLIFE_HOME or --home "
            "to a folder"
        )
    path = base.home / CONFIG_FILE
    if not path.exists():
        return base
    try:
        stored = json.loads(path.read_text())
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        raise InvalidInput(
            f"{path}: not valid JSON; fix or delete it and run `shelflife init`"
        ) from None
    if not isinstance(stored, dict):
        raise InvalidInput(f"{path}: must hold a JSON object")
    merged = {k: v for k, v in stored.items() if k in STORED_KEYS and v is not None}
    for key in overriding_variables():
        merged.pop(key.removeprefix("SHELFLIFE_").lower(), None)
    return _validated({**given, "home": base.home, **merged}, config=path)


def settings_for_folder(home: Path) -> Settings:
    """Settings that keep the database, archive and key inside `home`, whatever the
    environment says: for the demo, which must never touch an installation's real data."""
    folder = home.resolve()
    return _validated(
        {
            "home": home,
            "database_url": f"sqlite:///{folder / 'shelflife.db'}",
            "archive_url": (folder / "archive").as_uri(),
            "archive_replica_url": None,
            "key_ledger_url": (folder / "archive-ledger").as_uri(),
            "key_ledger_replica_url": None,
            "document_store_url": (folder / "documents").as_uri(),
            "master_key_file": folder / "master.key",
        }
    )


def overriding_variables() -> list[str]:
    """The variables set now that override what `config.json` holds."""
    return [
        f"SHELFLIFE_{key.upper()}"
        for key in STORED_KEYS
        if os.environ.get(f"SHELFLIFE_{key.upper()}")
    ]


def allowed_values(name: str) -> str:
    """What setting `name` accepts, in words: the second half of its error message."""
    field = Settings.model_fields[name]
    if field.annotation is int:
        low = next(m.ge for m in field.metadata if isinstance(m, Ge))
        high = next(m.le for m in field.metadata if isinstance(m, Le))
        return f"must be a whole number from {low} to {high}"
    if name in _ALLOWED:
        return f"must be {_ALLOWED[name]}"
    if field.annotation is float:
        above = next(m.gt for m in field.metadata if isinstance(m, Gt))
        most = next(m.le for m in field.metadata if isinstance(m, Le))
        return f"must be a number of seconds above {above} and at most {most}"
    return f"must be {_ALLOWED[name]}"


_ALLOWED = {
    "home": "the path of a folder",
    "database_url": (
        "a database URL as text: sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/NAME"
    ),
    "archive_url": "a file:// URL with an absolute path or an s3:// URL, as text",
    "archive_replica_url": "a file:// URL with an absolute path or an s3:// URL, as text",
    "key_ledger_url": "a file:// URL with an absolute path or an s3:// URL, as text",
    "key_ledger_replica_url": "a file:// URL with an absolute path or an s3:// URL, as text",
    "document_store_url": "a file:// URL with an absolute path or an s3:// URL, as text",
    "archive_storage_class": "one of " + ", ".join(get_args(StorageClass)),
    "master_key_file": "the path of the master key file, as text",
    "key_provider": "one of file, kms",
    "kms_key_id": "a KMS key id, key ARN or alias/NAME, as text",
    "verify_sample_percent": "a percentage from 0 to 100 (fractions allowed)",
    "archive_offline_dir": "the path of a folder written by archive export, as text",
}


def _validated(values: dict[str, Any], config: Path | None = None) -> Settings:
    """Settings from `values` over the environment, with pydantic's errors in our words.

    With `config`, the stored keys in `values` came from that `config.json`."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        names = dict.fromkeys(str(e["loc"][0]) for e in exc.errors(include_input=False))
        raise InvalidInput(
            "; ".join(
                f"{config}: key {name!r} {allowed_values(name)}"
                if config is not None and name in STORED_KEYS and name in values
                else f"SHELFLIFE_{name.upper()}: {allowed_values(name)}"
                for name in names
            )
        ) from None
