"""Disaster recovery: rebuild the archive index and the buyers' keys from the stores, and read
a buyer's archived data without the orders the database lost.

`recover_archive` lists the archive's segments, reads each one whole, checks every record
against the segment's own manifest, takes the buyers' wrapped data keys from the segment's
key-ledger object and checks that the key-encryption key opens them and that they open the
records; then it records the segment, its records and the keys (buyers the database lost come
back as masked rows of the shop "recovered"). It is idempotent: a rerun, or a run against a
database that lost only part of its rows, adds only what is missing.

A recovered buyer has no orders to retrieve through, so `show_archived` reads its records for
an auditor, as JSON, audited with the reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shelflife.adapters.archive.ledger import ledger_key, read_ledger
from shelflife.adapters.archive.segments import is_segment_key, read_manifest
from shelflife.adapters.keys.envelope import open_record
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    Conflict,
    InvalidInput,
    KeyServiceUnavailable,
    KeyUnavailable,
    NotFound,
)
from shelflife.domain.ports import (
    ArchivedSegment,
    ArchiveStore,
    KeyProvider,
    Ports,
    RecoveredRecord,
    WrappedKey,
)
from shelflife.domain.references import customer_ref, parse_customer_ref
from shelflife.services.ledger import ledger_store
from shelflife.services.retrieval import _open_copy

log = logging.getLogger(__name__)

RECOVERED = "archive.recovered"
SHOWN = "archive.shown"


@dataclass
class RecoveryReport:
    segments: int = 0
    """Segments found in the archive and recorded (or found recorded already)."""
    copies_added: int = 0
    keys_found: int = 0
    """Records whose buyer's key the ledger holds and opens."""
    shredded: int = 0
    """Records whose segment's ledger holds no key for them: their buyer was shredded."""
    segments_without_ledger: list[str] = field(default_factory=list)
    """Segments recorded whose ledger object is missing: their buyers get no key from them."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Segments or records that could not be recovered, with why (never PII)."""


