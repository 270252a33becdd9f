"""The admin pages: users and the audit log, and that other roles cannot open them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from shelflife.domain.accounts import LOCK_AFTER_FAILED_LOGINS
from shelflife.domain.errors import Forbidden
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user, list_users, sign_in

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    for name, role in (("boss", "admin"), ("anna", "agent"), ("sam", "support")):
        add_user(app, name, role, PASSWORD, "setup")
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
        yield client


def _as(client: TestClient, name: str) -> str:
    login = client.get("/login")
    client.post(
        "/login", data={"user_name": name, "password": PASSWORD, "csrf_token": _csrf(login.text)}
    )
    return _csrf(client.get("/").text)


@pytest.mark.parametrize("path", ["/users", "/audit"])
@pytest.mark.parametrize("role_user", ["anna", "sam"])
def test_only_admins_open_the_admin_pages(web: TestClient, path: str, role_user: str) -> None:
    _as(web, role_user)
    response = web.get(path)
    assert response.status_code == 403
    assert "may not" in response.text
    assert f'href="{path}"' not in web.get("/").text  # not offered in the header either


def test_an_admin_adds_a_user_and_the_audit_log_names_the_admin(web: TestClient, app: App) -> None:
    csrf = _as(web, "boss")
    page = web.get("/users")
    assert page.status_code == 200
    assert all(name in page.text for name in ("boss", "anna", "sam"))
    response = web.post(
        "/users",
        data={"name": "carla", "role": "agent", "password": PASSWORD, "csrf_token": csrf},
    )
    assert response.status_code == 200
    assert "User added." in response.text
    assert "carla" in [u.name for u in list_users(app)]
    audit = web.get("/audit").text
    assert "Chain intact" in audit
    assert re.search(r"<td>boss</td>\s*<td>user.added</td>\s*<td>carla</td>", audit)


def test_a_too_short_password_is_shown_and_nothing_is_added(web: TestClient, app: App) -> None:
    csrf = _as(web, "boss")
    response = web.post(
        "/users", data={"name": "carla", "role": "agent", "password": "short", "csrf_token": csrf}
    )
    assert response.status_code == 422
    assert "at least 12 characters" in response.text
    assert 'value="carla"' in response.text  # the form keeps what was typed, not the password
    assert "carla" not in [u.name for u in list_users(app)]


def test_user_changes_need_the_csrf_token(web: TestClient, app: App) -> None:
    _as(web, "boss")
    response = web.post(
        "/users", data={"name": "carla", "role": "agent", "password": PASSWORD, "csrf_token": "x"}
    )
    assert response.status_code == 403
    assert web.post("/users/anna/disable", data={"csrf_token": "x"}).status_code == 403
    assert "carla" not in [u.name for u in list_users(app)]
    assert all(u.disabled_at is None for u in list_users(app))


def test_an_admin_unlocks_a_locked_user_and_disables_another(web: TestClient, app: App) -> None:
    for _ in range(LOCK_AFTER_FAILED_LOGINS):
        with pytest.raises(Forbidden):
            sign_in(app, "anna", "wrong password!")
    csrf = _as(web, "boss")
    assert "Unlock anna" in web.get("/users").text
    assert "User unlocked." in web.post("/users/anna/unlock", data={"csrf_token": csrf}).text
    assert sign_in(app, "anna", PASSWORD).name == "anna"
    assert "User disabled" in web.post("/users/sam/disable", data={"csrf_token": csrf}).text
    with pytest.raises(Forbidden):
        sign_in(app, "sam", PASSWORD)


def test_the_audit_page_says_where_the_chain_breaks(web: TestClient, app: App) -> None:
    _as(web, "boss")
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    page = web.get("/audit").text
    assert "Chain broken at entry 2: was changed after it was written" in page
