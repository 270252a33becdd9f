"""The admin's dashboard: counts per state, tonight's preview, failures, compliance, runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from shelflife.domain.access import Permission
from shelflife.entrypoints.web.rendering import render
from shelflife.entrypoints.web.security import AppDep, page_permission
from shelflife.services.accounts import SignedIn
from shelflife.services.dashboard import dashboard

router = APIRouter(include_in_schema=False)
DashboardReader = Annotated[SignedIn, Depends(page_permission(Permission.VIEW_DASHBOARD))]


@router.get("/dashboard")
def dashboard_page(request: Request, app: AppDep, signed_in: DashboardReader) -> Response:
    return render(request, "dashboard.html", signed_in, {"d": dashboard(app)})
