"""The work that follows a batch's commit (masking the buyers it archived, removing their PDFs
from the document store), done on a connection of its own while the next batch is worked.

Measured on the 1,000,000-customer PostgreSQL backlog (docs/performance.md, round 14): of a
batch's 755 ms, masking took 228 ms and the PDFs' removal 69 ms, nearly all of it waiting on
the database server while the run's process sat idle; the next batch's reading, sealing and
writing needs that process and little of the server. Where the database has one writer at a
time (SQLite: `Ports.background_uow` is None) the work runs at once instead, in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Self

from shelflife.domain.ports import Ports, UnitOfWork

log = logging.getLogger(__name__)

Job = Callable[[UnitOfWork], int]
"""Work on its own unit of work (which it commits itself); returns a count to add up."""


class AfterCommit:
    """Runs each job handed to it behind the batch that handed it, one job at a time: a job
    waits for the one before it, so jobs run in the order given and never side by side.
    Leaving the block waits for the last one, so that a step ends with nothing in flight (the
    reclaim after the run's steps needs every table to itself), and raises its error unless
    the step itself failed. `total` adds up the counts of the jobs that finished, the last
    one's once the block is left."""

    def __init__(self, ports: Ports) -> None:
        self._ports = ports
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-commit")
            if ports.background_uow is not None
            else None
        )
        self._running: Future[int] | None = None
        self.total = 0

    @property
    def behind(self) -> bool:
        """Whether jobs run behind the next batch (else at once, in `submit`)."""
        return self._pool is not None

    def __enter__(self) -> Self:
        return self

    def submit(self, job: Job) -> None:
        """Call once the batch whose work this is has committed."""
        if self._pool is None or self._ports.background_uow is None:
            self.total += job(self._ports.uow)
            return
        self._collect()
        self._running = self._pool.submit(job, self._ports.background_uow())

    def _collect(self) -> None:
        """Count the job once it has ended, or raise its error. A wait interrupted (Ctrl-C)
        leaves the job to `__exit__`, which waits for it and counts it: it commits anyway."""
        running = self._running
        if running is None:
            return
        try:
            count = running.result()
        except BaseException as exc:
            if running.done() and running.exception() is exc:  # the job's own error
                self._running = None
            raise
        self._running = None
        self.total += count

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                self._collect()
        finally:
            try:
                self._settle()
            finally:
                if self._pool is not None:
                    self._pool.shutdown(wait=True)

    def _settle(self) -> None:
        """Wait for a job left running by a failed step or an interrupted wait. The step's own
        failure is the one to report; what this job did not do stays due: the next run masks
        the buyers and removes the PDFs."""
        running, self._running = self._running, None
        if running is None:
            return
        wait([running])
        if (error := running.exception()) is not None:
            log.warning(
                "the work after a batch's commit stopped too (%s); the next run does what it left",
                type(error).__name__,
            )
        else:
            self.total += running.result()  # done: it counts in the report
