"""The order page's "Create return", "Create replacement" and "Create credit" forms over HTTP,
on SQLite and PostgreSQL: a masked order is retrieved by the form itself and the page then shows
the restored data with the new document; refusals stay next to their form; CSRF and roles."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from shelflife.adapters.db.tables import Invoice
from shelflife.bootstrap import App
from shelflife.domain.ports import pdf_object_key
from shelflife.services.inspection import show_order
from tests.integration.test_web_orders import (
    INVOICE,
    NR,
    OPEN_NR,
    _as,
    _dump,
    cheap_argon2,
    web,
)
from tests.support.fakes import UnreachableArchive

__all__ = ["cheap_argon2", "web"]  # fixtures shared with test_web_orders.py


def _post(client: TestClient, url: str, **data: str) -> Any:
    return client.post(url, data={"shop": "main", **data}, follow_redirects=False)


def test_an_agent_creates_a_return_on_a_masked_order_and_sees_the_restored_data(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "anna")
    page = web.get(f"/orders/{NR}").text
    assert '<summary class="button">Create return</summary>' in page
    assert "it is retrieved first" in page

    response = _post(
        web, f"/orders/{NR}/returns", items="BK-1:1", reason="Griff ab", csrf_token=csrf
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/orders/{NR}?shop=main&done=return"
    page = web.get(response.headers["location"]).text
    assert "Return created." in page
    assert "Lindenallee 3a" in page
    assert f"<td>{NR}-RET1</td>" in page
    assert "<td>1 × BK-1</td>" in page
    assert "<td>Griff ab</td>" in page
    assert f"Return {NR}-RET1: Griff ab" in page


def test_an_agent_creates_a_replacement_and_a_credit(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")

    replaced = _post(
        web, f"/orders/{NR}/replacements", items="BK-1:2", reason="verloren", csrf_token=csrf
    )
    credited = _post(
        web,
        f"/invoices/{INVOICE}/credits",
        order_nr=NR,
        total="5.00",
        reason="Kulanz",
        csrf_token=csrf,
    )

    assert replaced.headers["location"] == f"/orders/{NR}?shop=main&done=replacement"
    assert credited.headers["location"] == f"/orders/{NR}?shop=main&done=credit"
    page = web.get(credited.headers["location"]).text
    assert "Credit created." in page
    assert f"<td>GS-{INVOICE}-2</td>" in page  # the invoice's imported credit is the first
    assert f'href="/orders/{NR}-R1?shop=main">{NR}-R1</a>' in page
    replacement = web.get(f"/orders/{NR}-R1?shop=main").text
    assert f'replaces order <a href="/orders/{NR}?shop=main">{NR}</a>' in replacement


def test_too_many_items_are_refused_next_to_the_form_and_change_nothing(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "anna")
    before = _dump(app)

    response = _post(
        web, f"/orders/{NR}/returns", items="BK-1:3", reason="Griff ab", csrf_token=csrf
    )

    assert response.status_code == 422
    assert '<details class="create-return" open>' in response.text
    assert (
        '<p id="return-error" class="alert" role="alert">items: SKU &#39;BK-1&#39;: 3 asked for, '
        "but 2 of 2 ordered can still be returned</p>"
    ) in response.text
    assert 'value="BK-1:3"' in response.text
    assert _dump(app) == before


def test_a_bad_credit_total_is_refused_next_to_its_invoice(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")

    response = _post(
        web,
        f"/invoices/{INVOICE}/credits",
        order_nr=NR,
        total="abc",
        reason="Kulanz",
        csrf_token=csrf,
    )

    assert response.status_code == 422
    assert '<details class="create-credit" open>' in response.text
    assert "total: &#39;abc&#39; is not an amount such as 19.99" in response.text


def test_an_unreachable_archive_creates_nothing_and_says_so(web: TestClient, app: App) -> None:
    csrf = _as(web, "anna")
    app.archive = UnreachableArchive()

    response = _post(
        web, f"/orders/{NR}/returns", items="BK-1:1", reason="Griff ab", csrf_token=csrf
    )

    assert response.status_code == 503
    assert "archive unreachable (test double)" in response.text
    assert show_order(app.ports(), NR).returns == []


def test_without_the_csrf_token_nothing_is_created(web: TestClient, app: App) -> None:
    _as(web, "anna")
    before = _dump(app)

    responses = [
        _post(web, f"/orders/{OPEN_NR}/returns", items="BK-1:1", reason="x", csrf_token=""),
        _post(web, f"/orders/{OPEN_NR}/replacements", items="BK-1:1", reason="x", csrf_token=""),
        _post(web, f"/invoices/{INVOICE}/credits", order_nr=NR, total="1", reason="x"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert _dump(app) == before


def test_support_sees_no_forms_and_cannot_post(web: TestClient, app: App) -> None:
    csrf = _as(web, "sam")
    before = _dump(app)

    response = _post(web, f"/orders/{OPEN_NR}/returns", items="BK-1:1", reason="x", csrf_token=csrf)

    assert response.status_code == 403
    assert _dump(app) == before


def test_the_order_page_links_the_pdfs_of_unmasked_documents_only(
    web: TestClient, app: App
) -> None:
    csrf = _as(web, "anna")
    masked_page = web.get(f"/orders/{NR}").text
    refused = web.get(f"/invoices/{INVOICE}/pdf?shop=main")

    _post(
        web,
        f"/invoices/{INVOICE}/credits",
        order_nr=NR,
        total="1.00",
        reason="Kulanz",
        csrf_token=csrf,
    )
    page = web.get(f"/orders/{NR}").text
    download = web.get(f"/invoices/{INVOICE}/pdf?shop=main")

    assert masked_page.count('<td><span class="badge">masked</span></td>') == 2
    assert "/pdf?shop=main" not in masked_page
    assert refused.status_code == 409
    link = f'<td><a href="/invoices/{INVOICE}/pdf?shop=main" download>PDF</a></td>'
    assert link in page
    assert f'<td><a href="/credits/GS-{INVOICE}-2/pdf?shop=main" download>PDF</a></td>' in page
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert (
        download.headers["content-disposition"] == f'attachment; filename="invoice-{INVOICE}.pdf"'
    )
    with app.engine.connect() as conn:
        invoice_id = conn.execute(select(Invoice.id)).scalar_one()
    assert download.content == app.documents.get(pdf_object_key("invoice", invoice_id))


def test_support_cannot_download_a_pdf(web: TestClient, app: App) -> None:
    _as(web, "sam")

    assert web.get(f"/invoices/{INVOICE}/pdf?shop=main").status_code == 403
