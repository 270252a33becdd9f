"""The web app agents work in and the API other systems call, on the same services as the CLI.

`create_web_app` receives the App that bootstrap built; nothing is wired at import time, so a
test can serve any database, clock and archive.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shelflife.adapters.db.engine import database_error
from shelflife.bootstrap import App
from shelflife.domain.errors import ShelflifeError
from shelflife.entrypoints.web import api as api_routes
from shelflife.entrypoints.web import (
    pages_admin,
    pages_auth,
    pages_dashboard,
    pages_orders,
    pages_shops,
)
from shelflife.entrypoints.web.errors import (
    api_reference,
    install_problem_handlers,
    invalid_fields,
)
from shelflife.entrypoints.web.rendering import HERE, render
from shelflife.entrypoints.web.security import ApiAccount, LoginRequired

log = logging.getLogger(__name__)

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
    # Page forms too (/login before anyone signs in): no body beyond the API's limits is read.
    web.add_middleware(api_routes.BoundedBodies)
    web.add_middleware(_SecurityHeaders)
    web.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    web.mount("/api/v1", _create_api(application))
    web.include_router(pages_auth.router)
    web.include_router(pages_admin.router)
    web.include_router(pages_orders.router)
    web.include_router(pages_dashboard.router)
    web.include_router(pages_shops.router)

    @web.exception_handler(LoginRequired)
    async def _login(_request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @web.exception_handler(ShelflifeError)
    async def _page_error(request: Request, exc: ShelflifeError) -> Response:
        return render(
            request,
            "error.html",
            None,
            {"status": exc.http_status, "message": str(exc)},
            status=exc.http_status,
        )

    @web.exception_handler(Exception)
    async def _unexpected_page(request: Request, exc: Exception) -> Response:
        # As the API answers: a lock not granted in time or a server gone is a 503 that says
        # so (never the library's message, which can quote SQL parameters); anything else 500.
        failure = database_error(exc)
        if failure is None:
            log.error("unexpected %s on a page", type(exc).__name__)
            failure = ShelflifeError(f"unexpected {type(exc).__name__}; nothing was half-written")
        status = failure.http_status
        return render(
            request, "error.html", None, {"status": status, "message": str(failure)}, status
        )

    @web.exception_handler(RequestValidationError)
    async def _invalid_form(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer is JSON quoting each value sent: a note, a password.
        message = invalid_fields(exc)[1]
        return render(request, "error.html", None, {"status": 422, "message": message}, 422)

    return web


def _create_api(application: App) -> FastAPI:
    api = FastAPI(
        title="shelflife API",
        version=version("shelflife"),
        description="Orders, retrieval, runs and compliance of shelflife. Errors are RFC 9457 "
        "problem details. Authenticate with `Authorization: Bearer TOKEN` "
        "(`shelflife token create USER`).",
        openapi_url="/openapi.json",
        docs_url=None,  # the stock page loads its scripts from a CDN; ours is self-contained
        redoc_url=None,
    )
    api.state.shelflife = application
    install_problem_handlers(api)

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        """The API described for people, rendered from the same OpenAPI document."""
        return render(request, "api_docs.html", None, {"api": api_reference(api.openapi())})

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness without authentication: 200 while the process serves requests."""
        return {"status": "ok"}

    @api.get("/me", tags=["account"])
    def me(account: ApiAccount) -> dict[str, str]:
        """Who the token acts as: lets an integrator check a token before using it."""
        return {"name": account.name, "role": account.role.value}

    api.add_middleware(api_routes.BoundedBodies)
    api.include_router(api_routes.router)
    return api
