"""Error tree shared by every layer; each error has a stable code and an HTTP status."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"
    status_code = 500

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        """Keep a human message and optional structured details."""
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFoundError(EngineError):
    """A workflow, revision or execution that does not exist."""

    code = "not_found"
    status_code = 404


class ValidationFailedError(EngineError):
    """Input (a definition or run parameters) that does not pass validation."""

    code = "validation_failed"
    status_code = 422


class ConflictError(EngineError):
    """A request that conflicts with the current state."""

    code = "conflict"
    status_code = 409


class UnavailableError(EngineError):
    """A dependency (Temporal, the database) that cannot be reached."""

    code = "unavailable"
    status_code = 503


class UnauthenticatedError(EngineError):
    """A request without valid credentials."""

    code = "unauthenticated"
    status_code = 401


class ForbiddenError(EngineError):
    """An authenticated caller without the right to do this."""

    code = "forbidden"
    status_code = 403


class TokensRequiredError(ForbiddenError):
    """A request from another machine to an API in local mode (no API_TOKENS), which trusts loopback only."""

    code = "tokens_required"


class GoneError(EngineError):
    """Data that existed and is no longer available (e.g. a stored payload deleted from the database)."""

    code = "gone"
    status_code = 410


class BodyTooLargeError(EngineError):
    """A request body over API_MAX_BODY_BYTES, refused before it is read whole."""

    code = "body_too_large"
    status_code = 413


class NestingTooDeepError(ValidationFailedError):
    """A JSON request body nested deeper than API_MAX_JSON_DEPTH; `details` names the path."""

    code = "nesting_too_deep"
