"""Archive integrity: re-read what the archive holds and check it against the database's index;
copy it to offline media and check that copy; move legacy whole-object copies into segments.

A verification checks, per location (primary, replica): the whole object's size and SHA-256
against `archive_segments`, its manifest against the index, and every indexed record's digest,
its authenticated header (this buyer, this revision) and its decryption with the buyer's data
key into a readable snapshot. What it finds is kept (`archive_problems`) and shown by
`compliance` until a later check finds the object sound. A damaged copy of a buyer never masked
is dropped, so that the next run archives the buyer again before masking it: masking never
relies on a copy known to be damaged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from shelflife.adapters.archive.offline import locations
from shelflife.adapters.archive.segments import pack_segment, read_manifest, segment_key
from shelflife.adapters.archive.store import LocalFolderArchive, resolved
from shelflife.adapters.keys.envelope import (
    RECORD_MAGIC,
    open_copy,
    open_record,
    read_header,
    seal_record,
)
from shelflife.adapters.keys.keyring import for_one_run
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    InvalidInput,
    KeyUnavailable,
)
from shelflife.domain.ports import (
    ArchivedCopy,
    ArchivedSegment,
    ArchiveKeyRow,
    ArchiveProblem,
    ArchiveStore,
    IndexedCopy,
    KeyProvider,
    Ports,
    SegmentRef,
    UnitOfWork,
    WrappedKey,
)
from shelflife.domain.references import customer_ref
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services.documents import (
    ArchiveExportReport,
    ArchiveProblemDocument,
    MigrationReport,
    RunReportDocument,
    VerificationReport,
)

log = logging.getLogger(__name__)

EXPORT_MANIFEST = "shelflife-export.json"
"""The export folder's list of objects with their sizes and SHA-256 digests (no key material)."""
EXPORT_FORMAT = 1
VERIFIED = "archive.verified"
EXPORTED = "archive.exported"
MIGRATED = "archive.migrated"
OFFLINE = "offline"
FAILURE_EXAMPLES = 3
AUDIT_SUBJECT = 200
"""Characters an audit entry's subject holds (`audit_log.subject`)."""

_Keys = Mapping[int, bytes | str | None]
"""Per buyer: its data key, why there is none, or None when it cannot open by design or by the
master key (shredded, or under a key the loaded master key does not open)."""
"""Buyer id -> its unwrapped data key, or why there is none (never PII)."""


# --- verification ---------------------------------------------------------------------------


def verify_archive(
    ports: Ports, sample_percent: float = 100.0, actor: str | None = "operator"
) -> VerificationReport:
    """Re-read `sample_percent` of the archive objects (the least recently verified first) at
    every location, record what is found, and drop the damaged copies of buyers never masked.
    With `actor`, the verification is audited, and a warning names the keys that did not
    open; each is asked for once, not once per buyer (`for_one_run`)."""
    if not 0 < sample_percent <= 100:
        raise InvalidInput("sample: give a percentage above 0 and at most 100")
    ports = for_one_run(ports)
    with ports.reader as reader:
        segments_total, legacy_total = reader.archive_copies.count_objects()
        segments = reader.archive_copies.segments_to_verify(_share(segments_total, sample_percent))
        legacy = reader.archive_copies.legacy_to_verify(_share(legacy_total, sample_percent))
    report = VerificationReport(
        source=ports.archive.describe(),
        sample_percent=sample_percent,
        objects_total=segments_total + legacy_total,
        objects_checked=0,
        records_checked=0,
    )
    if not segments and not legacy:
        return report
    keys = ports.keys
    places = locations(ports.archive)
    unopened: dict[str, int] = {}
    for segment in segments:
        with ports.reader as reader:
            records = reader.archive_copies.records_in(segment.object_key)
            data_keys = _data_keys(reader, keys, records, unopened)
        found: list[ArchiveProblem] = []
        if not records:  # nothing relies on it (its copies were renewed): an orphan now
            _record(ports, report, segment.object_key, found)
            continue
        reads = _read_everywhere(places, segment.object_key)
        lost = all(isinstance(blob, str) for _role, blob in reads)
        for role, blob in reads:
            found += _check_segment(role, blob, segment, records, data_keys, lost=lost)
            report.objects_checked += 1
            report.records_checked += len(records)
        _record(ports, report, segment.object_key, found)
    for copy in legacy:
        found = []
        reads = _read_everywhere(places, copy.object_key)
        lost = all(isinstance(blob, str) for _role, blob in reads)
        for role, blob in reads:
            found += _check_legacy(role, blob, copy, keys, lost=lost)
            report.objects_checked += 1
            report.records_checked += 1
        _record(ports, report, copy.object_key, found)
    if actor is not None:
        with ports.uow as uow:
            uow.audit.append(
                ports.clock.now(),
                actor,
                VERIFIED,
                None,
                {
                    "sample_percent": str(sample_percent),
                    "objects_checked": report.objects_checked,
                    "problems": len(report.problems),
                },
            )
            uow.commit()
    if report.problems:
        log.warning(
            "archive verification found %d problem(s) in %d object(s) checked",
            len(report.problems),
            report.objects_checked,
        )
    if actor is not None:  # the nightly run's sample: the run names those buyers (mask_refused)
        _warn_unopened(unopened)
    return report


