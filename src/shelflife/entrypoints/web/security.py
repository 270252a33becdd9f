"""Sessions, CSRF tokens and who is asking: the web layer's side of signing in.

The session cookie is HttpOnly and SameSite=Strict, and Secure whenever the request came over
TLS (directly or through a proxy that uvicorn trusts). Every form carries the session's CSRF
token; the login form, before there is a session, uses a double-submit cookie.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Response

from shelflife.bootstrap import App
from shelflife.domain.access import Permission, require
from shelflife.domain.accounts import SESSION_MAX_AGE, Account
from shelflife.domain.errors import Forbidden, NotAuthenticated
from shelflife.services.accounts import SignedIn, account_for_token, session_account

SESSION_COOKIE = "shelflife_session"
LOGIN_CSRF_COOKIE = "shelflife_login_csrf"


class LoginRequired(Exception):
    """A page was asked for without a valid session: the browser goes to the login page."""


def application(request: Request) -> App:
    app: App = request.app.state.shelflife
    return app


AppDep = Annotated[App, Depends(application)]


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
        path="/",
    )


def page_user(request: Request, app: AppDep) -> SignedIn:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    try:
        return session_account(app, token)
    except NotAuthenticated:
        raise LoginRequired from None


PageUser = Annotated[SignedIn, Depends(page_user)]


def check_csrf(signed_in: SignedIn, submitted: str | None) -> None:
    if not submitted or not secrets.compare_digest(submitted, signed_in.csrf_token):
        raise Forbidden("the form has expired or did not come from this site; reload the page")


def api_account(request: Request, app: AppDep) -> Account:
    """The user behind `Authorization: Bearer TOKEN`; 401 without or with a bad token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send an API token as 'Authorization: Bearer TOKEN'")
    try:
        return account_for_token(app, token)
    except Forbidden:
        raise NotAuthenticated("the API token is unknown, revoked or disabled") from None


ApiAccount = Annotated[Account, Depends(api_account)]


def page_permission(permission: Permission) -> Callable[[SignedIn], SignedIn]:
    """A dependency: the signed-in user, if their role grants `permission` (else 403 page)."""

    def dependency(signed_in: PageUser) -> SignedIn:
        require(signed_in.account.role, permission)
        return signed_in

    return dependency


def api_permission(permission: Permission) -> Callable[[Account], Account]:
    """A dependency: the token's user, if their role grants `permission` (else 403)."""

    def dependency(account: ApiAccount) -> Account:
        require(account.role, permission)
        return account

    return dependency
