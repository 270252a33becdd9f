"""AfterCommit on fakes, with a background unit of work: what a Ctrl-C does to the count of a
job running behind the batches. The jobs with a real database: tests/integration/
test_after_commit.py."""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import replace

import pytest

from shelflife.domain.ports import UnitOfWork
from shelflife.services.after_commit import AfterCommit
from tests.support.fakes import FakeUnitOfWork, fake_ports

MASKED = 4


def _waiting_for_a_job(thread_id: int) -> bool:
    """Whether the thread is blocked in `Future.result` (in its condition's `wait`)."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name == "result" and "concurrent" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_while_waiting_for_a_job_still_counts_the_job_once_it_ends() -> None:
    """The operator presses Ctrl-C while the next batch waits for the previous batch's
    masking: the interrupt goes on, and the masking, which commits all the same, is counted
    (it goes into the stopped run's record)."""
    main = threading.main_thread().ident
    assert main is not None
    go = threading.Event()
    finished: list[int] = []

    def interrupt_the_wait() -> None:
        for _ in range(10_000):
            if _waiting_for_a_job(main):
                break
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)
        go.set()

    def masking(_uow: UnitOfWork) -> int:
        go.wait()
        finished.append(1)
        return MASKED

    def next_masking(_uow: UnitOfWork) -> int:
        raise AssertionError("never handed on: the wait before it was interrupted")

    ports = replace(fake_ports(), background_uow=FakeUnitOfWork)
    after_commit = AfterCommit(ports)
    interrupter = threading.Thread(target=interrupt_the_wait)

    def two_batches() -> None:
        with after_commit:
            after_commit.submit(masking)
            interrupter.start()
            after_commit.submit(next_masking)

    # Python's own Ctrl-C handler: a library an earlier test loaded may have put its own in
    # place.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            two_batches()
    finally:
        signal.signal(signal.SIGINT, previous)
        go.set()
        interrupter.join()

    assert finished == [1]
    assert after_commit.total == MASKED