def _warn_unopened(unopened: Mapping[str, int]) -> None:
    """Records whose data key did not open were checked up to their header only: say so, or
    an outage of the key service would pass for a verified archive."""
    if unopened:
        log.warning(
            "the data keys of %d buyer(s) did not open, so their records were checked up to "
            "their header only, not decrypted: %s",
            sum(unopened.values()),
            "; ".join(list(unopened)[:FAILURE_EXAMPLES]),
        )


def verify_sample(ports: Ports, report: RunReportDocument) -> None:
    """The nightly run's share of the verification (`Limits.verify_sample_percent`), counted
    in its report; a mismatch is recorded and shown by `compliance`."""
    percent = ports.limits.verify_sample_percent
    if percent <= 0:
        return
    found = verify_archive(ports, percent, actor=None)
    report.verified_objects += found.objects_checked
    report.integrity_problems += len(found.problems)


def _share(total: int, percent: float) -> int:
    """How many of `total` objects `percent` means: at least one of a non-empty archive."""
    return math.ceil(total * percent / 100)


def _read_everywhere(
    places: Sequence[tuple[str, ArchiveStore]], key: str
) -> list[tuple[str, bytes | str]]:
    return [(role, _read(store, key)) for role, store in places]


def _read(store: ArchiveStore, key: str) -> bytes | str:
    """The whole object, or why it cannot be read."""
    try:
        return store.get(key)
    except (ArchiveUnavailable, ArchiveCorrupt) as exc:
        return f"cannot be read: {exc}"


def _data_keys(
    reader: UnitOfWork,
    keys: KeyProvider,
    records: Sequence[IndexedCopy],
    unopened: dict[str, int],
) -> _Keys:
    """The buyers' data keys; `unopened` counts, per reason, the buyers whose key did not
    open."""
    rows: Mapping[int, ArchiveKeyRow] = reader.customers.archive_keys(
        sorted({r.customer_id for r in records})
    )
    found: dict[int, bytes | str | None] = {}
    for cid, row in rows.items():
        if row.shredded:  # unreadable by design: its digest and header are still checked
            found[cid] = None
            continue
        if row.data_key_wrapped is None or row.data_key_master_id is None:
            found[cid] = "no data key is recorded for the buyer"
            continue
        try:
            found[cid] = keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))
        except (KeyUnavailable, ArchiveCorrupt) as exc:
            unopened[str(exc)] = unopened.get(str(exc), 0) + 1
            # A key the loaded master key does not open is the key's problem, not the record's:
            # the run leaves the buyer unmasked and counts it (`mask_refused`, with a warning),
            # and dropping the sound copy would not help. Its records are checked up to their
            # header, like a shredded buyer's.
            found[cid] = None
    return found


