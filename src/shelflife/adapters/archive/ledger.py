"""The key ledger's objects: per segment, the wrapped data keys of its records.

Segments are write-once, so a buyer's data key cannot live in them (it could never be
destroyed). The database holds the working copy of every key; the ledger holds a second one in
a mutable store (`SHELFLIFE_KEY_LEDGER_URL`), one object per segment, `ledger/<segment key>.keys`:
JSON with the segment's key and, for each record whose buyer is not shredded, its customer id,
revision, the id of the key-encryption key that wrapped the data key, and the wrapped data key
(base64); with a KMS master key also the KMS-encrypted wrapping keys those data keys are
wrapped under (`wrapping_keys`), so that the ledger and KMS alone open them. No PII, and nothing
that opens without the key-encryption key.

With the ledger, the archive survives the loss of the database (`archive recover`); without a
buyer's entries in it (and in the database), none of the buyer's records opens anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from shelflife.adapters.keys.envelope import wrapping_key_id
from shelflife.domain.errors import ArchiveCorrupt
from shelflife.domain.ports import LedgerEntry, WrappedKey, WrappingKey

FORMAT = 1
PREFIX = "ledger/"
SUFFIX = ".keys"


def ledger_key(segment_key: str) -> str:
    """Where the ledger object of a segment lives in the ledger store."""
    return f"{PREFIX}{segment_key}{SUFFIX}"


def segment_of_ledger_key(key: str) -> str | None:
    """The segment a ledger object key names; None for any other key."""
    if not key.startswith(PREFIX) or not key.endswith(SUFFIX):
        return None
    return key[len(PREFIX) : -len(SUFFIX)] or None


def pack_ledger(segment_key: str, entries: Sequence[LedgerEntry]) -> bytes:
    """The ledger object of a segment (entries in customer id, revision order)."""
    ordered = sorted(entries, key=lambda e: (e.customer_id, e.revision))
    wrapping = {e.key.wrapping_key.id: e.key.wrapping_key for e in ordered if e.key.wrapping_key}
    return json.dumps(
        {
            "format": FORMAT,
            "segment": segment_key,
            "wrapping_keys": [
                [w.id, w.master_key_id, base64.b64encode(w.encrypted).decode()]
                for _, w in sorted(wrapping.items())
            ],
            "keys": [
                [
                    e.customer_id,
                    e.revision,
                    e.key.master_key_id,
                    base64.b64encode(e.key.blob).decode(),
                ]
                for e in ordered
            ],
        },
        separators=(",", ":"),
    ).encode()


def read_ledger(segment_key: str, data: bytes) -> list[LedgerEntry]:
    """The entries of a ledger object; `ArchiveCorrupt` when it is damaged or belongs to another
    segment (a ledger object copied to another name must not give keys to the wrong records)."""
    try:
        body = json.loads(data)
        if body["format"] != FORMAT:
            raise ArchiveCorrupt(f"key ledger of {segment_key}: format {body['format']!r} unknown")
        if body["segment"] != segment_key:
            raise ArchiveCorrupt(f"key ledger of {segment_key} names another segment")
        wrapping = {
            str(wid): WrappingKey(str(wid), str(mid), base64.b64decode(enc, validate=True))
            for wid, mid, enc in body.get("wrapping_keys", [])
        }
        entries = []
        for cid, rev, kid, blob in body["keys"]:
            raw = base64.b64decode(blob, validate=True)
            named = wrapping_key_id(raw)
            key = WrappedKey(str(kid), raw, None if named is None else wrapping.get(named))
            entries.append(LedgerEntry(int(cid), int(rev), key))
        return entries
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, RecursionError):
        # OverflowError: int() of 1e999; RecursionError: JSON nested deeper than Python recurses
        raise ArchiveCorrupt(f"key ledger of {segment_key} is damaged") from None
