"""The master key file, envelope encryption of archive objects, and the local archive folder."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from shelflife.adapters.archive.s3 import S3Archive, S3Location
from shelflife.adapters.archive.store import LocalFolderArchive, archive_from_url
from shelflife.adapters.keys.envelope import (
    new_data_key,
    open_copy,
    open_sealed,
    read_header,
    seal,
)
from shelflife.adapters.keys.master_key import MAX_KEY_FILE, LocalKeyProvider, WrappedKey
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    InvalidInput,
    KeyUnavailable,
    ShelflifeError,
)
from shelflife.domain.snapshot import CustomerSnapshot

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
DATA_KEY = bytes(range(100, 132))


IDENTITY_KEY = bytes(range(200, 232))


def provider(
    key_id: str = "mk-aaaa0001", key: bytes = KEY_A, identity_key: bytes = IDENTITY_KEY
) -> LocalKeyProvider:
    return LocalKeyProvider(key_id, key, identity_key)


def write_private(path: Path, content: bytes) -> None:
    """A key file as `init` leaves it: readable and writable by its owner only."""
    path.write_bytes(content)
    path.chmod(0o600)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_clean(error: ShelflifeError) -> None:
    """No library exception is chained into what a person sees (raised `from None` or alone)."""
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__ is True


def snapshot_plaintext() -> bytes:
    snap = CustomerSnapshot(customer_id=7, revision=3)
    snap.add(
        "customers",
        7,
        {
            "first_name": "Erika",
            "last_name": "Mustermann",
            "email": "erika.mustermann@example.org",
            "phone": "+49 221 1234567",
        },
    )
    snap.add("addresses", 11, {"street": "Heidestraße", "zip": "51147", "city": "Köln"})
    snap.add("addresses", 12, {"iban": "DE02120300000000202051"})
    return snap.to_bytes()


PII = (
    "Mustermann",
    "erika.mustermann@example.org",
    "+49 221 1234567",
    "Heidestraße",
    "51147",
    "DE02120300000000202051",
)


def sealed(keys: LocalKeyProvider, plaintext: bytes, customer_id: int = 7) -> bytes:
    return seal(DATA_KEY, keys.wrap(DATA_KEY), customer_id, 3, plaintext)


# --- the master key file --------------------------------------------------------------------


def test_create_file_writes_a_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"

    LocalKeyProvider.create_file(path)

    assert mode(path) == 0o600
    body = json.loads(path.read_text())
    assert body["key_id"].startswith("mk-")
    assert len(base64.b64decode(body["key"])) == 32
    assert LocalKeyProvider.from_file(path).key_id == body["key_id"]


def test_create_file_makes_a_new_key_each_time(tmp_path: Path) -> None:
    LocalKeyProvider.create_file(tmp_path / "one.key")
    LocalKeyProvider.create_file(tmp_path / "two.key")

    one = json.loads((tmp_path / "one.key").read_text())
    two = json.loads((tmp_path / "two.key").read_text())
    assert (one["key_id"] == two["key_id"], one["key"] == two["key"]) == (False, False)


def test_create_file_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    LocalKeyProvider.create_file(path)
    before = path.read_bytes()

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.create_file(path)

    assert str(info.value) == f"master key file {path} already exists; it is never overwritten"
    assert_clean(info.value)
    assert path.read_bytes() == before


def test_key_file_in_a_folder_that_cannot_be_created_is_refused_with_its_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where the folder should be")
    path = tmp_path / "blocker" / "keys" / "master.key"

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.create_file(path)

    assert str(info.value) == f"cannot create master key file {path}: Not a directory"
    assert_clean(info.value)


def test_missing_key_file_names_the_path_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "master.key"

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == (
        f"master key file {path} does not exist; restore it from its backup (or set "
        "SHELFLIFE_MASTER_KEY_FILE to where it is)"
    )
    assert_clean(info.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b'{"key_id": "mk-1"}',
        b'{"key": "AAAA"}',
        b'{"key_id": "mk-1", "key": 42}',
        b'{"key_id": "mk-1", "key": "not base64 at all"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "list",
        "string",
        "no-key",
        "no-key-id",
        "key-not-a-string",
        "key-not-base64",
        "nested-too-deep",
    ],
)
def test_garbage_key_file_is_refused_with_its_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    write_private(path, content)

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == f"master key file {path} is not a shelflife key file"
    assert_clean(info.value)


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(33)], ids=["empty", "16-bytes", "33-bytes"])
def test_key_file_with_a_key_of_the_wrong_size_is_refused_with_its_path(
    tmp_path: Path, key: bytes
) -> None:
    path = tmp_path / "master.key"
    write_private(
        path, json.dumps({"key_id": "mk-1", "key": base64.b64encode(key).decode()}).encode()
    )

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == f"master key file {path} does not hold a 32-byte (AES-256) key"
    assert_clean(info.value)


def test_key_file_path_that_is_a_folder_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(tmp_path)

    assert str(info.value) == f"cannot read master key file {tmp_path}: Is a directory"
    assert_clean(info.value)


@pytest.mark.parametrize(
    "file_mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o666], ids=lambda m: f"{m:04o}"
)
def test_key_file_that_group_or_others_can_read_or_write_is_refused_with_chmod_600(
    tmp_path: Path, file_mode: int
) -> None:
    path = tmp_path / "master.key"
    LocalKeyProvider.create_file(path)
    path.chmod(file_mode)

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == (
        f"master key file {path} can be read or written by other users (mode "
        f"{file_mode:04o}); run `chmod 600 {path}`"
    )
    assert_clean(info.value)


@pytest.mark.parametrize("file_mode", [0o600, 0o400, 0o700], ids=lambda m: f"{m:04o}")
def test_key_file_private_to_its_owner_is_accepted(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "master.key"
    key_id = LocalKeyProvider.create_file(path)
    path.chmod(file_mode)

    assert LocalKeyProvider.from_file(path).key_id == key_id


def test_provider_refuses_a_key_of_the_wrong_size() -> None:
    with pytest.raises(KeyUnavailable, match=r"^the master key must be 32 bytes \(AES-256\)$"):
        LocalKeyProvider("mk-1", bytes(16))


# --- wrapping data keys ---------------------------------------------------------------------


def test_wrapped_data_key_unwraps_to_the_same_key() -> None:
    keys = provider()

    wrapped = keys.wrap(DATA_KEY)

    assert wrapped.master_key_id == "mk-aaaa0001"
    assert DATA_KEY not in wrapped.blob
    assert keys.unwrap(wrapped) == DATA_KEY


def test_wrapping_twice_gives_different_blobs() -> None:
    keys = provider()

    assert keys.wrap(DATA_KEY).blob != keys.wrap(DATA_KEY).blob


def test_unwrap_with_another_master_key_id_is_key_unavailable() -> None:
    wrapped = provider("mk-aaaa0001").wrap(DATA_KEY)

    with pytest.raises(KeyUnavailable) as info:
        provider("mk-bbbb0002", KEY_B).unwrap(wrapped)

    assert str(info.value) == (
        "the archive was sealed with master key mk-aaaa0001, but the configured key is mk-bbbb0002"
    )


def test_unwrap_with_other_key_bytes_under_the_same_id_is_archive_corrupt() -> None:
    wrapped = provider("mk-aaaa0001", KEY_A).wrap(DATA_KEY)

    with pytest.raises(ArchiveCorrupt) as info:
        provider("mk-aaaa0001", KEY_B).unwrap(wrapped)

    assert str(info.value) == "a data key did not authenticate with the master key"
    assert_clean(info.value)


def test_wrapped_key_is_bound_to_its_master_key_id() -> None:
    """Relabelling a wrapped key with another id does not make it open under that id."""
    wrapped = provider("mk-aaaa0001", KEY_A).wrap(DATA_KEY)
    relabelled = WrappedKey("mk-aaaa0002", wrapped.blob)

    with pytest.raises(ArchiveCorrupt):
        provider("mk-aaaa0002", KEY_A).unwrap(relabelled)


@pytest.mark.parametrize("blob", [b"", b"short", bytes(12), bytes(60)])
def test_damaged_wrapped_key_is_archive_corrupt(blob: bytes) -> None:
    with pytest.raises(ArchiveCorrupt):
        provider().unwrap(WrappedKey("mk-aaaa0001", blob))


def test_new_data_keys_are_32_random_bytes() -> None:
    one, two = new_data_key(), new_data_key()

    assert (len(one), len(two), one == two) == (32, 32, False)


# --- sealed archive objects -----------------------------------------------------------------


def test_sealed_object_opens_to_the_same_bytes() -> None:
    keys, plaintext = provider(), snapshot_plaintext()

    blob = sealed(keys, plaintext)

    assert open_sealed(blob, keys) == plaintext
    assert open_sealed(blob, keys, data_key=DATA_KEY) == plaintext


def test_sealed_object_does_not_contain_the_plaintext_pii() -> None:
    blob = sealed(provider(), snapshot_plaintext())

    for value in PII:
        assert value.encode() not in blob
    assert b"Erika" not in blob


def test_sealed_object_header_holds_no_pii() -> None:
    keys = provider()
    wrapped = keys.wrap(DATA_KEY)
    blob = seal(DATA_KEY, wrapped, 7, 3, snapshot_plaintext())

    header, _, nonce, _ = read_header(blob)

    assert header == {
        "customer_id": 7,
        "revision": 3,
        "master_key_id": "mk-aaaa0001",
        "wrapped_key": base64.b64encode(wrapped.blob).decode(),
    }
    assert len(nonce) == 12


def test_sealing_twice_gives_different_objects() -> None:
    keys, plaintext = provider(), snapshot_plaintext()

    assert sealed(keys, plaintext) != sealed(keys, plaintext)


def test_sealed_object_opened_with_another_master_key_id_is_key_unavailable() -> None:
    blob = sealed(provider("mk-aaaa0001"), snapshot_plaintext())

    with pytest.raises(KeyUnavailable):
        open_sealed(blob, provider("mk-bbbb0002", KEY_B))


def test_sealed_object_opened_with_other_key_bytes_under_the_same_id_is_corrupt() -> None:
    blob = sealed(provider("mk-aaaa0001", KEY_A), snapshot_plaintext())

    with pytest.raises(ArchiveCorrupt):
        open_sealed(blob, provider("mk-aaaa0001", KEY_B))


def test_sealed_object_opened_with_the_wrong_data_key_is_corrupt() -> None:
    blob = sealed(provider(), snapshot_plaintext())

    with pytest.raises(ArchiveCorrupt) as info:
        open_sealed(blob, provider(), data_key=KEY_B)

    assert str(info.value) == "archive object failed authentication (damaged or wrong key)"
    assert_clean(info.value)


def test_header_relabelled_to_another_customer_does_not_open() -> None:
    blob = sealed(provider(), snapshot_plaintext(), customer_id=7)
    relabelled = blob.replace(b'"customer_id": 7', b'"customer_id": 8')
    assert relabelled != blob

    with pytest.raises(ArchiveCorrupt):
        open_sealed(relabelled, provider())


def _outcome(blob: bytes, keys: LocalKeyProvider) -> str:
    try:
        open_sealed(blob, keys)
    except ShelflifeError as exc:
        return type(exc).__name__
    except Exception as exc:  # what the test is about: no library error may escape
        return f"library error {type(exc).__name__}"
    return "opened"


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF], ids=["low-bit", "high-bit", "all-bits"])
def test_flipped_byte_anywhere_is_detected(mask: int) -> None:
    """A damaged byte never opens and never leaks a library error.

    A low-bit flip inside the master key id leaves another valid id, which reads as "sealed with
    another key" (KeyUnavailable): the id is all the object says about its key, so that damage
    is indistinguishable from a rotated key. A high-bit flip there breaks the header's UTF-8.
    Everywhere else it is ArchiveCorrupt.
    """
    keys = provider()
    blob = sealed(keys, snapshot_plaintext())
    key_id_at = blob.index(b'"mk-aaaa0001"') + 1
    key_id_bytes = range(key_id_at, key_id_at + len("mk-aaaa0001")) if mask == 0x01 else range(0)

    outcomes = {}
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= mask
        outcomes[i] = _outcome(bytes(damaged), keys)

    expected = {
        i: ("KeyUnavailable" if i in key_id_bytes else "ArchiveCorrupt") for i in range(len(blob))
    }
    wrong = {i: o for i, o in outcomes.items() if o != expected[i]}
    assert wrong == {}


def test_truncated_object_is_corrupt_at_every_length() -> None:
    keys = provider()
    blob = sealed(keys, snapshot_plaintext())

    outcomes = {n: _outcome(blob[:n], keys) for n in range(len(blob))}

    assert {n: o for n, o in outcomes.items() if o != "ArchiveCorrupt"} == {}


def test_object_with_extra_bytes_is_corrupt() -> None:
    keys = provider()

    assert _outcome(sealed(keys, snapshot_plaintext()) + b"\x00", keys) == "ArchiveCorrupt"


@pytest.mark.parametrize(
    "header",
    [
        b"[]",
        b'{"master_key_id": "mk-aaaa0001"}',
        b'{"wrapped_key": "AAAA"}',
        b'{"master_key_id": "mk-aaaa0001", "wrapped_key": "###"}',
        b'{"master_key_id": "mk-aaaa0001", "wrapped_key": 5}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "not-an-object",
        "no-wrapped-key",
        "no-key-id",
        "wrapped-key-not-base64",
        "wrong-type",
        "nested-too-deep",
    ],
)
def test_object_with_a_malformed_header_is_corrupt(header: bytes) -> None:
    blob = b"SLF1" + len(header).to_bytes(4, "big") + header + bytes(40)

    assert _outcome(blob, provider()) == "ArchiveCorrupt"


def test_object_of_another_format_is_corrupt() -> None:
    with pytest.raises(ArchiveCorrupt, match=r"^archive object is not a shelflife archive object$"):
        open_sealed(b"PK\x03\x04 a zip file", provider())


# --- identity digests -----------------------------------------------------------------------


def test_identity_digest_depends_on_the_identity_key_not_the_master_key() -> None:
    """A new master key re-wraps the identity key; returning buyers are still recognised."""
    text = "amazon|erika.mustermann@example.org"

    one = provider("mk-aaaa0001", KEY_A).identity_digest(text)
    rotated = provider("mk-bbbb0002", KEY_B).identity_digest(text)

    assert one == rotated
    assert len(one) == 64
    assert int(one, 16) >= 0


def test_identity_digest_differs_between_identity_keys() -> None:
    text = "amazon|erika.mustermann@example.org"

    assert provider(identity_key=KEY_A).identity_digest(text) != provider(
        identity_key=KEY_B
    ).identity_digest(text)


def test_identity_digest_differs_between_texts() -> None:
    keys = provider()

    assert keys.identity_digest("amazon|a@example.org") != keys.identity_digest(
        "shop|a@example.org"
    )


def test_identity_digest_is_keyed_not_a_plain_hash() -> None:
    text = "amazon|erika.mustermann@example.org"

    assert provider().identity_digest(text) != hashlib.sha256(text.encode()).hexdigest()


def test_identity_digest_without_an_identity_key_is_refused() -> None:
    with pytest.raises(KeyUnavailable, match=r"^the buyer-identity key is not loaded"):
        LocalKeyProvider("mk-aaaa0001", KEY_A).identity_digest("amazon|a@example.org")


def test_legacy_identity_key_is_the_old_derivation_from_the_master_key() -> None:
    """Installations from before the identity key was recorded digested with HKDF-SHA256 of
    the master key (no salt, info "shelflife buyer identity"); `init` carries it over."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"shelflife buyer identity"
    ).derive(KEY_A)

    assert LocalKeyProvider("mk-aaaa0001", KEY_A).legacy_identity_key() == expected