def _check_segment(
    role: str,
    blob: bytes | str,
    segment: SegmentRef,
    records: Sequence[IndexedCopy],
    data_keys: _Keys,
    *,
    lost: bool = True,
) -> list[ArchiveProblem]:
    """Everything wrong with one location's copy of a segment. An object this location cannot
    deliver is a problem of the object; only when no location can (`lost`) is it also one of
    each record (whose buyers, if never masked, are then archived again)."""

    def whole(problem: str) -> ArchiveProblem:
        return ArchiveProblem(role, segment.object_key, None, None, problem)

    def record(r: IndexedCopy, problem: str) -> ArchiveProblem:
        return ArchiveProblem(role, segment.object_key, r.customer_id, r.revision, problem)

    if isinstance(blob, str):
        return [whole(blob)] + [record(r, "record cannot be read") for r in records if lost]
    found: list[ArchiveProblem] = []
    if len(blob) != segment.size:
        found.append(whole(f"is {len(blob)} bytes; the index recorded {segment.size}"))
    elif hashlib.sha256(blob).hexdigest() != segment.sha256:
        found.append(whole("SHA-256 differs from the one recorded when it was written"))
    try:
        listed = {
            (e.customer_id, e.revision, e.offset, e.length, e.sha256) for e in read_manifest(blob)
        }
    except ArchiveCorrupt as exc:
        found.append(whole(f"manifest: {exc}"))
        listed = None
    for r in records:
        if (
            listed is not None
            and (r.customer_id, r.revision, r.offset, r.length, r.sha256) not in listed
        ):
            found.append(
                record(r, "the segment's manifest does not list the record as the index does")
            )
        problem = _check_record(blob, r, data_keys.get(r.customer_id, "no data key row"))
        if problem is not None:
            found.append(record(r, problem))
    return found


def _check_record(blob: bytes, r: IndexedCopy, data_key: bytes | str | None) -> str | None:
    """What is wrong with one indexed record of a segment, or None (a shredded buyer's record,
    `data_key` None, is checked up to its header: it cannot be decrypted any more)."""
    assert r.offset is not None
    assert r.length is not None
    piece = blob[r.offset : r.offset + r.length]
    if len(piece) != r.length:
        return "record missing: the segment ends before it"
    if hashlib.sha256(piece).hexdigest() != r.sha256:
        return "record SHA-256 differs from the index"
    try:
        header = read_header(piece, RECORD_MAGIC)[0]
    except ArchiveCorrupt as exc:
        return f"record: {exc}"
    if header.get("customer_id") != r.customer_id or header.get("revision") != r.revision:
        return "record belongs to another buyer or revision than the index says"
    if data_key is None:
        return None
    if isinstance(data_key, str):
        return data_key
    try:
        plaintext = open_record(
            piece,
            data_key,
            where=r.object_key,
            customer_id=r.customer_id,
            revision=r.revision,
            sha256=r.sha256,
        )
    except ArchiveCorrupt:
        return "record does not decrypt with the buyer's data key"
    return _check_snapshot(plaintext, r)


def _check_snapshot(plaintext: bytes, r: IndexedCopy) -> str | None:
    try:
        snapshot = CustomerSnapshot.from_bytes(plaintext)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "record holds no readable snapshot"
    if snapshot.customer_id != r.customer_id or snapshot.revision != r.revision:
        return "record's snapshot belongs to another buyer or revision"
    return None


def _check_legacy(
    role: str, blob: bytes | str, copy: IndexedCopy, keys: KeyProvider, *, lost: bool = True
) -> list[ArchiveProblem]:
    """What is wrong with one location's copy of a legacy whole-object copy (an object only
    this location cannot deliver is not the buyer's problem: see `_check_segment`)."""

    def problem(text: str) -> list[ArchiveProblem]:
        return [ArchiveProblem(role, copy.object_key, copy.customer_id, copy.revision, text)]

    if isinstance(blob, str):
        if not lost:
            return [ArchiveProblem(role, copy.object_key, None, None, blob)]
        return problem(blob)
    if hashlib.sha256(blob).hexdigest() != copy.sha256:
        return problem("SHA-256 differs from the index")
    try:
        plaintext = open_copy(
            blob,
            keys,
            object_key=copy.object_key,
            customer_id=copy.customer_id,
            revision=copy.revision,
            ciphertext_sha256=copy.sha256,
        )
    except (ArchiveCorrupt, KeyUnavailable) as exc:
        return problem(str(exc))
    found = _check_snapshot(plaintext, copy)
    return [] if found is None else problem(found)


