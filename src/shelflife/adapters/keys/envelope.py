"""Envelope encryption of archive objects: AES-256-GCM with a per-buyer data key.

Object layout: b"SLF1", 4-byte header length, JSON header (no PII), 12-byte nonce, ciphertext.
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


def read_header(blob: bytes) -> tuple[dict[str, object], bytes, bytes, bytes]:
    if blob[:4] != MAGIC or len(blob) < 8:
        raise ArchiveCorrupt("archive object is not a shelflife archive object")
    (length,) = struct.unpack(">I", blob[4:8])
    header_bytes = blob[8 : 8 + length]
    try:
        header = json.loads(header_bytes)
    except ValueError:
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
) -> bytes:
    """Decrypt an archive object only if it is the copy the database recorded: this buyer's,
    this revision, the very bytes verified when it was written."""
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
    return open_sealed(blob, keys)
