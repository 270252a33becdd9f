"""The database adapter turns library failures into our errors, without their messages."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from shelflife.adapters.db.engine import BUSY, CANNOT_CONNECT, database_error
from shelflife.domain.errors import DatabaseBusy, Unavailable


def sqlite_error(code: int, name: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database is locked: Erika Mustermann")
    exc.sqlite_errorcode = code
    exc.sqlite_errorname = name
    return exc


def wrapped(orig: BaseException) -> OperationalError:
    """As SQLAlchemy raises it, with the statement (and, without hide_parameters, its PII)."""
    return OperationalError("UPDATE customers SET email = ?", {"email": "x@example.org"}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        pytest.param(sqlite_error(sqlite3.SQLITE_BUSY, "SQLITE_BUSY"), id="sqlite-busy"),
        pytest.param(sqlite_error(sqlite3.SQLITE_LOCKED, "SQLITE_LOCKED"), id="sqlite-locked"),
        pytest.param(psycopg.errors.LockNotAvailable("lock timeout"), id="postgresql-55P03"),
    ],
)
def test_a_lock_not_granted_in_time_is_database_busy(orig: BaseException) -> None:
    for exc in (wrapped(orig), orig):
        translated = database_error(exc)
        assert isinstance(translated, DatabaseBusy)
        assert (str(translated), translated.exit_code) == (BUSY, 1)


@pytest.mark.parametrize(
    "orig",
    [
        pytest.param(sqlite_error(sqlite3.SQLITE_CANTOPEN, "SQLITE_CANTOPEN"), id="sqlite"),
        pytest.param(psycopg.OperationalError("connection refused"), id="postgresql"),
    ],
)
def test_a_database_out_of_reach_says_cannot_connect(orig: BaseException) -> None:
    translated = database_error(wrapped(orig))
    assert type(translated) is Unavailable
    assert str(translated) == CANNOT_CONNECT


def test_another_operational_failure_names_its_code_and_never_the_library_message() -> None:
    translated = database_error(wrapped(sqlite_error(sqlite3.SQLITE_FULL, "SQLITE_FULL")))
    assert type(translated) is Unavailable
    assert str(translated) == (
        "the database failed (SQLITE_FULL); each step is a transaction, so nothing was "
        "half-written: fix the cause and rerun"
    )


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(
            IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")), id="integrity"
        ),
        pytest.param(psycopg.errors.UniqueViolation("duplicate"), id="postgresql-unique"),
        pytest.param(ValueError("not a database error"), id="other"),
    ],
)
def test_what_is_not_an_operational_failure_is_left_alone(exc: BaseException) -> None:
    assert database_error(exc) is None
