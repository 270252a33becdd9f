"""Reading archive copies the way retrieval does, and writing legacy whole-object copies the
way shelflife did before segments, for tests that look inside the archive."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from shelflife.adapters.db.tables import ArchiveCopy, Customer
from shelflife.adapters.keys.envelope import open_record, open_sealed, seal
from shelflife.bootstrap import App
from shelflife.domain.ports import WrappedKey
from shelflife.services.pipeline import object_key_prefix


def data_key(app: App, customer_id: int) -> bytes:
    """The buyer's data key, unwrapped from the database with the app's master key."""
    with app.engine.connect() as conn:
        row = conn.execute(
            select(Customer.data_key_master_id, Customer.data_key_wrapped).where(
                Customer.id == customer_id
            )
        ).one()
    return app.keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))


def copy_plaintext(app: App, copy: Any) -> bytes:
    """The snapshot bytes of an `archive_copies` row: a segment record or a legacy object."""
    if copy.record_offset is None:
        return open_sealed(app.archive.get(copy.object_key), app.keys)
    record = app.archive.get_range(copy.object_key, copy.record_offset, copy.record_length)
    return open_record(
        record,
        data_key(app, copy.customer_id),
        where=copy.object_key,
        customer_id=copy.customer_id,
        revision=copy.revision,
        sha256=copy.ciphertext_sha256,
    )


def make_legacy(app: App, copy: Any, change: Callable[[bytes], bytes] | None = None) -> str:
    """Rewrite a copy as the old code path stored it: a whole object of its own under the
    buyer's prefix, with its wrapped data key in the header and no offset or length recorded
    (and its plaintext passed through `change`, to fake a copy holding other data).
    Returns the new object key."""
    plaintext = copy_plaintext(app, copy)
    if change is not None:
        plaintext = change(plaintext)
    key = data_key(app, copy.customer_id)
    blob = seal(key, app.keys.wrap(key), copy.customer_id, copy.revision, plaintext)
    object_key = (
        f"{object_key_prefix(copy.customer_id)}r{copy.revision:06d}-{secrets.token_hex(4)}.slf"
    )
    app.archive.put(object_key, blob)
    with app.engine.begin() as conn:
        conn.execute(
            update(ArchiveCopy)
            .where(ArchiveCopy.id == copy.id)
            .values(
                object_key=object_key,
                ciphertext_sha256=hashlib.sha256(blob).hexdigest(),
                record_offset=None,
                record_length=None,
            )
        )
    return object_key
