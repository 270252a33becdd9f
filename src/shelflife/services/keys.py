"""Key rotation: every buyer's data key and the identity key re-wrapped under a new master key.

Only the wrapping changes: a data key stays the same key, so no segment is rewritten (each
record names, in its authenticated header, the master key its data key was first wrapped under,
and is opened with whatever master key wraps the data key now).

`begin_rotation` makes the new key the installation's key in one transaction (the identity key
re-wrapped under it) and remembers the old one; from then on every process wraps new data keys
under the new key and opens keys under either. `rewrap_data_keys` then works in batches, each
its own transaction, in customer id order: a killed rotation loses at most one batch, and
running it again continues with what is left. A nightly run that started before the rotation
began still wraps under the old key until it ends: the batches go over the buyers again until
a pass finds none, then (PostgreSQL) wait for such a run to end and sweep once more, and only
then is the old key forgotten. SQLite cannot tell that a run is working: a rotation that ends
beside one reports the keys left, and running it again after the run re-wraps them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shelflife.domain.errors import Conflict
from shelflife.domain.ports import (
    KeyEncryptionKey,
    KeyProvider,
    Ports,
    Rewrap,
    UnitOfWork,
    WrappedKey,
)
from shelflife.services.ledger import rewrite_ledgers

ROTATION_STARTED = "keys.rotation_started"
KEYS_ROTATED = "keys.rotated"

BatchHook = Callable[[UnitOfWork, Sequence[int]], None]
"""Called inside each batch's transaction with the buyers whose keys it re-wrapped (e.g. to
rewrite key copies kept elsewhere in the same transaction)."""

Progress = Callable[[int, int], None]
"""Called as (re-wrapped so far, left when the pass began)."""


@dataclass
class RotationReport:
    master_key_id: str
    previous_master_key_id: str | None
    started: bool
    """This call began the rotation (False: it continued one, or found nothing to do)."""
    rewrapped: int = 0
    batches: int = 0
    passes: int = 0
    ledgers_rewritten: int = 0
    """Key-ledger objects rewritten under the new key before the old one was forgotten."""
    left: int = 0
    """Data keys still under another master key (a run that began before the rotation may add
    some until it ends; run the rotation again then)."""

    @property
    def finished(self) -> bool:
        return self.left == 0


def begin_rotation(ports: Ports, new: KeyEncryptionKey, actor: str) -> RotationReport:
    """Make `new` the master key, with the identity key re-wrapped under it; or, when it is the
    master key already (a rotation was interrupted, or is done), change nothing."""
    keys = ports.keys  # opens the identity key under the key recorded now
    with ports.uow as uow:
        current = uow.installation.master_key_id() or ""
        previous = uow.installation.previous_master_key_id()
        if current == new.key_id:
            return RotationReport(new.key_id, previous, started=False)
        if previous is not None:
            raise Conflict(
                f"a rotation from master key {previous} to {current} is not finished; finish it "
                "first (rotate to that key again), then rotate to another"
            )
        identity = new.wrap(keys.unwrap(uow.installation.identity_key()))
        now = ports.clock.now()
        uow.installation.begin_rotation(new.location(), keys.location(), identity, now)
        uow.audit.append(
            now, actor, ROTATION_STARTED, new.key_id, {"from": current, "to": new.key_id}
        )
        uow.commit()
    return RotationReport(new.key_id, current, started=True)


def rewrap_data_keys(
    ports: Ports,
    new: KeyEncryptionKey,
    report: RotationReport,
    actor: str,
    *,
    on_batch: BatchHook | None = None,
    progress: Progress | None = None,
) -> RotationReport:
    """Re-wrap, batch by batch, every data key under another master key than `new`; pass over
    the buyers again while a pass still found some; then forget the old key (audited)."""
    while _rewrap_pass(ports, new, report, on_batch, progress):
        pass
    # A run that began before the rotation may still wrap under the old key: wait for it to
    # end (new runs wait meanwhile), then sweep once more before the old key is forgotten.
    with ports.no_run_working():
        _rewrap_pass(ports, new, report, on_batch, progress)
        _rewrite_key_ledgers(ports, report)
        _finish(ports, new, report, actor)
    return report


LEDGER_CHUNK = 100
"""Segments whose ledger objects one transaction rewrites at the end of a rotation."""


def _rewrite_key_ledgers(ports: Ports, report: RotationReport) -> None:
    """Rewrite every segment's key-ledger object from the database's re-wrapped keys before
    the old master key is forgotten, so that `archive recover` opens them with the new one.
    All of them, once, rather than per batch: a batch's buyers spread over many segments, and
    a run that worked beside the rotation may have written a new segment's ledger with a key
    it read before the rotation re-wrapped it. Killed here, the rotation has not finished and
    the next `keys rotate` does this again."""
    if ports.ledger is None:  # nothing was ever archived through a ledger
        return
    after = ""
    while True:
        with ports.uow as uow:
            chunk = uow.archive_copies.segment_keys(after, LEDGER_CHUNK)
            if not chunk:
                return
            report.ledgers_rewritten += rewrite_ledgers(ports, chunk)
            uow.commit()
        after = chunk[-1]


def _rewrap_pass(
    ports: Ports,
    new: KeyEncryptionKey,
    report: RotationReport,
    on_batch: BatchHook | None,
    progress: Progress | None,
) -> int:
    """One pass over the buyers in id order; returns how many keys it re-wrapped."""
    keys = ports.keys
    report.passes += 1
    with ports.reader as reader:
        total = reader.customers.count_keys_to_rewrap(new.key_id)
    moved, after = 0, 0
    while True:
        with ports.uow as uow:
            ids = uow.customers.keys_to_rewrap(new.key_id, after, ports.limits.batch_size)
            if not ids:
                break
            done = rewrap_batch(uow, keys, new, ids, ports.clock.now())
            if on_batch is not None:
                on_batch(uow, done)
            uow.commit()
        moved += len(done)
        report.rewrapped += len(done)
        report.batches += 1
        after = ids[-1]
        if progress is not None:
            progress(moved, max(total, moved))
    return moved


def _finish(ports: Ports, new: KeyEncryptionKey, report: RotationReport, actor: str) -> None:
    with ports.uow as uow:
        report.left = uow.customers.count_keys_to_rewrap(new.key_id)
        if report.left == 0 and uow.installation.previous_master_key_id() is not None:
            now = ports.clock.now()
            uow.installation.finish_rotation(now)
            uow.audit.append(
                now,
                actor,
                KEYS_ROTATED,
                new.key_id,
                {"from": report.previous_master_key_id, "to": new.key_id},
            )
        uow.commit()


def rewrap_batch(
    uow: UnitOfWork,
    keys: KeyProvider,
    new: KeyEncryptionKey,
    ids: Sequence[int],
    at: datetime,
) -> list[int]:
    """Re-wrap these buyers' data keys under `new` inside the caller's transaction; returns
    the buyers whose key was replaced (one whose key changed meanwhile is left to the next
    pass)."""
    rows = uow.customers.archive_keys(ids)
    rewraps: list[Rewrap] = []
    for cid in ids:
        row = rows[cid]
        if row.data_key_wrapped is None or row.data_key_master_id in (None, new.key_id):
            continue
        old = WrappedKey(row.data_key_master_id or "", bytes(row.data_key_wrapped))
        rewraps.append(Rewrap(cid, old.blob, new.wrap(keys.unwrap(old))))
    uow.customers.replace_data_keys(rewraps, at)
    replaced = uow.customers.archive_keys([r.customer_id for r in rewraps]) if rewraps else {}
    return [cid for cid, row in replaced.items() if row.data_key_master_id == new.key_id]
