"""POST returns, replacements and credits through the API, on SQLite and PostgreSQL: the token's
user creates the document, a masked order is retrieved first, refusals are problem documents
and change nothing."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.audit import recent_entries
from shelflife.services.inspection import show_order
from tests.support.api import MASKED_INVOICE, MASKED_NR, NOW, OPEN_NR, Installation, seed
from tests.support.fakes import UnreachableArchive

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def seeded(app: App) -> Installation:
    return seed(app)


@pytest.fixture
def client(app: App, seeded: Installation) -> Iterator[TestClient]:
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as web:
        yield web


def _post(client: TestClient, seeded: Installation, url: str, body: Any) -> Any:
    return client.post(f"/api/v1{url}", headers=seeded.auth("agent"), json=body)


def test_a_return_on_a_masked_order_is_created_as_the_tokens_user_after_a_retrieval(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _post(
        client,
        seeded,
        f"/orders/{MASKED_NR}/returns",
        {"items": {"BK-1": 1}, "reason": "Defekt"},
    )

    assert response.status_code == 201, response.text
    assert response.json() == {
        "return_nr": f"{MASKED_NR}-RET1",
        "order_nr_external": MASKED_NR,
        "shop": "main",
        "items": {"BK-1": 1},
        "reason": "Defekt",
        "created_at": NOW.isoformat(),
        "created_by": "agent",
        "retrieved": True,
    }
    shown = show_order(app.ports(), MASKED_NR)
    assert (shown.customer.first_name, shown.retention["state"]) == ("Erika", "retrieved")
    assert [(e.actor, e.action) for e in recent_entries(app.ports(), 2)] == [
        ("agent", "return.created"),
        ("agent", "order.retrieved"),
    ]


def test_a_replacement_and_a_credit_are_created(
    client: TestClient, seeded: Installation, app: App
) -> None:
    replaced = _post(
        client,
        seeded,
        f"/orders/{OPEN_NR}/replacements",
        {"items": {"BK-1": 2}, "reason": "verloren"},
    )
    credited = _post(
        client, seeded, f"/invoices/{MASKED_INVOICE}/credits", {"total": "19.98", "reason": "x"}
    )

    assert replaced.status_code == 201, replaced.text
    assert (replaced.json()["order_nr_external"], replaced.json()["retrieved"]) == (
        f"{OPEN_NR}-R1",
        False,
    )
    assert replaced.json()["items"] == [
        {"sku": "BK-1", "title": "Notizbuch", "qty": 2, "price": "0.00"}
    ]
    assert credited.status_code == 201, credited.text
    assert {k: credited.json()[k] for k in ("credit_nr", "total", "retrieved")} == {
        "credit_nr": f"GS-{MASKED_INVOICE}-1",
        "total": "19.98",
        "retrieved": True,
    }


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        (f"/orders/{OPEN_NR}/returns", {"items": {"BK-1": 3}, "reason": "x"}, 422),
        (f"/orders/{OPEN_NR}/returns", {"items": {}, "reason": "x"}, 422),
        (f"/orders/{OPEN_NR}/returns", {"items": {"BK-1": 0}, "reason": "x"}, 422),
        (f"/orders/{OPEN_NR}/returns", {"items": {"BK-1": "1"}, "reason": "x"}, 422),
        (f"/orders/{OPEN_NR}/returns", {"items": {"BK-1": 1}, "reason": " "}, 422),
        (f"/orders/{OPEN_NR}/returns", {"items": {"BK-1": 1}, "reason": "x", "by": "y"}, 422),
        ("/orders/302-0000000-0000000/returns", {"items": {"BK-1": 1}, "reason": "x"}, 404),
        ("/orders/302-0000000-0000000/replacements", {"items": {"BK-1": 1}, "reason": "x"}, 404),
        ("/invoices/RE-404/credits", {"total": "1.00", "reason": "x"}, 404),
        (f"/invoices/{MASKED_INVOICE}/credits", {"total": "19.99", "reason": "x"}, 422),
        (f"/invoices/{MASKED_INVOICE}/credits", {"total": 5, "reason": "x"}, 422),
    ],
)
def test_refused_requests_are_problems_and_change_nothing(
    client: TestClient, seeded: Installation, app: App, url: str, body: Any, status: int
) -> None:
    before = len(recent_entries(app.ports(), 10_000))

    response = _post(client, seeded, url, body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert len(recent_entries(app.ports(), 10_000)) == before
    assert show_order(app.ports(), MASKED_NR).retention["state"] == "masked"


def test_an_unreachable_archive_is_503_and_creates_nothing(
    client: TestClient, seeded: Installation, app: App
) -> None:
    app.archive = UnreachableArchive()

    response = _post(
        client, seeded, f"/orders/{MASKED_NR}/returns", {"items": {"BK-1": 1}, "reason": "x"}
    )

    assert response.status_code == 503
    assert show_order(app.ports(), MASKED_NR).returns == []


def test_a_credit_created_through_the_api_is_downloadable_as_its_pdf(
    client: TestClient, seeded: Installation, app: App
) -> None:
    before = client.get(f"/api/v1/invoices/{MASKED_INVOICE}/pdf", headers=seeded.auth("agent"))
    created = _post(
        client, seeded, f"/invoices/{MASKED_INVOICE}/credits", {"total": "1.00", "reason": "x"}
    )
    credit = client.get(
        f"/api/v1/credits/{created.json()['credit_nr']}/pdf", headers=seeded.auth("admin")
    )
    invoice = client.get(f"/api/v1/invoices/{MASKED_INVOICE}/pdf", headers=seeded.auth("agent"))

    assert (before.status_code, before.headers["content-type"]) == (409, PROBLEM)
    assert "is masked" in before.json()["detail"]
    assert (credit.status_code, credit.headers["content-type"]) == (200, "application/pdf")
    assert credit.headers["cache-control"] == "no-store"
    assert credit.content.startswith(b"%PDF-")
    document = show_order(app.ports(), MASKED_NR).model_dump(mode="json")
    assert hashlib.sha256(invoice.content).hexdigest() == document["invoices"][0]["pdf_sha256"]
    assert hashlib.sha256(credit.content).hexdigest() == document["credits"][0]["pdf_sha256"]


def test_the_invoices_export_answers_the_zip_and_records_it(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = client.get(
        "/api/v1/exports/invoices?from=2026-03-01&to=2026-03-31", headers=seeded.auth("admin")
    )

    assert (response.status_code, response.headers["content-type"]) == (200, "application/zip")
    assert response.headers["content-disposition"] == (
        'attachment; filename="invoices-2026-03-01-2026-03-31.zip"'
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        manifest = archive.read("manifest.csv").decode()
    assert manifest == (
        "type;number;shop;date;status;file;sha256\r\n"
        f"invoice;{MASKED_INVOICE};main;2026-03-02;masked;;\r\n"
    )
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action) == ("admin", "export.invoices")
    assert entry.detail["sha256"] == hashlib.sha256(response.content).hexdigest()
