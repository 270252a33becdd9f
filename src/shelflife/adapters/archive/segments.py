"""Segments: one archive object per nightly batch, holding many buyers' sealed records.

Layout: b"SLS1", the records one after the other (each sealed on its own, see
`adapters.keys.envelope.seal_record`), the manifest (JSON: for each record its customer id,
revision, key id, offset, length and SHA-256; no PII, no key material), the manifest's length
as 8 bytes big-endian, and b"SLS1" again. A segment describes itself, so the archive index can
be rebuilt from the store alone; the database still records each record's offset and length, so
that retrieval reads only its record's byte range.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shelflife.domain.errors import ArchiveCorrupt

SEGMENT_MAGIC = b"SLS1"
FORMAT = 1
_TRAILER = struct.Struct(">Q4s")

_SEGMENT_KEY = re.compile(r"segments/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{6}-[0-9a-f]{16}\.sls")


@dataclass(frozen=True)
class RecordEntry:
    """One record of a segment as its manifest (and the database's index) describes it."""

    customer_id: int
    revision: int
    key_id: str
    offset: int
    length: int
    sha256: str


def segment_key(at: datetime) -> str:
    """A new segment's object key: a folder per day keeps listings short, and the random part
    makes every write a new object, as write-once storage requires."""
    return f"segments/{at:%Y/%m/%d}/{at:%H%M%S}-{secrets.token_hex(8)}.sls"


def is_segment_key(key: str) -> bool:
    """Whether shelflife makes object keys like this one (see `segment_key`)."""
    return _SEGMENT_KEY.fullmatch(key) is not None


def pack_segment(
    records: Sequence[tuple[int, int, str, bytes]], created_at: datetime
) -> tuple[bytes, list[RecordEntry]]:
    """The segment holding these (customer id, revision, key id, sealed record) and its
    manifest entries, in the given order."""
    parts = [SEGMENT_MAGIC]
    entries: list[RecordEntry] = []
    offset = len(SEGMENT_MAGIC)
    for customer_id, revision, key_id, record in records:
        digest = hashlib.sha256(record).hexdigest()
        entries.append(RecordEntry(customer_id, revision, key_id, offset, len(record), digest))
        parts.append(record)
        offset += len(record)
    manifest = json.dumps(
        {
            "format": FORMAT,
            "created_at": created_at.isoformat(),
            "records": [
                [e.customer_id, e.revision, e.key_id, e.offset, e.length, e.sha256] for e in entries
            ],
        },
        separators=(",", ":"),
    ).encode()
    parts += [manifest, _TRAILER.pack(len(manifest), SEGMENT_MAGIC)]
    return b"".join(parts), entries


def read_manifest(segment: bytes) -> list[RecordEntry]:
    """The records a whole segment says it holds; `ArchiveCorrupt` when it is truncated or
    its manifest is damaged."""
    if len(segment) < len(SEGMENT_MAGIC) + _TRAILER.size or segment[:4] != SEGMENT_MAGIC:
        raise ArchiveCorrupt("archive segment is truncated or not a shelflife segment")
    length, magic = _TRAILER.unpack(segment[-_TRAILER.size :])
    start = len(segment) - _TRAILER.size - length
    if magic != SEGMENT_MAGIC or start < len(SEGMENT_MAGIC):
        raise ArchiveCorrupt("archive segment is truncated or not a shelflife segment")
    try:
        body = json.loads(segment[start : len(segment) - _TRAILER.size])
        if body["format"] != FORMAT:
            raise ArchiveCorrupt(f"archive segment format {body['format']!r} is not known")
        entries = [
            RecordEntry(int(c), int(r), str(k), int(o), int(n), str(d))
            for c, r, k, o, n, d in body["records"]
        ]
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        # OverflowError: int() of 1e999; RecursionError: JSON nested deeper than Python recurses
        raise ArchiveCorrupt("archive segment manifest is damaged") from None
    if any(e.offset < len(SEGMENT_MAGIC) or e.offset + e.length > start for e in entries):
        raise ArchiveCorrupt("archive segment manifest is damaged")
    return entries