# --- the recorded copy ----------------------------------------------------------------------


def _open_recorded(blob: bytes, customer_id: int = 7, revision: int = 3, sha: str = "") -> bytes:
    return open_copy(
        blob,
        provider(),
        object_key="customers/000000/7-r000003-abcd.slf",
        customer_id=customer_id,
        revision=revision,
        ciphertext_sha256=sha or hashlib.sha256(blob).hexdigest(),
    )


def test_recorded_copy_opens_to_its_plaintext() -> None:
    plaintext = snapshot_plaintext()

    assert _open_recorded(sealed(provider(), plaintext)) == plaintext


def test_another_buyers_object_in_a_copys_place_does_not_belong_to_this_buyer() -> None:
    foreign = sealed(provider(), snapshot_plaintext(), customer_id=8)

    with pytest.raises(ArchiveCorrupt) as info:
        _open_recorded(foreign, customer_id=7)

    assert str(info.value) == (
        "archive copy customers/000000/7-r000003-abcd.slf does not belong to this buyer; "
        "nothing was changed (check the archive store for a replaced object)"
    )


def test_an_object_of_another_revision_is_not_the_recorded_copy() -> None:
    with pytest.raises(ArchiveCorrupt) as info:
        _open_recorded(sealed(provider(), snapshot_plaintext()), revision=4)

    assert str(info.value) == (
        "archive copy customers/000000/7-r000003-abcd.slf is not the recorded one; "
        "nothing was changed (check the archive store for a replaced object)"
    )


