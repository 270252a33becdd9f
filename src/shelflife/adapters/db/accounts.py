"""Staff accounts, their password history and API tokens: the SQL behind services/accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from shelflife.adapters.db.tables import ApiToken, PasswordHistory, User, WebSession
from shelflife.domain.accounts import PASSWORD_HISTORY, UserView
from shelflife.domain.errors import Conflict, NotFound


def find_user(conn: Connection, name: str, lock: bool = False) -> Any:
    query = select(User.__table__).where(User.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return row


def user_exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(User.id).where(User.name == name)).first() is not None


def create_user(conn: Connection, name: str, role: str, password_hash: str, now: datetime) -> int:
    if user_exists(conn, name):
        raise Conflict(f"a user named {name!r} exists already")
    user_id = conn.execute(
        insert(User)
        .values(
            name=name,
            role=role,
            password_hash=password_hash,
            failed_logins=0,
            created_at=now,
            updated_at=now,
        )
        .returning(User.id)
    ).scalar_one()
    conn.execute(
        insert(PasswordHistory).values(user_id=user_id, password_hash=password_hash, created_at=now)
    )
    return int(user_id)


def recent_password_hashes(conn: Connection, user_id: int) -> list[str]:
    return list(
        conn.execute(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.user_id == user_id)
            .order_by(PasswordHistory.id.desc())
            .limit(PASSWORD_HISTORY)
        ).scalars()
    )


def set_password(conn: Connection, user_id: int, password_hash: str, now: datetime) -> None:
    conn.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=password_hash, updated_at=now, failed_logins=0, locked_at=None)
    )
    conn.execute(
        insert(PasswordHistory).values(user_id=user_id, password_hash=password_hash, created_at=now)
    )
    keep = select(PasswordHistory.id).where(PasswordHistory.user_id == user_id)
    keep = keep.order_by(PasswordHistory.id.desc()).limit(PASSWORD_HISTORY)
    conn.execute(
        delete(PasswordHistory).where(
            PasswordHistory.user_id == user_id, PasswordHistory.id.not_in(keep.scalar_subquery())
        )
    )


def update_user(conn: Connection, user_id: int, **values: Any) -> None:
    conn.execute(update(User).where(User.id == user_id).values(**values))


def list_users(conn: Connection) -> list[UserView]:
    active = (
        select(ApiToken.user_id, func.count().label("n"))
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
        .subquery()
    )
    rows = conn.execute(
        select(User.__table__, func.coalesce(active.c.n, 0).label("tokens"))
        .outerjoin(active, active.c.user_id == User.id)
        .order_by(User.name)
    )
    return [
        UserView(
            r.name, r.role, r.created_at, r.disabled_at, r.locked_at, r.failed_logins, r.tokens
        )
        for r in rows
    ]


def add_token(conn: Connection, user_id: int, digest: str, now: datetime) -> int:
    return int(
        conn.execute(
            insert(ApiToken)
            .values(user_id=user_id, token_sha256=digest, created_at=now)
            .returning(ApiToken.id)
        ).scalar_one()
    )


def revoke_token(conn: Connection, token_id: int, now: datetime) -> str:
    """Revoke one token by id; returns its owner's name."""
    row = conn.execute(
        select(ApiToken.id, ApiToken.revoked_at, User.name)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id)
    ).first()
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now))
    return str(row.name)


def revoke_user_tokens(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def token_owner(conn: Connection, digest: str) -> Any:
    """The active token with this digest and its user, or None."""
    return conn.execute(
        select(ApiToken.id.label("token_id"), User.__table__)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_sha256 == digest, ApiToken.revoked_at.is_(None))
    ).first()


def touch_token(conn: Connection, token_id: int, now: datetime) -> None:
    conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def add_session(
    conn: Connection, user_id: int, digest: str, csrf_token: str, now: datetime
) -> None:
    conn.execute(
        insert(WebSession).values(
            user_id=user_id,
            token_sha256=digest,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
        )
    )


def live_session(conn: Connection, digest: str) -> Any:
    """The open session with this token digest, with its user's columns, or None."""
    return conn.execute(
        select(
            WebSession.id.label("session_id"),
            WebSession.csrf_token,
            WebSession.created_at.label("session_created_at"),
            WebSession.last_seen_at,
            User.__table__,
        )
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_sha256 == digest, WebSession.ended_at.is_(None))
    ).first()


def touch_session(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now))


def end_session(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def end_user_sessions(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )
