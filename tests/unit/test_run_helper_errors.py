"""What a helper process of `run --workers N` sends the run when it fails: the project's own
errors as they are, a database's failure as the same clear message the command line gives
(never the library's text, which can quote PII), anything else by its type only."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from shelflife.adapters.db.engine import BUSY, CANNOT_CONNECT
from shelflife.entrypoints import workers
from shelflife.entrypoints.workers import _help

NIGHT = datetime(2026, 4, 4, 9, tzinfo=UTC)


class _App:
    def ports(self) -> object:
        return object()

    def close(self) -> None:
        return None


def _outcome(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> Any:
    def failing(_ports: object, _as_of: datetime, _stop_requested: object) -> None:
        raise failure

    monkeypatch.setattr(workers, "build_app", lambda _settings: _App())
    monkeypatch.setattr(workers, "work_night", failing)
    receiving, sending = multiprocessing.Pipe(duplex=False)
    _help(None, NIGHT, sending, multiprocessing.Event())  # type: ignore[arg-type]
    return receiving.recv()


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("UPDATE customers SET email = %(e)s", {"e": "x@example.org"}, orig)


@pytest.mark.parametrize(
    ("orig", "message"),
    [
        pytest.param(psycopg.errors.LockNotAvailable("Erika"), BUSY, id="lock-timeout"),
        pytest.param(psycopg.OperationalError("Erika"), CANNOT_CONNECT, id="server-gone"),
    ],
)
def test_a_helper_s_database_failure_reaches_the_run_as_the_clear_message(
    monkeypatch: pytest.MonkeyPatch, orig: BaseException, message: str
) -> None:
    outcome = _outcome(monkeypatch, _wrapped(orig))

    assert str(outcome) == message


def test_a_helper_s_other_failure_reaches_the_run_by_its_type_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = _outcome(monkeypatch, RuntimeError("Erika Mustermann"))

    assert str(outcome) == "a helper process of the run failed: unexpected RuntimeError"