def test_an_object_whose_digest_differs_from_the_recorded_one_is_not_the_recorded_copy() -> None:
    """Same buyer and revision, but not the bytes verified when the copy was written."""
    keys, plaintext = provider(), snapshot_plaintext()
    recorded, other = sealed(keys, plaintext), sealed(keys, plaintext)

    with pytest.raises(ArchiveCorrupt, match=r"is not the recorded one; nothing was changed"):
        _open_recorded(other, sha=hashlib.sha256(recorded).hexdigest())


def test_header_relabelled_to_another_revision_does_not_open() -> None:
    """The header is AES-GCM associated data: editing its revision breaks authentication."""
    blob = sealed(provider(), snapshot_plaintext())
    relabelled = blob.replace(b'"revision": 3', b'"revision": 4')
    assert relabelled != blob

    with pytest.raises(ArchiveCorrupt, match=r"^archive object failed authentication"):
        open_sealed(relabelled, provider())


# --- the local archive folder ---------------------------------------------------------------


def test_archive_object_round_trips(tmp_path: Path) -> None:
    archive = LocalFolderArchive(tmp_path / "archive")
    archive.ensure()

    archive.put("customers/7/r000003-abcd.slf", b"sealed bytes")

    assert archive.get("customers/7/r000003-abcd.slf") == b"sealed bytes"


