"""The agents' order pages over HTTP, on SQLite and PostgreSQL: find, read, retrieve with a
reason, add a note; refusals shown next to their form; support sees no personal data."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.engine import BUSY
from shelflife.adapters.db.tables import AuditLogEntry, Base
from shelflife.bootstrap import App
from shelflife.entrypoints.web import pages_orders
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.ledger import shred_customers
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, iso, lines, order, pii_strings
from tests.support.fakes import UnreachableArchive

PASSWORD = "correct horse battery"
NR = "302-1234567-1234567"
OPEN_NR = "302-7654321-7654321"
INVOICE = f"RE-{NR}"
CREDIT = "GS-2026-0001"
MASKED_AT = T0 + days(31)
NOW = T0 + days(35)
REASON = "Rücksendung, Kundin ruft an"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


def _masked_order() -> dict[str, Any]:
    data = order(NR, shipped_at=T0, invoiced_at=T0)
    data["credits"] = [
        {"credit_nr": CREDIT, "invoice_nr": INVOICE, "created_at": iso(T0), "total": "2.00"}
    ]
    return data


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    """One masked Amazon order (with invoice and credit) and one open order of another buyer,
    whose name is markup; users of each role; the clock at NOW."""
    report = import_lines(
        app,
        lines(
            _masked_order(),
            order(
                OPEN_NR,
                suffix="-open",
                customer={"first_name": HOSTILE, "last_name": "Muster", "email": "o@example.org"},
            ),
        ),
    )
    assert report.refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), MASKED_AT).masked == 1
    at(app, NOW)
    for name, role in (("anna", "agent"), ("sam", "support"), ("boss", "admin")):
        add_user(app, name, role, PASSWORD, "setup")
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
        yield client


def _distinctive(data: dict[str, Any]) -> set[str]:
    """The order's PII values long enough not to occur by chance in a page's random tokens."""
    return {v for v in pii_strings(data) if len(v) >= 5}


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


def _dump(app: App) -> dict[str, list[tuple[Any, ...]]]:
    with app.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
            for t in Base.metadata.sorted_tables
            if t.name not in ("web_sessions", "users")  # a page view touches the session
        }


def _retrieve(
    client: TestClient, csrf: str, reason: str, fragment: bool = False, nr: str = NR
) -> Any:
    return client.post(
        f"/orders/{nr}/retrieve",
        data={"reason": reason, "shop": "main", "csrf_token": csrf},
        headers={"X-Fragment": "1"} if fragment else {},
        follow_redirects=False,
    )


# -- finding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [NR, INVOICE, CREDIT], ids=["order", "invoice", "credit"])
def test_search_by_order_invoice_or_credit_number_finds_the_masked_order(
    web: TestClient, query: str
) -> None:
    _as(web, "anna")

    page = web.get("/orders", params={"q": query})

    assert page.status_code == 200
    rows = re.findall(
        r"<tr>\s*<td><a href=\"([^\"]+)\">([^<]+)</a></td>(.*?)</tr>", page.text, re.S
    )
    assert [(href, nr) for href, nr, _ in rows] == [(f"/orders/{NR}?shop=main", NR)]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[0][2], re.S)
    assert cells[:4] == ["Amazon", "main", "2026-03-02", "2026-03-02"]
    assert '<span class="badge state-masked">masked</span>' in cells[4]


def test_the_search_box_is_labelled_and_alone_without_a_query(web: TestClient) -> None:
    _as(web, "anna")

    page = web.get("/orders")

    assert page.status_code == 200
    assert '<label for="q">Search</label>' in page.text
    assert re.search(r'<input id="q" name="q" type="search" value="" autofocus', page.text)
    assert "<table" not in page.text
    assert 'role="alert"' not in page.text


def test_a_too_long_query_shows_the_services_message_not_an_error_page(web: TestClient) -> None:
    _as(web, "anna")

    page = web.get("/orders", params={"q": "x" * 255})

    assert page.status_code == 422
    assert (
        "give an order, invoice or credit number, a buyer reference such as C42, an e-mail "
        "address or a name (1 to 254 characters)"
    ) in page.text
    assert 'aria-invalid="true"' in page.text


def test_a_masked_buyer_is_not_found_by_name_and_the_page_says_how_to_find_it(
    web: TestClient,
) -> None:
    _as(web, "anna")

    page = web.get("/orders", params={"q": "Erika Mustermann"})

    assert page.status_code == 200
    assert "No order found" in page.text
    assert NR not in page.text


def test_too_many_results_ask_to_narrow_the_search(web: TestClient, app: App) -> None:
    many = [order(f"SHOP-{n:04d}", suffix=f"-{n}") for n in range(51)]
    assert import_lines(app, lines(*many)).refused == []
    _as(web, "anna")

    page = web.get("/orders", params={"q": "mustermann-"})

    assert "Too many results: showing the first 50. Narrow the search." in page.text
    assert page.text.count('<tr>\n        <td><a href="/orders/SHOP-') == 50


# -- reading ----------------------------------------------------------------------------------


def test_a_masked_order_shows_each_masked_field_as_masked_and_no_personal_data(
    web: TestClient,
) -> None:
    _as(web, "anna")

    page = web.get(f"/orders/{NR}")

    assert page.status_code == 200
    assert all(value not in page.text for value in _distinctive(_masked_order()))
    fields = dict(re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", page.text, re.S))
    masked = '<span class="badge masked">masked</span>'
    for label in ("Name", "E-mail", "Phone", "Street", "City", "Gift message", "Card number"):
        assert fields[label] == masked, label
    assert fields["Country"] == "DE"  # kept after masking: tax reports need it
    assert '<summary class="button">Retrieve order</summary>' in page.text
    assert '<label for="reason">Reason</label>' in page.text
    assert "The history is masked; retrieve the order to add a note." in page.text


def test_the_order_page_shows_the_timeline_with_due_and_done_dates(web: TestClient) -> None:
    _as(web, "anna")

    page = web.get(f"/orders/{NR}")

    steps = re.findall(
        r'<li class="(done|due)"><span>([^<]+)</span> <time>([^<]+)</time></li>', page.text
    )
    assert steps == [
        ("done", "Shipped", "2026-03-02 10:00"),
        ("done", "Archive due", "2026-03-31"),
        ("done", "Archived", "2026-04-02 11:00"),
        ("done", "Mask due", "2026-04-01"),
        ("done", "Masked", "2026-04-02 11:00"),
    ]


def test_an_unmasked_order_shows_its_data_the_hold_and_the_note_form(web: TestClient) -> None:
    _as(web, "anna")

    page = web.get(f"/orders/{OPEN_NR}")

    assert page.status_code == 200
    assert "Lindenallee-open 3a-open" in page.text
    assert "Masking held" in page.text
    assert "<li>open order: order 302-7654321-7654321</li>" in page.text
    assert "Retrieve order" not in page.text
    assert '<label for="note">Note</label>' in page.text


def test_an_unknown_order_shows_a_404_page(web: TestClient) -> None:
    _as(web, "anna")

    page = web.get("/orders/999-9999999-9999999")

    assert page.status_code == 404
    assert "no order with number &#39;999-9999999-9999999&#39;" in page.text


def test_a_number_in_two_shops_offers_the_choice(web: TestClient, app: App) -> None:
    twin = order(NR, suffix="-twin", shop="second")
    assert import_lines(app, lines(twin)).refused == []
    _as(web, "anna")

    page = web.get(f"/orders/{NR}")

    assert page.status_code == 200
    assert re.findall(r'<a href="([^"]+)">', page.text.split("<main")[1]) == [
        f"/orders/{NR}?shop=main",
        f"/orders/{NR}?shop=second",
    ]
    assert "Lindenallee-twin" in web.get(f"/orders/{NR}", params={"shop": "second"}).text


def test_markup_in_buyer_data_is_escaped(web: TestClient) -> None:
    _as(web, "anna")

    found = web.get("/orders", params={"q": "<script>"})
    page = web.get(f"/orders/{OPEN_NR}")

    assert OPEN_NR in found.text
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in (
        page.text
    )


def test_nul_characters_are_refused_with_a_message_not_a_server_error(web: TestClient) -> None:
    csrf = _as(web, "anna")

    search = web.get("/orders", params={"q": "RE\x00-1"})
    page = web.get("/orders/302%00-1")
    retrieval = _retrieve(web, csrf, "Rück\x00sendung")
    noted = web.post(
        f"/orders/{OPEN_NR}/notes", data={"text": "a\x00b", "shop": "main", "csrf_token": csrf}
    )

    assert (search.status_code, page.status_code) == (422, 404)
    assert "the search must not contain NUL characters" in search.text
    assert (retrieval.status_code, noted.status_code) == (422, 422)
    assert "reason: the reason must not contain NUL characters" in retrieval.text
    assert "note: must not contain NUL characters" in noted.text


# -- retrieving -------------------------------------------------------------------------------


def test_retrieving_with_a_reason_restores_the_data_with_history_and_remask_date(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "anna")

    response = _retrieve(web, csrf, REASON)

    assert response.status_code == 303
    assert response.headers["location"] == f"/orders/{NR}?shop=main&done=retrieved"
    page = web.get(response.headers["location"]).text
    assert "Order retrieved." in page
    assert "Lindenallee 3a" in page
    assert "Alles Gute zum Geburtstag, Max!" in page
    assert (
        "Retrieved 2026-04-06 11:00 by anna</strong> — read-only, masked again on 2026-05-06"
        in (page)
    )
    assert "<td>2026-04-06 11:00</td><td>retrieved</td><td>anna</td><td>" + REASON in page
    assert "Retrieve order" not in page
    with app.engine.connect() as conn:
        entry = conn.execute(
            select(AuditLogEntry.__table__).where(AuditLogEntry.action == "order.retrieved")
        ).one()
    assert (entry.actor, entry.subject, json.loads(entry.detail)["reason"]) == ("anna", NR, REASON)


def test_retrieving_with_fetch_answers_with_the_order_section_restored(web: TestClient) -> None:
    csrf = _as(web, "anna")

    response = _retrieve(web, csrf, REASON, fragment=True)

    assert response.status_code == 200
    assert response.headers["X-Fragment"] == "order"
    assert response.text.lstrip().startswith('<div id="order-view" class="order">')
    assert "<html" not in response.text
    assert '<p class="notice" role="status" tabindex="-1" data-focus>Order retrieved.</p>' in (
        response.text
    )
    assert "Lindenallee 3a" in response.text
    assert "read-only, masked again on 2026-05-06" in response.text


@pytest.mark.parametrize("fragment", [False, True], ids=["form", "fetch"])
def test_a_51_character_reason_is_refused_next_to_the_form_and_changes_nothing(
    web: TestClient, app: App, fragment: bool
) -> None:
    csrf = _as(web, "anna")
    before = _dump(app)
    reason = "x" * 51

    response = _retrieve(web, csrf, reason, fragment=fragment)

    assert response.status_code == 422
    assert (
        '<p id="reason-error" class="alert" role="alert">reason: the reason has 51 characters; '
        "at most 50 are allowed</p>"
    ) in response.text
    assert f'value="{reason}"' in response.text
    assert re.search(r'aria-invalid="true" autofocus>', response.text)
    assert '<details class="retrieve" open>' in response.text
    assert _dump(app) == before


def test_an_empty_reason_is_refused(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")

    response = _retrieve(web, csrf, "   ")

    assert response.status_code == 422
    assert "reason: a reason is required (1 to 50 characters)" in response.text
    assert show_order(app.ports(), NR).model_dump(mode="json")["retention"]["state"] == "masked"


def test_a_retrieval_without_the_csrf_token_is_refused(web: TestClient, app: App) -> None:
    _as(web, "anna")
    before = _dump(app)

    response = _retrieve(web, "", REASON)

    assert response.status_code == 403
    assert "the form has expired or did not come from this site" in response.text
    assert _dump(app) == before


def test_an_unmasked_order_cannot_be_retrieved(web: TestClient) -> None:
    csrf = _as(web, "anna")

    response = _retrieve(web, csrf, REASON, nr=OPEN_NR)

    assert response.status_code == 409
    assert (
        f"order &#39;{OPEN_NR}&#39; is not masked; its data is in the database already"
        in response.text
    )


def test_a_shredded_buyers_order_says_on_the_page_when_it_was_shredded(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "anna")
    ports = app.ports()
    with ports.uow as uow:
        buyer = uow.orders.find(NR).customer_id
        shred_customers(ports, uow, [buyer], datetime(2037, 1, 1, 12, tzinfo=UTC), "erasure")
        uow.commit()

    response = _retrieve(web, csrf, REASON)

    assert response.status_code == 409
    assert (
        f"order &#39;{NR}&#39; cannot be retrieved: its buyer&#39;s archived data was shredded "
        "on 2037-01-01 (its archive key was destroyed)" in response.text
    )


def test_an_unreachable_archive_is_shown_next_to_the_form(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")
    app.archive = UnreachableArchive()

    response = _retrieve(web, csrf, REASON, fragment=True)

    assert response.status_code == 503
    assert response.headers["X-Fragment"] == "order"
    assert "archive unreachable (test double)" in response.text
    assert f'value="{REASON}"' in response.text
    assert show_order(app.ports(), NR).model_dump(mode="json")["retention"]["state"] == "masked"


def test_a_busy_database_is_a_503_page_without_its_statement(
    web: TestClient, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY

    def busy(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError(
            "SELECT * FROM customers WHERE email = ?", ("erika@example.org",), locked
        )

    _as(web, "anna")
    monkeypatch.setattr(pages_orders, "show_order", busy)
    with TestClient(
        create_web_app(app), base_url="https://shelflife.test", raise_server_exceptions=False
    ) as client:
        client.cookies = web.cookies
        response = client.get(f"/orders/{OPEN_NR}")

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert BUSY in response.text
    assert "erika" not in response.text
    assert "SELECT" not in response.text


# -- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/orders", f"/orders?q={NR}", f"/orders/{NR}", f"/orders/{OPEN_NR}"]
)
def test_support_gets_403_and_no_personal_data(web: TestClient, path: str) -> None:
    _as(web, "sam")

    page = web.get(path)

    assert page.status_code == 403
    assert "the role &#39;support&#39; may not view orders and buyers&#39; personal data" in (
        page.text
    )
    assert NR not in page.text
    assert OPEN_NR not in page.text
    assert all(v not in page.text for v in _distinctive(order(OPEN_NR, suffix="-open")))
    assert 'href="/orders"' not in web.get("/").text


def test_support_cannot_retrieve_or_add_notes(web: TestClient, app: App) -> None:
    csrf = _as(web, "sam")
    before = _dump(app)

    assert _retrieve(web, csrf, REASON).status_code == 403
    noted = web.post(f"/orders/{OPEN_NR}/notes", data={"text": "x", "csrf_token": csrf})
    assert noted.status_code == 403
    assert _dump(app) == before


def test_agents_get_the_orders_link_first_and_on_the_home_page(web: TestClient) -> None:
    _as(web, "anna")

    home = web.get("/").text

    assert (
        re.findall(r'<nav aria-label="Main">(.*?)</nav>', home, re.S)[0]
        .strip()
        .startswith('<a href="/" aria-current="page">Home</a><a href="/orders">Orders</a>')
    )
    assert '<a class="button" href="/orders">Find an order</a>' in home


# -- notes ------------------------------------------------------------------------------------


def test_an_agent_adds_a_note_and_sees_it_first_in_the_history(web: TestClient) -> None:
    csrf = _as(web, "anna")

    response = web.post(
        f"/orders/{OPEN_NR}/notes",
        data={"text": "Rückruf erbeten", "shop": "main", "csrf_token": csrf},
        follow_redirects=False,
    )

    assert response.status_code == 303
    page = web.get(response.headers["location"]).text
    assert "Note added to the customer history." in page
    history = page.split('<table class="history">')[1]
    assert re.search(r"<tbody>\s*<tr><td>[^<]+</td><td>note</td><td>anna</td><td>Rückruf", history)


def test_a_note_is_refused_while_the_history_is_masked(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")
    before = _dump(app)

    response = web.post(
        f"/orders/{NR}/notes", data={"text": "Rückruf erbeten", "shop": "main", "csrf_token": csrf}
    )

    assert response.status_code == 409
    assert "the customer history of order &#39;302-1234567-1234567&#39; is masked" in response.text
    assert _dump(app) == before


def test_a_too_long_note_is_refused_and_kept_in_the_form(web: TestClient) -> None:
    csrf = _as(web, "anna")

    response = web.post(
        f"/orders/{OPEN_NR}/notes", data={"text": "y" * 1001, "shop": "main", "csrf_token": csrf}
    )

    assert response.status_code == 422
    assert "note: the note has 1001 characters; at most 1000 are allowed" in response.text
    assert "y" * 1001 + "</textarea>" in response.text


def test_a_form_field_beyond_its_limit_is_an_error_page_that_quotes_nothing(
    web: TestClient,
) -> None:
    csrf = _as(web, "anna")
    text = "Kundin Erika Mustermann, Heidestraße 17 " * 300  # beyond the form's 10,000

    response = web.post(
        f"/orders/{OPEN_NR}/notes", data={"text": text, "shop": "main", "csrf_token": csrf}
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "text: String should have at most 10000 characters" in response.text
    assert "Mustermann" not in response.text


def test_a_note_without_the_csrf_token_is_refused(web: TestClient, app: App) -> None:
    _as(web, "anna")
    before = _dump(app)

    response = web.post(f"/orders/{OPEN_NR}/notes", data={"text": "x", "shop": "main"})

    assert response.status_code == 403
    assert _dump(app) == before
