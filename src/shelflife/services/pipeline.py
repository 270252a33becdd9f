"""The nightly retention run: retry, archive (write, read back, verify), mask, re-mask.

Steps run in that order for each enabled shop and see each other's results, so a buyer whose
archive succeeds tonight is masked tonight. Each batch is its own transaction: killing the run
loses at most one batch of work, and a rerun picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from shelflife.adapters.db import reclaim, runs
from shelflife.adapters.db import retention as sql
from shelflife.adapters.db.engine import read_only
from shelflife.adapters.db.installation import read_installation
from shelflife.adapters.db.runs import RUN_COUNTS
from shelflife.adapters.db.tables import PII_TABLES
from shelflife.adapters.keys.envelope import new_data_key, open_sealed, seal
from shelflife.adapters.keys.master_key import WrappedKey
from shelflife.bootstrap import App
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    KeyUnavailable,
    ShelflifeError,
    UnknownShop,
)
from shelflife.domain.policy import Cutoffs
from shelflife.domain.snapshot import CustomerSnapshot

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as (step, done, total) so a terminal can draw a bar; the service prints nothing."""


FAILURE_EXAMPLES = 3
"""How many different archive-failure reasons a run names; the count covers all of them."""


@dataclass
class RunReport:
    as_of: str
    archived: int = 0
    archive_failed: int = 0
    retried: int = 0
    masked: int = 0
    remasked: int = 0
    mask_refused: int = 0
    shops: int = 0
    duration_seconds: float = 0.0
    dry_run: bool = False
    archive_failure_reasons: list[str] = field(default_factory=list)
    """The first few different reasons of tonight's archive failures (never PII)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTS}

    def note_failures(self, failed: Sequence[tuple[int, str]]) -> None:
        self.archive_failed += len(failed)
        for _cid, why in failed:
            if why not in self.archive_failure_reasons:
                if len(self.archive_failure_reasons) == FAILURE_EXAMPLES:
                    break
                self.archive_failure_reasons.append(why)


def _noop(_step: str, _done: int, _total: int) -> None:
    return None


def run_retention(app: App, as_of: datetime | None = None, progress: Progress = _noop) -> RunReport:
    """The nightly run. It is recorded in `retention_runs` with the real start and end time;
    when it stops with an error, the record says why before the error goes on.

    A missing or foreign master key stops it before anything is written, the run record
    included: such a run never started (`App.keys` checks the key against the recorded one).
    """
    with reclaim.run_lock(app.engine) as lock:  # several workers: see adapters/db/reclaim.py
        return _run(app, as_of, progress, lock)


def _run(app: App, as_of: datetime | None, progress: Progress, lock: reclaim.RunLock) -> RunReport:
    started = time.monotonic()
    now = as_of or app.clock.now()
    report = RunReport(as_of=now.isoformat())
    with read_only(app.engine) as conn:
        enabled = sql.shops(conn, enabled_only=True)
    if enabled:
        _ = app.keys
    with app.engine.begin() as conn:
        run_id = runs.start_run(conn, now, app.clock.now())
    try:
        batch = app.settings.batch_size
        for shop in enabled:
            report.shops += 1
            cutoffs = Cutoffs.for_shop(now, ZoneInfo(shop.time_zone))
            _archive_step(app, shop.id, cutoffs, batch, report, progress)
            key_id = app.keys.key_id
            masked, refused = _mask_step(
                app,
                sql.mask_due_condition(shop.id, cutoffs, key_id),
                now,
                "masked",
                batch,
                progress,
            )
            report.masked += masked
            report.mask_refused += refused + _refused_by_key_id(app, shop.id, cutoffs, "masked")
            remasked, refused = _mask_step(
                app,
                sql.remask_due_condition(shop.id, cutoffs, key_id),
                now,
                "remasked",
                batch,
                progress,
            )
            report.remasked += remasked
            report.mask_refused += refused + _refused_by_key_id(app, shop.id, cutoffs, "remasked")
        # Old values out of the database files.
        lock.reclaim_if_needed(run_id, bool(report.masked or report.remasked), list(PII_TABLES))
    except (Exception, KeyboardInterrupt) as exc:
        _record_stop(app, run_id, report, exc)
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
    with app.engine.begin() as conn:
        runs.finish_run(conn, run_id, app.clock.now(), report.counts())
    return report


def _record_stop(app: App, run_id: int, report: RunReport, exc: BaseException) -> None:
    """Write why the run stopped. Only the project's own messages are PII-free by contract;
    of anything else only the type is kept, as on the command line."""
    if isinstance(exc, ShelflifeError):
        why = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        why = "interrupted"
    else:
        why = f"unexpected {type(exc).__name__}"
    try:
        with app.engine.begin() as conn:
            runs.finish_run(conn, run_id, app.clock.now(), report.counts(), error=why)
    except Exception:  # the database may be what failed; the original error matters more
        log.warning("could not record why run %d stopped", run_id)


def dry_run(app: App, as_of: datetime | None = None) -> RunReport:
    """The counts `run_retention` would report as of `as_of` if the archive works, from
    set-based counts on the same conditions; writes nothing and needs no master key.

    The mask and re-mask counts take tonight's archive step into account: a buyer archived
    tonight and past the 30 days is masked in the same run (`policy.after_archive`)."""
    started = time.monotonic()
    now = as_of or app.clock.now()
    report = RunReport(as_of=now.isoformat(), dry_run=True)
    with read_only(app.engine) as conn:
        key_id = _recorded_key_id(conn)
        for shop in sql.shops(conn, enabled_only=True):
            _count_due(conn, shop, now, key_id, report)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def dry_run_shop(app: App, shop: str, as_of: datetime | None = None) -> RunReport:
    """What the next run would do for one shop if its feature were on, whether it is on now
    or not: what switching it on starts, or what switching it off stops."""
    started = time.monotonic()
    now = as_of or app.clock.now()
    report = RunReport(as_of=now.isoformat(), dry_run=True)
    with read_only(app.engine) as conn:
        found = [s for s in sql.shops(conn) if s.name == shop]
        if not found:
            raise UnknownShop(shop)
        _count_due(conn, found[0], now, _recorded_key_id(conn), report)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def _recorded_key_id(conn: Connection) -> str:
    """The key recorded by `init`: a real run refuses any other, so a dry run needs no file."""
    installation = read_installation(conn)
    return installation.master_key_id if installation else ""


def _count_due(
    conn: Connection, shop: sql.ShopRow, now: datetime, key_id: str, report: RunReport
) -> None:
    report.shops += 1
    cutoffs = Cutoffs.for_shop(now, ZoneInfo(shop.time_zone))
    report.archived += sql.count_customers(conn, sql.archive_due_condition(shop.id, cutoffs))
    report.retried += sql.count_customers(conn, sql.retry_due_condition(shop.id, cutoffs))
    report.masked += sql.count_customers(
        conn, sql.mask_due_condition(shop.id, cutoffs, key_id, tonight=True)
    )
    report.remasked += sql.count_customers(
        conn, sql.remask_due_condition(shop.id, cutoffs, key_id, tonight=True)
    )
    report.mask_refused += sum(
        sql.count_customers(
            conn, sql.mask_refused_condition(shop.id, cutoffs, key_id, remask=remask)
        )
        for remask in (False, True)
    )


def _archive_step(
    app: App, shop_id: int, cutoffs: Cutoffs, batch: int, report: RunReport, progress: Progress
) -> None:
    condition = sql.archive_due_condition(shop_id, cutoffs)
    with app.engine.connect() as conn:
        total = sql.count_customers(conn, condition)
    after, handled = 0, 0
    while True:
        with app.engine.begin() as conn:
            ids = sql.select_batch(conn, condition, after, batch)
            if not ids:
                break
            report.retried += sql.count_retries(conn, ids)
            done, failed = archive_customers(app, conn, ids)
            sql.record_archived(conn, done, cutoffs.as_of)
            sql.record_failed(conn, failed, cutoffs.as_of)
        report.archived += len(done)
        report.note_failures(failed)
        log.info("archive batch: %d archived, %d failed", len(done), len(failed))
        after = ids[-1]
        handled += len(ids)
        progress("archive", handled, max(total, handled))


def archive_customers(
    app: App, conn: Connection, ids: Sequence[int]
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Seal, write, read back, decrypt and compare each buyer's snapshot.

    Only a copy whose read-back decrypts to exactly the bytes sealed counts as archived.
    The archive I/O of a batch runs on a small thread pool: a local disk waits on fsync and S3
    on the network, so copies are written side by side. Failures are returned with a reason
    that names no PII.
    """
    keys = sql.archive_keys(conn, ids)
    snaps = sql.load_snapshots(conn, ids, {cid: k.pii_revision for cid, k in keys.items()})
    workers = max(1, min(app.settings.archive_workers, len(ids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
        results = list(pool.map(lambda cid: _archive_one(app, keys[cid], snaps[cid]), ids))
    done = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, tuple)]
    return done, failed


def object_key_prefix(customer_id: int) -> str:
    """Where a buyer's copies live. A folder per thousand buyers keeps folders small at a
    million buyers; the random suffix added to each key makes every write a new object, as
    write-once (Object Lock) storage requires."""
    return f"customers/{customer_id // 1000:06d}/{customer_id}-"


_OBJECT_KEY = re.compile(r"customers/([0-9]{6})/([0-9]+)-r[0-9]+-[0-9a-f]+\.slf")


def customer_of_object_key(key: str) -> int | None:
    """The buyer an archive object key was made for (see `object_key_prefix`); None for a
    key shelflife does not make, which housekeeping then never deletes."""
    match = _OBJECT_KEY.fullmatch(key)
    if match is None:
        return None
    customer_id = int(match.group(2))
    return customer_id if object_key_prefix(customer_id) in key else None


def _archive_one(
    app: App, key_row: sql.ArchiveKeyRow, snap: CustomerSnapshot
) -> dict[str, Any] | tuple[int, str]:
    cid = key_row.customer_id
    try:
        if key_row.data_key_wrapped is None:
            data_key = new_data_key()
            wrapped = app.keys.wrap(data_key)
            fresh: WrappedKey | None = wrapped
        else:
            wrapped = WrappedKey(key_row.data_key_master_id or "", key_row.data_key_wrapped)
            data_key = app.keys.unwrap(wrapped)
            fresh = None
        plaintext = snap.to_bytes()
        blob = seal(data_key, wrapped, cid, snap.revision, plaintext)
        object_key = f"{object_key_prefix(cid)}r{snap.revision:06d}-{secrets.token_hex(4)}.slf"
        app.archive.put(object_key, blob)
        if open_sealed(app.archive.get(object_key), app.keys) != plaintext:
            raise ArchiveCorrupt("read-back of the archive copy differs from what was written")
    except (ArchiveUnavailable, ArchiveCorrupt, KeyUnavailable) as exc:
        return (cid, str(exc))
    return {
        "customer_id": cid,
        "revision": snap.revision,
        "object_key": object_key,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "wrapped_key": fresh.blob if fresh else None,
        "master_key_id": fresh.master_key_id if fresh else None,
    }


def _mask_step(
    app: App, condition: Any, now: datetime, event: str, batch: int, progress: Progress
) -> tuple[int, int]:
    """Mask the buyers due, batch by batch; returns (masked, refused). A buyer is masked only
    when the loaded master key opens its data key, i.e. its verified copy can be read."""
    with app.engine.connect() as conn:
        total = sql.count_customers(conn, condition)
    after, masked, handled = 0, 0, 0
    refused: list[int] = []
    while True:
        with app.engine.begin() as conn:
            ids = sql.select_batch(conn, condition, after, batch)
            if not ids:
                break
            openable, closed = _split_by_key(app, conn, ids)
            masked += sql.mask_customers(conn, openable, now, event)
        refused += closed
        after = ids[-1]
        handled += len(ids)
        progress(event, handled, max(total, handled))
    if refused:
        _log_refused(app, event, len(refused), refused)
    return masked, len(refused)


def _split_by_key(app: App, conn: Connection, ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Unwrap each buyer's data key with the loaded master key (one query for the batch)."""
    rows = sql.archive_keys(conn, ids)
    openable: list[int] = []
    closed: list[int] = []
    for cid in ids:
        row = rows[cid]
        try:
            if row.data_key_wrapped is None or row.data_key_master_id is None:
                raise KeyUnavailable("no data key")
            app.keys.unwrap(WrappedKey(row.data_key_master_id, row.data_key_wrapped))
        except (KeyUnavailable, ArchiveCorrupt):
            closed.append(cid)
        else:
            openable.append(cid)
    return openable, closed


def _refused_by_key_id(app: App, shop_id: int, cutoffs: Cutoffs, event: str) -> int:
    """Buyers due whose data key is sealed under another master key: the SQL selection leaves
    them out; they are counted and logged so that the operator sees them."""
    condition = sql.mask_refused_condition(
        shop_id, cutoffs, app.keys.key_id, remask=event == "remasked"
    )
    with app.engine.connect() as conn:
        first = sql.first_customer_ids(conn, condition, 10)
        count = sql.count_customers(conn, condition) if first else 0
    if count:
        _log_refused(app, event, count, first)
    return count


def _log_refused(app: App, event: str, count: int, ids: Sequence[int]) -> None:
    """One warning per step: how many, and the first customer ids (ids are not PII)."""
    log.warning(
        "%d buyer(s) due to be %s were not: their archive data key does not open with the "
        "loaded master key %s (first customer ids: %s)",
        count,
        event,
        app.keys.key_id,
        ", ".join(str(cid) for cid in ids[:10]),
    )
