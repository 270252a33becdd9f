"""The installation row: which master key this database's data is sealed under."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from shelflife.adapters.db.tables import ArchiveCopy, Customer, Installation


@dataclass(frozen=True)
class InstallationRow:
    master_key_id: str
    identity_key_wrapped: bytes


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
        select(Installation.master_key_id, Installation.identity_key_wrapped).where(
            Installation.id == 1
        )
    ).first()
    return (
        None if row is None else InstallationRow(row.master_key_id, bytes(row.identity_key_wrapped))
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
