"""The nightly retention run: retry, archive (write, read back, verify), mask, re-mask.

Steps run in that order for each enabled shop and see each other's results, so a buyer whose
archive succeeds tonight is masked tonight: in its archive batch's own transaction, right after
its copy verified (the mask step then handles buyers archived on earlier nights). Each batch is
its own transaction: killing the run loses at most one batch of work, and a rerun picks up
where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from shelflife.adapters.archive.segments import (
    RecordEntry,
    pack_segment,
    read_manifest,
    segment_key,
)
from shelflife.adapters.keys.envelope import new_data_key, open_record, seal_record
from shelflife.adapters.keys.keyring import for_one_run
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    KeyUnavailable,
    ShelflifeError,
    UnknownShop,
)
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import (
    ERROR_LENGTH,
    RUN_COUNTS,
    ArchivedCopy,
    ArchivedSegment,
    ArchiveKeyRow,
    CustomerRepository,
    Due,
    KeyProvider,
    LedgerEntry,
    PdfRepository,
    Ports,
    RunLock,
    Selection,
    ShopRow,
    UnitOfWork,
    WrappedKey,
)
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services.after_commit import AfterCommit
from shelflife.services.audit import purge_expired_entries
from shelflife.services.documents import RunReportDocument
from shelflife.services.integrity import verify_sample
from shelflife.services.ledger import ledger_store, shred_expired, write_ledger
from shelflife.services.pdfs import attach_pdfs, remove_masked_pdfs

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as (step, done, total) so a terminal can draw a bar; the service prints nothing."""


RUN_FINISHED = "run.finished"
RUN_FAILED = "run.failed"
SYSTEM_ACTOR = "shelflife"
"""The actor of a run nobody named (a scheduler's, a demo's)."""

FAILURE_EXAMPLES = 3
"""How many different archive-failure reasons a run names; the count covers all of them."""


class RunReport(RunReportDocument):
    """The run's document, counted while the run works."""

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTS}

    def merge(self, other: RunReportDocument) -> None:
        """Add a worker's counts."""
        for name in RUN_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        _note_reasons(self.archive_failure_reasons, other.archive_failure_reasons)
        _note_reasons(self.mask_refusal_reasons, other.mask_refusal_reasons)

    def note_failures(self, failed: Sequence[tuple[int, str]]) -> None:
        self.archive_failed += len(failed)
        _note_reasons(self.archive_failure_reasons, [why for _cid, why in failed])

    def note_refusals(self, refused: Sequence[tuple[int, str]]) -> None:
        self.mask_refused += len(refused)
        _note_reasons(self.mask_refusal_reasons, [why for _cid, why in refused])


def _note_reasons(reasons: list[str], more: Sequence[str]) -> None:
    """Add the new ones of `more` to `reasons`, up to `FAILURE_EXAMPLES` in all."""
    for why in more:
        if why not in reasons:
            if len(reasons) == FAILURE_EXAMPLES:
                return
            reasons.append(why)


def _noop(_step: str, _done: int, _total: int) -> None:
    return None


class Helpers(Protocol):
    """Other processes working through the same night beside the run (PostgreSQL: batches
    are claimed with row locks, so no buyer is handled twice)."""

    def wait(self) -> list[RunReportDocument]:
        """Each helper's counts once it has finished; raises when one of them failed."""
        ...

    def stop(self) -> list[RunReportDocument]:
        """End the helpers early: the run failed or was interrupted. Each ends after the batch
        it is in and returns the counts of what it did, which the run's record then includes
        (a helper that does not answer in time is ended without: its committed batches stay
        done, uncounted)."""
        ...


StartHelpers = Callable[[datetime], Helpers]
"""Starts the helpers of a run as of the given instant (see `bootstrap.App.helpers`)."""