def _record(
    ports: Ports, report: VerificationReport, object_key: str, found: Sequence[ArchiveProblem]
) -> None:
    """Keep what one object's check found, in its own transaction; drop the damaged copies
    of buyers never masked."""
    damaged = sorted(
        {
            (p.customer_id, p.revision)
            for p in found
            if p.customer_id is not None and p.revision is not None
        }
    )
    now = ports.clock.now()
    with ports.uow as uow:
        uow.archive_copies.record_verification(object_key, now, found)
        dropped = uow.archive_copies.discard_unmasked(damaged)
        uow.commit()
    report.problems += [problem_document(p, now) for p in found]
    report.reset_for_archiving += [customer_ref(cid) for cid in dropped]


def problem_document(p: ArchiveProblem, found_at: datetime | None = None) -> ArchiveProblemDocument:
    at = p.found_at or found_at
    return ArchiveProblemDocument(
        location=p.location,
        object_key=p.object_key,
        customer=customer_ref(p.customer_id) if p.customer_id is not None else None,
        revision=p.revision,
        problem=p.problem,
        found_at=at.isoformat() if at is not None else None,
    )


def open_archive_problems(ports: Ports) -> list[ArchiveProblemDocument]:
    """The problems no later verification resolved: violations for `compliance`."""
    with ports.reader as reader:
        return [problem_document(p) for p in reader.archive_copies.open_problems()]


# --- offline export -------------------------------------------------------------------------


def export_archive(ports: Ports, folder: Path, user: str) -> ArchiveExportReport:
    """Copy every recorded segment and legacy object, checked against the index, into
    `folder` (objects already there with the same digest are kept), then write the manifest.
    Audited."""
    user = _actor(user, "exporting")
    target = _export_folder(ports, folder, create=True)
    report = ArchiveExportReport(
        folder=str(folder), written=0, unchanged=0, manifest=str(folder / EXPORT_MANIFEST)
    )
    listed: list[dict[str, object]] = []
    for key, sha256, kind in _recorded_objects(ports):
        blob = _read(ports.archive, key)
        if isinstance(blob, str) or hashlib.sha256(blob).hexdigest() != sha256:
            why = blob if isinstance(blob, str) else "SHA-256 differs from the index"
            report.problems.append(
                problem_document(ArchiveProblem("primary", key, None, None, f"{why}; not exported"))
            )
            continue
        there = _read(target, key)
        if isinstance(there, bytes) and hashlib.sha256(there).hexdigest() == sha256:
            report.unchanged += 1
        else:
            target.put(key, blob)
            report.written += 1
        listed.append({"key": key, "kind": kind, "size": len(blob), "sha256": sha256})
    now = ports.clock.now()
    manifest = {
        "format": EXPORT_FORMAT,
        "created_at": now.isoformat(),
        "source": ports.archive.describe(),
        "objects": listed,
    }
    target.put(EXPORT_MANIFEST, json.dumps(manifest, indent=1).encode())
    # As text the database can hold: a name that is not UTF-8 (media mounted with a legacy
    # code page) shows its other bytes as \xNN.
    where = os.fsencode(folder).decode("utf-8", "backslashreplace")
    with ports.uow as uow:
        uow.audit.append(
            now,
            user,
            EXPORTED,
            # The subject holds AUDIT_SUBJECT characters; the detail holds the whole path.
            where if len(where) <= AUDIT_SUBJECT else "…" + where[1 - AUDIT_SUBJECT :],
            {
                "folder": where,
                "objects": len(listed),
                "written": report.written,
                "problems": len(report.problems),
            },
        )
        uow.commit()
    return report


