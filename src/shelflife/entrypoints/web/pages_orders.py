"""Agents' pages: find an order, read it with its retention timeline, retrieve it, add a note.

Retrieval posts either as a plain form (answered with 303 back to the order page) or with
fetch from static/app.js, marked by the `X-Fragment` header: then the answer is the order
section re-rendered, which the script swaps in, so the restored data shows without a reload.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from shelflife.domain.access import Permission, allows
from shelflife.domain.after_sales import MAX_REASON_LENGTH, parse_items
from shelflife.domain.errors import InvalidInput, ShelflifeError, Unavailable
from shelflife.domain.policy import MAX_RETRIEVAL_REASON_LENGTH
from shelflife.entrypoints.web.order_view import OrderView, local_day
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import AppDep, check_csrf, page_permission
from shelflife.services.accounts import SignedIn
from shelflife.services.after_sales import create_credit, create_replacement, create_return
from shelflife.services.history import MAX_NOTE_LENGTH, add_note
from shelflife.services.inspection import show_order
from shelflife.services.pdfs import document_pdf
from shelflife.services.retrieval import retrieve_order
from shelflife.services.search import MAX_QUERY_LENGTH, find

router = APIRouter(include_in_schema=False)
OrderReader = Annotated[SignedIn, Depends(page_permission(Permission.VIEW_ORDERS))]
Retriever = Annotated[SignedIn, Depends(page_permission(Permission.RETRIEVE))]
NoteWriter = Annotated[SignedIn, Depends(page_permission(Permission.ADD_NOTE))]
DocumentCreator = Annotated[SignedIn, Depends(page_permission(Permission.CREATE_DOCUMENTS))]
ShopParam = Annotated[str | None, Query(max_length=100)]
FRAGMENT_HEADER = "X-Fragment"
DONE = {
    "retrieved": "Order retrieved.",
    "note": "Note added to the customer history.",
    "return": "Return created.",
    "replacement": "Replacement order created.",
    "credit": "Credit created.",
}


@router.get("/orders")
def search(
    request: Request,
    app: AppDep,
    signed_in: OrderReader,
    q: Annotated[str, Query(max_length=1000)] = "",
) -> Response:
    context: dict[str, object] = {"q": q, "max_query": MAX_QUERY_LENGTH, "day": local_day}
    status = 200
    if q.strip():
        try:
            context["result"] = find(app.ports(), q)
        except InvalidInput as exc:
            context["error"], status = str(exc), exc.http_status
    return render(request, "orders.html", signed_in, context, status=status)


def _order_url(order_nr: str, shop: str | None, **extra: str) -> str:
    params = {"shop": shop} if shop else {}
    query = urlencode({**params, **extra})
    return f"/orders/{order_nr}" + (f"?{query}" if query else "")


def _shops_with(app: AppDep, order_nr: str) -> list[str]:
    """The shops that hold an order with this number, when the number alone is ambiguous."""
    try:
        found = find(app.ports(), order_nr)
    except InvalidInput:
        return []
    return sorted({o.shop for o in found.orders if o.order_nr_external == order_nr})


def _order_context(
    app: AppDep,
    signed_in: SignedIn,
    order_nr: str,
    shop: str | None,
    **extra: object,
) -> dict[str, object]:
    role = signed_in.account.role
    return {
        "order": OrderView(
            show_order(app.ports(), order_nr, shop=shop).model_dump(mode="json"), shop
        ),
        "order_nr": order_nr,
        "shop": shop,
        "can_retrieve": allows(role, Permission.RETRIEVE),
        "can_note": allows(role, Permission.ADD_NOTE),
        "can_create": allows(role, Permission.CREATE_DOCUMENTS),
        "max_document_reason": MAX_REASON_LENGTH,
        "max_reason": MAX_RETRIEVAL_REASON_LENGTH,
        "max_note": MAX_NOTE_LENGTH,
        **extra,
    }


def _order_response(
    request: Request,
    app: AppDep,
    signed_in: SignedIn,
    order_nr: str,
    shop: str | None,
    status: int = 200,
    **extra: object,
) -> Response:
    context = _order_context(app, signed_in, order_nr, shop, **extra)
    if request.headers.get(FRAGMENT_HEADER):
        response = render(request, "_order.html", signed_in, context, status=status)
        response.headers[FRAGMENT_HEADER] = "order"
        return response
    return render(request, "order.html", signed_in, context, status=status)


@router.get("/orders/{order_nr}")
def order_page(
    request: Request,
    app: AppDep,
    signed_in: OrderReader,
    order_nr: str,
    shop: ShopParam = None,
) -> Response:
    try:
        context = _order_context(
            app, signed_in, order_nr, shop, done=DONE.get(request.query_params.get("done", ""))
        )
    except InvalidInput as exc:
        shops = _shops_with(app, order_nr) if type(exc) is InvalidInput and not shop else []
        if len(shops) < 2:
            raise
        return render(
            request, "order_choice.html", signed_in, {"order_nr": order_nr, "shops": shops}
        )
    return render(request, "order.html", signed_in, context)


@router.post("/orders/{order_nr}/retrieve")
def retrieve(
    request: Request,
    app: AppDep,
    signed_in: Retriever,
    order_nr: str,
    reason: Annotated[str, Form(max_length=1000)] = "",
    shop: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    try:
        retrieve_order(
            app.ports(), order_nr, reason, user=signed_in.account.name, shop=shop or None
        )
    except (InvalidInput, Unavailable) as exc:
        if isinstance(exc, InvalidInput) and exc.http_status == 404:
            raise
        return _refused(request, app, signed_in, order_nr, shop, exc, reason=reason)
    if request.headers.get(FRAGMENT_HEADER):
        return _order_response(
            request, app, signed_in, order_nr, shop or None, done=DONE["retrieved"]
        )
    return RedirectResponse(_order_url(order_nr, shop or None, done="retrieved"), status_code=303)


@router.post("/orders/{order_nr}/notes")
def note(
    request: Request,
    app: AppDep,
    signed_in: NoteWriter,
    order_nr: str,
    text: Annotated[str, Form(max_length=10_000)] = "",
    shop: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    try:
        add_note(app, order_nr, text, signed_in.account.name, shop=shop or None)
    except (InvalidInput, Unavailable) as exc:
        if isinstance(exc, InvalidInput) and exc.http_status == 404:
            raise
        return _refused(request, app, signed_in, order_nr, shop, exc, note=text)
    return RedirectResponse(_order_url(order_nr, shop or None, done="note"), status_code=303)


@router.post("/orders/{order_nr}/returns")
def new_return(
    request: Request,
    app: AppDep,
    signed_in: DocumentCreator,
    order_nr: str,
    items: Annotated[str, Form(max_length=2000)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    shop: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create a return; a masked order is retrieved first, so the page then shows its data."""
    check_csrf(signed_in, csrf_token)
    try:
        create_return(
            app.ports(), order_nr, parse_items(items), reason, signed_in.account.name, shop or None
        )
    except (InvalidInput, Unavailable) as exc:
        if isinstance(exc, InvalidInput) and exc.http_status == 404:
            raise
        return _refused(
            request, app, signed_in, order_nr, shop, exc, form="return", items=items, reason=reason
        )
    return RedirectResponse(_order_url(order_nr, shop or None, done="return"), status_code=303)


