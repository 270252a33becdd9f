"""The web app agents work in and the API other systems call, on the same services as the CLI.

`create_web_app` receives the App that bootstrap built; nothing is wired at import time, so a
test can serve any database, clock and archive.
"""

from __future__ import annotations

import logging
import secrets
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shelflife.bootstrap import App
from shelflife.domain.access import Permission, allows
from shelflife.domain.errors import Forbidden, ShelflifeError
from shelflife.entrypoints.web.errors import install_problem_handlers
from shelflife.entrypoints.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ApiAccount,
    AppDep,
    LoginRequired,
    PageUser,
    check_csrf,
    set_cookie,
)
from shelflife.services.accounts import end_session, sign_in, start_session

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _SecurityHeaders(BaseHTTPMiddleware):
    """Pages show personal data: never framed, never cached, no third-party anything."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def create_web_app(application: App) -> FastAPI:
    web = FastAPI(title="shelflife", docs_url=None, redoc_url=None, openapi_url=None)
    web.state.shelflife = application
    web.add_middleware(_SecurityHeaders)
    web.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    web.mount("/api/v1", _create_api(application))

    @web.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @web.exception_handler(ShelflifeError)
    async def _page_error(request: Request, exc: ShelflifeError) -> Response:
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": exc.http_status, "message": str(exc), "user": None},
            status_code=exc.http_status,
        )

    @web.get("/", include_in_schema=False)
    def home(request: Request, signed_in: PageUser) -> Response:
        return _page(request, "home.html", signed_in, {})

    @web.get("/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = _page(request, "login.html", None, {"csrf_token": csrf, "failed": False})
        set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf)
        return response

    @web.post("/login", include_in_schema=False)
    def login(
        request: Request,
        app: AppDep,
        user_name: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1000)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not secrets.compare_digest(expected, csrf_token):
            raise Forbidden("the login form has expired; reload the page and try again")
        try:
            account = sign_in(app, user_name, password)
        except Forbidden:
            csrf = secrets.token_urlsafe(32)
            response = _page(
                request,
                "login.html",
                None,
                {"csrf_token": csrf, "failed": True, "user_name": user_name},
                status=401,
            )
            set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf)
            return response
        ticket = start_session(app, account)
        response = RedirectResponse("/", status_code=303)
        set_cookie(response, request, SESSION_COOKIE, ticket.token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @web.post("/logout", include_in_schema=False)
    def logout(
        request: Request,
        app: AppDep,
        signed_in: PageUser,
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        check_csrf(signed_in, csrf_token)
        end_session(app, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return web


def _page(
    request: Request,
    name: str,
    signed_in: Any,
    context: dict[str, Any],
    status: int = 200,
) -> Response:
    account = signed_in.account if signed_in else None
    nav: list[tuple[str, str]] = []
    if account is not None:
        nav = [("Home", "/")] + [
            (label, href) for label, href, permission in _NAV if allows(account.role, permission)
        ]
    base = {
        "user": account,
        "csrf_token": signed_in.csrf_token if signed_in else context.get("csrf_token"),
        "nav": nav,
        "version": version("shelflife"),
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


_NAV: tuple[tuple[str, str, Permission], ...] = ()
"""Pages beyond Home, each shown only to roles that may open it."""


def _create_api(application: App) -> FastAPI:
    api = FastAPI(
        title="shelflife API",
        version=version("shelflife"),
        description="Orders, retrieval, runs and compliance of shelflife. Errors are RFC 9457 "
        "problem details. Authenticate with `Authorization: Bearer TOKEN` "
        "(`shelflife token create USER`).",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.shelflife = application
    install_problem_handlers(api)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness without authentication: 200 while the process serves requests."""
        return {"status": "ok"}

    @api.get("/me", tags=["account"])
    def me(account: ApiAccount) -> dict[str, str]:
        """Who the token acts as: lets an integrator check a token before using it."""
        return {"name": account.name, "role": account.role.value}

    return api