def _actor(user: str, doing: str) -> str:
    """The user an export or a migration is audited as, checked before any work is done."""
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput(f"user: give the name of the person {doing} (1 to 100 characters)")
    return user


def _export_folder(ports: Ports, folder: Path, *, create: bool) -> LocalFolderArchive:
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; name a folder for the archive export")
    if not create and not folder.is_dir():
        raise InvalidInput(f"the export folder {folder} does not exist")
    target = LocalFolderArchive(resolved(folder), "the export folder")
    if any(target.describe() == store.describe() for _role, store in locations(ports.archive)):
        raise InvalidInput(
            f"{folder} is the archive itself; name another folder (e.g. on removable media)"
        )
    if create:
        target.ensure()
    return target


def _recorded_objects(ports: Ports) -> list[tuple[str, str, str]]:
    """(object key, SHA-256, kind) of every recorded segment and legacy copy, in id order."""
    found: list[tuple[str, str, str]] = []
    batch = ports.limits.batch_size
    with ports.reader as reader:
        after = 0
        while segments := reader.archive_copies.segments_after(after, batch):
            found += [
                (s.object_key, s.sha256, "segment")
                for s in segments
                if reader.archive_copies.records_in(s.object_key)  # else nothing relies on it
            ]
            after = segments[-1].id
        after = 0
        while legacy := reader.archive_copies.legacy_after(after, batch):
            found += [(c.object_key, c.sha256, "legacy") for c in legacy]
            after = legacy[-1].id
    return found


def verify_export(ports: Ports, folder: Path) -> VerificationReport:
    """Check an export folder: every object its manifest lists is there with that digest,
    agrees with the archive index, and every record in it decrypts with its buyer's key.
    Reads the database, writes nothing. A key that does not open is asked for once, as in
    `verify_archive`."""
    ports = for_one_run(ports)
    source = _export_folder(ports, folder, create=False)
    try:
        manifest = json.loads(source.get(EXPORT_MANIFEST))
        listed = {str(o["key"]): (int(o["size"]), str(o["sha256"])) for o in manifest["objects"]}
    except ArchiveUnavailable:
        raise InvalidInput(
            f"{folder} holds no archive export ({EXPORT_MANIFEST} is missing)"
        ) from None
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):  # 1e999, [[[[…
        raise InvalidInput(f"{folder}: {EXPORT_MANIFEST} is damaged") from None
    report = VerificationReport(
        source=source.describe(),
        sample_percent=100.0,
        objects_total=len(listed),
        objects_checked=0,
        records_checked=0,
    )
    keys = ports.keys
    recorded: set[str] = set()
    batch = ports.limits.batch_size
    unopened: dict[str, int] = {}

    def mismatch(key: str, indexed_sha: str) -> list[ArchiveProblem]:
        if listed[key][1] == indexed_sha:
            return []
        return [
            ArchiveProblem(
                OFFLINE, key, None, None, "the manifest's SHA-256 differs from the index"
            )
        ]

    found: list[ArchiveProblem] = []
    after = 0
    while True:
        with ports.reader as reader:
            segments = reader.archive_copies.segments_after(after, batch)
            indexed = [(s, reader.archive_copies.records_in(s.object_key)) for s in segments]
            needed = [(s, records) for s, records in indexed if records]
            work = [(s, records) for s, records in needed if s.object_key in listed]
            data_keys = _data_keys(reader, keys, [r for _s, rs in work for r in rs], unopened)
        if not segments:
            break
        after = segments[-1].id
        recorded.update(s.object_key for s, _records in needed)
        report.not_exported += len(needed) - len(work)
        for segment, records in work:
            found += mismatch(segment.object_key, segment.sha256)
            found += _check_segment(
                OFFLINE, _read(source, segment.object_key), segment, records, data_keys
            )
            report.objects_checked += 1
            report.records_checked += len(records)
    after = 0
    while True:
        with ports.reader as reader:
            legacy = reader.archive_copies.legacy_after(after, batch)
        if not legacy:
            break
        after = legacy[-1].id
        for copy in legacy:
            recorded.add(copy.object_key)
            if copy.object_key not in listed:
                report.not_exported += 1
                continue
            found += mismatch(copy.object_key, copy.sha256)
            found += _check_legacy(OFFLINE, _read(source, copy.object_key), copy, keys)
            report.objects_checked += 1
            report.records_checked += 1
    for key in sorted(set(listed) - recorded):  # exported, no longer in the index
        blob = _read(source, key)
        if isinstance(blob, str) or hashlib.sha256(blob).hexdigest() != listed[key][1]:
            why = blob if isinstance(blob, str) else "SHA-256 differs from the manifest"
            found.append(ArchiveProblem(OFFLINE, key, None, None, why))
        report.objects_checked += 1
    report.problems = [problem_document(p) for p in found]
    _warn_unopened(unopened)
    return report


