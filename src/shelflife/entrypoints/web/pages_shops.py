"""Shops: the retention switch per shop, with counts per state and a confirmation step, and
the tax fields a shop keeps unmasked under a recorded legal basis, confirmed the same way.

Support works here and sees counts only: nothing on these pages names or reaches a buyer.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from shelflife.domain.access import Permission, allows
from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.domain.masking import TAX_FIELDS
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import AppDep, check_csrf, page_permission
from shelflife.services.accounts import SignedIn
from shelflife.services.dashboard import STATES, shop_counts, switch_preview
from shelflife.services.shops import (
    MAX_BASIS,
    ShopView,
    check_tax_fields,
    list_shops,
    set_feature,
    set_tax_fields,
)

router = APIRouter(include_in_schema=False)
CountsReader = Annotated[SignedIn, Depends(page_permission(Permission.VIEW_COUNTS))]
Switcher = Annotated[SignedIn, Depends(page_permission(Permission.SWITCH_FEATURE))]
SettingsChanger = Annotated[SignedIn, Depends(page_permission(Permission.CHANGE_SHOP_SETTINGS))]
SWITCH = {"on": True, "off": False}
DONE = {
    "on": "Retention switched on for {shop}.",
    "off": "Retention switched off for {shop}.",
    "same": "Retention was already {state} for {shop}; nothing changed.",
    "tax": "Tax fields kept for {shop} recorded.",
}
TAX_FIELD_LABELS = {
    "vat_id": "the buyer's VAT ID",
    "zip": "the billing postcode",
    "state": "the billing region",
}
"""What each tax field is, as the page names it (masking.TAX_FIELDS order)."""


def _switch(value: str) -> bool:
    if value not in SWITCH:
        raise InvalidInput("enabled: must be on or off")
    return SWITCH[value]


@router.get("/shops")
def shops(
    request: Request,
    app: AppDep,
    signed_in: CountsReader,
    done: Annotated[str, Query(max_length=10)] = "",
    shop: Annotated[str, Query(max_length=100)] = "",
    state: Annotated[str, Query(max_length=3)] = "",
) -> Response:
    shops = shop_counts(app)
    message = DONE.get(done)
    # a link cannot make up news
    known = shop in {s.name for s in shops} and (state in SWITCH or done == "tax")
    return render(
        request,
        "shops.html",
        signed_in,
        {
            "shops": shops,
            "settings": {s.name: s for s in list_shops(app.ports())},
            "states": [s.value for s in STATES],
            "may_switch": allows(signed_in.account.role, Permission.SWITCH_FEATURE),
            "may_configure": allows(signed_in.account.role, Permission.CHANGE_SHOP_SETTINGS),
            "done": message.format(shop=shop, state=state) if message and known else None,
        },
    )


def _confirm_page(
    request: Request, app: AppDep, signed_in: SignedIn, shop: str, on: bool
) -> Response:
    return render(request, "shops_confirm.html", signed_in, {"p": switch_preview(app, shop, on)})


@router.get("/shops/feature")
def confirm_switch(
    request: Request,
    app: AppDep,
    signed_in: Switcher,
    shop: Annotated[str, Query(max_length=100)] = "",
    enabled: Annotated[str, Query(max_length=3)] = "",
) -> Response:
    """The confirmation step: what the next run will do for the shop, before anything changes."""
    return _confirm_page(request, app, signed_in, shop, _switch(enabled))


@router.post("/shops/feature")
def switch(
    app: AppDep,
    signed_in: Switcher,
    request: Request,
    shop: Annotated[str, Form(max_length=100)] = "",
    enabled: Annotated[str, Form(max_length=3)] = "",
    confirmed: Annotated[str, Form(max_length=3)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Switches only when the confirmation form was sent; otherwise shows the confirmation."""
    check_csrf(signed_in, csrf_token)
    on = _switch(enabled)
    if confirmed != "yes":
        return _confirm_page(request, app, signed_in, shop, on)
    changed = set_feature(app.ports(), shop, on, user=signed_in.account.name)
    done = enabled if changed else "same"
    query = urlencode({"done": done, "shop": shop, "state": enabled})
    return RedirectResponse(f"/shops?{query}", status_code=303)


def _shop_settings(app: AppDep, shop: str) -> ShopView:
    found = next((s for s in list_shops(app.ports()) if s.name == shop), None)
    if found is None:
        raise UnknownShop(shop)
    return found


def _tax_page(
    request: Request,
    signed_in: SignedIn,
    current: ShopView,
    keep: list[str],
    basis: str,
    *,
    confirm: bool = False,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "shops_tax_fields.html",
        signed_in,
        {
            "shop": current,
            "fields": TAX_FIELD_LABELS,
            "keep": [f for f in TAX_FIELDS if f in keep],
            "basis": basis,
            "max_basis": MAX_BASIS,
            "confirm": confirm,
            "error": error,
        },
        status=422 if error else 200,
    )


@router.get("/shops/tax-fields")
def tax_fields_form(
    request: Request,
    app: AppDep,
    signed_in: SettingsChanger,
    shop: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """The shop's current choice, to change: which tax fields stay unmasked, and why."""
    current = _shop_settings(app, shop)
    return _tax_page(
        request, signed_in, current, list(current.kept_tax_fields), current.tax_fields_basis or ""
    )


@router.post("/shops/tax-fields")
def choose_tax_fields(
    request: Request,
    app: AppDep,
    signed_in: SettingsChanger,
    shop: Annotated[str, Form(max_length=100)] = "",
    keep: Annotated[list[str] | None, Form(max_length=10)] = None,
    basis: Annotated[str, Form(max_length=MAX_BASIS + 100)] = "",
    confirmed: Annotated[str, Form(max_length=3)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Checks the choice and shows it with its legal basis for confirmation; records it (and
    audits it) only when the confirmation form was sent."""
    check_csrf(signed_in, csrf_token)
    current = _shop_settings(app, shop)
    chosen = keep or []
    try:
        kept, reason = check_tax_fields(chosen, basis)
    except InvalidInput as exc:
        return _tax_page(request, signed_in, current, chosen, basis, error=str(exc))
    if confirmed != "yes":
        return _tax_page(request, signed_in, current, list(kept), reason, confirm=True)
    set_tax_fields(app.ports(), shop, sorted(kept), reason, user=signed_in.account.name)
    return RedirectResponse(f"/shops?{urlencode({'done': 'tax', 'shop': shop})}", status_code=303)