@router.post("/orders/{order_nr}/replacements")
def new_replacement(
    request: Request,
    app: AppDep,
    signed_in: DocumentCreator,
    order_nr: str,
    items: Annotated[str, Form(max_length=2000)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    shop: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create a replacement order; the original's page then lists it among the buyer's orders."""
    check_csrf(signed_in, csrf_token)
    try:
        create_replacement(
            app.ports(), order_nr, parse_items(items), reason, signed_in.account.name, shop or None
        )
    except (InvalidInput, Unavailable) as exc:
        if isinstance(exc, InvalidInput) and exc.http_status == 404:
            raise
        return _refused(
            request,
            app,
            signed_in,
            order_nr,
            shop,
            exc,
            form="replacement",
            items=items,
            reason=reason,
        )
    return RedirectResponse(_order_url(order_nr, shop or None, done="replacement"), status_code=303)


@router.post("/invoices/{invoice_nr}/credits")
def new_credit(
    request: Request,
    app: AppDep,
    signed_in: DocumentCreator,
    invoice_nr: str,
    order_nr: Annotated[str, Form(min_length=1, max_length=100)],
    total: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    shop: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create a credit against an invoice shown on the order page `order_nr`, and go back there."""
    check_csrf(signed_in, csrf_token)
    try:
        create_credit(app.ports(), invoice_nr, total, reason, signed_in.account.name, shop or None)
    except (InvalidInput, Unavailable) as exc:
        if isinstance(exc, InvalidInput) and exc.http_status == 404:
            raise
        return _refused(
            request,
            app,
            signed_in,
            order_nr,
            shop,
            exc,
            form=f"credit:{invoice_nr}",
            total=total,
            reason=reason,
        )
    return RedirectResponse(_order_url(order_nr, shop or None, done="credit"), status_code=303)


@router.get("/invoices/{invoice_nr}/pdf")
def invoice_pdf(
    app: AppDep, _signed_in: OrderReader, invoice_nr: str, shop: ShopParam = None
) -> Response:
    """The invoice's PDF, linked from the order page; refused (409) while it is masked."""
    return _pdf(document_pdf(app.ports(), "invoice", invoice_nr, shop), "invoice", invoice_nr)


@router.get("/credits/{credit_nr}/pdf")
def credit_pdf(
    app: AppDep, _signed_in: OrderReader, credit_nr: str, shop: ShopParam = None
) -> Response:
    """The credit's PDF, linked from the order page; refused (409) while it is masked."""
    return _pdf(document_pdf(app.ports(), "credit", credit_nr, shop), "credit", credit_nr)


def _pdf(data: bytes, kind: str, number: str) -> Response:
    name = f"{kind}-{re.sub(r'[^A-Za-z0-9._-]+', '_', number)}.pdf"
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _refused(
    request: Request,
    app: AppDep,
    signed_in: SignedIn,
    order_nr: str,
    shop: str,
    exc: ShelflifeError,
    form: str | None = None,
    **typed: str,
) -> Response:
    """The order page again, the refusal next to the form it came from, what was typed kept."""
    form = form or ("retrieve" if "reason" in typed else "note")
    return _order_response(
        request,
        app,
        signed_in,
        order_nr,
        shop or None,
        status=exc.http_status,
        error={"form": form, "message": str(exc)},
        typed=typed,
    )
