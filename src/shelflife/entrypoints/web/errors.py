"""Errors as answers: RFC 9457 problem details for the API, readable pages for people.

Library messages never reach a response (they can carry SQL parameters, i.e. PII); only our
own errors' messages do, and those name no PII by construction.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shelflife.adapters.db.engine import database_error
from shelflife.domain.errors import ShelflifeError
from shelflife.domain.records import looks_like_field_name

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(status: int, detail: str, extra: dict[str, object] | None = None) -> JSONResponse:
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _where(loc: tuple[object, ...], kind: object = None) -> str:
    parts = [part for part in loc if part not in ("body", "query", "path")]
    if kind == "extra_forbidden" and parts and not looks_like_field_name(parts[-1]):
        parts[-1] = "an unknown field"  # the key sent is named only if it looks like a field
    return ".".join(str(part) for part in parts)


def invalid_fields(exc: RequestValidationError) -> tuple[list[dict[str, str]], str]:
    """Each invalid field with its problem, and all of them in one line. Pydantic's messages
    are ours to show, but never the input value (it may be PII, or a password)."""
    errors = [
        {
            "field": _where(tuple(e.get("loc", ())), e.get("type")),
            "problem": str(e.get("msg", "invalid")),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field'] or 'body'}: {e['problem']}" for e in errors)
    return errors, detail or "the request is not valid"


def install_problem_handlers(api: FastAPI) -> None:
    @api.exception_handler(ShelflifeError)
    async def _ours(_request: Request, exc: ShelflifeError) -> JSONResponse:
        return problem(exc.http_status, str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors, detail = invalid_fields(exc)
        return problem(422, detail, {"errors": errors})

    @api.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    @api.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        translated = database_error(exc)  # a lock not granted in time, a server gone: 503
        if translated is not None:
            return problem(translated.http_status, str(translated))
        log.error("unexpected %s in an API request", type(exc).__name__)
        return problem(500, f"unexpected {type(exc).__name__}; nothing was half-written")


def api_reference(document: dict[str, Any]) -> dict[str, Any]:
    """The parts of an OpenAPI document a person reads: each operation with its parameters,
    request body schema name and response codes, in path order."""
    operations = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method, op in item.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": "/api/v1" + path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        {
                            "name": prm.get("name"),
                            "in": prm.get("in"),
                            "required": prm.get("required", False),
                        }
                        for prm in op.get("parameters", [])
                    ],
                    "responses": sorted(op.get("responses", {})),
                    "secured": bool(op.get("security")),
                }
            )
    info = document.get("info", {})
    return {
        "title": info.get("title", ""),
        "version": info.get("version", ""),
        "description": info.get("description", ""),
        "operations": operations,
    }
