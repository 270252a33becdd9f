"""The tax-field choice on the shops page and in the API, on SQLite and PostgreSQL: support and
admins choose which tax fields a shop keeps unmasked, see the choice with its legal basis for
confirmation before anything changes, and every recorded choice is audited; agents may not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user, create_token
from shelflife.services.audit import recent_entries
from shelflife.services.importing import import_lines
from shelflife.services.shops import list_shops
from tests.support.builders import lines, order

PASSWORD = "correct horse battery"
BASIS = 'Reverse-charge <b>records</b> (UStG §14a) & "OSS"'


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    assert import_lines(app, lines(order())).created == 1
    for name, role in (("boss", "admin"), ("anna", "agent"), ("sam", "support")):
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


def _kept(app: App) -> tuple[tuple[str, ...], str | None]:
    shop = next(s for s in list_shops(app.ports()) if s.name == "main")
    return shop.kept_tax_fields, shop.tax_fields_basis


def _choices(app: App) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [
        (e.actor, e.subject, dict(e.detail))
        for e in reversed(recent_entries(app.ports(), 50))
        if e.action == "shop.tax_fields"
    ]


def _choose(client: TestClient, csrf: str, keep: list[str], basis: str, confirmed: bool) -> Any:
    data: dict[str, Any] = {"shop": "main", "keep": keep, "basis": basis, "csrf_token": csrf}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post("/shops/tax-fields", data=data, follow_redirects=False)


@pytest.mark.parametrize("user", ["sam", "boss"])
def test_a_choice_is_shown_with_its_basis_and_recorded_only_when_confirmed(
    app: App, web: TestClient, user: str
) -> None:
    csrf = _as(web, user)
    shops = web.get("/shops")
    form = web.get("/shops/tax-fields", params={"shop": "main"})

    review = _choose(web, csrf, ["zip", "vat_id"], f"  {BASIS} ", confirmed=False)
    after_review = (_kept(app), _choices(app))
    done = _choose(web, csrf, ["vat_id", "zip"], BASIS, confirmed=True)
    listed = web.get(done.headers["location"])

    assert '<form method="get" action="/shops/tax-fields">' in shops.text
    assert form.status_code == 200
    assert re.findall(r'name="keep" value="([a-z_]+)"( checked)?', form.text) == [
        ("vat_id", ""),
        ("zip", ""),
        ("state", ""),
    ]
    assert review.status_code == 200
    kept_list = re.search(r'<ul id="kept-fields">(.*?)</ul>', review.text, re.S)
    assert kept_list is not None
    assert re.findall(r"<code>([a-z_]+)</code>", kept_list.group(1)) == ["vat_id", "zip"]
    escaped = "Reverse-charge &lt;b&gt;records&lt;/b&gt; (UStG §14a) &amp; &#34;OSS&#34;"
    assert f'<blockquote id="legal-basis">{escaped}</blockquote>' in review.text
    assert after_review == (((), None), [])  # nothing changes before the confirmation
    assert (done.status_code, done.headers["location"]) == (303, "/shops?done=tax&shop=main")
    assert _kept(app) == (("vat_id", "zip"), BASIS)
    assert _choices(app) == [(user, "main", {"kept": "vat_id,zip", "basis": BASIS})]
    assert "Tax fields kept for main recorded." in listed.text
    cell = re.search(r'<td class="tax-fields">(.*?)</td>', listed.text, re.S)
    assert cell is not None
    assert cell.group(1) == f'vat_id, zip <span class="muted">({escaped})</span>'


def test_clearing_the_choice_is_confirmed_and_audited_too(app: App, web: TestClient) -> None:
    csrf = _as(web, "sam")
    _choose(web, csrf, ["state"], "OSS records", confirmed=True)

    review = _choose(web, csrf, [], "", confirmed=False)
    done = _choose(web, csrf, [], "", confirmed=True)

    assert "No tax field is kept" in review.text
    assert done.status_code == 303
    assert _kept(app) == ((), None)
    assert [c[2] for c in _choices(app)] == [
        {"kept": "state", "basis": "OSS records"},
        {"kept": None, "basis": None},
    ]


@pytest.mark.parametrize(
    ("keep", "basis", "message"),
    [
        (["zip"], "   ", "legal basis: required when keeping tax fields, e.g. the law or rule"),
        (["zip", "name"], "OSS", "tax fields: name not among vat_id, zip, state"),
        (["vat_id"], "x" * 501, "legal basis: longer than 500 characters"),
    ],
    ids=["no-basis", "not-a-tax-field", "basis-too-long"],
)
def test_a_bad_choice_is_refused_next_to_the_form_and_changes_nothing(
    app: App, web: TestClient, keep: list[str], basis: str, message: str
) -> None:
    csrf = _as(web, "boss")

    for confirmed in (False, True):
        refused = _choose(web, csrf, keep, basis, confirmed=confirmed)
        assert refused.status_code == 422
        assert f'<p class="alert" role="alert" id="tax-error">{message}</p>' in refused.text

    assert (_kept(app), _choices(app)) == (((), None), [])


def test_agents_may_not_choose_tax_fields(app: App, web: TestClient) -> None:
    csrf = _as(web, "anna")

    form = web.get("/shops/tax-fields", params={"shop": "main"})
    sent = _choose(web, csrf, ["zip"], "OSS", confirmed=True)

    assert (form.status_code, sent.status_code) == (403, 403)
    assert (_kept(app), _choices(app)) == (((), None), [])


def test_api_records_a_choice_and_refuses_one_without_basis(app: App, web: TestClient) -> None:
    token = create_token(app, "sam", "setup").token
    auth = {"Authorization": f"Bearer {token}"}

    chosen = web.put(
        "/api/v1/shops/main/tax-fields",
        json={"keep": ["state", "vat_id"], "basis": "OSS"},
        headers=auth,
    )
    refused = web.put("/api/v1/shops/main/tax-fields", json={"keep": ["zip"]}, headers=auth)
    unknown = web.put(
        "/api/v1/shops/nowhere/tax-fields", json={"keep": [], "basis": None}, headers=auth
    )

    assert (chosen.status_code, chosen.json()) == (
        200,
        {"shop": "main", "kept": ["vat_id", "state"], "basis": "OSS"},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "legal basis: required when keeping tax fields, e.g. the law or rule"
    )
    assert unknown.status_code == 404
    assert _kept(app) == (("vat_id", "state"), "OSS")
    assert _choices(app) == [("sam", "main", {"kept": "vat_id,state", "basis": "OSS"})]
