"""On PostgreSQL the work after an archive batch's commit (masking its verified buyers, then
removing their PDFs from the document store) runs on a connection of its own while the next
batch is archived (services.after_commit); the step still ends with all of it done, a buyer
another worker holds is left to it rather than waited for, and a failure neither loses the
night's copies nor hides a real error.

The overlap is shown by a document store whose first removal waits for the archive to receive
the next batch's segment: working in turn, that wait can only time out.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from shelflife.adapters.archive.segments import is_segment_key
from shelflife.adapters.db import retention
from shelflife.adapters.db.tables import (
    ArchiveCopy,
    Customer,
    CustomerHistory,
    Invoice,
    RetentionRun,
)
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.domain.ports import ArchiveStore
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, invoiced_buyers, make_app
from tests.support.pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

BATCH = 3
BUYERS = 3 * BATCH
MASKED_AT = T0 + days(33)
WAIT = 10.0


class Gated:
    """The app's document store, except that removals go through `on_delete` first."""

    def __init__(self, inner: ArchiveStore, on_delete: Any) -> None:
        self.inner, self.on_delete = inner, on_delete
        self.deleting_threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, key: str) -> None:
        self.deleting_threads.add(threading.current_thread().name)
        self.on_delete()
        self.inner.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)


class CountingPuts:
    """The app's archive, setting `second` once a second segment was put."""

    def __init__(self, inner: ArchiveStore) -> None:
        self.inner, self.puts, self.second = inner, 0, threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self.puts += 1
        if self.puts >= 2:
            self.second.set()


@pytest.fixture
def app(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[App]:
    """Every buyer due for archiving and masking tonight, `BATCH` buyers a batch."""
    name = f"after_commit_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    built, _clock = make_app(url, tmp_path / "home", batch_size=BATCH, lock_timeout=0.5)
    try:
        assert import_lines(built, invoiced_buyers(BUYERS)).refused == []
        set_feature(built.ports(), "main", True, "ops")
        yield at(built, MASKED_AT)
    finally:
        built.close()
        postgres_cluster.drop_database(name)


def pdfs(app: App) -> tuple[int, int]:
    """(masked invoices whose PDF still counts as stored, PDF files in the document store)."""
    with app.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(Invoice.masked_at.is_not(None), Invoice.pdf_stored)
        ).scalar_one()
    files = sum(1 for _ in app.documents.list_objects())
    return int(stored), files


def test_a_batch_s_pdfs_leave_while_the_next_batch_is_archived(app: App) -> None:
    archive = CountingPuts(app.archive)
    waited: list[bool] = []
    documents = Gated(app.documents, lambda: waited.append(archive.second.wait(WAIT)))
    app.archive, app.documents = archive, documents

    report = run_retention(app.ports(), MASKED_AT)

    assert (report.archived, report.masked) == (BUYERS, BUYERS)
    assert waited[:1] == [True], "the first batch's removal ran before the second batch"
    assert "MainThread" not in documents.deleting_threads
    assert pdfs(app) == (0, 0)


def test_a_document_store_that_fails_to_remove_leaves_the_rest_to_the_next_run(
    app: App,
) -> None:
    def down() -> None:
        raise ArchiveUnavailable("document store: connection refused")

    documents = Gated(app.documents, down)
    app.documents = documents

    report = run_retention(app.ports(), MASKED_AT)

    assert report.masked == BUYERS
    assert pdfs(app) == (BUYERS, BUYERS)
    documents.on_delete = lambda: None
    run_retention(app.ports(), MASKED_AT + days(1))
    assert pdfs(app) == (0, 0)


def test_an_unexpected_failure_of_a_background_removal_fails_the_run(app: App) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("a defect in the removal")

    app.documents = Gated(app.documents, broken)

    with pytest.raises(RuntimeError, match="a defect in the removal"):
        run_retention(app.ports(), MASKED_AT)
    assert calls
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pdf-removal")]


