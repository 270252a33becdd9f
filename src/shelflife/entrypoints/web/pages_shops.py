"""Shops: the retention switch per shop, with counts per state and a confirmation step.

Support works here and sees counts only: nothing on these pages names or reaches a buyer.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from shelflife.domain.access import Permission, allows
from shelflife.domain.errors import InvalidInput
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import AppDep, check_csrf, page_permission
from shelflife.services.accounts import SignedIn
from shelflife.services.dashboard import STATES, shop_counts, switch_preview
from shelflife.services.shops import set_feature

router = APIRouter(include_in_schema=False)
CountsReader = Annotated[SignedIn, Depends(page_permission(Permission.VIEW_COUNTS))]
Switcher = Annotated[SignedIn, Depends(page_permission(Permission.SWITCH_FEATURE))]
SWITCH = {"on": True, "off": False}
DONE = {
    "on": "Retention switched on for {shop}.",
    "off": "Retention switched off for {shop}.",
    "same": "Retention was already {state} for {shop}; nothing changed.",
}


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
    known = shop in {s.name for s in shops} and state in SWITCH  # a link cannot make up news
    return render(
        request,
        "shops.html",
        signed_in,
        {
            "shops": shops,
            "states": [s.value for s in STATES],
            "may_switch": allows(signed_in.account.role, Permission.SWITCH_FEATURE),
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
