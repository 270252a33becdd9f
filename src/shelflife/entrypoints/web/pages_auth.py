"""Signing in and out, and the start page."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from shelflife.domain.errors import Forbidden
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AppDep,
    PageUser,
    check_csrf,
    set_cookie,
)
from shelflife.services.accounts import end_session, sign_in, start_session

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, signed_in: PageUser) -> Response:
    return render(request, "home.html", signed_in)


def _login_page(request: Request, failed: bool, user_name: str = "") -> Response:
    csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        None,
        {"login_csrf": csrf, "failed": failed, "user_name": user_name},
        status=401 if failed else 200,
    )
    set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf)
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request, failed=False)


@router.post("/login")
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
        return _login_page(request, failed=True, user_name=user_name)
    ticket = start_session(app, account)
    response = RedirectResponse("/", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, ticket.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
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
