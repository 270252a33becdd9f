"""The installation row: which master key this database's data is sealed under; the master
keys used and where they are; the KMS wrapping keys (see `adapters/keys/kms.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from shelflife.adapters.db.tables import (
    ArchiveCopy,
    Customer,
    Installation,
    KeyEncryptionKey,
    WrappingKey,
)
from shelflife.domain.ports import KeyLocation
from shelflife.domain.ports import WrappingKey as WrappingKeyRecord


@dataclass(frozen=True)
class InstallationRow:
    master_key_id: str
    identity_key_wrapped: bytes
    previous_master_key_id: str | None = None
    """Set while `keys rotate` moves data keys away from it."""


@dataclass(frozen=True)
class KeyReferences:
    """What in the database already depends on a master key (counts, never values)."""

    data_keys: dict[str, int]
    """Buyers' wrapped data keys per master key id."""
    archive_copies: int
    identity_digests: int

    @property
    def any(self) -> bool:
        return bool(self.data_keys) or self.archive_copies > 0 or self.identity_digests > 0


def read_installation(conn: Connection) -> InstallationRow | None:
    row = conn.execute(
        select(
            Installation.master_key_id,
            Installation.identity_key_wrapped,
            Installation.previous_master_key_id,
        ).where(Installation.id == 1)
    ).first()
    if row is None:
        return None
    return InstallationRow(
        row.master_key_id, bytes(row.identity_key_wrapped), row.previous_master_key_id
    )


def key_references(conn: Connection) -> KeyReferences:
    data_keys = {
        r.data_key_master_id: int(r.n)
        for r in conn.execute(
            select(Customer.data_key_master_id, func.count().label("n"))
            .where(Customer.data_key_master_id.is_not(None))
            .group_by(Customer.data_key_master_id)
        )
    }
    copies = conn.execute(select(func.count()).select_from(ArchiveCopy)).scalar_one()
    digests = conn.execute(
        select(func.count()).where(Customer.identity_digest.is_not(None))
    ).scalar_one()
    return KeyReferences(data_keys, int(copies), int(digests))


def sample_data_key(conn: Connection, master_key_id: str) -> bytes | None:
    """One buyer's data key wrapped under this master key id: proof that a key file with
    that id really is the key (its bytes open it)."""
    blob = conn.execute(
        select(Customer.data_key_wrapped)
        .where(Customer.data_key_master_id == master_key_id, Customer.data_key_wrapped.is_not(None))
        .order_by(Customer.id)
        .limit(1)
    ).scalar()
    return None if blob is None else bytes(blob)


def record_installation(
    conn: Connection, master_key_id: str, identity_key_wrapped: bytes, now: datetime
) -> None:
    conn.execute(
        insert(Installation).values(
            id=1,
            master_key_id=master_key_id,
            identity_key_wrapped=identity_key_wrapped,
            created_at=now,
            updated_at=now,
        )
    )


def begin_rotation(
    conn: Connection,
    new: KeyLocation,
    old: KeyLocation,
    identity_key_wrapped: bytes,
    now: datetime,
) -> None:
    """Make `new` the recorded master key and remember `old` until every data key moved."""
    for location in (old, new):
        record_key_location(conn, location, now)
    conn.execute(
        update(Installation)
        .where(Installation.id == 1)
        .values(
            master_key_id=new.master_key_id,
            identity_key_wrapped=identity_key_wrapped,
            previous_master_key_id=old.master_key_id,
            updated_at=now,
        )
    )


def finish_rotation(conn: Connection, now: datetime) -> None:
    conn.execute(
        update(Installation)
        .where(Installation.id == 1)
        .values(previous_master_key_id=None, updated_at=now)
    )


def record_key_location(conn: Connection, location: KeyLocation, now: datetime) -> None:
    """Remember where a master key is; a key known already keeps its first location unless
    the new one differs (a key file moved), which then replaces it."""
    known = conn.execute(
        select(KeyEncryptionKey.location).where(KeyEncryptionKey.id == location.master_key_id)
    ).scalar()
    if known is None:
        conn.execute(
            insert(KeyEncryptionKey).values(
                id=location.master_key_id,
                provider=location.provider,
                location=location.location,
                created_at=now,
            )
        )
    elif known != location.location:
        conn.execute(
            update(KeyEncryptionKey)
            .where(KeyEncryptionKey.id == location.master_key_id)
            .values(provider=location.provider, location=location.location)
        )


def key_location(conn: Connection, master_key_id: str) -> KeyLocation | None:
    row = conn.execute(
        select(KeyEncryptionKey.provider, KeyEncryptionKey.location).where(
            KeyEncryptionKey.id == master_key_id
        )
    ).first()
    return None if row is None else KeyLocation(master_key_id, row.provider, row.location)


def record_wrapping_keys(
    conn: Connection, keys: Sequence[WrappingKeyRecord], now: datetime
) -> None:
    """Store these KMS wrapping keys unless stored already: one query, and one insert for the
    new ones (a process has one; a batch rarely carries more)."""
    wanted = {k.id: k for k in keys}
    if not wanted:
        return
    stored = set(
        conn.execute(select(WrappingKey.id).where(WrappingKey.id.in_(list(wanted)))).scalars()
    )
    new = [k for k in wanted.values() if k.id not in stored]
    if new:
        conn.execute(
            insert(WrappingKey),
            [
                {
                    "id": k.id,
                    "master_key_id": k.master_key_id,
                    "encrypted": k.encrypted,
                    "created_at": now,
                }
                for k in new
            ],
        )


def wrapping_key(conn: Connection, wrapping_id: str) -> WrappingKeyRecord | None:
    row = conn.execute(
        select(WrappingKey.master_key_id, WrappingKey.encrypted).where(
            WrappingKey.id == wrapping_id
        )
    ).first()
    return (
        None
        if row is None
        else WrappingKeyRecord(wrapping_id, row.master_key_id, bytes(row.encrypted))
    )
