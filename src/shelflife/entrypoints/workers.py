"""Helper processes of a nightly run: `shelflife run --workers N` on PostgreSQL.

The work is Python per row (snapshots, sealing, JSON), so threads would share one core; each
helper is its own process with its own connection, started fresh (`spawn`: nothing of the
parent's engine or key material is inherited). Helpers claim batches with
`FOR UPDATE SKIP LOCKED` like the run itself; the run records itself, waits for them, adds up
their counts and reclaims once (see `services.pipeline.run_retention`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from datetime import datetime
from functools import partial
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType

from shelflife.adapters.db.engine import database_error
from shelflife.bootstrap import App, build_app
from shelflife.config import Settings
from shelflife.domain.errors import InvalidInput, ShelflifeError, Unavailable
from shelflife.services.documents import RunReportDocument
from shelflife.services.pipeline import StartHelpers, work_night

MAX_WORKERS = 64
ORPHANED = 3  # a helper's exit code when its run ended before it
STOP_GRACE = 60.0
"""Seconds a stopping run waits for its helpers to end their batches and send their counts:
a batch takes about a second at the default size."""

ONE_WRITER = (
    "several workers need PostgreSQL: SQLite lets one process write at a time, so a run on "
    "SQLite has one worker"
)


def worker_count(app: App, requested: int | None) -> int:
    """How many processes work a night: `requested`, else SHELFLIFE_ARCHIVE_WORKERS. On
    SQLite always one: the setting is ignored there (one configuration file can serve both
    backends), an explicit request for more is refused."""
    sqlite = app.engine.dialect.name == "sqlite"
    if requested is None:
        return 1 if sqlite else app.settings.archive_workers
    if sqlite and requested > 1:
        raise InvalidInput(ONE_WRITER)
    return requested


def helpers_for(settings: Settings, workers: int) -> StartHelpers | None:
    """What starts the `workers - 1` helpers beside the run itself; None for one worker."""
    if workers <= 1:
        return None
    return partial(ProcessHelpers, settings, workers - 1)


class ProcessHelpers:
    """`count` helper processes working the night as of `as_of` from the moment they exist."""

    def __init__(self, settings: Settings, count: int, as_of: datetime) -> None:
        context = multiprocessing.get_context("spawn")
        self._running: list[tuple[BaseProcess, Connection]] = []
        self._reports: list[RunReportDocument] = []
        self._stop_requested = context.Event()
        # Started first: starting it unblocks SIGINT in the calling thread (see below).
        resource_tracker.ensure_running()
        try:
            for _ in range(count):
                receiving, sending = context.Pipe(duplex=False)
                process = context.Process(
                    target=_help,
                    args=(settings, as_of, sending, self._stop_requested),
                    name="shelflife-run-helper",
                )
                # Ctrl-C reaches every process of the terminal's foreground group: a helper
                # would die with a traceback (while still importing, too). It is the run's to
                # handle (it stops the helpers), so helpers start with SIGINT blocked: a spawned
                # process keeps the signal mask of the thread that started it.
                unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                try:
                    process.start()
                    self._running.append((process, receiving))
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
                sending.close()
        except BaseException:  # Ctrl-C while starting them: none is left working
            self.stop()
            raise

    def wait(self) -> list[RunReportDocument]:
        """Every helper's counts; the first failure is raised once all have ended (the counts
        of the others stay for `stop`)."""
        failure = self._collect(None)
        if failure is not None:
            raise failure
        return list(self._reports)

    def stop(self) -> list[RunReportDocument]:
        """Ask every helper to end after the batch it is in, and collect its counts; one that
        has not answered within `STOP_GRACE` seconds (or once the operator presses Ctrl-C
        again) is ended without them."""
        self._stop_requested.set()
        try:
            self._collect(STOP_GRACE)
        finally:
            for process, receiving in self._running:
                process.terminate()
                process.join()
                receiving.close()
            self._running = []
        return list(self._reports)

    def _collect(self, grace: float | None) -> ShelflifeError | None:
        """Each running helper's outcome, waiting as long as it takes (`grace` None) or until
        `grace` seconds from now; keeps the counts and returns the first failure."""
        deadline = None if grace is None else time.monotonic() + grace
        failure: ShelflifeError | None = None
        for entry in list(self._running):
            process, receiving = entry
            if deadline is not None and not receiving.poll(max(0.0, deadline - time.monotonic())):
                continue  # left running: `stop` ends it
            try:
                outcome = receiving.recv()
            except EOFError:  # killed, or died before it could answer
                outcome = Unavailable(
                    f"a helper process of the run ended without a result (exit code "
                    f"{_ended(process)})"
                )
            process.join()
            receiving.close()
            self._running.remove(entry)
            if isinstance(outcome, ShelflifeError):
                failure = failure or outcome
            else:
                self._reports.append(RunReportDocument.model_validate(outcome))
        return failure


def _ended(process: BaseProcess) -> int | None:
    process.join()
    return process.exitcode


def _help(
    settings: Settings, as_of: datetime, sending: Connection, stop_requested: EventType
) -> None:
    """A helper's whole life: its own app, its share of the night (until the run asks it to
    stop), its counts to the run.
    Only the project's own errors travel as they are (their messages hold no PII), a database's
    failure as ours (`database_error`); of any other error only the type."""
    outcome: object
    end_with_the_run()
    try:
        app = build_app(settings)
        try:
            outcome = work_night(app.ports(), as_of, stop_requested.is_set).model_dump(mode="json")
        finally:
            app.close()
    except ShelflifeError as exc:
        outcome = exc
    except Exception as exc:
        # A lock not granted in time, a server gone: said as the command line says it.
        outcome = database_error(exc) or Unavailable(
            f"a helper process of the run failed: unexpected {type(exc).__name__}"
        )
    try:
        sending.send(outcome)
    except Exception:  # an error that does not pickle: say so without it
        sending.send(Unavailable("a helper process of the run failed"))
    sending.close()


def end_with_the_run() -> None:
    """End this helper as soon as the run that started it ends (killed, say, by `kill PID`
    of the run alone): the run's lock and reclaim do not cover a helper that outlives it, so
    its masks could follow the next run's reclaim and leave old values in the database files
    until a later run masks. Ending mid-batch is safe: the server rolls back the open
    transaction, and what was committed is whole (the next run masks buyers whose copies were
    committed; a segment written but not recorded is one `archive orphans` lists)."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a helper
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(ORPHANED)

    threading.Thread(target=watch, name="shelflife-run-helper-watch", daemon=True).start()
