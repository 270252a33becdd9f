"""Staff accounts, API tokens and the audit log on SQLite and PostgreSQL.

argon2's production parameters (64 MiB, 3 passes) are what the code uses; these tests swap in
cheap parameters so that eleven password changes do not take a minute. The hashes are still
argon2id.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import ApiToken, PasswordHistory, User
from shelflife.bootstrap import App
from shelflife.domain.access import Role
from shelflife.domain.accounts import LOCK_AFTER_FAILED_LOGINS, PASSWORD_HISTORY
from shelflife.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from shelflife.services.accounts import (
    account_for_token,
    add_user,
    change_password,
    create_token,
    disable_user,
    list_users,
    revoke_token,
    sign_in,
    unlock_user,
)
from shelflife.services.audit import recent_entries, verify_audit_log

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def _actions(app: App) -> list[str]:
    return [e.action for e in reversed(recent_entries(app.ports(), 1000))]


def test_a_user_is_stored_with_an_argon2_hash_and_audited(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops (cli)")
    with app.engine.connect() as conn:
        stored = conn.execute(select(User.password_hash, User.role)).one()
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert stored.role == "agent"
    assert [(u.name, u.role, u.active_tokens) for u in list_users(app)] == [("anna", "agent", 0)]
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject, dict(entry.detail)) == (
        "ops (cli)",
        "user.added",
        "anna",
        {"role": "agent"},
    )


@pytest.mark.parametrize(
    ("name", "role", "password", "error", "message"),
    [
        ("anna", "agent", "x" * 11, InvalidInput, "at least 12 characters"),
        ("anna", "root", PASSWORD, InvalidInput, "agent, admin, support"),
        ("an na", "agent", PASSWORD, InvalidInput, "user name"),
        ("anna", "agent", "anna", InvalidInput, "at least 12"),
        ("annabelle123", "agent", "Annabelle123", InvalidInput, "must not be the user name"),
        ("anna", "agent", "twelve chars\nplus", InvalidInput, "line breaks"),
    ],
)
def test_bad_accounts_are_refused_and_nothing_is_written(
    app: App, name: str, role: str, password: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        add_user(app, name, role, password, "ops")
    assert list_users(app) == []
    assert _actions(app) == []


def test_a_second_user_with_the_same_name_is_a_conflict(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    with pytest.raises(Conflict, match="exists already"):
        add_user(app, "anna", "admin", PASSWORD + "!", "ops")


def test_none_of_the_last_ten_passwords_can_be_reused(app: App) -> None:
    add_user(app, "anna", "agent", "password-number-00", "ops")
    for i in range(1, PASSWORD_HISTORY + 1):
        change_password(app, "anna", f"password-number-{i:02d}", "ops")
    # The current one and the nine before it are remembered; number 00 is the eleventh back.
    for i in (PASSWORD_HISTORY, 5, 1):
        with pytest.raises(InvalidInput, match="used recently"):
            change_password(app, "anna", f"password-number-{i:02d}", "ops")
    change_password(app, "anna", "password-number-00", "ops")
    with app.engine.connect() as conn:
        kept = conn.execute(select(PasswordHistory.id)).all()
    assert len(kept) == PASSWORD_HISTORY
    assert sign_in(app, "anna", "password-number-00").name == "anna"


def test_ten_failed_logins_lock_the_account_until_an_admin_unlocks_it(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    for _ in range(LOCK_AFTER_FAILED_LOGINS - 1):
        with pytest.raises(Forbidden):
            sign_in(app, "anna", "wrong password!")
    assert sign_in(app, "anna", PASSWORD).role is Role.AGENT  # a success resets the count
    for _ in range(LOCK_AFTER_FAILED_LOGINS):
        with pytest.raises(Forbidden):
            sign_in(app, "anna", "wrong password!")
    with pytest.raises(Forbidden):
        sign_in(app, "anna", PASSWORD)  # locked: the right password no longer helps
    assert "user.locked" in _actions(app)
    assert unlock_user(app, "anna", "boss") is True
    assert sign_in(app, "anna", PASSWORD).name == "anna"
    assert unlock_user(app, "anna", "boss") is False


def test_a_refused_login_says_the_same_for_unknown_users_and_wrong_passwords(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    with pytest.raises(Forbidden) as unknown:
        sign_in(app, "nobody", PASSWORD)
    with pytest.raises(Forbidden) as wrong:
        sign_in(app, "anna", "wrong password!")
    assert str(unknown.value) == str(wrong.value)
    failed = [e for e in recent_entries(app.ports(), 10) if e.action == "login.failed"]
    assert {e.actor for e in failed} == {"anonymous", "anna"}
    assert all("nobody" not in str(e) and PASSWORD not in str(e) for e in failed)


def test_a_token_is_shown_once_stored_hashed_and_works_until_revoked(app: App) -> None:
    add_user(app, "api", "admin", PASSWORD, "ops")
    created = create_token(app, "api", "ops")
    assert created.token.startswith("slf_")
    assert len(created.token) > 40
    with app.engine.connect() as conn:
        stored = conn.execute(select(ApiToken.token_sha256)).scalar_one()
    assert created.token not in stored
    account = account_for_token(app, created.token)
    assert (account.name, account.role) == ("api", Role.ADMIN)
    with pytest.raises(Forbidden):
        account_for_token(app, created.token + "x")
    assert revoke_token(app, created.id, "ops") == "api"
    with pytest.raises(Forbidden):
        account_for_token(app, created.token)
    with pytest.raises(NotFound):
        revoke_token(app, created.id + 100, "ops")


def test_disabling_a_user_revokes_their_tokens_and_refuses_their_login(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    token = create_token(app, "anna", "ops").token
    assert disable_user(app, "anna", "ops") is True
    assert disable_user(app, "anna", "ops") is False
    with pytest.raises(Forbidden):
        account_for_token(app, token)
    with pytest.raises(Forbidden):
        sign_in(app, "anna", PASSWORD)
    with pytest.raises(Conflict, match="disabled"):
        create_token(app, "anna", "ops")
    assert [u.active_tokens for u in list_users(app)] == [0]


def test_the_audit_chain_verifies_and_reports_where_an_entry_was_changed(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    create_token(app, "anna", "ops")
    sign_in(app, "anna", PASSWORD)
    check = verify_audit_log(app.ports())
    assert (check.intact, check.checked) == (True, 3)
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    check = verify_audit_log(app.ports())
    assert (check.intact, check.checked, check.broken_at) == (False, 1, 2)


def test_a_deleted_audit_entry_is_found(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "ops")
    app.clock.instant += timedelta(minutes=1)  # type: ignore[attr-defined]
    create_token(app, "anna", "ops")
    sign_in(app, "anna", PASSWORD)
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    check = verify_audit_log(app.ports())
    assert (check.intact, check.broken_at, check.reason) == (False, 3, "entry 2 is missing")