def run_retention(
    ports: Ports,
    as_of: datetime | None = None,
    progress: Progress = _noop,
    actor: str = SYSTEM_ACTOR,
    helpers: StartHelpers | None = None,
) -> RunReport:
    """The nightly run. It is recorded in `retention_runs` with the real start and end time
    and audited (`run.finished` / `run.failed`, with its counts and `actor`: who started it);
    when it stops with an error, both say why before the error goes on. A run that finishes
    purges the audit entries older than `AUDIT_RETENTION` (see `services.audit`).

    With `helpers`, other processes work the night's batches beside this one (`work_night`);
    the run waits for them, adds up their counts and reclaims once, so several workers are
    still one run: one record, one audit entry, one rewrite of the database files.

    A missing or foreign master key stops it before anything is written, the run record
    included: such a run never started (the key provider checks the key against the recorded
    one).
    """
    ports = for_one_run(ports)
    with ports.run_lock() as lock:  # several workers: see adapters/db/reclaim.py
        return _run(ports, as_of, progress, lock, actor, helpers)


class _StopRequested(Exception):
    """Raised between two batches of a helper whose run asked it to stop."""


def work_night(
    ports: Ports, as_of: datetime, stop_requested: Callable[[], bool] = lambda: False
) -> RunReport:
    """A helper's share of a run (see `run_retention`): archive, mask and re-mask the batches
    it claims as of `as_of` in every enabled shop. Records no run and reclaims nothing, and
    leaves the counts every worker would see alike (shops, buyers refused for their key) to
    the run itself. Once `stop_requested()`, it ends after the batch it is in and returns the
    counts of what it did."""
    ports = for_one_run(ports)
    with ports.reader as reader:
        enabled = reader.shops.enabled()
    report = RunReport(as_of=as_of.isoformat())

    def after_batch() -> None:
        if stop_requested():
            raise _StopRequested

    keys = ports.keys if enabled else None
    try:
        _work(ports, keys, enabled, as_of, report, _noop, leader=False, after_batch=after_batch)
    except _StopRequested:
        log.info("helper stopped by its run after a batch")
    return report


def _work(
    ports: Ports,
    keys: KeyProvider | None,
    enabled: Sequence[ShopRow],
    as_of: datetime,
    report: RunReport,
    progress: Progress,
    *,
    leader: bool = True,
    actor: str = SYSTEM_ACTOR,
    after_batch: Callable[[], None] = lambda: None,
) -> None:
    """The steps for every enabled shop, counted into `report` as they go (a run that stops
    keeps what it did); the `leader` (the run, not a helper) also counts the shops and the
    buyers left out for their key, which every worker would count alike. `after_batch` is
    called after each committed batch: a helper stops there when its run asks it to."""
    batch = ports.limits.batch_size
    for shop in enabled:
        assert keys is not None
        report.shops += int(leader)
        cutoffs = Cutoffs.for_shop(as_of, ZoneInfo(shop.time_zone))
        others = _rotation_key_ids(ports, keys.key_id)
        _archive_step(ports, keys, shop.id, cutoffs, batch, report, progress, others, after_batch)
        for event, due, refused_due in (
            ("masked", Due.MASK, Due.MASK_REFUSED),
            ("remasked", Due.REMASK, Due.REMASK_REFUSED),
        ):
            _mask_step(
                ports,
                keys,
                Selection(due, shop.id, cutoffs, keys.key_id, other_key_ids=others),
                as_of,
                event,
                batch,
                progress,
                report,
                after_batch,
            )
            if leader:
                elsewhere = _refused_by_key_id(
                    ports,
                    keys.key_id,
                    Selection(refused_due, shop.id, cutoffs, keys.key_id, other_key_ids=others),
                    event,
                )
                if elsewhere:
                    report.mask_refused += elsewhere
                    _note_reasons(
                        report.mask_refusal_reasons,
                        [f"data keys sealed under another master key than {keys.key_id}"],
                    )
        if leader:  # one worker shreds: a shop's expired buyers are few and rare
            report.shredded += shred_expired(ports, shop, as_of, actor)


