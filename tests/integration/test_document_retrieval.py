"""Retrieval by invoice or credit number, on SQLite and PostgreSQL: manual invoices and credits
of an Amazon buyer are archived, masked and come back byte for byte (service, API, page)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import AuditLogEntry, Credit, Customer, Invoice, Shop
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput, NotFound, NotRetrievable
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.masking import MASKED_TEXT
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user, create_token
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_document
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, iso, lines, order

NR = "302-1234567-1234567"
NEWER = "302-7654321-7654321"
INVOICE = f"RE-{NR}"
MANUAL_INVOICE = "RE-M-1"
MANUAL_CREDIT = "GS-M-1"
PASSWORD = "correct horse battery"
NOW = T0 + days(35)
BILLING = ("Erika Mustermann", "Heidestraße 17\n51147 Köln", "51147", "NRW")


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def _manual(kind: str, number: str, **extra: Any) -> str:
    key = "invoice_nr" if kind == "manual_invoice" else "credit_nr"
    return json.dumps(
        {
            "type": kind,
            "shop": "main",
            "customer_of_order": NR,
            key: number,
            "created_at": iso(T0),
            "total": "12.50",
            **extra,
        }
    )


@pytest.fixture
def masked(app: App) -> App:
    """One buyer with two Amazon orders, an invoice, a manual invoice and a manual credit
    against it, all archived and masked."""
    report = import_lines(
        app,
        [
            *lines(
                order(NR, shipped_at=T0, invoiced_at=T0),
                order(NEWER, ordered_at=T0 + days(0.5), shipped_at=T0 + days(0.5)),
            ),
            _manual("manual_invoice", MANUAL_INVOICE),
            _manual("manual_credit", MANUAL_CREDIT, invoice_nr=MANUAL_INVOICE),
        ],
    )
    assert (report.created, report.refused) == (4, [])
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(31)).masked == 1
    at(app, NOW)
    return app


def _document(app: App, model: Any, number: str) -> tuple[Any, ...]:
    column = model.invoice_nr if model is Invoice else model.credit_nr
    with app.engine.connect() as conn:
        row = conn.execute(
            select(model.__table__)
            .join(Shop, Shop.id == model.shop_id)
            .where(column == number, Shop.name == "main")
        ).one()
    return row.billing_name, row.billing_address, row.billing_zip, row.billing_state


def _retrieval_audit(app: App) -> list[tuple[str, str | None, dict[str, Any]]]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(AuditLogEntry.action, AuditLogEntry.subject, AuditLogEntry.detail)
            .where(AuditLogEntry.action == "order.retrieved")
            .order_by(AuditLogEntry.seq)
        ).all()
    return [(r.action, r.subject, json.loads(r.detail)) for r in rows]


def test_manual_credit_is_masked_then_retrieved_by_its_number(masked: App) -> None:
    assert _document(masked, Credit, MANUAL_CREDIT) == (MASKED_TEXT,) * 4
    assert _document(masked, Invoice, MANUAL_INVOICE) == (MASKED_TEXT,) * 4

    result = retrieve_document(
        masked.ports(), DocumentKind.CREDIT, MANUAL_CREDIT, "Steuerprüfung", "anna"
    )

    # through the buyer's newest Amazon order; the buyer's manual documents come back with it
    assert (result.order_nr, result.shop, result.retrieved_at) == (NEWER, "main", NOW)
    assert _document(masked, Credit, MANUAL_CREDIT) == BILLING
    assert _document(masked, Invoice, MANUAL_INVOICE) == BILLING
    with masked.engine.connect() as conn:
        buyer = conn.execute(select(Customer.first_name, Customer.retrieved_at)).one()
    assert tuple(buyer) == ("Erika", NOW)
    assert _retrieval_audit(masked) == [
        (
            "order.retrieved",
            NEWER,
            {
                "shop_id": 1,
                "reason": "Steuerprüfung",
                "restored": result.restored_rows,
                "document": f"credit {MANUAL_CREDIT}",
            },
        )
    ]


def test_an_orders_invoice_retrieves_its_own_order(masked: App) -> None:
    result = retrieve_document(masked.ports(), DocumentKind.INVOICE, INVOICE, "Rückfrage", "anna")

    assert result.order_nr == NR
    assert _document(masked, Invoice, INVOICE) == BILLING
    assert _retrieval_audit(masked)[0][2]["document"] == f"invoice {INVOICE}"


def test_unknown_numbers_and_shopless_duplicates_are_refused_and_change_nothing(
    masked: App,
) -> None:
    import_lines(
        masked,
        [
            *lines(order("302-0000000-0000001", shipped_at=T0, suffix="-b", shop="second")),
            _manual(
                "manual_credit",
                MANUAL_CREDIT,
                shop="second",
                customer_of_order="302-0000000-0000001",
            ),
        ],
    )

    with pytest.raises(NotFound) as unknown:
        retrieve_document(masked.ports(), DocumentKind.CREDIT, "GS-404", "x", "anna")
    with pytest.raises(InvalidInput) as ambiguous:
        retrieve_document(masked.ports(), DocumentKind.CREDIT, MANUAL_CREDIT, "x", "anna")
    with pytest.raises(NotRetrievable):  # the second shop's buyer was never masked
        retrieve_document(
            masked.ports(), DocumentKind.CREDIT, MANUAL_CREDIT, "x", "anna", shop="second"
        )

    assert str(unknown.value) == "no credit with number 'GS-404'; check the number"
    assert str(ambiguous.value) == (
        f"credit number '{MANUAL_CREDIT}' exists in several shops; name the shop as well"
    )
    assert _document(masked, Credit, MANUAL_CREDIT) == (MASKED_TEXT,) * 4
    assert _retrieval_audit(masked) == []


def test_api_retrieves_by_credit_number_and_answers_the_order(masked: App) -> None:
    add_user(masked, "anna", "agent", PASSWORD, "setup")
    token = create_token(masked, "anna", "setup").token

    with TestClient(create_web_app(masked), base_url="https://shelflife.test") as client:
        answer = client.post(
            f"/api/v1/credits/{MANUAL_CREDIT}/retrieve",
            json={"reason": "Steuerprüfung"},
            headers={"Authorization": f"Bearer {token}"},
        )
        unknown = client.post(
            "/api/v1/invoices/RE-404/retrieve",
            json={"reason": "Steuerprüfung"},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert answer.status_code == 200
    body = answer.json()
    assert body["order_nr_external"] == NEWER
    assert [(c["credit_nr"], c["billing_name"], c["manual"]) for c in body["credits"]] == [
        (MANUAL_CREDIT, "Erika Mustermann", True)
    ]
    assert body["retention"]["state"] == "retrieved"
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["detail"] == "no invoice with number 'RE-404'; check the number"


def test_page_finds_a_manual_credit_by_number_and_its_retrieval_restores_it(masked: App) -> None:
    add_user(masked, "anna", "agent", PASSWORD, "setup")

    with TestClient(create_web_app(masked), base_url="https://shelflife.test") as client:
        login = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        client.post(
            "/login",
            data={"user_name": "anna", "password": PASSWORD, "csrf_token": csrf.group(1)},
        )
        found = client.get("/orders", params={"q": MANUAL_CREDIT})
        links = re.findall(r'<td><a href="(/orders/[^"]+)">', found.text)
        page = client.get(links[0])
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        done = client.post(
            f"/orders/{NEWER}/retrieve",
            data={"reason": "Steuerprüfung", "shop": "main", "csrf_token": token.group(1)},
        )

    assert links == [f"/orders/{NEWER}?shop=main", f"/orders/{NR}?shop=main"]
    assert done.status_code == 200
    assert MANUAL_CREDIT in done.text
    assert _document(masked, Credit, MANUAL_CREDIT) == BILLING
