"""Several `shelflife run` workers on one database claim buyers with row locks, never twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from shelflife.adapters.archive.segments import is_segment_key, read_manifest
from shelflife.adapters.db.tables import ArchiveCopy, ArchiveSegment, Customer, RetentionRun
from shelflife.bootstrap import App, build_app
from shelflife.config import Settings
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import InvalidInput
from shelflife.entrypoints.workers import helpers_for, worker_count
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import RunReport, run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, invoiced_buyers, lines, make_app, order

BUYERS = 24


def _amazon_number(i: int) -> str:
    return f"302-{i:07d}-{i:07d}"


def _second_worker(first: App) -> App:
    """Another process's view of the same installation: its own engine and connections."""
    settings = Settings(
        home=first.settings.home,
        database_url=first.settings.database_url,
        batch_size=first.settings.batch_size,
    )
    return build_app(settings, FixedClock(T0))


@pytest.mark.postgres
def test_two_workers_in_parallel_archive_and_mask_every_buyer_exactly_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SKIP LOCKED hands each batch to one worker; SQLite serialises writers anyway, so the
    claim only matters (and is only tested) on PostgreSQL."""
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("parallel_workers")
    first, _clock = make_app(url, tmp_path / "home")
    first.settings.batch_size = 3
    second = _second_worker(first)
    try:
        orders = [
            order(
                _amazon_number(i),
                shipped_at=T0,
                suffix=f"-{i}",
                customer={"customer_nr_external": f"A{i:013d}"},
            )
            for i in range(1, BUYERS + 1)
        ]
        assert import_lines(first, lines(*orders)).refused == []
        set_feature(first.ports(), "main", True, "ops")

        reports: dict[str, RunReport] = {}
        start = threading.Barrier(2)

        def work(name: str, app: App) -> None:
            start.wait()
            reports[name] = run_retention(app.ports(), T0 + days(31))

        threads = [
            threading.Thread(target=work, args=(n, a))
            for n, a in (("first", first), ("second", second))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

        assert set(reports) == {"first", "second"}
        assert sum(r.archived for r in reports.values()) == BUYERS
        assert sum(r.masked for r in reports.values()) == BUYERS
        assert sum(r.archive_failed for r in reports.values()) == 0
        with first.engine.connect() as conn:
            copies = conn.execute(select(func.count()).select_from(ArchiveCopy)).scalar_one()
            buyer_ids = list(conn.execute(select(Customer.id).order_by(Customer.id)).scalars())
            segments = conn.execute(select(func.count()).select_from(ArchiveSegment)).scalar_one()
            unmasked = conn.execute(
                select(func.count()).select_from(Customer).where(Customer.masked_at.is_(None))
            ).scalar_one()
        assert (copies, unmasked) == (BUYERS, 0)
        written = [
            e.customer_id
            for o in first.archive.list_objects()
            for e in read_manifest(first.archive.get(o.key))
        ]
        assert sorted(written) == buyer_ids  # every buyer in exactly one segment
        assert segments == BUYERS // 3  # one segment per batch of 3, whichever worker took it
    finally:
        second.close()
        first.close()
        cluster.drop_database("parallel_workers")


@pytest.mark.postgres
def test_a_run_with_helper_processes_handles_every_buyer_once_and_is_one_run(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`run --workers 3`: two real helper processes beside the run; one run record."""
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("run_helpers")
    app, _clock = make_app(url, tmp_path / "home")
    app.settings.batch_size = 2
    try:
        orders = [
            order(
                _amazon_number(i),
                shipped_at=T0,
                suffix=f"-{i}",
                customer={"customer_nr_external": f"A{i:013d}"},
            )
            for i in range(1, BUYERS + 1)
        ]
        assert import_lines(app, lines(*orders)).refused == []
        set_feature(app.ports(), "main", True, "ops")

        report = run_retention(
            app.ports(), T0 + days(31), helpers=helpers_for(app.settings, workers=3)
        )

        assert (report.archived, report.masked, report.archive_failed) == (BUYERS, BUYERS, 0)
        with app.engine.connect() as conn:
            runs = conn.execute(
                select(RetentionRun.archived, RetentionRun.masked, RetentionRun.error)
            ).all()
            copies = conn.execute(select(func.count()).select_from(ArchiveCopy)).scalar_one()
            buyer_ids = list(conn.execute(select(Customer.id).order_by(Customer.id)).scalars())
        assert [tuple(r) for r in runs] == [(BUYERS, BUYERS, None)]
        assert copies == BUYERS
        written = [
            e.customer_id
            for o in app.archive.list_objects()
            for e in read_manifest(app.archive.get(o.key))
        ]
        assert sorted(written) == buyer_ids
    finally:
        app.close()
        cluster.drop_database("run_helpers")