def _run(
    ports: Ports,
    as_of: datetime | None,
    progress: Progress,
    lock: RunLock,
    actor: str,
    helpers: StartHelpers | None,
) -> RunReport:
    started = time.monotonic()
    clock = ports.clock
    now = as_of or clock.now()
    report = RunReport(as_of=now.isoformat())
    with ports.reader as reader:
        enabled = reader.shops.enabled()
    keys = ports.keys if enabled else None
    with ports.uow as uow:
        run_id = uow.runs.start(now, clock.now())
        uow.commit()
    try:
        remove_masked_pdfs(ports)  # what a run stopped after masking left in the store
        if enabled:  # before archiving: a damaged copy found now is renewed before masking
            verify_sample(ports, report)
        running = helpers(now) if helpers is not None and enabled else None
        try:
            _work(ports, keys, enabled, now, report, progress, actor=actor)
            theirs = running.wait() if running is not None else []
        except BaseException:  # Ctrl-C while waiting for the helpers stops them too
            if running is not None:
                for helped in running.stop():  # what they did counts in the run's record
                    report.merge(helped)
            raise
        for helped in theirs:
            report.merge(helped)
        # Old values out of the database files.
        lock.reclaim_if_needed(run_id, bool(report.masked or report.remasked or report.shredded))
    except (Exception, KeyboardInterrupt) as exc:
        _record_stop(ports, run_id, report, exc, actor)
        raise
    report.duration_seconds = round(time.monotonic() - started, 3)
    if report.archive_failed:
        # One line for the whole run, however many buyers failed: ids and reasons only.
        log.warning(
            "archive failed for %d buyer(s), retried the next day; first reasons: %s",
            report.archive_failed,
            "; ".join(report.archive_failure_reasons),
        )
    log.info(
        "run as of %s: archived %d, failed %d, retried %d, masked %d, remasked %d in %.1f s",
        report.as_of,
        report.archived,
        report.archive_failed,
        report.retried,
        report.masked,
        report.remasked,
        report.duration_seconds,
    )
    with ports.uow as uow:
        finished_at = clock.now()
        uow.runs.finish(run_id, finished_at, report.counts())
        uow.audit.append(finished_at, actor, RUN_FINISHED, str(run_id), _run_detail(report))
        purge_expired_entries(uow.audit, finished_at, actor)
        uow.commit()
    return report


def _run_detail(report: RunReport) -> dict[str, str | int | None]:
    detail: dict[str, str | int | None] = {"as_of": report.as_of}
    detail.update(report.counts())
    detail["shredded"] = report.shredded
    return detail


def _record_stop(
    ports: Ports, run_id: int, report: RunReport, exc: BaseException, actor: str
) -> None:
    """Write why the run stopped, as the command line says it. Only the project's own messages
    are PII-free by contract: a library's failure is kept as ours (a database lock not granted
    in time, a server gone), anything else by its type only."""
    if isinstance(exc, ShelflifeError):
        why = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        why = "interrupted"
    elif (ours := ports.our_error(exc)) is not None:
        why = str(ours)
    else:
        why = f"unexpected {type(exc).__name__}"
    try:
        with ports.uow as uow:
            stopped_at = ports.clock.now()
            uow.runs.finish(run_id, stopped_at, report.counts(), error=why)
            detail = _run_detail(report)
            detail["error"] = why[:ERROR_LENGTH]
            uow.audit.append(stopped_at, actor, RUN_FAILED, str(run_id), detail)
            uow.commit()
    except Exception:  # the database may be what failed; the original error matters more
        log.warning("could not record why run %d stopped", run_id)


def dry_run(ports: Ports, as_of: datetime | None = None) -> RunReport:
    """The counts `run_retention` would report as of `as_of` if the archive works, from
    set-based counts on the same conditions; writes nothing and needs no master key.

    The mask and re-mask counts take tonight's archive step into account: a buyer archived
    tonight and past the 30 days is masked in the same run (`policy.after_archive`). A dry
    run is not audited: it changes nothing and shows no PII."""
    started = time.monotonic()
    now = as_of or ports.clock.now()
    report = RunReport(as_of=now.isoformat(), dry_run=True)
    with ports.reader as reader:
        key_id = _recorded_key_id(reader)
        others = tuple(k for k in reader.installation.key_ids() if k != key_id)
        for shop in reader.shops.enabled():
            _count_due(reader.customers, shop, now, key_id, report, others)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def dry_run_shop(ports: Ports, shop: str, as_of: datetime | None = None) -> RunReport:
    """What the next run would do for one shop if its feature were on, whether it is on now
    or not: what switching it on starts, or what switching it off stops."""
    started = time.monotonic()
    now = as_of or ports.clock.now()
    report = RunReport(as_of=now.isoformat(), dry_run=True)
    with ports.reader as reader:
        found = reader.shops.by_name(shop)
        if found is None:
            raise UnknownShop(shop)
        key_id = _recorded_key_id(reader)
        others = tuple(k for k in reader.installation.key_ids() if k != key_id)
        _count_due(reader.customers, found, now, key_id, report, others)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def _recorded_key_id(reader: UnitOfWork) -> str:
    """The key recorded by `init`: a real run refuses any other, so a dry run needs no file."""
    return reader.installation.master_key_id() or ""