def _created_at(segment_key: str) -> datetime:
    """A segment's key holds when it was written (see `segments.segment_key`)."""
    stamp = segment_key.split("/")
    return datetime.strptime("".join(stamp[1:4]) + stamp[4][:6], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def recover_archive(ports: Ports, actor: str) -> RecoveryReport:
    """Rebuild the index and the keys from every segment in the archive (one transaction per
    segment), then audit what was done."""
    keys = ports.keys  # the key-encryption key this database records: `init` with the old one
    ledger = ledger_store(ports)
    report = RecoveryReport()
    found = sorted(
        o.key for o in ports.archive.list_objects() if not o.temporary and is_segment_key(o.key)
    )
    for segment_key in found:
        try:
            _recover_segment(ports, keys, ledger, segment_key, report)
        except (ArchiveUnavailable, ArchiveCorrupt) as exc:
            report.failed.append((segment_key, str(exc)))
    now = ports.clock.now()
    with ports.uow as uow:
        uow.audit.append(
            now,
            actor,
            RECOVERED,
            ports.archive.describe(),
            {
                "segments": report.segments,
                "copies_added": report.copies_added,
                "keys_found": report.keys_found,
                "shredded": report.shredded,
                "segments_without_ledger": len(report.segments_without_ledger),
                "failed": len(report.failed),
            },
        )
        uow.commit()
    return report


def _recover_segment(
    ports: Ports,
    keys: KeyProvider,
    ledger: ArchiveStore,
    segment_key: str,
    report: RecoveryReport,
) -> None:
    data = ports.archive.get(segment_key)
    entries = read_manifest(data)
    try:
        ledger_keys = {
            (e.customer_id, e.revision): e.key
            for e in read_ledger(segment_key, ledger.get(ledger_key(segment_key)))
        }
        ledger_found = True
    except ArchiveUnavailable:
        ledger_keys, ledger_found = {}, False
        report.segments_without_ledger.append(segment_key)
    _remember_wrapping_keys(ports, ledger_keys.values())
    records: list[RecoveredRecord] = []
    for entry in entries:
        piece = data[entry.offset : entry.offset + entry.length]
        wrapped = ledger_keys.get((entry.customer_id, entry.revision))
        where = f"{segment_key}@{entry.offset}"
        data_key = None if wrapped is None else _unwrap(keys, wrapped, segment_key)
        try:
            if hashlib.sha256(piece).hexdigest() != entry.sha256:
                raise ArchiveCorrupt(f"archive record {where} does not match its manifest")
            if data_key is not None:
                open_record(
                    piece,
                    data_key,
                    where=where,
                    customer_id=entry.customer_id,
                    revision=entry.revision,
                    sha256=entry.sha256,
                )
        except ArchiveCorrupt as exc:
            report.failed.append((where, str(exc)))
            continue
        if wrapped is not None:
            report.keys_found += 1
        elif ledger_found:
            report.shredded += 1
        records.append(
            RecoveredRecord(
                entry.customer_id, entry.revision, entry.offset, entry.length, entry.sha256, wrapped
            )
        )
    segment = ArchivedSegment(
        segment_key,
        _created_at(segment_key),
        len(entries),
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    with ports.uow as uow:
        report.copies_added += uow.archive_copies.recover(
            segment, records, ports.clock.now(), ledger_found
        )
        uow.commit()
    report.segments += 1


def _remember_wrapping_keys(ports: Ports, keys: Iterable[WrappedKey]) -> None:
    """Record the KMS-encrypted wrapping keys a ledger object carries before its keys are
    opened: the lost database held them, and the KMS master key looks them up there."""
    wrapping = {k.wrapping_key.id: k.wrapping_key for k in keys if k.wrapping_key is not None}
    if wrapping:
        with ports.uow as uow:
            uow.installation.record_wrapping_keys(list(wrapping.values()), ports.clock.now())
            uow.commit()


def _unwrap(keys: KeyProvider, wrapped: WrappedKey, segment_key: str) -> bytes:
    """A ledger key the master key does not open means the wrong master key, not a damaged
    record: the recovery stops (what it recorded so far stays; a rerun continues). So does a
    key service that does not answer, once, rather than once per buyer, and it is named: the
    master key is not the one to change then."""
    try:
        return keys.unwrap(wrapped)
    except KeyServiceUnavailable as exc:
        raise KeyServiceUnavailable(
            f"{exc}; the recovery stopped at {segment_key} (the segments before it are "
            "recorded): run it again once KMS answers"
        ) from None
    except (KeyUnavailable, ArchiveCorrupt):
        raise KeyUnavailable(
            f"the master key {keys.key_id} does not open the keys in the key ledger of "
            f"{segment_key} (wrapped under {wrapped.master_key_id}); run `shelflife init` with "
            "the master key file the archive's keys were wrapped with"
        ) from None


# --- reading a buyer's archive without its orders -----------------------------------------------


@dataclass(frozen=True)
class ArchivedCopyView:
    revision: int
    object_key: str
    rows: dict[str, dict[int, dict[str, str | None]]]


@dataclass(frozen=True)
class ArchivedBuyer:
    customer: str
    copies: list[ArchivedCopyView]

    def as_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "copies": [
                {
                    "revision": c.revision,
                    "object_key": c.object_key,
                    "rows": {
                        table: {str(row_id): values for row_id, values in rows.items()}
                        for table, rows in c.rows.items()
                    },
                }
                for c in self.copies
            ],
        }


def show_archived(ports: Ports, customer: str, reason: str, user: str) -> ArchivedBuyer:
    """Every archived copy of a buyer, decrypted, newest revision first: for an auditor after
    a recovery (the database has no orders to retrieve through) or to answer a request for
    access. Audited with the reason; writes nothing into the buyer's rows."""
    customer_id = parse_customer_ref(customer)
    if customer_id is None:
        raise InvalidInput("customer: give a buyer reference such as C42")
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise InvalidInput("reason: say why the archive is read (1 to 200 characters)")
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("user: give the name of the person reading (1 to 100 characters)")
    ref = customer_ref(customer_id)
    keys = ports.keys
    with ports.uow as uow:
        state = uow.customers.documents(customer_id)
        if state.shredded_at is not None:
            raise Conflict(
                f"buyer {ref}'s archived data was shredded on {state.shredded_at:%Y-%m-%d}; "
                "nothing can be read"
            )
        copies = uow.archive_copies.of_customer(customer_id)
        if not copies:
            raise NotFound(f"buyer {ref} has no archive copy")
        row = uow.customers.archive_keys([customer_id])[customer_id]
        data_key = None
        if row.data_key_wrapped is not None and row.data_key_master_id is not None:
            data_key = keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))
        elif any(c.offset is not None for c in copies):
            raise ArchiveCorrupt(f"buyer {ref}'s archive data key is not recorded")
        views = []
        for copy in copies:
            snapshot = _open_copy(
                ports.archive, keys, copy, customer_id, data_key, lambda: data_key
            )
            views.append(ArchivedCopyView(copy.revision, copy.object_key, snapshot.rows))
        uow.audit.append(
            ports.clock.now(), user, SHOWN, ref, {"reason": reason, "copies": len(views)}
        )
        uow.commit()
    log.info("archive of buyer %s read by %s", ref, user)
    return ArchivedBuyer(ref, views)
