"""Admin pages: staff accounts and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from shelflife.domain.access import Permission, Role
from shelflife.domain.errors import InvalidInput
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import AppDep, check_csrf, page_permission
from shelflife.services.accounts import (
    SignedIn,
    add_user,
    disable_user,
    list_users,
    unlock_user,
)
from shelflife.services.audit import recent_entries, verify_audit_log

router = APIRouter(include_in_schema=False)
UserAdmin = Annotated[SignedIn, Depends(page_permission(Permission.MANAGE_USERS))]
AuditReader = Annotated[SignedIn, Depends(page_permission(Permission.VIEW_AUDIT))]
DONE = {
    "added": "User added.",
    "disabled": "User disabled; their sessions and tokens no longer work.",
    "unlocked": "User unlocked.",
}


def _users_page(
    request: Request,
    app: AppDep,
    signed_in: SignedIn,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "users.html",
        signed_in,
        {
            "users": list_users(app),
            "roles": [r.value for r in Role],
            "error": error,
            "done": DONE.get(request.query_params.get("done", "")),
            "form": form or {},
        },
        status=422 if error else 200,
    )


@router.get("/users")
def users(request: Request, app: AppDep, signed_in: UserAdmin) -> Response:
    return _users_page(request, app, signed_in)


@router.post("/users")
def users_add(
    request: Request,
    app: AppDep,
    signed_in: UserAdmin,
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    try:
        add_user(app, name, role, password, signed_in.account.name)
    except InvalidInput as exc:
        return _users_page(request, app, signed_in, str(exc), {"name": name, "role": role})
    return RedirectResponse("/users?done=added", status_code=303)


@router.post("/users/{name}/disable")
def users_disable(
    name: str,
    app: AppDep,
    signed_in: UserAdmin,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    disable_user(app, name, signed_in.account.name)
    return RedirectResponse("/users?done=disabled", status_code=303)


@router.post("/users/{name}/unlock")
def users_unlock(
    name: str,
    app: AppDep,
    signed_in: UserAdmin,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    unlock_user(app, name, signed_in.account.name)
    return RedirectResponse("/users?done=unlocked", status_code=303)


@router.get("/audit")
def audit(request: Request, app: AppDep, signed_in: AuditReader) -> Response:
    return render(
        request,
        "audit.html",
        signed_in,
        {"check": verify_audit_log(app.ports()), "entries": recent_entries(app.ports(), 200)},
    )
