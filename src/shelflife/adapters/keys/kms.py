"""AWS KMS as the master key (key-encryption key), through boto3.

KMS never sees a buyer's data key. A process that wraps asks KMS once for a wrapping key
(GenerateDataKey, AES-256); the data keys it wraps are sealed locally under that key with
AES-GCM, and the key as KMS encrypted it goes into the database (`wrapping_keys`) with the
first data key sealed under it. Opening a data key needs its wrapping key: one KMS Decrypt
per wrapping key, cached for the life of the process. So the KMS requests of a night are a
handful, whatever the number of buyers (see docs/operations.md, "KMS").

Credentials, region and endpoint come from the standard AWS chain (`AWS_REGION`,
`AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL`, roles...); a key given as an ARN names its
region. boto3's exceptions stop here as `KeyUnavailable`, naming the key and what to check.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelflife.adapters.keys.envelope import WRAPPED_MAGIC, WRAPPING_ID_LENGTH, wrapping_key_id
from shelflife.domain.errors import ArchiveCorrupt, KeyServiceUnavailable, KeyUnavailable
from shelflife.domain.ports import KeyLocation, WrappedKey, WrappingKey

KEY_ID_PREFIX: Final = "kms-"
"""A KMS master key's id in shelflife: this prefix and KMS's own key id (never an alias,
which can be pointed at another key)."""

WrappingKeyLookup = Callable[[str], WrappingKey | None]
"""Reads a stored wrapping key by id (the database's `wrapping_keys`)."""


def kms_client(session: boto3.session.Session, key_ref: str) -> Any:
    """A KMS client; a key ARN's own region wins over the configured one."""
    parts = key_ref.split(":")
    region = parts[3] if key_ref.startswith("arn:") and len(parts) > 4 else None
    try:
        return session.client(
            "kms",
            region_name=region or None,
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )
    except NoRegionError:
        raise KeyUnavailable(
            f"KMS key {key_ref}: no AWS region is configured; set AWS_REGION, or name the key "
            "by its ARN (which holds the region)"
        ) from None


class KmsMasterKey:
    """A KMS key that wraps the installation's data keys through per-process wrapping keys."""

    def __init__(self, client: Any, key_ref: str, lookup: WrappingKeyLookup) -> None:
        self._client = client
        self._lookup = lookup
        self._lock = threading.Lock()
        self._opened: dict[str, bytes] = {}
        self._own: WrappingKey | None = None
        metadata = self._call("DescribeKey", key_ref, lambda: client.describe_key(KeyId=key_ref))
        info = metadata["KeyMetadata"]
        if info.get("KeyState") not in (None, "Enabled"):
            raise KeyUnavailable(
                f"KMS key {key_ref} is {info.get('KeyState')}; enable it (or set "
                "SHELFLIFE_KMS_KEY_ID to the installation's key)"
            )
        self.arn: str = info["Arn"]
        self.key_id = KEY_ID_PREFIX + info["KeyId"]

    def location(self) -> KeyLocation:
        return KeyLocation(self.key_id, "kms", self.arn)

    def wrap(self, data_key: bytes) -> WrappedKey:
        own, plain = self._wrapping_key()
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(plain).encrypt(nonce, data_key, self._aad(own.id))
        return WrappedKey(self.key_id, WRAPPED_MAGIC + own.id.encode() + nonce + sealed, own)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.master_key_id != self.key_id:
            raise KeyUnavailable(
                f"a data key is sealed under master key {wrapped.master_key_id}, not under the "
                f"KMS key {self.key_id}"
            )
        blob = wrapped.blob
        head = len(WRAPPED_MAGIC) + WRAPPING_ID_LENGTH
        wrapping_id = wrapping_key_id(blob)
        if wrapping_id is None or len(blob) < head + 12 + 16:
            raise ArchiveCorrupt("a data key is not a KMS-wrapped shelflife data key")
        plain = self._open_wrapping_key(wrapping_id)
        nonce, sealed = blob[head : head + 12], blob[head + 12 :]
        try:
            return AESGCM(plain).decrypt(nonce, sealed, self._aad(wrapping_id))
        except InvalidTag:
            raise ArchiveCorrupt("a data key did not authenticate with its wrapping key") from None

    def _wrapping_key(self) -> tuple[WrappingKey, bytes]:
        """This process's wrapping key, asked of KMS on first use."""
        with self._lock:
            if self._own is None:
                wrapping_id = f"wk-{secrets.token_hex(8)}"
                answer = self._call(
                    "GenerateDataKey",
                    self.arn,
                    lambda: self._client.generate_data_key(
                        KeyId=self.arn, KeySpec="AES_256", EncryptionContext=_context(wrapping_id)
                    ),
                )
                self._own = WrappingKey(wrapping_id, self.key_id, bytes(answer["CiphertextBlob"]))
                self._opened[wrapping_id] = bytes(answer["Plaintext"])
            return self._own, self._opened[self._own.id]

    def _open_wrapping_key(self, wrapping_id: str) -> bytes:
        with self._lock:
            plain = self._opened.get(wrapping_id)
            if plain is not None:
                return plain
            stored = self._lookup(wrapping_id)
            if stored is None or stored.master_key_id != self.key_id:
                raise KeyUnavailable(
                    f"wrapping key {wrapping_id} of KMS key {self.key_id} is not in the database; "
                    "restore the database's wrapping_keys table from its backup"
                )
            answer = self._call(
                "Decrypt",
                self.arn,
                lambda: self._client.decrypt(
                    CiphertextBlob=stored.encrypted,
                    KeyId=self.arn,
                    EncryptionContext=_context(wrapping_id),
                ),
            )
            plain = bytes(answer["Plaintext"])
            self._opened[wrapping_id] = plain
            return plain

    def _aad(self, wrapping_id: str) -> bytes:
        return f"shelflife data key:{self.key_id}:{wrapping_id}".encode()

    @staticmethod
    def _call(operation: str, key: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise KeyServiceUnavailable(
                f"KMS refused {operation} with key {key} ({code}); check that the key exists, "
                "is enabled, and that this machine's AWS role may use it"
            ) from None
        except BotoCoreError as exc:
            raise KeyServiceUnavailable(
                f"KMS cannot be reached for {operation} with key {key} ({type(exc).__name__}); "
                "check the AWS region, endpoint (AWS_ENDPOINT_URL_KMS) and credentials"
            ) from None


def _context(wrapping_id: str) -> dict[str, str]:
    """Binds the encrypted wrapping key to its id: KMS refuses it under any other."""
    return {"purpose": "shelflife wrapping key", "wrapping_key_id": wrapping_id}