# --- legacy migration -----------------------------------------------------------------------


def migrate_legacy(ports: Ports, user: str) -> MigrationReport:
    """Move legacy whole-object copies into segments, a batch at a time, each batch its own
    transaction: decrypt each (checked against the index), re-seal it as a record under the
    buyer's data key, write the batch as one segment, read it back and verify it, point the
    copies at their records, and only then delete the legacy objects (where the store allows
    deletion; write-once stores keep them). A killed run loses at most one batch: run it again.
    A key that does not open is asked for once, not per copy (`for_one_run`). Audited."""
    user = _actor(user, "migrating")
    ports = for_one_run(ports)
    keys = ports.keys
    report = MigrationReport(
        migrated=0, segments=0, deleted=0, left_in_place=0, failed=0, remaining=0
    )
    after = 0
    while True:
        with ports.reader as reader:
            copies = reader.archive_copies.legacy_after(after, ports.limits.batch_size)
            rows = reader.customers.archive_keys(sorted({c.customer_id for c in copies}))
        if not copies:
            break
        after = copies[-1].id
        _migrate_batch(ports, keys, copies, rows, report)
    with ports.reader as reader:
        report.remaining = reader.archive_copies.count_objects()[1]
    with ports.uow as uow:
        uow.audit.append(
            ports.clock.now(),
            user,
            MIGRATED,
            None,
            {
                "migrated": report.migrated,
                "deleted": report.deleted,
                "left_in_place": report.left_in_place,
                "failed": report.failed,
            },
        )
        uow.commit()
    return report


