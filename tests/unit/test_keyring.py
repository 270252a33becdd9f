"""The keyring: wraps under the current master key, opens under any master key of the lineage,
loading one it has not loaded yet once, and never a key found under another id."""

from __future__ import annotations

import pytest

from shelflife.adapters.keys.keyring import Keyring, MasterKey
from shelflife.adapters.keys.master_key import LocalKeyProvider
from shelflife.domain.errors import KeyUnavailable

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
