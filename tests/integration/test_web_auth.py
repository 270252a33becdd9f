"""Signing in to the web app and the API: cookies, CSRF, sessions, problem details."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from shelflife.domain.accounts import SESSION_IDLE_TIMEOUT
from shelflife.domain.clock import FixedClock
from shelflife.entrypoints.web.api import MAX_JSON_BYTES
from shelflife.entrypoints.web.app import SECURITY_HEADERS, create_web_app
from shelflife.services.accounts import add_user, create_token, disable_user
from shelflife.services.audit import recent_entries

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    add_user(app, "anna", "agent", PASSWORD, "test")
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as c:
        yield c


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _login(client: TestClient, password: str = PASSWORD) -> str:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"user_name": "anna", "password": password, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    return str(response.headers.get("set-cookie", ""))


def test_the_login_page_labels_its_fields_and_button(client: TestClient) -> None:
    html = client.get("/login").text
    assert '<label for="user_name">User name</label>' in html
    assert '<label for="password">Password</label>' in html
    assert '<button type="submit">Log in</button>' in html


def test_a_page_without_a_session_redirects_to_the_login(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login")


def test_login_sets_a_strict_httponly_secure_session_cookie(client: TestClient) -> None:
    cookie = _login(client)
    assert cookie.startswith("shelflife_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" in cookie
    home = client.get("/")
    assert home.status_code == 200
    assert "Signed in as anna" in home.text


def test_over_plain_http_the_cookie_is_not_marked_secure(app: App) -> None:
    add_user(app, "anna", "agent", PASSWORD, "test")
    with TestClient(create_web_app(app), base_url="http://shelflife.test") as plain:
        cookie = _login(plain)
    assert "HttpOnly" in cookie
    assert "Secure" not in cookie


def test_a_wrong_password_is_refused_with_401_and_no_session(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"user_name": "anna", "password": "wrong password!", "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "User name or password is wrong" in response.text
    assert "shelflife_session" not in response.headers.get("set-cookie", "")


def test_login_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post(
        "/login", data={"user_name": "anna", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert "shelflife_session" not in client.cookies


def test_a_too_long_password_is_an_error_page_that_does_not_quote_it(client: TestClient) -> None:
    page = client.get("/login")
    password = "Sommer2026!" * 100

    response = client.post(
        "/login", data={"user_name": "anna", "password": password, "csrf_token": _csrf(page.text)}
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "password: String should have at most 1000 characters" in response.text
    assert "Sommer2026" not in response.text
    assert "shelflife_session" not in client.cookies


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_form_larger_than_any_real_one_is_refused_before_it_is_read_whole(
    client: TestClient, declared: bool
) -> None:
    """Pages, /login among them, are posted before anyone signs in: like the API's bodies,
    no page's form may make the server hold more than the limit (many fields of 1000 bytes
    each pass any per-field limit)."""
    fields = b"&".join(b"f%d=" % n + b"x" * 1000 for n in range(100))
    body = b"user_name=anna&password=x&csrf_token=y&" + fields
    assert len(body) > MAX_JSON_BYTES
    content: bytes | Iterator[bytes] = (
        body if declared else iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
    )

    response = client.post(
        "/login",
        content=content,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 413
    assert "xxxx" not in response.text


def test_logout_needs_the_csrf_token_and_ends_the_session_for_good(client: TestClient) -> None:
    _login(client)
    session = client.cookies["shelflife_session"]
    forged = client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert client.get("/").status_code == 200
    token = _csrf(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    client.cookies.set("shelflife_session", session)  # a copied cookie does not come back
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_idle_session_expires(client: TestClient, app: App) -> None:
    _login(client)
    assert client.get("/").status_code == 200
    assert isinstance(app.clock, FixedClock)
    app.clock.instant += SESSION_IDLE_TIMEOUT
    assert client.get("/", follow_redirects=False).status_code == 303


def test_disabling_a_user_ends_their_open_session(client: TestClient, app: App) -> None:
    _login(client)
    disable_user(app, "anna", "boss")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_pages_are_not_cached_framed_or_allowed_third_party_content(client: TestClient) -> None:
    response = client.get("/login")
    assert response.headers["cache-control"] == "no-store"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_api_answers_401_problem_details_without_a_valid_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["status"], body["title"]) == (401, "Unauthorized")
        assert "token" in body["detail"]


def test_a_token_acts_as_its_user(client: TestClient, app: App) -> None:
    token = create_token(app, "anna", "test").token
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"name": "anna", "role": "agent"}
    assert "login.succeeded" not in [e.action for e in recent_entries(app.ports(), 10)]


def test_the_openapi_document_is_served(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert document["info"]["title"] == "shelflife API"
    assert {"/health", "/me"} <= set(document["paths"])


def test_the_api_docs_page_lists_the_operations_without_outside_scripts(
    client: TestClient,
) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "<code>GET</code>" in page.text
    assert "<code>/api/v1/health</code>" in page.text
    assert "https://" not in page.text  # nothing loaded from elsewhere