def _migrate_batch(
    ports: Ports,
    keys: KeyProvider,
    copies: Sequence[IndexedCopy],
    rows: Mapping[int, ArchiveKeyRow],
    report: MigrationReport,
) -> None:
    sealed: list[tuple[IndexedCopy, bytes, bytes, bytes]] = []  # copy, record, plaintext, key
    adopted: dict[int, tuple[bytes, WrappedKey]] = {}
    for copy in copies:
        try:
            blob = ports.archive.get(copy.object_key)
            plaintext = open_copy(
                blob,
                keys,
                object_key=copy.object_key,
                customer_id=copy.customer_id,
                revision=copy.revision,
                ciphertext_sha256=copy.sha256,
            )
            data_key, key_id = _buyer_key(keys, rows[copy.customer_id], blob, adopted)
        except (ArchiveUnavailable, ArchiveCorrupt, KeyUnavailable) as exc:
            _fail(report, str(exc))
            continue
        record = seal_record(data_key, key_id, copy.customer_id, copy.revision, plaintext)
        sealed.append((copy, record, plaintext, data_key))
    if not sealed:
        return
    created_at = ports.clock.now()
    segment, entries = pack_segment(
        [(c.customer_id, c.revision, _key_id(rows, adopted, c), rec) for c, rec, _p, _k in sealed],
        created_at,
    )
    object_key = segment_key(created_at)
    try:
        ports.archive.put(object_key, segment)
        back = ports.archive.get(object_key)
        if back != segment:
            raise ArchiveCorrupt("read-back of the new segment differs from what was written")
        for (copy, _record, plaintext, data_key), entry in zip(sealed, entries, strict=True):
            opened = open_record(
                back[entry.offset : entry.offset + entry.length],
                data_key,
                where=f"{object_key}@{entry.offset}",
                customer_id=copy.customer_id,
                revision=copy.revision,
                sha256=entry.sha256,
            )
            if opened != plaintext:
                raise ArchiveCorrupt("read-back of the new segment differs from what was written")
    except (ArchiveUnavailable, ArchiveCorrupt) as exc:
        for _item in sealed:
            _fail(report, str(exc))
        return
    moved = [
        ArchivedCopy(
            c.customer_id, c.revision, object_key, e.sha256, offset=e.offset, length=e.length
        )
        for (c, _r, _p, _k), e in zip(sealed, entries, strict=True)
    ]
    with ports.uow as uow:
        now_keys = uow.customers.archive_keys(sorted(adopted))
        # A buyer the nightly run gave a data key meanwhile keeps it; its copies wait.
        raced = {
            cid
            for cid, (_key, wrapped) in adopted.items()
            if now_keys[cid].data_key_wrapped not in (None, wrapped.blob)
        }
        moved = [m for m in moved if m.customer_id not in raced]
        for cid, (_key, wrapped) in adopted.items():
            if cid not in raced:
                uow.customers.adopt_data_key(cid, wrapped)
        uow.archive_copies.add_segment(
            ArchivedSegment(
                object_key,
                created_at,
                len(entries),
                len(segment),
                hashlib.sha256(segment).hexdigest(),
            )
        )
        uow.archive_copies.move_into_segment(moved)
        uow.commit()
    for _cid in (c for c, _r, _p, _k in sealed if c.customer_id in raced):
        _fail(report, "the buyer got a new data key while migrating; run the migration again")
    report.segments += 1
    report.migrated += len(moved)
    moved_keys = {(m.customer_id, m.revision) for m in moved}
    for copy, _r, _p, _k in sealed:
        if (copy.customer_id, copy.revision) not in moved_keys:
            continue
        if not ports.archive.allows_deletion:
            report.left_in_place += 1
            continue
        try:
            ports.archive.delete(copy.object_key)
        except ArchiveUnavailable:  # unreferenced now: `archive orphans` finds it later
            report.left_in_place += 1
        else:
            report.deleted += 1


def _buyer_key(
    keys: KeyProvider,
    row: ArchiveKeyRow,
    legacy: bytes,
    adopted: dict[int, tuple[bytes, WrappedKey]],
) -> tuple[bytes, str]:
    """The buyer's one data key and the id of the key that wraps it: the database's, or for
    a buyer without one the legacy object's own (recorded when the batch commits)."""
    if row.data_key_wrapped is not None and row.data_key_master_id is not None:
        wrapped = WrappedKey(row.data_key_master_id, row.data_key_wrapped)
        return keys.unwrap(wrapped), wrapped.master_key_id
    if row.customer_id in adopted:
        data_key, wrapped = adopted[row.customer_id]
        return data_key, wrapped.master_key_id
    header = read_header(legacy)[0]
    key_id, blob = header.get("master_key_id"), header.get("wrapped_key")
    if not isinstance(key_id, str) or not isinstance(blob, str):
        raise ArchiveCorrupt("archive object header is damaged")
    try:
        wrapped = WrappedKey(key_id, base64.b64decode(blob, validate=True))
    except binascii.Error:
        raise ArchiveCorrupt("archive object header is damaged") from None
    data_key = keys.unwrap(wrapped)
    adopted[row.customer_id] = (data_key, wrapped)
    return data_key, key_id


def _key_id(
    rows: Mapping[int, ArchiveKeyRow],
    adopted: Mapping[int, tuple[bytes, WrappedKey]],
    c: IndexedCopy,
) -> str:
    row = rows[c.customer_id]
    if row.data_key_master_id is not None and row.data_key_wrapped is not None:
        return row.data_key_master_id
    return adopted[c.customer_id][1].master_key_id


def _fail(report: MigrationReport, why: str) -> None:
    report.failed += 1
    if why not in report.failure_reasons and len(report.failure_reasons) < FAILURE_EXAMPLES:
        report.failure_reasons.append(why)
