"""The keyring: wraps under the current master key, opens under any master key of the lineage,
loading one it has not loaded yet once, and never a key found under another id. A run's keys
ask for a key that could not be opened once per run."""

from __future__ import annotations

import pytest

from shelflife.adapters.keys.envelope import WRAPPED_MAGIC, wrapping_key_id
from shelflife.adapters.keys.keyring import Keyring, MasterKey, RunKeys
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.domain.errors import ArchiveCorrupt, KeyUnavailable
from shelflife.domain.ports import KeyLocation, WrappedKey

IDENTITY = bytes(range(32))


def _key(key_id: str, byte: int) -> LocalKeyProvider:
    return LocalKeyProvider(key_id, bytes([byte]) * 32)


def test_wraps_under_the_current_key_and_opens_under_an_older_one_loaded_once() -> None:
    old, new = _key("mk-old", 1), _key("mk-new", 2)
    resolved: list[str] = []

    def resolve(key_id: str) -> MasterKey:
        resolved.append(key_id)
        return old

    ring = Keyring(new, IDENTITY, resolve, previous_key_id="mk-old")
    under_old = old.wrap(b"k" * 32)

    assert ring.wrap(b"d" * 32).master_key_id == "mk-new"
    assert ring.unwrap(under_old) == b"k" * 32
    assert ring.unwrap(under_old) == b"k" * 32
    assert resolved == ["mk-old"]


def test_a_key_found_under_another_id_is_refused() -> None:
    ring = Keyring(_key("mk-new", 2), IDENTITY, lambda _key_id: _key("mk-impostor", 3))

    with pytest.raises(KeyUnavailable) as refused:
        ring.unwrap(_key("mk-old", 1).wrap(b"k" * 32))

    assert str(refused.value) == (
        "master key mk-old was looked for, but mk-impostor was found where this installation "
        "recorded it; restore the right key"
    )


def test_identity_digests_do_not_change_with_the_master_key() -> None:
    text = "amazon|erika.mustermann@example.org"
    before = _key("mk-old", 1).with_identity_key(IDENTITY).identity_digest(text)

    after = Keyring(_key("mk-new", 2), IDENTITY, lambda k: _key(k, 1)).identity_digest(text)

    assert after == before


class _KeyService:
    """A KMS-like key provider that cannot open the wrapping keys in `down` and finds data keys
    ending in b"bad" damaged; records which wrapping key each unwrap asked for."""

    key_id = "kms-test"

    def __init__(self, *down: str) -> None:
        self.down = set(down)
        self.asked: list[str | None] = []

    def location(self) -> KeyLocation:
        return KeyLocation(self.key_id, "kms", "arn:test")

    def wrap(self, data_key: bytes) -> WrappedKey:
        return WrappedKey(self.key_id, _blob("wk-0000000000000000", data_key))

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        wrapping_id = wrapping_key_id(wrapped.blob)
        self.asked.append(wrapping_id)
        if wrapping_id in self.down:
            raise KeyUnavailable(f"KMS cannot be reached for Decrypt of {wrapping_id}")
        if wrapped.blob.endswith(b"bad"):
            raise ArchiveCorrupt("a data key did not authenticate with its wrapping key")
        return wrapped.blob[-32:]

    def identity_digest(self, text: str) -> str:
        return text


def _blob(wrapping_id: str, tail: bytes) -> bytes:
    return WRAPPED_MAGIC + wrapping_id.encode() + tail


def test_a_runs_keys_ask_once_for_a_wrapping_key_that_would_not_open() -> None:
    down, up = "wk-aaaaaaaaaaaaaaaa", "wk-bbbbbbbbbbbbbbbb"
    service = _KeyService(down)
    keys = RunKeys(service)
    under_down = [WrappedKey("kms-test", _blob(down, bytes([i]) * 32)) for i in range(3)]
    under_up = [WrappedKey("kms-test", _blob(up, bytes([i]) * 32)) for i in range(2)]
    damaged = [WrappedKey("kms-test", _blob(up, b"x" * 29 + b"bad")) for _ in range(2)]

    reasons = []
    for wrapped in under_down:
        with pytest.raises(KeyUnavailable) as refused:
            keys.unwrap(wrapped)
        reasons.append(str(refused.value))
    opened = [keys.unwrap(w) for w in under_up]
    for wrapped in damaged:
        with pytest.raises(ArchiveCorrupt):
            keys.unwrap(wrapped)

    assert reasons == [f"KMS cannot be reached for Decrypt of {down}"] * 3
    assert opened == [bytes([0]) * 32, bytes([1]) * 32]
    # A key that opens, and a damaged data key (its buyer's own problem), are asked each time.
    assert service.asked == [down, up, up, up, up]
    with pytest.raises(KeyUnavailable):
        RunKeys(service).unwrap(under_down[0])  # the next run asks again
    assert service.asked == [down, up, up, up, up, down]


def test_a_runs_keys_load_a_master_key_that_is_not_there_once() -> None:
    gone = _key("mk-gone", 1)
    resolved: list[str] = []

    def resolve(key_id: str) -> MasterKey:
        resolved.append(key_id)
        raise KeyUnavailable(f"master key file of {key_id} is missing")

    keys = RunKeys(Keyring(_key("mk-new", 2), IDENTITY, resolve))
    for data_key in (b"a" * 32, b"b" * 32, b"c" * 32):
        with pytest.raises(KeyUnavailable):
            keys.unwrap(gone.wrap(data_key))

    assert resolved == ["mk-gone"]
