"""The master key file: a 256-bit key that wraps every buyer's archive data key.

Kept outside the database so that a stolen database dump alone cannot open the archive. The
database records which key that is (`installation.master_key_id`), and holds the buyer-identity
key wrapped by it; `bootstrap.App.keys` joins the two.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shelflife.domain.errors import ArchiveCorrupt, KeyUnavailable
from shelflife.domain.ports import KeyLocation, WrappedKey

__all__ = ["LocalKeyProvider", "WrappedKey"]


MAX_KEY_FILE = 64 * 1024
"""Bytes read of a key file at most; a shelflife key file holds about a hundred."""


class LocalKeyProvider:
    """Wraps data keys with a master key held in a local file (mode 0600).

    A KMS-backed provider offers the same three methods (wrap, unwrap, identity_digest); the
    rest of shelflife does not care. The identity key is not derived from the master key: it is
    the installation's own key, stored wrapped, so that a new master key re-wraps it instead of
    changing every buyer's digest.
    """

    def __init__(
        self,
        key_id: str,
        key: bytes,
        identity_key: bytes | None = None,
        path: Path | None = None,
    ) -> None:
        if len(key) != 32:
            raise KeyUnavailable("the master key must be 32 bytes (AES-256)")
        if identity_key is not None and len(identity_key) != 32:
            raise KeyUnavailable("the buyer-identity key must be 32 bytes")
        self.key_id = key_id
        self._key = key
        self._aead = AESGCM(key)
        self._identity_key = identity_key
        self.path = path

    def with_identity_key(self, identity_key: bytes) -> LocalKeyProvider:
        """The same master key, able to digest buyer identities with the installation's key."""
        return LocalKeyProvider(self.key_id, self._key, identity_key, self.path)

    def legacy_identity_key(self) -> bytes:
        """The identity key installations used before it had its own: derived from the master
        key's bytes. Kept only so that `init` can carry such an installation's digests over."""
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"shelflife buyer identity"
        ).derive(self._key)

    @classmethod
    def from_file(cls, path: Path) -> LocalKeyProvider:
        """Load the key; a file that group or others may read or write is refused, because
        whoever can read it can open the whole archive."""
        try:
            mode = path.stat().st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o066:
                raise KeyUnavailable(
                    f"master key file {path} can be read or written by other users "
                    f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                # A device reads without end (/dev/zero filled the memory) and a pipe waits.
                raise KeyUnavailable(f"master key file {path} is not a regular file")
            with path.open("rb") as handle:
                text = handle.read(MAX_KEY_FILE + 1)
            if len(text) > MAX_KEY_FILE:
                raise ValueError("longer than any key file")
            body = json.loads(text.decode())
            key_id, key = str(body["key_id"]), base64.b64decode(body["key"], validate=True)
        except FileNotFoundError:
            raise KeyUnavailable(
                f"master key file {path} does not exist; restore it from its backup (or set "
                "SHELFLIFE_MASTER_KEY_FILE to where it is)"
            ) from None
        except PermissionError:
            raise KeyUnavailable(f"master key file {path} is not readable") from None
        except OSError as exc:
            raise KeyUnavailable(f"cannot read master key file {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, RecursionError):  # Recursion: [[[[…]]]]
            raise KeyUnavailable(f"master key file {path} is not a shelflife key file") from None
        if len(key) != 32:
            raise KeyUnavailable(f"master key file {path} does not hold a 32-byte (AES-256) key")
        return cls(key_id, key, path=path.resolve())

    @staticmethod
    def create_file(path: Path) -> str:
        """Write a new random key and return its id; never overwrites an existing file."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyUnavailable(f"cannot create master key file {path}: {exc.strerror}") from None
        body = {
            "key_id": f"mk-{secrets.token_hex(4)}",
            "key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "algorithm": "AES-256-GCM key wrap",
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyUnavailable(
                f"master key file {path} already exists; it is never overwritten"
            ) from None
        except OSError as exc:
            raise KeyUnavailable(f"cannot create master key file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return body["key_id"]

    def location(self) -> KeyLocation:
        return KeyLocation(self.key_id, "file", str(self.path) if self.path else "")

    def wrap(self, data_key: bytes) -> WrappedKey:
        nonce = secrets.token_bytes(12)
        return WrappedKey(self.key_id, nonce + self._aead.encrypt(nonce, data_key, self._aad()))

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.master_key_id != self.key_id:
            raise KeyUnavailable(
                f"the archive was sealed with master key {wrapped.master_key_id}, but the "
                f"configured key is {self.key_id}"
            )
        try:
            return self._aead.decrypt(wrapped.blob[:12], wrapped.blob[12:], self._aad())
        except Exception:
            raise ArchiveCorrupt("a data key did not authenticate with the master key") from None

    def identity_digest(self, text: str) -> str:
        """Keyed hash that finds a buyer again without storing their e-mail in an index."""
        if self._identity_key is None:
            raise KeyUnavailable(
                "the buyer-identity key is not loaded; it is read from the database with the "
                "master key"
            )
        mac = hmac.HMAC(self._identity_key, hashes.SHA256())
        mac.update(text.encode())
        return mac.finalize().hex()

    def _aad(self) -> bytes:
        return b"shelflife data key:" + self.key_id.encode()
