"""The shops page on SQLite and PostgreSQL: support and admins see counts per shop and switch
retention only through a confirmation that shows what the next run will do; every switch is
audited with user and time; support never sees a buyer's data; agents may not come here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import ShopFeatureChange
from shelflife.bootstrap import App
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user
from shelflife.services.audit import recent_entries
from shelflife.services.pipeline import dry_run_shop
from shelflife.services.shops import list_shops
from tests.support import mixed_states
from tests.support.mixed_states import AS_OF, BUYERS, MixedStates

PASSWORD = "correct horse battery"
STATES = ("active", "ready_for_archiving", "archive_failed", "archived", "masked", "retrieved")


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def data(app: App) -> MixedStates:
    return mixed_states.build(app)


@pytest.fixture
def web(app: App, data: MixedStates) -> Iterator[TestClient]:
    for name, role in (("boss", "admin"), ("anna2", "agent"), ("sam", "support")):
        add_user(app, name, role, PASSWORD, "setup")
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
        yield client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _as(client: TestClient, name: str) -> str:
    login = client.get("/login")
    client.post(
        "/login", data={"user_name": name, "password": PASSWORD, "csrf_token": _csrf(login.text)}
    )
    return _csrf(client.get("/").text)


def _enabled(app: App) -> dict[str, bool]:
    return {s.name: s.retention_enabled for s in list_shops(app.ports())}


def _counts(html: str, shop: str) -> dict[str, int]:
    row = re.search(rf'<tr id="shop-{shop}">(.*?)</tr>', html, re.S)
    assert row is not None
    return {s: int(n) for s, n in re.findall(r'data-state="([a-z_]+)">(\d+)<', row.group(1))}


@pytest.mark.parametrize("user", ["sam", "boss"])
def test_support_and_admins_see_each_shop_with_its_counts(web: TestClient, user: str) -> None:
    _as(web, user)
    page = web.get("/shops")
    assert page.status_code == 200
    for shop, states in BUYERS.items():
        assert _counts(page.text, shop) == {s: states.get(s, 0) for s in STATES}
    assert re.search(r'<tr id="shop-closed">.*?<td>Europe/Berlin</td>.*?>off<', page.text, re.S)
    assert re.search(r'<tr id="shop-west">.*?on by ops, 2026-04-01 10:00 UTC', page.text, re.S)


def test_support_sees_no_buyer_data_on_the_shops_pages(web: TestClient, data: MixedStates) -> None:
    _as(web, "sam")
    pages = [web.get("/shops").text, web.get("/shops/feature?shop=main&enabled=off").text]
    pii = data.pii()
    assert [value for page in pages for value in pii if value in page] == []
    assert [nr for page in pages for nr in re.findall(r"\d{3}-\d{7}-\d{7}", page)] == []


def test_switching_shows_the_next_runs_counts_first_and_changes_nothing(
    web: TestClient, app: App
) -> None:
    _as(web, "sam")
    before = recent_entries(app.ports(), 1000)
    confirm = web.get("/shops/feature", params={"shop": "closed", "enabled": "on"})
    assert confirm.status_code == 200
    preview = dry_run_shop(app.ports(), "closed", AS_OF)
    assert (preview.archived, preview.masked) == (1, 1)
    assert "Switch retention on for closed?" in confirm.text
    assert '<dd id="next-archive">1 buyer</dd>' in confirm.text
    assert '<dd id="next-mask">1 buyer</dd>' in confirm.text
    assert '<input type="hidden" name="confirmed" value="yes">' in confirm.text
    # Posting the switch without the confirmation field shows the confirmation again.
    unconfirmed = web.post(
        "/shops/feature",
        data={"shop": "closed", "enabled": "on", "csrf_token": _csrf(confirm.text)},
    )
    assert unconfirmed.status_code == 200
    assert "Switch retention on for closed?" in unconfirmed.text
    assert _enabled(app)["closed"] is False
    assert recent_entries(app.ports(), 1000) == before


def test_a_confirmed_switch_is_made_and_audited_with_user_and_time(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "sam")
    response = web.post(
        "/shops/feature",
        data={"shop": "main", "enabled": "off", "confirmed": "yes", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = web.get(response.headers["location"])
    assert "Retention switched off for main." in page.text
    assert re.search(r'<tr id="shop-main">.*?off by sam, 2026-04-01 11:00 UTC', page.text, re.S)
    assert _enabled(app) == {"closed": False, "main": False, "west": True}
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject, entry.at) == (
        "sam",
        "feature.disabled",
        "main",
        AS_OF,
    )
    with app.engine.connect() as conn:
        last = conn.execute(
            select(ShopFeatureChange.enabled, ShopFeatureChange.changed_by).order_by(
                ShopFeatureChange.id.desc()
            )
        ).first()
    assert tuple(last or ()) == (False, "sam")


def test_switching_to_the_current_state_changes_nothing(web: TestClient, app: App) -> None:
    csrf = _as(web, "boss")
    before = recent_entries(app.ports(), 1000)
    page = web.post(
        "/shops/feature",
        data={"shop": "west", "enabled": "on", "confirmed": "yes", "csrf_token": csrf},
    )
    assert "Retention was already on for west; nothing changed." in page.text
    assert recent_entries(app.ports(), 1000) == before


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_switch_without_the_forms_csrf_token_is_refused(
    web: TestClient, app: App, token: str | None
) -> None:
    _as(web, "sam")
    form = {"shop": "main", "enabled": "off", "confirmed": "yes"}
    if token is not None:
        form["csrf_token"] = token
    response = web.post("/shops/feature", data=form)
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert _enabled(app)["main"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/shops"),
        ("GET", "/shops/feature?shop=main&enabled=off"),
        ("POST", "/shops/feature"),
    ],
)
def test_agents_may_not_see_or_switch_shops(
    web: TestClient, app: App, method: str, path: str
) -> None:
    csrf = _as(web, "anna2")
    form = {"shop": "main", "enabled": "off", "confirmed": "yes", "csrf_token": csrf}
    response = web.request(method, path, data=form if method == "POST" else None)
    assert response.status_code == 403
    assert _enabled(app)["main"] is True
    assert 'href="/shops"' not in web.get("/").text


def test_an_unknown_shop_is_not_found(web: TestClient, app: App) -> None:
    csrf = _as(web, "sam")
    confirm = web.get("/shops/feature", params={"shop": "nowhere", "enabled": "on"})
    assert confirm.status_code == 404
    assert "nowhere" in confirm.text
    switched = web.post(
        "/shops/feature",
        data={"shop": "nowhere", "enabled": "on", "confirmed": "yes", "csrf_token": csrf},
    )
    assert switched.status_code == 404
    assert _enabled(app) == {"closed": False, "main": True, "west": True}


@pytest.mark.parametrize("value", ["", "yes", "ON", "1"])
def test_a_switch_value_other_than_on_or_off_is_refused(
    web: TestClient, app: App, value: str
) -> None:
    csrf = _as(web, "sam")
    confirm = web.get("/shops/feature", params={"shop": "main", "enabled": value})
    assert confirm.status_code == 422
    assert "enabled: must be on or off" in confirm.text
    switched = web.post(
        "/shops/feature",
        data={"shop": "main", "enabled": value, "confirmed": "yes", "csrf_token": csrf},
    )
    assert switched.status_code == 422
    assert _enabled(app)["main"] is True


def test_a_too_long_shop_name_is_refused_without_an_error_page_crash(web: TestClient) -> None:
    _as(web, "sam")
    response = web.get("/shops/feature", params={"shop": "x" * 101, "enabled": "on"})
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_a_made_up_link_cannot_announce_a_switch(web: TestClient) -> None:
    _as(web, "sam")
    page = web.get("/shops", params={"done": "on", "shop": "Ihr Konto ist gesperrt", "state": "on"})
    assert page.status_code == 200
    assert "Ihr Konto ist gesperrt" not in page.text
    assert 'role="status"' not in page.text