def test_archive_object_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    archive = LocalFolderArchive(tmp_path / "archive")
    archive.ensure()

    archive.put("customers/7/r000003-abcd.slf", b"sealed bytes")

    assert mode(tmp_path / "archive" / "customers" / "7" / "r000003-abcd.slf") == 0o600


def test_archive_root_is_private_to_its_owner(tmp_path: Path) -> None:
    LocalFolderArchive(tmp_path / "archive").ensure()

    assert mode(tmp_path / "archive") == 0o700


def test_archive_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    archive = LocalFolderArchive(tmp_path / "archive")
    archive.ensure()

    archive.put("customers/7/a.slf", b"one")
    archive.put("customers/7/b.slf", b"two")

    assert sorted(p.name for p in (tmp_path / "archive" / "customers" / "7").iterdir()) == [
        "a.slf",
        "b.slf",
    ]


def test_missing_archive_object_is_archive_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    archive = LocalFolderArchive(root)
    archive.ensure()

    with pytest.raises(ArchiveUnavailable) as info:
        archive.get("customers/7/r000003-abcd.slf")

    assert str(info.value) == f"archive object customers/7/r000003-abcd.slf is missing from {root}"
    assert_clean(info.value)


@pytest.mark.parametrize(
    "key",
    ["../outside.slf", "customers/../../outside.slf", "customers/7/../../../outside.slf"],
)
def test_archive_keys_that_climb_out_of_the_folder_are_refused(tmp_path: Path, key: str) -> None:
    archive = LocalFolderArchive(tmp_path / "root" / "archive")
    archive.ensure()
    (tmp_path / "root" / "outside.slf").write_bytes(b"secret")

    with pytest.raises(ArchiveUnavailable, match=r"^invalid archive object key$"):
        archive.put(key, b"data")
    with pytest.raises(ArchiveUnavailable, match=r"^invalid archive object key$"):
        archive.get(key)

    assert (tmp_path / "root" / "outside.slf").read_bytes() == b"secret"
    assert not (tmp_path / "outside.slf").exists()


