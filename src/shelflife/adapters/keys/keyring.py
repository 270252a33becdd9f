"""The installation's key provider: the master key that wraps, and every master key that opens.

After `keys rotate` begins, data keys are under two master keys until the rotation is done; a
process that started before it met keys under the new one. The keyring wraps under its
current master key and opens a data key under whichever master key the key's id names,
loading one it does not hold yet through `resolve` (the locations the database records).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cache

from cryptography.hazmat.primitives import hashes, hmac

from shelflife.adapters.keys.envelope import wrapping_key_id
from shelflife.domain.errors import KeyUnavailable
from shelflife.domain.ports import KeyEncryptionKey, KeyLocation, KeyProvider, Ports, WrappedKey

MasterKey = KeyEncryptionKey
"""A key file (`LocalKeyProvider`) or a KMS key (`KmsMasterKey`)."""


class Keyring:
    """Implements `domain.ports.KeyProvider` over master keys."""

    def __init__(
        self,
        current: MasterKey,
        identity_key: bytes,
        resolve: Callable[[str], MasterKey],
        previous_key_id: str | None = None,
    ) -> None:
        if len(identity_key) != 32:
            raise KeyUnavailable("the buyer-identity key must be 32 bytes")
        self.current = current
        self.previous_key_id = previous_key_id
        self._identity_key = identity_key
        self._resolve = resolve
        self._loaded: dict[str, MasterKey] = {current.key_id: current}
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self.current.key_id

    def location(self) -> KeyLocation:
        return self.current.location()

    def wrap(self, data_key: bytes) -> WrappedKey:
        return self.current.wrap(data_key)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        return self.master_key(wrapped.master_key_id).unwrap(wrapped)

    def master_key(self, key_id: str) -> MasterKey:
        """The master key with this id, loaded on first use."""
        with self._lock:
            key = self._loaded.get(key_id)
            if key is None:
                key = self._resolve(key_id)
                if key.key_id != key_id:
                    raise KeyUnavailable(
                        f"master key {key_id} was looked for, but {key.key_id} was found where "
                        "this installation recorded it; restore the right key"
                    )
                self._loaded[key_id] = key
            return key

    def identity_digest(self, text: str) -> str:
        """Keyed hash that finds a buyer again without storing their e-mail in an index."""
        mac = hmac.HMAC(self._identity_key, hashes.SHA256())
        mac.update(text.encode())
        return mac.finalize().hex()


class RunKeys:
    """A key provider for one nightly run (or one batch command: `for_one_run`): a master key,
    or a KMS wrapping key, that could not be opened (`KeyUnavailable`: KMS unreachable or
    refusing, a key not configured) is not asked for again in the run; its other data keys
    fail at once with the same reason. Otherwise a night with KMS down would make a request,
    with its retries and timeouts, per buyer. A data key that does not authenticate
    (`ArchiveCorrupt`) stays its buyer's problem, and a key that opens is not affected. Not
    process-wide: the next run asks again."""

    def __init__(self, keys: KeyProvider) -> None:
        self._keys = keys
        self._failed: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self._keys.key_id

    def location(self) -> KeyLocation:
        return self._keys.location()

    def wrap(self, data_key: bytes) -> WrappedKey:
        return self._keys.wrap(data_key)

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        opener = (wrapped.master_key_id, wrapping_key_id(wrapped.blob))
        with self._lock:
            why = self._failed.get(opener)
        if why is not None:
            raise KeyUnavailable(why)
        try:
            return self._keys.unwrap(wrapped)
        except KeyUnavailable as exc:
            with self._lock:
                self._failed.setdefault(opener, str(exc))
            raise

    def identity_digest(self, text: str) -> str:
        return self._keys.identity_digest(text)


def for_one_run(ports: Ports) -> Ports:
    """The ports of one nightly run, or of one command that opens many buyers' data keys
    (`archive verify`, `archive migrate`): its key provider, loaded on first use, asks the key
    service for a key that could not be opened only once (see `RunKeys`), so that the
    requests do not grow with the buyers while KMS is down."""

    def keys() -> KeyProvider:
        loaded = ports.keys
        return loaded if isinstance(loaded, RunKeys) else RunKeys(loaded)

    return replace(ports, key_provider=cache(keys))