def test_more_than_one_worker_is_refused_on_sqlite_and_the_setting_ignored(
    tmp_path: Path,
) -> None:
    app, _clock = make_app(f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "home")
    try:
        app.settings.archive_workers = 4
        assert worker_count(app, None) == 1
        assert worker_count(app, 1) == 1
        with pytest.raises(InvalidInput) as refused:
            worker_count(app, 2)
        assert str(refused.value) == (
            "several workers need PostgreSQL: SQLite lets one process write at a time, so a "
            "run on SQLite has one worker"
        )
    finally:
        app.close()


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


HELPING = 5
"""Database sessions of `run --workers 2` once both helpers work: the run's batches, its lock
and its work behind the batches, and each helper's batches (more come and go)."""


def _sessions(app: App) -> int:
    """Sessions of other processes on the app's database."""
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


@pytest.mark.postgres
def test_ctrl_c_stops_a_run_with_helpers_with_one_line_and_no_traceback(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Ctrl-C reaches every process of the terminal's foreground group, the helpers of
    `run --workers 2` included: the operator sees the run's one line, no helper's traceback,
    and the run is recorded as interrupted."""
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("run_helpers_ctrl_c")
    app, _clock = make_app(url, tmp_path / "home", batch_size=3)
    try:
        assert import_lines(app, invoiced_buyers(600)).refused == []
        set_feature(app.ports(), "main", True, "ops")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")}
        env.update(
            SHELFLIFE_HOME=str(app.settings.home),
            SHELFLIFE_DATABASE_URL=url,
            SHELFLIFE_BATCH_SIZE="3",
        )
        command = [str(Path(sys.executable).parent / "shelflife"), "run", "--workers", "2"]
        command += ["--as-of", (T0 + days(33)).isoformat()]
        process = subprocess.Popen(
            command,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if _sessions(app) >= HELPING:
                    seen = sum(is_segment_key(o.key) for o in app.archive.list_objects())
                    while process.poll() is None and time.monotonic() < deadline:
                        # Batches go on in every session: some are the helpers'.
                        if (
                            sum(is_segment_key(o.key) for o in app.archive.list_objects())
                            >= seen + 30
                        ):
                            break
                        time.sleep(0.01)
                    break
                time.sleep(0.01)
            assert process.poll() is None, "the run ended before it could be interrupted"
            os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        finally:
            _, stderr = process.communicate(timeout=60)

        assert process.returncode == 1
        assert stderr.decode() == "error: interrupted; rerun the command to complete the work\n"
        with app.engine.connect() as conn:
            runs = conn.execute(
                select(RetentionRun.error, RetentionRun.archived, RetentionRun.masked)
            ).all()
            archived, masked = conn.execute(
                select(
                    func.count(Customer.archived_revision),
                    func.count(Customer.masked_at),
                )
            ).one()
        # The helpers ended after their batches and sent their counts: the record counts
        # every committed batch, theirs too, not only the run's own.
        assert [tuple(run) for run in runs] == [("interrupted", archived, masked)]
        assert archived > 0
    finally:
        app.close()
        cluster.drop_database("run_helpers_ctrl_c")
