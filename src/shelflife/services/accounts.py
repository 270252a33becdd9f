"""Staff accounts: add, list, disable, change passwords, unlock, API tokens, and sign-in.

Every change is written to the audit log in the same transaction as the change itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from shelflife.adapters.auth.secrets import (
    hash_password,
    new_api_token,
    new_session_token,
    password_matches,
    token_sha256,
)
from shelflife.adapters.db import accounts as sql
from shelflife.adapters.db import audit_log
from shelflife.bootstrap import App
from shelflife.domain.access import Role, parse_role
from shelflife.domain.accounts import (
    LOCK_AFTER_FAILED_LOGINS,
    SESSION_IDLE_TIMEOUT,
    SESSION_MAX_AGE,
    Account,
    UserView,
    validate_new_password,
    validate_user_name,
)
from shelflife.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
)

log = logging.getLogger(__name__)


def add_user(app: App, name: str, role: str, password: str, actor: str) -> None:
    name = validate_user_name(name)
    parsed = parse_role(role)
    validate_new_password(password, name)
    digest = hash_password(password)  # slow on purpose: before the transaction opens
    now = app.clock.now()
    with app.engine.begin() as conn:
        sql.create_user(conn, name, parsed.value, digest, now)
        audit_log.append(conn, now, actor, "user.added", name, {"role": parsed.value})


def list_users(app: App) -> list[UserView]:
    with app.engine.connect() as conn:
        return sql.list_users(conn)


def disable_user(app: App, name: str, actor: str) -> bool:
    """Disable an account and revoke its tokens; returns False when it was disabled already."""
    now = app.clock.now()
    with app.engine.begin() as conn:
        user = sql.find_user(conn, name, lock=True)
        if user.disabled_at is not None:
            return False
        sql.update_user(conn, user.id, disabled_at=now, updated_at=now)
        sql.revoke_user_tokens(conn, user.id, now)
        sql.end_user_sessions(conn, user.id, now)
        audit_log.append(conn, now, actor, "user.disabled", name)
    return True


def change_password(app: App, name: str, password: str, actor: str) -> None:
    """Set a new password; none of the last ten may be reused. Also unlocks the account."""
    with app.engine.connect() as conn:
        user = sql.find_user(conn, name)
        history = sql.recent_password_hashes(conn, user.id)
    validate_new_password(password, user.name)
    if any(password_matches(old, password) for old in history):
        raise InvalidInput("password: this password was used recently; choose another one")
    digest = hash_password(password)
    now = app.clock.now()
    with app.engine.begin() as conn:
        user = sql.find_user(conn, name, lock=True)
        sql.set_password(conn, user.id, digest, now)
        sql.end_user_sessions(conn, user.id, now)
        audit_log.append(conn, now, actor, "user.password_changed", name)


def unlock_user(app: App, name: str, actor: str) -> bool:
    now = app.clock.now()
    with app.engine.begin() as conn:
        user = sql.find_user(conn, name, lock=True)
        if user.locked_at is None and user.failed_logins == 0:
            return False
        sql.update_user(conn, user.id, locked_at=None, failed_logins=0, updated_at=now)
        audit_log.append(conn, now, actor, "user.unlocked", name)
    return True


@dataclass(frozen=True)
class NewToken:
    id: int
    user: str
    token: str


def create_token(app: App, name: str, actor: str) -> NewToken:
    """A new API token for an active user; the token is returned once and stored hashed."""
    token = new_api_token()
    now = app.clock.now()
    with app.engine.begin() as conn:
        user = sql.find_user(conn, name, lock=True)
        if user.disabled_at is not None:
            raise Conflict(f"user {name!r} is disabled; enable a new user instead")
        token_id = sql.add_token(conn, user.id, token_sha256(token), now)
        audit_log.append(conn, now, actor, "token.created", name, {"token_id": token_id})
    return NewToken(token_id, name, token)


def revoke_token(app: App, token_id: int, actor: str) -> str:
    now = app.clock.now()
    with app.engine.begin() as conn:
        owner = sql.revoke_token(conn, token_id, now)
        audit_log.append(conn, now, actor, "token.revoked", owner, {"token_id": token_id})
    return owner


_LOGIN_REFUSED = "user name or password is wrong, or the account is locked or disabled"
"""One message for every refusal: a caller must not learn which names exist."""


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password("not a password of anyone"))
    return _DUMMY[0]


def sign_in(app: App, name: str, password: str, source: str = "web") -> Account:
    """Check a password login. Ten failures in a row lock the account until an admin unlocks
    it; every attempt is audited (the name as typed is recorded only if it is a known user)."""
    now = app.clock.now()
    with app.engine.connect() as conn:
        try:
            user = sql.find_user(conn, name.strip())
        except NotFound:
            user = None
    # Always verify one hash, so the answer takes as long for an unknown name as a known one.
    matches = password_matches(user.password_hash if user else _dummy_hash(), password)
    ok = user is not None and user.disabled_at is None and user.locked_at is None and matches
    # The failure is committed before it is raised: a refused login must stay on record.
    with app.engine.begin() as conn:
        if user is None:
            audit_log.append(conn, now, "anonymous", "login.failed", None, {"source": source})
            account = None
        else:
            account = _record_attempt(conn, user.name, ok, now, source)
    if account is None:
        raise Forbidden(_LOGIN_REFUSED)
    return account


def _record_attempt(
    conn: Connection, name: str, ok: bool, now: datetime, source: str
) -> Account | None:
    current = sql.find_user(conn, name, lock=True)
    if ok:
        sql.update_user(conn, current.id, failed_logins=0)
        audit_log.append(conn, now, current.name, "login.succeeded", None, {"source": source})
        return Account(current.id, current.name, Role(current.role))
    detail: dict[str, str | int | None] = {"source": source}
    if current.locked_at is None and current.disabled_at is None:
        failures = current.failed_logins + 1
        locked = failures >= LOCK_AFTER_FAILED_LOGINS
        sql.update_user(conn, current.id, failed_logins=failures, locked_at=now if locked else None)
        detail["count"] = failures
        audit_log.append(conn, now, current.name, "login.failed", None, detail)
        if locked:
            audit_log.append(conn, now, "shelflife", "user.locked", current.name)
            log.warning("user %s locked after %d failed logins", current.name, failures)
    else:
        audit_log.append(conn, now, current.name, "login.failed", None, detail)
    return None


def account_for_token(app: App, token: str) -> Account:
    """The active, enabled user a bearer token belongs to; Forbidden otherwise."""
    now = app.clock.now()
    with app.engine.begin() as conn:
        row = sql.token_owner(conn, token_sha256(token.strip()))
        if row is None or row.disabled_at is not None:
            raise Forbidden("the API token is unknown, revoked or belongs to a disabled user")
        sql.touch_token(conn, row.token_id, now)
        return Account(row.id, row.name, Role(row.role))


@dataclass(frozen=True)
class SessionTicket:
    """What the browser gets at sign-in: the cookie value and the form token."""

    token: str
    csrf_token: str


@dataclass(frozen=True)
class SignedIn:
    account: Account
    csrf_token: str


def start_session(app: App, account: Account) -> SessionTicket:
    token, csrf = new_session_token(), new_session_token()
    with app.engine.begin() as conn:
        sql.add_session(conn, account.id, token_sha256(token), csrf, app.clock.now())
    return SessionTicket(token, csrf)


def session_account(app: App, token: str) -> SignedIn:
    """The signed-in user of a session cookie; NotAuthenticated when it is unknown, ended,
    idle too long, too old, or its user was disabled or locked meanwhile."""
    now = app.clock.now()
    with app.engine.begin() as conn:
        row = sql.live_session(conn, token_sha256(token))
        if row is None:
            raise NotAuthenticated("not signed in, or the session has ended")
        expired = (
            now - row.last_seen_at >= SESSION_IDLE_TIMEOUT
            or now - row.session_created_at >= SESSION_MAX_AGE
        )
        if expired or row.disabled_at is not None or row.locked_at is not None:
            sql.end_session(conn, row.session_id, now)
            raise NotAuthenticated("the session has ended; sign in again")
        sql.touch_session(conn, row.session_id, now)
        return SignedIn(Account(row.id, row.name, Role(row.role)), row.csrf_token)


def end_session(app: App, token: str) -> None:
    """Log out: the session cannot be used again, even with a copied cookie."""
    now = app.clock.now()
    with app.engine.begin() as conn:
        row = sql.live_session(conn, token_sha256(token))
        if row is None:
            return
        sql.end_session(conn, row.session_id, now)
        audit_log.append(conn, now, row.name, "logout", None)
