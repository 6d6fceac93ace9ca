"""The one place errors become HTTP answers: problem+json bodies with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflow_engine.dsl import DslError
from workflow_engine.errors import EngineError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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


async def _engine_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngineError)
    return problem(exc.status_code, exc.code, exc.message, exc.details)


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


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail))


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
