"""A helper process of `run --workers N` ends when its run ends before it (`kill PID` of the
run alone): it must not go on masking outside the run's lock and after the next run's reclaim.

Three real processes: this test, a stand-in for the run (killed with SIGKILL), and a helper
that would otherwise sleep for a minute."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection

from shelflife.entrypoints.workers import end_with_the_run

LONG = 60.0
WAIT = 10.0


def _helper(ended_with_the_run: bool) -> None:
    if ended_with_the_run:
        end_with_the_run()
    time.sleep(LONG)


def _run(ended_with_the_run: bool, sending: Connection) -> None:
    """The stand-in for the run: starts one helper as `ProcessHelpers` does, says its pid,
    then waits to be killed."""
    helper = multiprocessing.get_context("spawn").Process(
        target=_helper, args=(ended_with_the_run,)
    )
    helper.start()
    sending.send(helper.pid)
    time.sleep(LONG)


def _alive(pid: int) -> bool:
    """Whether `pid` is still a running process (a zombie, ended but not reaped by init yet,
    counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _helper_alive_after_run_killed(ended_with_the_run: bool) -> bool:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    run = context.Process(target=_run, args=(ended_with_the_run, sending))
    run.start()
    helper_pid = receiving.recv()
    try:
        time.sleep(0.5)  # the helper is past its start-up
        os.kill(run.pid or 0, signal.SIGKILL)
        run.join()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and _alive(helper_pid):
            time.sleep(0.1)
        return _alive(helper_pid)
    finally:
        if _alive(helper_pid):
            os.kill(helper_pid, signal.SIGKILL)


def test_a_helper_ends_when_its_run_is_killed() -> None:
    assert not _helper_alive_after_run_killed(ended_with_the_run=True)


def test_without_the_watch_a_helper_outlives_its_killed_run() -> None:
    """The check above can fail: a helper that does not watch its run lives on."""
    assert _helper_alive_after_run_killed(ended_with_the_run=False)


def test_outside_a_helper_nothing_watches() -> None:
    before = threading.active_count()
    end_with_the_run()  # this process was not started by multiprocessing
    assert threading.active_count() == before