def test_absolute_archive_keys_are_refused(tmp_path: Path) -> None:
    archive = LocalFolderArchive(tmp_path / "archive")

    with pytest.raises(ArchiveUnavailable, match=r"^invalid archive object key$"):
        archive.get(str(tmp_path / "elsewhere.slf"))


def test_archive_folder_that_cannot_be_written_is_archive_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.write_bytes(b"a file where the folder should be")

    with pytest.raises(ArchiveUnavailable) as info:
        LocalFolderArchive(root).put("customers/7/a.slf", b"data")

    assert str(info.value).startswith(f"cannot write to the archive folder {root}: ")
    assert_clean(info.value)


def test_archive_describes_itself_as_a_file_url(tmp_path: Path) -> None:
    assert LocalFolderArchive(tmp_path / "archive").describe() == f"file://{tmp_path}/archive"


# --- archive URLs ---------------------------------------------------------------------------


def test_file_url_gives_a_local_folder_archive(tmp_path: Path) -> None:
    archive = archive_from_url(f"file://{tmp_path}/archive")

    assert isinstance(archive, LocalFolderArchive)
    assert archive.root == tmp_path / "archive"


def test_file_url_on_localhost_gives_a_local_folder_archive() -> None:
    archive = archive_from_url("file://localhost/var/lib/archive")

    assert isinstance(archive, LocalFolderArchive)
    assert archive.root == Path("/var/lib/archive")


