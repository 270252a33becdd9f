"""`shelflife user`, `token` and `audit` end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.engine import make_engine
from tests.e2e.test_cli import Cli

PASSWORD = "correct horse battery"


@pytest.fixture
def ready(database_url: str, tmp_path: Path) -> Cli:
    """An initialised home on SQLite or PostgreSQL."""
    cli = Cli(tmp_path / "home", database_url)
    cli.ok("init")
    return cli


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def test_user_add_reads_the_password_from_stdin_and_lists_the_user(ready: Cli) -> None:
    result = ready.ok("user", "add", "anna", "--role", "agent", "--password-stdin", input=PASSWORD)
    assert result.stdout == "user anna added\n"
    assert PASSWORD not in result.output
    users = ready.json("user", "list")
    assert [(u["name"], u["role"], u["state"], u["active_tokens"]) for u in users] == [
        ("anna", "agent", "active", 0)
    ]


def test_user_add_without_password_stdin_or_with_a_short_password_exits_2(ready: Cli) -> None:
    result = ready("user", "add", "anna", "--role", "agent")
    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr
    result = ready("user", "add", "anna", "--role", "agent", "--password-stdin", input="short\n")
    assert result.exit_code == 2
    assert "at least 12 characters" in result.stderr
    assert ready.json("user", "list") == []


def test_token_create_json_prints_the_token_once_and_revoke_disables_it(ready: Cli) -> None:
    ready.ok("user", "add", "api", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    created = ready.json("token", "create", "api")
    assert set(created) == {"token", "id", "user"}
    assert created["token"].startswith("slf_")
    assert ready.json("user", "list")[0]["active_tokens"] == 1
    assert ready.ok("token", "revoke", str(created["id"])).stdout.startswith("token ")
    assert ready.json("user", "list")[0]["active_tokens"] == 0
    assert ready("token", "revoke", "999").exit_code == 2


def test_passwd_refuses_a_recent_password_and_disable_is_recorded(ready: Cli) -> None:
    ready.ok("user", "add", "anna", "--role", "agent", "--password-stdin", input=PASSWORD)
    result = ready("user", "passwd", "anna", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 2
    assert "used recently" in result.stderr
    ready.ok("user", "passwd", "anna", "--password-stdin", input=PASSWORD + " two")
    ready.ok("user", "disable", "anna")
    assert ready.json("user", "list")[0]["state"] == "disabled"
    actions = [e["action"] for e in ready.json("audit", "list")]
    assert actions == ["user.disabled", "user.password_changed", "user.added"]


def test_audit_verify_exits_1_and_names_the_entry_after_tampering(ready: Cli) -> None:
    ready.ok("user", "add", "anna", "--role", "agent", "--password-stdin", input=PASSWORD)
    ready.ok("token", "create", "anna")
    assert ready.ok("audit", "verify").stdout == "audit log intact: 2 entries checked\n"
    engine = make_engine(ready.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET subject = 'bob' WHERE seq = 1"))
    finally:
        engine.dispose()
    result = ready("audit", "verify")
    assert result.exit_code == 1
    assert "broken at entry 1: was changed after it was written" in result.stderr
    report = json.loads(ready("audit", "verify", "--json").stdout)
    assert (report["intact"], report["broken_at"]) == (False, 1)
