"""Who is calling: bearer tokens from settings mapped to a user and roles, and role checks per route."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from workflow_engine.errors import ForbiddenError, TokensRequiredError, UnauthenticatedError
from workflow_engine.settings import Settings

from .deps import SettingsDep

ROLES = ("viewer", "operator", "approver", "admin")
# What each role may also do: admin everything, operator and approver can also read.
_IMPLIES = {"admin": set(ROLES), "operator": {"viewer"}, "approver": {"viewer"}, "viewer": set()}
LOCAL_USER = "local"
# What Starlette's in-process TestClient reports as the client; a socket peer is always an IP address.
_IN_PROCESS_CLIENT = "testclient"


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


@functools.lru_cache(maxsize=4)
def _configured(text: str) -> tuple[_Token, ...]:
    """The parsed API_TOKENS (parsed once per value, not on every request)."""
    return tuple(parse_tokens(text))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_loopback(host: str | None) -> bool:
    """Tell whether a request's client address is this machine (None: a Unix socket, local by construction)."""
    if host is None or host == _IN_PROCESS_CLIENT:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def authenticate(settings: Settings, authorization: str | None, client_host: str | None = None) -> Caller:
    """Return the caller for an Authorization header; local mode (no tokens) trusts loopback callers as `local`.

    `python -m workflow_engine api` refuses a non-loopback bind in local mode, but a server started some
    other way (`uvicorn workflow_engine.api.main:app --host 0.0.0.0`) is not checked at start, so a
    local-mode request is also refused here unless it comes from this machine.

    Raises:
        TokensRequiredError: local mode and `client_host` is not loopback (403 `tokens_required`).
        UnauthenticatedError: tokens are configured and the header names none of them (401).
    """
    tokens = _configured(settings.api_tokens)
    if not tokens:
        if not is_loopback(client_host):
            raise TokensRequiredError(
                f"this API runs in local mode (no API_TOKENS) and serves only this machine, not {client_host}: "
                "set API_TOKENS (user:role+role:token, ...) to accept callers from other hosts"
            )
        return Caller(LOCAL_USER, frozenset(ROLES))
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthenticatedError("send `Authorization: Bearer <token>`")
    return token_caller(settings, credential.strip())[0]


def local_mode(settings: Settings) -> bool:
    """Tell whether the API runs without API_TOKENS (loopback callers are `local` with every role)."""
    return not _configured(settings.api_tokens)


def token_caller(settings: Settings, token: str) -> tuple[Caller, str]:
    """Return the caller a token names and the token's digest (what a console session remembers of it).

    Raises:
        UnauthenticatedError: No configured token matches.
    """
    digest = _digest(token)
    for known in _configured(settings.api_tokens):
        if hmac.compare_digest(known.digest, digest):
            return known.caller, known.digest
    raise UnauthenticatedError("unknown or revoked API token")


def digest_caller(settings: Settings, matches: Callable[[str], bool]) -> Caller | None:
    """Return the caller of the configured token whose digest `matches`, or None (revoked since, say)."""
    return next((known.caller for known in _configured(settings.api_tokens) if matches(known.digest)), None)


async def current_caller(request: Request, settings: SettingsDep) -> Caller:
    """FastAPI dependency: the authenticated caller of this request."""
    client = request.client.host if request.client else None
    return authenticate(settings, request.headers.get("authorization"), client)


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