def _rotation_key_ids(ports: Ports, loaded_key_id: str) -> tuple[str, ...]:
    """The master keys besides the loaded one that data keys may be under now: both sides of
    a key rotation, read per shop, since a rotation may begin while the run works. The keyring
    opens them (a key it cannot load makes its buyers refused, as before)."""
    with ports.reader as reader:
        return tuple(k for k in reader.installation.key_ids() if k != loaded_key_id)


def _count_due(
    customers: CustomerRepository,
    shop: ShopRow,
    now: datetime,
    key_id: str,
    report: RunReport,
    others: tuple[str, ...] = (),
) -> None:
    report.shops += 1
    cutoffs = Cutoffs.for_shop(now, ZoneInfo(shop.time_zone))

    def count(due: Due, *, tonight: bool = False) -> int:
        return customers.count(Selection(due, shop.id, cutoffs, key_id, tonight, others))

    report.archived += count(Due.ARCHIVE)
    report.retried += count(Due.RETRY)
    report.masked += count(Due.MASK, tonight=True)
    report.remasked += count(Due.REMASK, tonight=True)
    report.mask_refused += count(Due.MASK_REFUSED) + count(Due.REMASK_REFUSED)


def _planned(ports: Ports, selection: Selection, progress: Progress) -> int:
    """How many buyers a step expects, for a progress bar; not counted when nobody draws one:
    the count is a scan of the shop's buyers, which on a steady night costs more than the
    night's work."""
    if progress is _noop:
        return 0
    with ports.reader as reader:
        return reader.customers.count(selection)


def _archive_step(
    ports: Ports,
    keys: KeyProvider,
    shop_id: int,
    cutoffs: Cutoffs,
    batch: int,
    report: RunReport,
    progress: Progress,
    others: tuple[str, ...] = (),
    after_batch: Callable[[], None] = lambda: None,
) -> None:
    selection = Selection(Due.ARCHIVE, shop_id, cutoffs)
    total = _planned(ports, selection, progress)
    after, handled = 0, 0
    after_commit = AfterCommit(ports)
    try:
        with after_commit:
            while ids := _archive_batch(
                ports, keys, selection, after, batch, report, others, after_commit
            ):
                after = ids[-1]
                handled += len(ids)
                progress("archive", handled, max(total, handled))
                after_batch()
    finally:
        report.masked += after_commit.total  # masked behind the batches, failed step or not


def _archive_batch(
    ports: Ports,
    keys: KeyProvider,
    selection: Selection,
    after: int,
    batch: int,
    report: RunReport,
    others: tuple[str, ...],
    after_commit: AfterCommit,
) -> list[int]:
    """Archive the next batch after buyer id `after` and commit; mask its buyers who may be
    masked, in its transaction or behind it (see `AfterCommit`). Returns the batch's ids
    (none: the step is done)."""
    shop_id, cutoffs = selection.shop_id, selection.cutoffs
    with ports.uow as uow:
        ids = uow.customers.next_batch(selection, after, batch)
        if not ids:
            return ids
        retried = uow.customers.count_retries(ids)
        done, failed, segment = archive_customers(ports, keys, uow.customers, ids, uow.pdfs)
        if segment is not None:
            uow.archive_copies.add_segment(segment)
        uow.customers.record_archived(done, cutoffs.as_of)
        uow.customers.record_failed(failed, cutoffs.as_of)
        masked = 0
        if not after_commit.behind:
            masked = _mask_archived(uow.customers, keys, shop_id, cutoffs, done, others)
        uow.commit()
    # Counted before the hand-off: handing it on collects the previous batch's work first,
    # which raises that work's error, and this batch's copies are committed all the same.
    report.retried += retried
    report.archived += len(done)
    report.masked += masked
    report.note_failures(failed)
    log.info("archive batch: %d archived, %d failed", len(done), len(failed))
    # Only now that the copies (and, in turn, the masking) are committed.
    if after_commit.behind and done:
        after_commit.submit(partial(_mask_verified, ports, keys, shop_id, cutoffs, done, others))
    elif masked:
        after_commit.submit(partial(_remove_pdfs, ports))
    return ids


