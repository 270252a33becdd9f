"""Server-rendered pages: one template environment and one way to render a page."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from shelflife.domain.access import Permission, allows
from shelflife.entrypoints.web.order_view import is_masked
from shelflife.services.accounts import SignedIn

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes every .html template
templates.env.tests["masked"] = is_masked

NAV: tuple[tuple[str, str, Permission | None], ...] = (
    ("Home", "/", None),
    ("Orders", "/orders", Permission.VIEW_ORDERS),
    ("Dashboard", "/dashboard", Permission.VIEW_DASHBOARD),
    ("Shops", "/shops", Permission.VIEW_COUNTS),
    ("Users", "/users", Permission.MANAGE_USERS),
    ("Audit log", "/audit", Permission.VIEW_AUDIT),
)
"""The header's links, each shown only to roles that may open the page."""


def render(
    request: Request,
    name: str,
    signed_in: SignedIn | None,
    context: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    account = signed_in.account if signed_in else None
    nav = (
        [(label, href) for label, href, p in NAV if p is None or allows(account.role, p)]
        if account
        else []
    )
    base = {
        "user": account,
        "csrf_token": signed_in.csrf_token if signed_in else None,
        "nav": nav,
        "current": request.url.path,
        "version": version("shelflife"),
    }
    return templates.TemplateResponse(
        request, name, {**base, **(context or {})}, status_code=status
    )
