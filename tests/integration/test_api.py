"""The REST API's behaviour, endpoint by endpoint, on SQLite and PostgreSQL: the same documents
as the CLI, problem details for every refusal, nothing changed by a refused request."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import AddressHistory, Customer, Order
from shelflife.bootstrap import App
from shelflife.entrypoints.cli import app as cli_app
from shelflife.entrypoints.web import api
from shelflife.entrypoints.web.api import Problem
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services import inspection
from shelflife.services.audit import recent_entries
from shelflife.services.inspection import show_order
from shelflife.services.ledger import shred_customers
from tests.support.api import (
    MASKED_INVOICE,
    MASKED_NR,
    OPEN_EMAIL,
    OPEN_NR,
    Installation,
    seed,
)
from tests.support.builders import malformed_lines, order

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


def _call(
    client: TestClient, seeded: Installation, who: str, method: str, url: str, **kwargs: Any
) -> Any:
    headers = seeded.auth(who) | kwargs.pop("headers", {})
    return client.request(method, f"/api/v1{url}", headers=headers, **kwargs)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["status"], body["type"]) == (status, "about:blank")
    Problem.model_validate(body)
    assert body["title"] == HTTPStatus(status).phrase
    assert isinstance(body["detail"], str)
    assert body["detail"] != ""
    return body


def _state(app: App, nr: str) -> str:
    return str(show_order(app.ports(), nr).retention["state"])


# -- GET /orders -----------------------------------------------------------------------------


def test_an_invoice_number_finds_the_masked_order(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _call(client, seeded, "agent", "GET", f"/orders?number={MASKED_INVOICE}")

    assert response.status_code == 200
    body = response.json()
    assert body["truncated"] is False
    assert [
        (o["order_nr_external"], o["shop"], o["channel"], o["state"], o["matched"])
        for o in body["items"]
    ] == [(MASKED_NR, "main", "amazon", "masked", "invoice number")]


def test_q_finds_by_e_mail_and_never_by_number(client: TestClient, seeded: Installation) -> None:
    by_email = _call(client, seeded, "agent", "GET", "/orders", params={"q": OPEN_EMAIL.upper()})
    by_number = _call(client, seeded, "agent", "GET", "/orders", params={"q": MASKED_INVOICE})

    assert [o["order_nr_external"] for o in by_email.json()["items"]] == [OPEN_NR]
    assert by_number.json() == {"items": [], "truncated": False}


@pytest.mark.parametrize(
    "params",
    [{}, {"number": OPEN_NR, "q": OPEN_EMAIL}, {"number": "x" * 255}, {"q": " "}, {"limit": "0"}],
    ids=["neither", "both", "too long", "blank", "limit 0"],
)
def test_a_search_without_exactly_one_valid_query_is_422(
    client: TestClient, seeded: Installation, params: dict[str, str]
) -> None:
    _problem(_call(client, seeded, "agent", "GET", "/orders", params=params), 422)


# -- GET /orders/{order_nr} --------------------------------------------------------------------


def test_an_order_is_the_document_show_json_prints(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _call(client, seeded, "agent", "GET", f"/orders/{MASKED_NR}")

    assert response.status_code == 200
    assert response.json() == show_order(app.ports(), MASKED_NR).model_dump(mode="json")
    assert response.json()["customer"]["first_name"] == "***"


def test_an_unknown_order_is_404_without_a_trace(client: TestClient, seeded: Installation) -> None:
    body = _problem(_call(client, seeded, "agent", "GET", "/orders/999-0000000-0000000"), 404)

    assert body["detail"] == (
        "no order with number '999-0000000-0000000'; check the number or import it first"
    )


# -- POST /orders/{order_nr}/retrieve ----------------------------------------------------------


def test_retrieving_restores_the_data_and_audits_the_tokens_user_and_reason(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _call(
        client,
        seeded,
        "agent",
        "POST",
        f"/orders/{MASKED_NR}/retrieve",
        json={"reason": "  Rücksendung  "},
    )

    assert response.status_code == 200
    document = response.json()
    assert document == show_order(app.ports(), MASKED_NR).model_dump(mode="json")
    assert (document["customer"]["first_name"], document["customer"]["email"]) == (
        "Erika",
        "erika.mustermann@example.org",
    )
    assert (document["retention"]["state"], document["retention"]["read_only"]) == (
        "retrieved",
        True,
    )
    last = document["customer_history"][-1]
    assert (last["event"], last["user_name"], last["text"]) == ("retrieved", "agent", "Rücksendung")
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject, entry.detail["reason"]) == (
        "agent",
        "order.retrieved",
        MASKED_NR,
        "Rücksendung",
    )


@pytest.mark.parametrize(
    "body",
    [{"reason": "x" * 51}, {}, {"reason": "   "}, {"reason": 42}, {"reason": "ok", "user": "boss"}],
    ids=["51 characters", "missing", "blank", "not a string", "unknown field"],
)
def test_a_bad_reason_is_422_and_changes_nothing(
    client: TestClient, seeded: Installation, app: App, body: dict[str, Any]
) -> None:
    before = len(recent_entries(app.ports(), 10_000))

    _problem(
        _call(client, seeded, "agent", "POST", f"/orders/{MASKED_NR}/retrieve", json=body), 422
    )

    assert _state(app, MASKED_NR) == "masked"
    assert len(recent_entries(app.ports(), 10_000)) == before


def test_retrieving_an_order_that_is_not_masked_is_409(
    client: TestClient, seeded: Installation
) -> None:
    response = _call(
        client, seeded, "agent", "POST", f"/orders/{OPEN_NR}/retrieve", json={"reason": "x"}
    )

    assert _problem(response, 409)["detail"] == (
        f"order {OPEN_NR!r} is not masked; its data is in the database already"
    )


def test_retrieving_an_order_retrieved_already_is_409_with_the_date_and_changes_nothing(
    client: TestClient, seeded: Installation, app: App
) -> None:
    url = f"/orders/{MASKED_NR}/retrieve"
    assert _call(client, seeded, "agent", "POST", url, json={"reason": "eins"}).status_code == 200
    before = len(recent_entries(app.ports(), 10_000))

    response = _call(client, seeded, "admin", "POST", url, json={"reason": "zwei"})

    assert _problem(response, 409)["detail"] == (
        f"order {MASKED_NR!r} was retrieved already on 2026-04-06; its data is in the "
        "database, read-only until it is masked again"
    )
    assert len(recent_entries(app.ports(), 10_000)) == before
    history = show_order(app.ports(), MASKED_NR).model_dump(mode="json")["customer_history"]
    assert [h["text"] for h in history if h["event"] == "retrieved"] == ["eins"]


def test_retrieving_an_order_whose_buyer_was_shredded_is_409_with_the_date(
    app: App, client: TestClient, seeded: Installation
) -> None:
    ports = app.ports()
    with ports.uow as uow:
        buyer = uow.orders.find(MASKED_NR).customer_id
        shred_customers(ports, uow, [buyer], datetime(2037, 1, 1, 12, tzinfo=UTC), "erasure")
        uow.commit()

    response = _call(
        client, seeded, "agent", "POST", f"/orders/{MASKED_NR}/retrieve", json={"reason": "x"}
    )

    assert _problem(response, 409)["detail"] == (
        f"order {MASKED_NR!r} cannot be retrieved: its buyer's archived data was shredded on "
        "2037-01-01 (its archive key was destroyed)"
    )


def test_retrieving_an_unknown_order_is_404(client: TestClient, seeded: Installation) -> None:
    response = _call(
        client,
        seeded,
        "agent",
        "POST",
        "/orders/999-0000000-0000000/retrieve",
        json={"reason": "x"},
    )

    _problem(response, 404)


# -- POST /imports -----------------------------------------------------------------------------


def _cli_import_json(tmp_path: Path, body: bytes) -> Any:
    """`shelflife import --json` on a fresh SQLite installation of its own."""
    home = tmp_path / "cli-home"
    env = {"SHELFLIFE_HOME": str(home), "SHELFLIFE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db"}
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    file = tmp_path / "orders.jsonl"
    file.write_bytes(body)
    result = runner.invoke(cli_app, ["import", str(file), "--json"], env=env)
    assert result.exit_code == 2, result.output
    return json.loads(result.stdout)


def test_an_import_answers_the_per_line_report_the_cli_prints_for_the_same_file(
    client: TestClient, seeded: Installation, tmp_path: Path
) -> None:
    good = [json.dumps(order(f"303-0000000-000000{n}", suffix=f"-{n}")).encode() for n in (1, 2)]
    body = b"\n".join([good[0], *malformed_lines().values(), b"", good[1], b"{not json"]) + b"\n"

    response = _call(
        client,
        seeded,
        "admin",
        "POST",
        "/imports",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert response.status_code == 200
    report = response.json()
    assert (report["created"], report["refused"]) == (2, len(malformed_lines()) + 1)
    assert report == _cli_import_json(tmp_path, body)


@pytest.mark.parametrize("media_type", ["application/jsonl", "text/plain; charset=utf-8"])
def test_an_import_accepts_json_lines_under_its_other_names(
    client: TestClient, seeded: Installation, media_type: str
) -> None:
    line = json.dumps(order("303-0000000-0000009", suffix="-9")).encode()

    response = _call(
        client,
        seeded,
        "admin",
        "POST",
        "/imports",
        content=line,
        headers={"Content-Type": media_type},
    )

    assert (response.status_code, response.json()["created"]) == (200, 1)


def test_an_import_of_another_media_type_is_415(client: TestClient, seeded: Installation) -> None:
    response = _call(
        client,
        seeded,
        "admin",
        "POST",
        "/imports",
        content=b"<orders/>",
        headers={"Content-Type": "application/xml"},
    )

    _problem(response, 415)


def test_an_import_larger_than_the_limit_is_413_and_imports_nothing(
    client: TestClient, seeded: Installation, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = json.dumps(order("303-0000000-0000008", suffix="-8")).encode() + b"\n"
    monkeypatch.setattr(api, "MAX_IMPORT_BYTES", len(line) - 1)

    declared = _call(
        client,
        seeded,
        "admin",
        "POST",
        "/imports",
        content=line,
        headers={"Content-Type": "application/x-ndjson"},
    )
    streamed = _call(
        client,
        seeded,
        "admin",
        "POST",
        "/imports",
        content=iter([line[:10], line[10:]]),
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert _problem(declared, 413)["detail"] == (
        f"the body is larger than {len(line) - 1} bytes; split the import"
    )
    assert _problem(streamed, 413)["detail"] == _problem(declared, 413)["detail"]
    with app.engine.connect() as conn:
        assert (
            conn.execute(
                select(Order.id).where(Order.order_nr_external == "303-0000000-0000008")
            ).first()
            is None
        )


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_a_json_body_larger_than_the_limit_is_413_and_changes_nothing(
    client: TestClient, seeded: Installation, app: App, streamed: bool
) -> None:
    body = json.dumps({"city": "Bonn", "note": "x" * api.MAX_JSON_BYTES}).encode()
    before = show_order(app.ports(), OPEN_NR).model_dump(mode="json")

    response = _call(
        client,
        seeded,
        "agent",
        "PATCH",
        f"/orders/{OPEN_NR}/addresses/billing",
        content=iter([body[:100], body[100:]]) if streamed else body,
        headers={"Content-Type": "application/json"},
    )

    assert _problem(response, 413)["detail"] == (
        f"the body is larger than {api.MAX_JSON_BYTES} bytes"
    )
    assert show_order(app.ports(), OPEN_NR).model_dump(mode="json") == before


# -- PATCH /orders/{order_nr}/addresses/{kind} -------------------------------------------------


def test_an_unmasked_orders_address_is_changed_and_audited_without_its_values(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _call(
        client,
        seeded,
        "agent",
        "PATCH",
        f"/orders/{OPEN_NR}/addresses/shipping",
        json={"street": "Birkenweg", "house_nr": "3", "zip": None},
    )

    assert response.status_code == 200
    (shipping,) = [a for a in response.json()["addresses"] if a["kind"] == "shipping"]
    assert (shipping["street"], shipping["house_nr"], shipping["address"], shipping["zip"]) == (
        "Birkenweg",
        "3",
        "Birkenweg 3",
        None,
    )
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject, dict(entry.detail)) == (
        "agent",
        "address.changed",
        OPEN_NR,
        {"address": "shipping", "fields": "address, house_nr, street, zip"},
    )
    with app.engine.connect() as conn:
        old = set(conn.execute(select(AddressHistory.field)).scalars())
        revision = conn.execute(
            select(Customer.pii_revision, Customer.archived_revision)
            .join(Order, Order.customer_id == Customer.id)
            .where(Order.order_nr_external == OPEN_NR)
        ).one()
    assert old == {"address", "house_nr", "street", "zip"}
    assert revision.pii_revision > (revision.archived_revision or 0)


def test_an_address_of_a_masked_or_retrieved_order_is_409(
    client: TestClient, seeded: Installation, app: App
) -> None:
    url = f"/orders/{MASKED_NR}/addresses/billing"

    masked = _call(client, seeded, "agent", "PATCH", url, json={"city": "Bonn"})
    retrieved = _call(
        client, seeded, "agent", "POST", f"/orders/{MASKED_NR}/retrieve", json={"reason": "x"}
    )
    read_only = _call(client, seeded, "agent", "PATCH", url, json={"city": "Bonn"})

    assert _problem(masked, 409)["detail"].endswith(
        "is masked: its data is in the archive only, nothing to edit"
    )
    assert retrieved.status_code == 200
    assert _problem(read_only, 409)["detail"].endswith(
        "was retrieved: its data is read-only until it is masked again"
    )
    assert show_order(app.ports(), MASKED_NR).customer.city != "Bonn"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("billing", {}),
        ("billing", {"city": "x" * 101}),
        ("billing", {"city": 5}),
        ("billing", {"iban": "DE00"}),
        ("invoice", {"city": "Bonn"}),
    ],
    ids=["nothing", "too long", "not a string", "not an address field", "no such address"],
)
def test_bad_address_changes_are_422_and_change_nothing(
    client: TestClient, seeded: Installation, app: App, kind: str, body: dict[str, Any]
) -> None:
    before = show_order(app.ports(), OPEN_NR).model_dump(mode="json")

    _problem(
        _call(client, seeded, "agent", "PATCH", f"/orders/{OPEN_NR}/addresses/{kind}", json=body),
        422,
    )

    assert show_order(app.ports(), OPEN_NR).model_dump(mode="json") == before


@pytest.mark.parametrize(
    ("url", "body", "detail"),
    [
        (
            f"/orders/{OPEN_NR}/addresses/billing",
            {"city": "Bonn", "erika.mustermann@example.org": "Heidestraße 17"},
            "an unknown field: Extra inputs are not permitted",
        ),
        (
            f"/orders/{MASKED_NR}/retrieve",
            {"reason": "Rücksendung", "Erika Mustermann": "Köln"},
            "an unknown field: Extra inputs are not permitted",
        ),
        (
            f"/orders/{MASKED_NR}/retrieve",
            {"reason": "Rücksendung", "user": "boss"},
            "user: Extra inputs are not permitted",
        ),
    ],
    ids=["e-mail as a key", "name as a key", "field-like key"],
)
def test_an_unknown_key_is_named_only_when_it_looks_like_a_field_name(
    client: TestClient, seeded: Installation, url: str, body: dict[str, Any], detail: str
) -> None:
    method = "PATCH" if "addresses" in url else "POST"

    problem = _problem(_call(client, seeded, "admin", method, url, json=body), 422)

    assert problem["detail"] == detail
    assert problem["errors"] == [{"field": detail.split(":")[0], "problem": detail.split(": ")[1]}]
    assert "Mustermann" not in json.dumps(problem, ensure_ascii=False)


# -- runs, compliance, audit, feature ----------------------------------------------------------


def test_a_dry_run_answers_its_counts_and_writes_nothing(
    client: TestClient, seeded: Installation
) -> None:
    before = _call(client, seeded, "admin", "GET", "/runs").json()["items"]

    response = _call(client, seeded, "admin", "POST", "/runs", json={"dry_run": True})

    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert response.json()["shops"] == 1
    assert _call(client, seeded, "admin", "GET", "/runs").json()["items"] == before


def test_a_real_run_answers_its_report_is_listed_and_audited_as_the_tokens_user(
    app: App, client: TestClient, seeded: Installation
) -> None:
    response = _call(client, seeded, "admin", "POST", "/runs", json={})

    assert response.status_code == 200
    report = response.json()
    assert (report["dry_run"], report["shops"]) == (False, 1)
    (latest, *_older) = _call(client, seeded, "admin", "GET", "/runs?limit=1").json()["items"]
    assert (latest["status"], latest["as_of"]) == ("finished", report["as_of"])
    entry = next(e for e in recent_entries(app.ports(), 5) if e.action == "run.finished")
    assert (entry.actor, entry.subject) == ("admin", str(latest["id"]))


def test_a_run_while_one_is_working_is_409(client: TestClient, seeded: Installation) -> None:
    assert api._RUNNING.acquire(blocking=False)
    try:
        response = _call(client, seeded, "admin", "POST", "/runs", json={"dry_run": False})
    finally:
        api._RUNNING.release()

    _problem(response, 409)


def test_switching_the_feature_is_recorded_with_the_tokens_user(
    client: TestClient, seeded: Installation, app: App
) -> None:
    response = _call(
        client, seeded, "support", "PUT", "/shops/main/feature", json={"enabled": False}
    )
    again = _call(client, seeded, "support", "PUT", "/shops/main/feature", json={"enabled": False})

    assert response.json() == {"shop": "main", "enabled": False, "changed": True}
    assert again.json() == {"shop": "main", "enabled": False, "changed": False}
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject) == ("support", "feature.disabled", "main")
    audit = _call(client, seeded, "admin", "GET", "/audit?limit=1").json()["items"]
    assert [(e["actor"], e["action"], e["subject"]) for e in audit] == [
        ("support", "feature.disabled", "main")
    ]


@pytest.mark.parametrize(
    "body", [{"enabled": "yes"}, {"enabled": 1}, {}, {"enabled": True, "x": 1}]
)
def test_a_feature_switch_with_a_wrong_type_is_422(
    client: TestClient, seeded: Installation, body: dict[str, Any]
) -> None:
    _problem(_call(client, seeded, "admin", "PUT", "/shops/main/feature", json=body), 422)


def test_switching_an_unknown_shop_is_404(client: TestClient, seeded: Installation) -> None:
    response = _call(
        client, seeded, "admin", "PUT", "/shops/nowhere/feature", json={"enabled": True}
    )

    _problem(response, 404)


def test_compliance_lists_violations_and_holds(client: TestClient, seeded: Installation) -> None:
    response = _call(client, seeded, "admin", "GET", "/compliance")

    assert response.json() == {
        "violations": [],
        "holds": [],
        "archive_problems": [],
        "warnings": [],
    }


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", f"/orders/{MASKED_NR}/retrieve"),
        ("PATCH", f"/orders/{OPEN_NR}/addresses/billing"),
        ("POST", "/runs"),
        ("PUT", "/shops/main/feature"),
    ],
)
@pytest.mark.parametrize(
    "content",
    [b'{"reason": "Erika Mustermann', b"[1, 2", b"\xff\xfe", b"null", b'"Erika Mustermann"'],
    ids=["cut off", "broken array", "not UTF-8", "null", "a string"],
)
def test_malformed_json_is_a_422_problem_that_echoes_nothing(
    client: TestClient, seeded: Installation, method: str, url: str, content: bytes
) -> None:
    response = _call(
        client,
        seeded,
        "admin",
        method,
        url,
        content=content,
        headers={"Content-Type": "application/json"},
    )

    _problem(response, 422)
    assert "Erika" not in response.text
    assert "Mustermann" not in response.text


# -- the OpenAPI document ----------------------------------------------------------------------


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_the_openapi_document_describes_every_endpoint_and_the_docs_page_renders(
    client: TestClient,
) -> None:
    document = client.get("/api/v1/openapi.json").json()
    docs = client.get("/api/v1/docs")

    assert sorted(document["paths"]) == [
        "/audit",
        "/compliance",
        "/credits/{credit_nr}/pdf",
        "/credits/{credit_nr}/retrieve",
        "/customers/duplicates",
        "/customers/merge",
        "/exports/accounting",
        "/exports/invoices",
        "/health",
        "/imports",
        "/invoices/{invoice_nr}/credits",
        "/invoices/{invoice_nr}/pdf",
        "/invoices/{invoice_nr}/retrieve",
        "/me",
        "/orders",
        "/orders/{order_nr}",
        "/orders/{order_nr}/addresses/{kind}",
        "/orders/{order_nr}/replacements",
        "/orders/{order_nr}/retrieve",
        "/orders/{order_nr}/returns",
        "/runs",
        "/shops/{shop}/feature",
        "/shops/{shop}/tax-fields",
    ]
    assert document["openapi"].startswith("3.")
    show = document["paths"]["/orders/{order_nr}"]["get"]["responses"]["200"]
    assert show["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderDocument"
    }
    refs = _refs(document)
    assert refs
    assert all(
        ref.startswith("#/components/schemas/")
        and ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]
        for ref in refs
    )
    csv = document["paths"]["/exports/accounting"]["get"]["responses"]["200"]["content"]
    assert csv == {"text/csv": {"schema": {"type": "string"}}}
    binary = {"type": "string", "format": "binary"}
    invoices = document["paths"]["/exports/invoices"]["get"]["responses"]["200"]["content"]
    assert invoices == {"application/zip": {"schema": binary}}
    for path in ("/invoices/{invoice_nr}/pdf", "/credits/{credit_nr}/pdf"):
        pdf = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert pdf == {"application/pdf": {"schema": binary}}
    for path, item in document["paths"].items():
        if path in (
            "/exports/accounting",
            "/exports/invoices",
            "/invoices/{invoice_nr}/pdf",
            "/credits/{credit_nr}/pdf",
        ):
            continue
        for method, operation in item.items():
            success = "201" if "201" in operation["responses"] else "200"  # created: 201
            ok = operation["responses"][success]["content"]["application/json"]["schema"]
            assert (path, method, ok != {}) == (path, method, True)
    assert docs.status_code == 200
    assert all(
        path in docs.text for path in ("/api/v1/orders/{order_nr}/retrieve", "/api/v1/imports")
    )


def test_a_failing_database_is_a_503_problem_without_its_statement(
    app: App, seeded: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError(
            "SELECT * FROM customers WHERE email = ?",
            ("erika@example.org",),
            sqlite3.OperationalError("locked"),
        )

    monkeypatch.setattr(inspection, "show_order", locked)
    with TestClient(create_web_app(app), raise_server_exceptions=False) as web:
        response = _call(web, seeded, "agent", "GET", f"/orders/{OPEN_NR}")

    assert _problem(response, 503)["detail"].startswith("the database failed")
    assert "erika" not in response.text
    assert "SELECT" not in response.text


def test_the_api_doc_names_every_endpoint_of_the_openapi_document(client: TestClient) -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    document = client.get("/api/v1/openapi.json").json()

    assert [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if f"`{method.upper()} {path}" not in text
    ] == []
