"""The API's authorization matrix: every endpoint for every kind of caller, one table, on
SQLite and PostgreSQL. A new endpoint without a row fails the coverage test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.entrypoints.web.app import create_web_app
from tests.support.api import MASKED_INVOICE, OPEN_NR, Installation, open_order_line, seed
from tests.support.builders import make_app
from tests.support.pg_cluster import PostgresCluster

CALLERS = ("no token", "bad token", "agent", "support", "admin", "disabled")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    """As the OpenAPI document names it."""
    url: str
    body: Any = None
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


# Requests are chosen so that repeating them changes nothing: the table runs on one installation.
MATRIX: list[tuple[Call, tuple[int, int, int, int, int, int]]] = [
    # caller:                                       none bad  agent supp admin disabled
    (Call("GET", "/health", "/health"), (200, 200, 200, 200, 200, 200)),
    (Call("GET", "/me", "/me"), (401, 401, 200, 200, 200, 401)),
    (
        Call("GET", "/orders", f"/orders?number={MASKED_INVOICE}"),
        (401, 401, 200, 403, 200, 401),
    ),
    (Call("GET", "/orders/{order_nr}", f"/orders/{OPEN_NR}"), (401, 401, 200, 403, 200, 401)),
    (
        Call("POST", "/orders/{order_nr}/retrieve", f"/orders/{OPEN_NR}/retrieve", {"reason": "x"}),
        (401, 401, 409, 403, 409, 401),  # allowed, but the open order is not masked
    ),
    (
        Call(
            "POST",
            "/invoices/{invoice_nr}/retrieve",
            "/invoices/RE-NO-SUCH/retrieve",
            {"reason": "x"},
        ),
        (401, 401, 404, 403, 404, 401),  # allowed, but no such invoice
    ),
    (
        Call(
            "POST", "/credits/{credit_nr}/retrieve", "/credits/GS-NO-SUCH/retrieve", {"reason": "x"}
        ),
        (401, 401, 404, 403, 404, 401),  # allowed, but no such credit
    ),
    (
        Call(
            "POST",
            "/orders/{order_nr}/returns",
            f"/orders/{OPEN_NR}/returns",
            {"items": {"NOT-ON-IT": 1}, "reason": "x"},
        ),
        (401, 401, 422, 403, 422, 401),  # allowed, but the SKU is not on the order
    ),
    (
        Call(
            "POST",
            "/orders/{order_nr}/replacements",
            f"/orders/{OPEN_NR}/replacements",
            {"items": {"NOT-ON-IT": 1}, "reason": "x"},
        ),
        (401, 401, 422, 403, 422, 401),
    ),
    (
        Call(
            "POST",
            "/invoices/{invoice_nr}/credits",
            f"/invoices/{MASKED_INVOICE}/credits",
            {"total": "0.00", "reason": "x"},
        ),
        (401, 401, 422, 403, 422, 401),  # allowed, but a credit of 0 is refused
    ),
    (
        Call(
            "PATCH",
            "/orders/{order_nr}/addresses/{kind}",
            f"/orders/{OPEN_NR}/addresses/billing",
            {"city": "Köln"},
        ),
        (401, 401, 200, 403, 200, 401),
    ),
    (
        Call(
            "POST",
            "/imports",
            "/imports",
            content=open_order_line().encode(),
            headers=(("Content-Type", "application/x-ndjson"),),
        ),
        (401, 401, 403, 403, 200, 401),
    ),
    (Call("GET", "/compliance", "/compliance"), (401, 401, 403, 403, 200, 401)),
    (
        Call(
            "GET",
            "/exports/accounting",
            "/exports/accounting?from=2026-01-01&to=2026-12-31&shop=main",
        ),
        (401, 401, 403, 403, 200, 401),  # recorded each time: a new record, the same data
    ),
    (
        Call("GET", "/invoices/{invoice_nr}/pdf", f"/invoices/{MASKED_INVOICE}/pdf"),
        (401, 401, 409, 403, 409, 401),  # allowed, but the invoice is masked
    ),
    (
        Call("GET", "/credits/{credit_nr}/pdf", "/credits/NO-SUCH-CREDIT/pdf"),
        (401, 401, 404, 403, 404, 401),  # allowed, but there is no such credit
    ),
    (
        Call("GET", "/exports/invoices", "/exports/invoices?from=2026-01-01&to=2026-12-31"),
        (401, 401, 403, 403, 200, 401),  # recorded each time: a new record, the same PDFs
    ),
    (Call("GET", "/runs", "/runs"), (401, 401, 403, 403, 200, 401)),
    (Call("POST", "/runs", "/runs", {"dry_run": True}), (401, 401, 403, 403, 200, 401)),
    (Call("GET", "/audit", "/audit"), (401, 401, 403, 403, 200, 401)),
    (
        Call("GET", "/customers/duplicates", "/customers/duplicates"),
        (401, 401, 200, 403, 200, 401),
    ),
    (
        Call("POST", "/customers/merge", "/customers/merge", {"keep": "C1", "other": "C1"}),
        (401, 401, 422, 403, 422, 401),  # allowed, but a customer cannot be merged into itself
    ),
    (
        Call("PUT", "/shops/{shop}/feature", "/shops/main/feature", {"enabled": True}),
        (401, 401, 403, 200, 200, 401),
    ),
    (
        Call("PUT", "/shops/{shop}/tax-fields", "/shops/main/tax-fields", {"keep": ["zip"]}),
        (401, 401, 403, 422, 422, 401),  # allowed, but keeping a field needs a legal basis
    ),
]


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    original = auth_secrets._hasher
    auth_secrets._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    auth_secrets._hasher = original


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def installation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cheap_argon2: None
) -> Iterator[tuple[TestClient, Installation]]:
    """One seeded installation per backend for the whole table (the requests are repeatable)."""
    home = tmp_path_factory.mktemp("api-matrix")
    name = f"shelflife_test_{uuid.uuid4().hex[:16]}"
    cluster: PostgresCluster | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{home}/shelflife.db"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(name)
    app, _clock = make_app(url, Path(home) / "home")
    try:
        seeded = seed(app)
        with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
            yield client, seeded
    finally:
        app.close()
        if cluster is not None:
            cluster.drop_database(name)


def _headers(seeded: Installation, caller: str) -> dict[str, str]:
    if caller == "no token":
        return {}
    if caller == "bad token":
        return {"Authorization": "Bearer not-a-token-of-this-installation"}
    return seeded.auth(caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("call", "expected"), MATRIX, ids=[f"{c.method} {c.path}" for c, _ in MATRIX]
)
def test_each_caller_gets_the_status_its_role_allows(
    installation: tuple[TestClient, Installation],
    call: Call,
    expected: tuple[int, ...],
    caller: str,
) -> None:
    client, seeded = installation
    response = client.request(
        call.method,
        f"/api/v1{call.url}",
        json=call.body,
        content=call.content,
        headers=_headers(seeded, caller) | dict(call.headers),
    )

    assert response.status_code == expected[CALLERS.index(caller)]
    if response.status_code in (401, 403):
        assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_table_covers_every_operation_of_the_openapi_document(
    installation: tuple[TestClient, Installation],
) -> None:
    client, _seeded = installation
    document = client.get("/api/v1/openapi.json").json()
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }

    assert operations == {(c.method, c.path) for c, _ in MATRIX}
