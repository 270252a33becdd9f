"""The nightly retention run: retry, archive (write, read back, verify), mask, re-mask.

Steps run in that order for each enabled shop and see each other's results, so a buyer whose
archive succeeds tonight is masked tonight. Each batch is its own transaction: killing the run
loses at most one batch of work, and a rerun picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from shelflife.adapters.db import reclaim
from shelflife.adapters.db import retention as sql
from shelflife.adapters.db.tables import PII_TABLES, Customer, RetentionRun
from shelflife.adapters.keys.envelope import new_data_key, open_sealed, seal
from shelflife.adapters.keys.master_key import WrappedKey
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, KeyUnavailable
from shelflife.domain.policy import Cutoffs
from shelflife.domain.snapshot import CustomerSnapshot

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as (step, done, total) so a terminal can draw a bar; the service prints nothing."""


@dataclass
class RunReport:
    as_of: str
    archived: int = 0
    archive_failed: int = 0
    retried: int = 0
    masked: int = 0
    remasked: int = 0
    shops: int = 0
    duration_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _noop(_step: str, _done: int, _total: int) -> None:
    return None


def run_retention(app: App, as_of: datetime | None = None, progress: Progress = _noop) -> RunReport:
    with reclaim.run_lock(app.engine) as lock:  # several workers: see adapters/db/reclaim.py
        return _run(app, as_of, progress, lock)


def _run(app: App, as_of: datetime | None, progress: Progress, lock: reclaim.RunLock) -> RunReport:
    started = time.monotonic()
    now = as_of or app.clock.now()
    report = RunReport(as_of=now.isoformat())
    with app.read_engine.connect() as conn:
        enabled = sql.shops(conn, enabled_only=True)
    if enabled:
        _ = app.keys  # fail the whole run early and clearly when the master key is missing
    with app.engine.begin() as conn:
        run_id = conn.execute(
            insert(RetentionRun)
            .values(as_of=now, started_at=app.clock.now())
            .returning(RetentionRun.id)
        ).scalar_one()
    batch = app.settings.batch_size
    for shop in enabled:
        report.shops += 1
        cutoffs = Cutoffs.for_shop(now, ZoneInfo(shop.time_zone))
        _archive_step(app, shop.id, cutoffs, batch, report, progress)
        report.masked += _mask_step(
            app, sql.mask_due_condition(shop.id, cutoffs), now, "masked", batch, progress
        )
        report.remasked += _mask_step(
            app, sql.remask_due_condition(shop.id, cutoffs), now, "remasked", batch, progress
        )
    # Old values out of the database files.
    lock.reclaim_if_needed(run_id, bool(report.masked or report.remasked), list(PII_TABLES))
    report.duration_seconds = round(time.monotonic() - started, 3)
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
        conn.execute(
            update(RetentionRun)
            .where(RetentionRun.id == run_id)
            .values(
                finished_at=app.clock.now(),
                archived=report.archived,
                archive_failed=report.archive_failed,
                retried=report.retried,
                masked=report.masked,
                remasked=report.remasked,
            )
        )
    return report


def _count(conn: Connection, condition: Any) -> int:
    return int(
        conn.execute(select(func.count()).select_from(Customer).where(condition)).scalar_one()
    )


def _archive_step(
    app: App, shop_id: int, cutoffs: Cutoffs, batch: int, report: RunReport, progress: Progress
) -> None:
    condition = sql.archive_due_condition(shop_id, cutoffs)
    with app.read_engine.connect() as conn:
        total = _count(conn, condition)
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
        report.archive_failed += len(failed)
        for cid, why in failed:  # ids and library-free reasons only: never PII
            log.warning("archive of customer %d failed, retried the next day: %s", cid, why)
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
) -> int:
    with app.read_engine.connect() as conn:
        total = _count(conn, condition)
    after, masked, handled = 0, 0, 0
    while True:
        with app.engine.begin() as conn:
            ids = sql.select_batch(conn, condition, after, batch)
            if not ids:
                break
            masked += sql.mask_customers(conn, ids, now, event)
        after = ids[-1]
        handled += len(ids)
        progress(event, handled, max(total, handled))
    return masked
