"""The one place errors become HTTP answers: problem+json bodies with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflow_engine.dsl import DslError
from workflow_engine.errors import EngineError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable machine-readable error code"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
# Declared on every route: any of these may answer with a problem+json body.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
    for status, description in (
        (400, "Malformed request (e.g. a body that cannot be parsed)"),
        (401, "Missing or invalid credentials"),
        (403, "The caller lacks the role for this"),
        (404, "Unknown workflow, revision, execution or task"),
        (405, "Method not allowed"),
        (409, "Conflicts with the current state"),
        (413, "Request body over API_MAX_BODY_BYTES (`body_too_large`)"),
        (422, "Invalid input; `errors` lists every problem (`nesting_too_deep`: JSON over API_MAX_JSON_DEPTH)"),
        (503, "Temporal or the database is unreachable"),
    )
}


def problem(status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    """Build a problem+json response."""
    body = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        "errors": errors or [],
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def error_response(exc: EngineError) -> JSONResponse:
    """Map an error of the tree to its problem+json answer (also used by the request-limits middleware)."""
    return problem(exc.status_code, exc.code, exc.message, exc.details)


async def _engine_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngineError)
    return error_response(exc)


async def _dsl_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DslError)
    count = len(exc.issues)
    detail = f"{count} problem{'s' if count != 1 else ''}: " + "; ".join(str(i) for i in exc.issues)
    return problem(422, "validation_failed", detail, [issue.as_dict() for issue in exc.issues])


async def _request_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": ".".join(str(p) for p in error.get("loc", ())), "message": error.get("msg", "")}
        for error in exc.errors()
    ]
    detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return problem(422, "invalid_request", detail, errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = problem(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # the path may be served by several routers: list every method it has
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods.update(route.methods or ())
    return sorted(methods)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return problem(500, "internal_error", "an unexpected error occurred; see the API log")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(DslError, _dsl_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
