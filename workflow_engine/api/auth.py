"""Who is calling: bearer tokens from settings mapped to a user and roles, and role checks per route."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from workflow_engine.errors import ForbiddenError, UnauthenticatedError
from workflow_engine.settings import Settings

ROLES = ("viewer", "operator", "approver", "admin")
# What each role may also do: admin everything, operator and approver can also read.
_IMPLIES = {"admin": set(ROLES), "operator": {"viewer"}, "approver": {"viewer"}, "viewer": set()}
LOCAL_USER = "local"


@dataclass(frozen=True)
class Caller:
    """An authenticated user and the roles they hold (implied roles included)."""

    user: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        """Tell whether the caller holds `role`."""
        return role in self.roles


@dataclass(frozen=True)
class _Token:
    digest: str
    caller: Caller


def parse_tokens(text: str) -> list[_Token]:
    """Parse `user:role+role:token` entries; a token written `sha256:<hex>` is kept hashed."""
    tokens: list[_Token] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        user, sep, rest = entry.partition(":")
        roles_text, sep2, secret = rest.partition(":")
        roles = {r.strip() for r in roles_text.split("+") if r.strip()}
        if not (sep and sep2 and user and secret and roles) or not roles <= set(ROLES):
            raise ValueError(f"API_TOKENS entry for {user or '?'!r} must be user:role+role:token with roles in {ROLES}")
        digest = secret.removeprefix("sha256:") if secret.startswith("sha256:") else _digest(secret)
        implied = set(roles).union(*(_IMPLIES[r] for r in roles))
        tokens.append(_Token(digest, Caller(user, frozenset(implied))))
    return tokens


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(settings: Settings, authorization: str | None) -> Caller:
    """Return the caller for an Authorization header; local mode (no tokens) trusts everyone as `local`."""
    tokens = parse_tokens(settings.api_tokens)
    if not tokens:
        return Caller(LOCAL_USER, frozenset(ROLES))
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthenticatedError("send `Authorization: Bearer <token>`")
    digest = _digest(credential.strip())
    for token in tokens:
        if hmac.compare_digest(token.digest, digest):
            return token.caller
    raise UnauthenticatedError("unknown or revoked API token")


async def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller of this request."""
    return authenticate(request.app.state.settings, request.headers.get("authorization"))


def require(role: str) -> Callable[..., Awaitable[Caller]]:
    """Return a dependency that lets only callers holding `role` through (403 otherwise)."""

    async def _check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.has(role):
            raise ForbiddenError(f"{caller.user!r} needs the {role} role for this")
        return caller

    return _check


Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Approver = Annotated[Caller, Depends(require("approver"))]
Admin = Annotated[Caller, Depends(require("admin"))]
