"""Envelope encryption of archive objects: AES-256-GCM with a per-buyer data key.

Two formats. A segment record (`seal_record`, what the nightly run writes into segments, see
`adapters/archive/segments.py`): b"SLR1", 4-byte header length, JSON header (customer id,
revision, key id: no PII and no wrapped data key), 12-byte nonce, ciphertext; the header is the
associated data, so the record cannot be relabelled, and the data key comes from the database,
so deleting a buyer's key there leaves nothing in the archive that opens the record.

The legacy whole-object copy (`seal`, still read by retrieval): b"SLF1", 4-byte header
length, JSON header (no PII), 12-byte nonce, ciphertext.
The header (customer id, revision, master key id, wrapped data key) is authenticated as AES-GCM
associated data, so it cannot be relabelled; `open_copy` also checks it, and the object's
SHA-256, against what the database recorded for the copy, so a valid object of another buyer
or revision put in its place is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelflife.domain.errors import ArchiveCorrupt
from shelflife.domain.ports import KeyProvider, WrappedKey

MAGIC = b"SLF1"
RECORD_MAGIC = b"SLR1"

WRAPPED_MAGIC = b"SLW1"
"""A data key wrapped under a KMS master key's wrapping key (see adapters/keys/kms.py)."""
WRAPPING_ID_LENGTH = 19  # "wk-" and 16 hex digits


def wrapping_key_id(blob: bytes) -> str | None:
    """The id of the wrapping key a KMS-wrapped data key names; None for any other blob."""
    head = len(WRAPPED_MAGIC) + WRAPPING_ID_LENGTH
    if blob[: len(WRAPPED_MAGIC)] != WRAPPED_MAGIC or len(blob) < head:
        return None
    return blob[len(WRAPPED_MAGIC) : head].decode("ascii", "replace")


def new_data_key() -> bytes:
    return secrets.token_bytes(32)


def seal(
    data_key: bytes, wrapped: WrappedKey, customer_id: int, revision: int, plaintext: bytes
) -> bytes:
    header = json.dumps(
        {
            "customer_id": customer_id,
            "revision": revision,
            "master_key_id": wrapped.master_key_id,
            "wrapped_key": base64.b64encode(wrapped.blob).decode(),
        },
        sort_keys=True,
    ).encode()
    nonce = secrets.token_bytes(12)
    body = AESGCM(data_key).encrypt(nonce, plaintext, header)
    return MAGIC + struct.pack(">I", len(header)) + header + nonce + body


def seal_record(
    data_key: bytes, key_id: str, customer_id: int, revision: int, plaintext: bytes
) -> bytes:
    """One buyer's record for a segment; `key_id` names the master key that wrapped the data
    key when it was sealed (a later re-wrap under another master key does not touch it)."""
    header = json.dumps(
        {"customer_id": customer_id, "revision": revision, "key_id": key_id}, sort_keys=True
    ).encode()
    nonce = secrets.token_bytes(12)
    body = AESGCM(data_key).encrypt(nonce, plaintext, header)
    return RECORD_MAGIC + struct.pack(">I", len(header)) + header + nonce + body


def open_record(
    blob: bytes,
    data_key: bytes,
    *,
    where: str,
    customer_id: int,
    revision: int,
    sha256: str,
) -> bytes:
    """Decrypt a segment record only if it is the one recorded: the very bytes (digest), this
    buyer's and this revision's (authenticated header). `where` names it in messages."""
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ArchiveCorrupt(
            f"archive record {where} is not the recorded one; nothing was changed "
            "(check the archive store for a damaged or replaced segment)"
        )
    header, header_bytes, nonce, body = read_header(blob, RECORD_MAGIC)
    if header.get("customer_id") != customer_id:
        raise ArchiveCorrupt(
            f"archive record {where} does not belong to this buyer; nothing was changed "
            "(check the archive index for a moved record)"
        )
    if header.get("revision") != revision:
        raise ArchiveCorrupt(
            f"archive record {where} is not the recorded one; nothing was changed "
            "(check the archive index for a moved record)"
        )
    try:
        return AESGCM(data_key).decrypt(nonce, body, header_bytes)
    except InvalidTag:
        raise ArchiveCorrupt(
            "archive object failed authentication (damaged or wrong key)"
        ) from None


def read_header(blob: bytes, magic: bytes = MAGIC) -> tuple[dict[str, object], bytes, bytes, bytes]:
    if blob[:4] != magic or len(blob) < 8:
        raise ArchiveCorrupt("archive object is not a shelflife archive object")
    (length,) = struct.unpack(">I", blob[4:8])
    header_bytes = blob[8 : 8 + length]
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        raise ArchiveCorrupt("archive object header is damaged") from None
    if not isinstance(header, dict):
        raise ArchiveCorrupt("archive object header is damaged")
    rest = blob[8 + length :]
    if len(rest) < 12 + 16:  # nonce and GCM tag
        raise ArchiveCorrupt("archive object is truncated")
    return header, header_bytes, rest[:12], rest[12:]


def open_sealed(blob: bytes, keys: KeyProvider, data_key: bytes | None = None) -> bytes:
    """Decrypt an archive object; the data key comes from its own header unless given."""
    header, header_bytes, nonce, body = read_header(blob)
    if data_key is None:
        key_id, wrapped_key = header.get("master_key_id"), header.get("wrapped_key")
        if not isinstance(key_id, str) or not isinstance(wrapped_key, str):
            raise ArchiveCorrupt("archive object header is damaged")
        try:
            wrapped = WrappedKey(key_id, base64.b64decode(wrapped_key, validate=True))
        except ValueError:
            raise ArchiveCorrupt("archive object header is damaged") from None
        data_key = keys.unwrap(wrapped)
    try:
        return AESGCM(data_key).decrypt(nonce, body, header_bytes)
    except InvalidTag:
        raise ArchiveCorrupt(
            "archive object failed authentication (damaged or wrong key)"
        ) from None


def open_copy(
    blob: bytes,
    keys: KeyProvider,
    *,
    object_key: str,
    customer_id: int,
    revision: int,
    ciphertext_sha256: str,
    data_key: bytes | None = None,
) -> bytes:
    """Decrypt an archive object only if it is the copy the database recorded: this buyer's,
    this revision, the very bytes verified when it was written. The data key comes from the
    object's header unless given (the same key, re-wrapped in the database by a rotation)."""
    header = read_header(blob)[0]
    if header.get("customer_id") != customer_id:
        raise ArchiveCorrupt(
            f"archive copy {object_key} does not belong to this buyer; nothing was changed "
            "(check the archive store for a replaced object)"
        )
    if header.get("revision") != revision or hashlib.sha256(blob).hexdigest() != ciphertext_sha256:
        raise ArchiveCorrupt(
            f"archive copy {object_key} is not the recorded one; nothing was changed "
            "(check the archive store for a replaced object)"
        )
    return open_sealed(blob, keys, data_key)
