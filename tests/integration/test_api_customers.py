"""Duplicates and merge over the API on SQLite and PostgreSQL: references only, masked buyers
never offered nor merged, the merge audited as the token's user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.audit import recent_entries
from shelflife.services.importing import import_lines
from tests.support.api import Installation, seed
from tests.support.builders import order

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def seeded(app: App) -> Installation:
    installation = seed(app)  # C1 masked, C2 open
    twins = []
    for n, customer_nr in ((3, "TWIN-A"), (4, "TWIN-B")):
        data = order(f"302-0000000-000000{n}", suffix="-t")
        data["customer"]["customer_nr_external"] = customer_nr
        twins.append(json.dumps(data, ensure_ascii=False))
    assert import_lines(app, twins).created == 2  # C3 and C4: one person, two records
    return installation


@pytest.fixture
def client(app: App, seeded: Installation) -> Iterator[TestClient]:
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as web:
        yield web


def _call(
    client: TestClient, seeded: Installation, who: str, method: str, url: str, **kw: Any
) -> Any:
    return client.request(method, f"/api/v1{url}", headers=seeded.auth(who), **kw)


def test_duplicates_are_listed_by_reference_without_personal_data(
    client: TestClient, seeded: Installation
) -> None:
    response = _call(client, seeded, "agent", "GET", "/customers/duplicates")

    assert response.status_code == 200
    assert response.json() == {
        "groups": [
            {"shop": "main", "channel": "amazon", "customers": ["C3", "C4"], "orders": [1, 1]}
        ]
    }
    assert _call(client, seeded, "agent", "GET", "/customers/duplicates?shop=other").json() == {
        "groups": []
    }


def test_a_merge_answers_what_moved_and_is_audited_as_the_tokens_user(
    app: App, client: TestClient, seeded: Installation
) -> None:
    response = _call(
        client, seeded, "agent", "POST", "/customers/merge", json={"keep": "C3", "other": "C4"}
    )

    assert response.status_code == 200
    assert response.json() == {"kept": "C3", "merged": "C4", "orders_moved": 1}
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject) == ("agent", "customer.merged", "C3")
    assert _call(client, seeded, "agent", "GET", "/customers/duplicates").json() == {"groups": []}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"keep": "C2", "other": "C1"}, 409, "customer C1 is archived; its data cannot be merged"),
        ({"keep": "C3", "other": "C999"}, 404, "customer C999 does not exist"),
        ({"keep": "C3", "other": "C3"}, 422, "give two different customers to merge"),
        ({"keep": "C3", "other": "Erika"}, 422, "other: give a buyer reference such as C42"),
    ],
)
def test_a_refused_merge_is_a_problem_and_changes_nothing(
    app: App,
    client: TestClient,
    seeded: Installation,
    body: dict[str, str],
    status: int,
    detail: str,
) -> None:
    before = len(recent_entries(app.ports(), 1000))

    response = _call(client, seeded, "admin", "POST", "/customers/merge", json=body)

    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM)
    assert response.json()["detail"] == detail
    assert len(recent_entries(app.ports(), 1000)) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"keep": "C3"}, {"keep": 3, "other": "C4"}, {"keep": "C3", "other": "C4", "x": 1}],
)
def test_a_malformed_merge_body_is_422_and_echoes_nothing(
    client: TestClient, seeded: Installation, body: dict[str, object]
) -> None:
    response = _call(client, seeded, "admin", "POST", "/customers/merge", json=body)

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    assert "C4" not in response.text.replace('"other"', "")