def _mask_verified(
    ports: Ports,
    keys: KeyProvider,
    shop_id: int,
    cutoffs: Cutoffs,
    done: Sequence[ArchivedCopy],
    others: tuple[str, ...],
    uow: UnitOfWork,
) -> int:
    """Behind the next batch (see `AfterCommit`): mask those of a committed batch's verified
    buyers who may be masked, in a transaction of its own, then remove their PDFs. The
    selection claims them (a worker's mask step may be after the same buyers); a buyer left
    unmasked by a failure is the mask step's, tonight or the next night."""
    with uow:
        masked = _mask_archived(uow.customers, keys, shop_id, cutoffs, done, others)
        uow.commit()
    if masked:
        remove_masked_pdfs(ports, uow)
    return masked


def _remove_pdfs(ports: Ports, uow: UnitOfWork) -> int:
    """The masked PDFs' removal as a job of the archive step, whose jobs count buyers masked
    behind a batch: this one masks nobody."""
    remove_masked_pdfs(ports, uow)
    return 0


def _mask_archived(
    customers: CustomerRepository,
    keys: KeyProvider,
    shop_id: int,
    cutoffs: Cutoffs,
    done: Sequence[ArchivedCopy],
    others: tuple[str, ...] = (),
) -> int:
    """Mask the batch's buyers whose copy was verified just now and who may be masked, in the
    batch's own transaction or right behind it: the mask step would select them again, batch
    by batch, and re-read their keys (their keys open: their records have just been decrypted
    with them).
    The mask step after the archive step handles the buyers archived on earlier nights."""
    if not done:
        return 0
    selection = Selection(Due.MASK, shop_id, cutoffs, keys.key_id, other_key_ids=others)
    ready = customers.among(selection, [d.customer_id for d in done])
    return customers.mask(ready, cutoffs.as_of, "masked") if ready else 0