def masked_history(app: App) -> dict[int, int]:
    """Buyer id -> how many "masked" events its history holds."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(CustomerHistory.customer_id, func.count())
            .where(CustomerHistory.event == "masked")
            .group_by(CustomerHistory.customer_id)
        )
        return {int(cid): int(n) for cid, n in rows}


def test_a_buyer_another_worker_holds_is_left_to_it_not_waited_for(app: App) -> None:
    """Once a batch's copies are committed, another worker's mask step may claim its buyers:
    the masking behind the batch must skip a buyer held elsewhere (waiting ran into the lock
    timeout and failed the run); the run's mask step masks it once free, and no buyer is
    masked twice."""
    with app.engine.connect() as conn:
        first_buyer = conn.execute(select(func.min(Customer.id))).scalar_one()
    holder = app.engine.connect()
    ports = app.ports()
    assert ports.background_uow is not None
    make_uow = ports.background_uow
    asked: list[int] = []

    def holding_first_buyer() -> Any:
        """The first batch has committed its copies when its masking asks for a connection:
        another worker claims its first buyer then, and lets it go when the second batch's
        masking asks (the first batch's masking has ended by then)."""
        asked.append(1)
        if len(asked) == 1:
            holder.execute(
                text("SELECT id FROM customers WHERE id = :id FOR UPDATE"), {"id": first_buyer}
            )
        elif holder.in_transaction():
            holder.rollback()
        return make_uow()

    try:
        report = run_retention(
            dataclasses.replace(ports, background_uow=holding_first_buyer), MASKED_AT
        )
    finally:
        holder.rollback()
        holder.close()

    assert len(asked) >= 2  # the claim was let go while the run worked
    assert (report.archived, report.masked) == (BUYERS, BUYERS)
    history = masked_history(app)
    assert sorted(history) == list(range(first_buyer, first_buyer + BUYERS))
    assert set(history.values()) == {1}
    assert pdfs(app) == (0, 0)


class FailingThirdPut(CountingPuts):
    """The archive, failing with a defect (not a store error) on the third segment."""

    def put(self, key: str, data: bytes) -> None:
        if self.puts == 2:
            raise RuntimeError("a defect while writing the third segment")
        super().put(key, data)


def test_a_run_that_fails_counts_the_buyers_masked_behind_its_committed_batches(
    app: App,
) -> None:
    """The first two batches committed their copies and were masked behind them; the run
    record of the failed run says so, and the next run finishes the night."""
    app.archive = FailingThirdPut(app.archive)

    with pytest.raises(RuntimeError, match="third segment"):
        run_retention(app.ports(), MASKED_AT)

    with app.engine.connect() as conn:
        recorded = conn.execute(
            select(RetentionRun.archived, RetentionRun.masked, RetentionRun.error)
        ).one()
    assert recorded.archived == recorded.masked == 2 * BATCH
    assert recorded.error
    assert len(masked_history(app)) == 2 * BATCH
    app.archive = app.archive.inner
    report = run_retention(app.ports(), MASKED_AT)
    assert (report.archived, report.masked) == (BATCH, BATCH)
    assert pdfs(app) == (0, 0)


def test_a_masking_that_fails_behind_a_batch_leaves_the_next_batch_s_copies_counted(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's masking fails behind the second batch, whose copies are committed by
    the time handing on its own masking raises that failure: the failed run's record counts
    both batches' copies, as many as the archive holds."""
    real = retention.mask_customers
    calls: list[int] = []

    def first_fails(*args: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a defect in the first batch's masking")
        return int(real(*args))

    monkeypatch.setattr(retention, "mask_customers", first_fails)

    with pytest.raises(RuntimeError, match="first batch's masking"):
        run_retention(app.ports(), MASKED_AT)

    with app.engine.connect() as conn:
        recorded = conn.execute(
            select(RetentionRun.archived, RetentionRun.masked, RetentionRun.error)
        ).one()
        copies = conn.execute(select(func.count()).select_from(ArchiveCopy)).scalar_one()
    assert copies == 2 * BATCH
    assert (recorded.archived, recorded.masked) == (2 * BATCH, 0)
    assert recorded.error == "unexpected RuntimeError"


def test_a_run_killed_while_masking_behind_its_batches_is_completed_by_the_next(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """A real `shelflife run` process, SIGKILLed once a few of its segments are written (its
    masking and PDF removal behind them in flight or not): the next run archives and masks
    every buyer exactly once and leaves no masked document's PDF in the document store."""
    buyers, batch = 60, 3
    name = f"after_commit_kill_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    app, _clock = make_app(url, tmp_path / "home", batch_size=batch)
    try:
        assert import_lines(app, invoiced_buyers(buyers)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")}
        env.update(
            SHELFLIFE_HOME=str(app.settings.home),
            SHELFLIFE_DATABASE_URL=url,
            SHELFLIFE_BATCH_SIZE=str(batch),
        )
        command = [str(Path(sys.executable).parent / "shelflife"), "run"]
        command += ["--as-of", MASKED_AT.isoformat(), "--json"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if sum(is_segment_key(o.key) for o in app.archive.list_objects()) >= 4:
                    break
                time.sleep(0.01)
            assert process.poll() is None, "the run ended before it could be killed"
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        masked_before = len(masked_history(app))
        assert masked_before < buyers

        report = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)

        assert report.masked == buyers - masked_before
        history = masked_history(app)
        assert len(history) == buyers
        assert set(history.values()) == {1}
        assert pdfs(app) == (0, 0)
        with app.engine.connect() as conn:
            unmasked = conn.execute(
                select(func.count()).where(Customer.masked_at.is_(None))
            ).scalar_one()
        assert unmasked == 0
    finally:
        app.close()
        postgres_cluster.drop_database(name)