def test_s3_url_gives_an_s3_archive_with_its_bucket_prefix_and_options() -> None:
    archive = archive_from_url(
        "s3://shelflife-archive/eu/prod?endpoint=https://s3.example.net&region=eu-central-1",
        retention_days=30,
        storage_class="STANDARD_IA",
    )

    assert isinstance(archive, S3Archive)
    assert archive.location == S3Location(
        "shelflife-archive", "eu/prod", "https://s3.example.net", "eu-central-1"
    )
    assert (archive.retention_days, archive.storage_class, archive.allows_deletion) == (
        30,
        "STANDARD_IA",
        False,
    )
    assert archive.describe() == "s3://shelflife-archive/eu/prod at https://s3.example.net"


BUCKET_NEEDED = "an S3 URL needs a bucket name, e.g. s3://my-archive-bucket/shelflife"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", BUCKET_NEEDED),
        ("s3:///x", BUCKET_NEEDED),
        (
            "s3://Archive_Bucket/x",
            "'Archive_Bucket' is not a valid S3 bucket name (3 to 63 lowercase letters, digits, "
            "dots and hyphens), e.g. s3://my-archive-bucket/shelflife",
        ),
        (
            "s3://ab",
            "'ab' is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and "
            "hyphens), e.g. s3://my-archive-bucket/shelflife",
        ),
        (
            "s3://bucket/../x",
            "the key prefix of an S3 URL must be a plain path, e.g. s3://my-archive-bucket/shelflife",
        ),
        (
            "s3://bucket/x?secret=abc",
            "an S3 URL's query may only hold endpoint=URL and region=NAME, once each",
        ),
        (
            "s3://bucket/x?region=a&region=b",
            "an S3 URL's query may only hold endpoint=URL and region=NAME, once each",
        ),
        (
            "s3://bucket/x?endpoint=localhost:9000",
            "the endpoint of an S3 URL must be an http:// or https:// URL",
        ),
        (
            "s3://bucket/x?endpoint=https://key:s3cret@s3.example.net",
            "the endpoint of an S3 URL must hold no credentials; give them the standard AWS way",
        ),
        (  # urlparse raises ValueError ("Invalid IPv6 URL") for an unbalanced bracket
            "s3://bucket/x?endpoint=http://[::1",
            "the endpoint of an S3 URL must be an http:// or https:// URL",
        ),
        ("s3://[bucket/x", "not a valid URL; use a file:// or s3:// URL"),
        ("s3://bucket]/x", "not a valid URL; use a file:// or s3:// URL"),
        ("file://[srv/archive", "not a valid URL; use a file:// or s3:// URL"),
    ],
)
def test_bad_s3_urls_are_invalid_input_naming_the_setting(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        archive_from_url(url, "SHELFLIFE_ARCHIVE_REPLICA_URL")

    assert str(info.value) == f"SHELFLIFE_ARCHIVE_REPLICA_URL: {message}"
    assert info.value.exit_code == 2


@pytest.mark.parametrize("url", ["ftp://host/archive", "/var/lib/archive", "archive"])
def test_other_archive_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput, match=r"^SHELFLIFE_ARCHIVE_URL: unsupported scheme"):
        archive_from_url(url)


@pytest.mark.parametrize(
    "url", ["file://archive", "file://./archive", "file://host/archive", "file://"]
)
def test_file_url_without_an_absolute_local_path_is_invalid_input(url: str) -> None:
    """`file://archive` would otherwise silently mean the current folder (or `/archive`)."""
    with pytest.raises(InvalidInput) as info:
        archive_from_url(url)

    assert str(info.value) == (
        "SHELFLIFE_ARCHIVE_URL: a file URL needs an absolute local path, "
        "e.g. file:///var/lib/shelflife/archive"
    )


def test_key_file_that_is_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A link to /dev/zero was read without end until the process ran out of memory."""
    path = tmp_path / "master.key"
    path.symlink_to("/dev/zero")

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == f"master key file {path} is not a regular file"


def test_key_file_that_is_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    os.mkfifo(path, 0o600)

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == f"master key file {path} is not a regular file"


def test_key_file_far_longer_than_any_key_file_is_not_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = base64.b64encode(bytes(32)).decode()
    write_private(path, (" " * MAX_KEY_FILE + json.dumps({"key_id": "k", "key": key})).encode())

    with pytest.raises(KeyUnavailable) as info:
        LocalKeyProvider.from_file(path)

    assert str(info.value) == f"master key file {path} is not a shelflife key file"