def archive_customers(
    ports: Ports,
    keys: KeyProvider,
    customers: CustomerRepository,
    ids: Sequence[int],
    pdfs: PdfRepository,
) -> tuple[list[ArchivedCopy], list[tuple[int, str]], ArchivedSegment | None]:
    """Seal each buyer's snapshot, write the batch as one segment, read it back once and
    verify every record in it (digest, decryption, the snapshot's exact bytes), then write the
    segment's key-ledger object (the verified records' wrapped data keys) and read it back.

    A buyer counts as archived only when its own record verifies and its key is in the ledger;
    a record that does not verify fails only its buyer. A segment that cannot be written, or
    comes back truncated or with a damaged manifest, or whose ledger object cannot be written,
    fails every buyer in it. Returns the copies, the failures (with a reason that
    names no PII) and the segment when any copy is in it.

    Each record also holds the PDFs of the buyer's unmasked invoices and credits (see
    `services.pdfs.attach_pdfs`; required, because masking removes the PDFs from the document
    store); a buyer whose PDF cannot be made or read is not archived.
    """
    key_rows = customers.archive_keys(ids)
    snaps = customers.snapshots(ids, {cid: k.pii_revision for cid, k in key_rows.items()})
    failed: list[tuple[int, str]] = []
    attach_pdfs(ports, pdfs, snaps, failed)
    unreadable = {cid for cid, _ in failed}
    sealed: list[_Sealed] = []
    wrap_failure: str | None = None
    for cid in ids:
        if cid in unreadable:
            continue
        new_key = key_rows[cid].data_key_wrapped is None
        if new_key and wrap_failure is not None:
            # The key service failed to wrap a data key for this batch: asking it again for
            # every buyer would make a night's requests (and timeouts) grow with its buyers.
            failed.append((cid, wrap_failure))
            continue
        try:
            sealed.append(_seal(keys, key_rows[cid], snaps[cid]))
        except (ArchiveCorrupt, KeyUnavailable) as exc:
            failed.append((cid, str(exc)))
            if new_key and isinstance(exc, KeyUnavailable):
                wrap_failure = str(exc)
    if not sealed:
        return [], failed, None
    created_at = ports.clock.now()
    segment, entries = pack_segment(
        [(s.customer_id, s.revision, s.key_id, s.record) for s in sealed], created_at
    )
    object_key = segment_key(created_at)
    try:
        ports.archive.put(object_key, segment)
        back = ports.archive.get(object_key)
        if len(back) != len(segment):
            raise ArchiveCorrupt("read-back of the archive segment is truncated")
        if read_manifest(back) != entries:
            raise ArchiveCorrupt("read-back of the archive segment's manifest differs")
    except (ArchiveUnavailable, ArchiveCorrupt) as exc:
        return [], failed + [(s.customer_id, str(exc)) for s in sealed], None
    done: list[ArchivedCopy] = []
    for item, entry in zip(sealed, entries, strict=True):
        try:
            _verify(back, item, entry, object_key)
        except ArchiveCorrupt as exc:
            failed.append((item.customer_id, str(exc)))
            continue
        done.append(
            ArchivedCopy(
                customer_id=item.customer_id,
                revision=item.revision,
                object_key=object_key,
                sha256=entry.sha256,
                wrapped_key=item.fresh.blob if item.fresh else None,
                master_key_id=item.fresh.master_key_id if item.fresh else None,
                wrapping_key=item.fresh.wrapping_key if item.fresh else None,
                offset=entry.offset,
                length=entry.length,
            )
        )
    if not done:
        return [], failed, None
    keys_of = {s.customer_id: s.wrapped for s in sealed}
    try:
        write_ledger(
            ledger_store(ports),
            object_key,
            [LedgerEntry(d.customer_id, d.revision, keys_of[d.customer_id]) for d in done],
        )
    except (ArchiveUnavailable, ArchiveCorrupt) as exc:
        return [], failed + [(d.customer_id, str(exc)) for d in done], None
    # What later verifications compare against: the object as read back, so that a record
    # that failed here (its buyer retried) is not reported again as damage of the segment.
    whole = hashlib.sha256(back).hexdigest()
    return done, failed, ArchivedSegment(object_key, created_at, len(entries), len(back), whole)


@dataclass(frozen=True)
class _Sealed:
    customer_id: int
    revision: int
    key_id: str
    data_key: bytes
    wrapped: WrappedKey
    """The buyer's data key as the database holds it (or will): what the ledger gets."""
    fresh: WrappedKey | None
    """The buyer's data key wrapped, when it was made for this record."""
    plaintext: bytes
    record: bytes


def _seal(keys: KeyProvider, key_row: ArchiveKeyRow, snap: CustomerSnapshot) -> _Sealed:
    if key_row.data_key_wrapped is None:
        data_key = new_data_key()
        wrapped = keys.wrap(data_key)
        fresh: WrappedKey | None = wrapped
    else:
        wrapped = WrappedKey(key_row.data_key_master_id or "", key_row.data_key_wrapped)
        data_key = keys.unwrap(wrapped)
        fresh = None
    plaintext = snap.to_bytes()
    cid = key_row.customer_id
    record = seal_record(data_key, wrapped.master_key_id, cid, snap.revision, plaintext)
    return _Sealed(
        cid, snap.revision, wrapped.master_key_id, data_key, wrapped, fresh, plaintext, record
    )


def _verify(back: bytes, item: _Sealed, entry: RecordEntry, object_key: str) -> None:
    """The record as read back is the very bytes sealed and opens to exactly the snapshot."""
    piece = back[entry.offset : entry.offset + entry.length]
    if piece != item.record:
        raise ArchiveCorrupt("read-back of the archive copy differs from what was written")
    opened = open_record(
        piece,
        item.data_key,
        where=f"{object_key}@{entry.offset}",
        customer_id=item.customer_id,
        revision=item.revision,
        sha256=entry.sha256,
    )
    if opened != item.plaintext:
        raise ArchiveCorrupt("read-back of the archive copy differs from what was written")


