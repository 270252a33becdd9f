"""Rules for staff accounts: names, passwords, lockout. Stdlib only; hashing is an adapter's job."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shelflife.domain.access import Role
from shelflife.domain.errors import InvalidInput

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
"""Long passphrases are welcome; the cap only keeps hashing cheap for an attacker's input."""

PASSWORD_HISTORY = 10
"""A new password may not be any of the user's last ten."""

LOCK_AFTER_FAILED_LOGINS = 10
"""Failed logins in a row after which the account locks until an admin unlocks it."""

SESSION_IDLE_TIMEOUT = timedelta(hours=2)
"""A browser left alone this long must sign in again: agents see personal data."""

SESSION_MAX_AGE = timedelta(hours=12)
"""No session outlives a working day, however active."""

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def validate_user_name(name: str) -> str:
    cleaned = name.strip()
    if not _USER_NAME.fullmatch(cleaned):
        raise InvalidInput(
            "user name: 1 to 100 characters, letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return cleaned


def validate_new_password(password: str, user_name: str) -> str:
    """Length is what makes a password strong; the user name is the first thing guessed."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password: at least {MIN_PASSWORD_LENGTH} characters are required")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password: at most {MAX_PASSWORD_LENGTH} characters are allowed")
    if "\x00" in password or "\n" in password or "\r" in password:
        raise InvalidInput("password: must not contain line breaks or NUL characters")
    if password.strip().casefold() == user_name.casefold():
        raise InvalidInput("password: must not be the user name")
    return password


@dataclass(frozen=True)
class Account:
    """What a session or token resolves to: who, with which role."""

    id: int
    name: str
    role: Role


@dataclass(frozen=True)
class UserView:
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    locked_at: datetime | None
    failed_logins: int
    active_tokens: int