def object_key_prefix(customer_id: int) -> str:
    """Where a buyer's legacy whole-object copies live (before segments): a folder per
    thousand buyers, and a random suffix that made every write a new object."""
    return f"customers/{customer_id // 1000:06d}/{customer_id}-"


_OBJECT_KEY = re.compile(r"customers/([0-9]{6})/([0-9]+)-r[0-9]+-[0-9a-f]+\.slf")


def customer_of_object_key(key: str) -> int | None:
    """The buyer a legacy archive object key was made for (see `object_key_prefix`); None for
    any other key."""
    match = _OBJECT_KEY.fullmatch(key)
    if match is None:
        return None
    customer_id = int(match.group(2))
    return customer_id if object_key_prefix(customer_id) in key else None


def _mask_step(
    ports: Ports,
    keys: KeyProvider,
    selection: Selection,
    now: datetime,
    event: str,
    batch: int,
    progress: Progress,
    report: RunReport,
    after_batch: Callable[[], None] = lambda: None,
) -> None:
    """Mask the buyers due, batch by batch, counting each committed batch into `report` as
    `event` and `mask_refused`, with why (a run that stops keeps the count of what it masked).
    A buyer is masked only when the loaded master key opens its data key, i.e. its verified
    copy can be read."""
    total = _planned(ports, selection, progress)
    after, handled = 0, 0
    refused: list[tuple[int, str]] = []
    with AfterCommit(ports) as after_commit:
        while True:
            with ports.uow as uow:
                ids = uow.customers.next_batch(selection, after, batch)
                if not ids:
                    break
                openable, closed = _split_by_key(keys, uow.customers.archive_keys(ids), ids)
                masked = uow.customers.mask(openable, now, event)
                uow.commit()
            setattr(report, event, getattr(report, event) + masked)
            report.note_refusals(closed)
            refused += closed
            # Only now that the masking is committed.
            after_commit.submit(partial(remove_masked_pdfs, ports))
            after = ids[-1]
            handled += len(ids)
            progress(event, handled, max(total, handled))
            after_batch()
    if refused:
        ids = [cid for cid, _why in refused]
        _log_refused(keys.key_id, event, len(refused), ids, refused[0][1])


def _split_by_key(
    keys: KeyProvider, rows: Mapping[int, ArchiveKeyRow], ids: Sequence[int]
) -> tuple[list[int], list[tuple[int, str]]]:
    """Unwrap each buyer's data key with the loaded master key (one query for the batch);
    returns the buyers whose key opens, and the others with why (never PII)."""
    openable: list[int] = []
    closed: list[tuple[int, str]] = []
    for cid in ids:
        row = rows[cid]
        try:
            if row.data_key_wrapped is None or row.data_key_master_id is None:
                raise KeyUnavailable("no data key")
            keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))
        except (KeyUnavailable, ArchiveCorrupt) as exc:
            closed.append((cid, str(exc)))
        else:
            openable.append(cid)
    return openable, closed


def _refused_by_key_id(ports: Ports, key_id: str, selection: Selection, event: str) -> int:
    """Buyers due whose data key is sealed under another master key: the SQL selection leaves
    them out; they are counted and logged so that the operator sees them."""
    with ports.reader as reader:
        first = reader.customers.first_ids(selection, 10)
        count = reader.customers.count(selection) if first else 0
    if count:
        _log_refused(key_id, event, count, first)
    return count


def _log_refused(
    key_id: str, event: str, count: int, ids: Sequence[int], why: str | None = None
) -> None:
    """One warning per step: how many, the first reason when one is known (the key service
    may be what failed, not the key) and the first customer ids (neither is PII)."""
    log.warning(
        "%d buyer(s) due to be %s were not: their archive data key does not open with the "
        "loaded master key %s (%sfirst customer ids: %s)",
        count,
        event,
        key_id,
        f"{why}; " if why else "",
        ", ".join(str(cid) for cid in ids[:10]),
    )
