"""The console's session cookie (signed, HttpOnly, SameSite), its CSRF tokens, origin check and flash messages.

Every visitor gets a session: an id (`sid`) and, once logged in with a token, the user and a fingerprint of the
token (an HMAC of its digest, never the token), so revoking the token in API_TOKENS ends the session. Its key
is derived from the approval signing key with a label, so the raw key signs nothing but decisions.
A form's `csrf_token` is an HMAC of the session id: a page of another site cannot read it, so it cannot forge
a POST, in local mode too (a browser lets any site POST to localhost).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from workflow_engine.engine.signing import signing_key
from workflow_engine.settings import Settings

from ..auth import Caller, digest_caller

SESSION_COOKIE = "wfe_console"
FLASH_COOKIE = "wfe_flash"
SESSION_MAX_AGE = timedelta(hours=12)
FLASH_MAX_AGE = timedelta(minutes=2)
CSRF_FIELD = "csrf_token"
_KEY_LABEL = b"workflow-engine console session v1"


@dataclass(frozen=True)
class Session:
    """One browser's session: its id, and the user and token fingerprint once logged in."""

    sid: str
    user: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Flash:
    """A one-time message shown on the next page (`kind`: ok or error)."""

    text: str
    kind: str = "ok"


class Sessions:
    """Signs and reads the console's cookies with a key derived from the approval signing key."""

    def __init__(self, settings: Settings) -> None:
        """Derive the key (reading the signing key, or its file, once)."""
        self._key = hmac.new(signing_key(settings), _KEY_LABEL, hashlib.sha256).digest()
        self._session = URLSafeTimedSerializer(self._key, salt="console-session")
        self._flash = URLSafeTimedSerializer(self._key, salt="console-flash")
        self.settings = settings

    def new(self, user: str | None = None, digest: str | None = None) -> Session:
        """Return a fresh session (a new id at every login: a session id seen before it is worth nothing after)."""
        fingerprint = self._fingerprint(digest) if digest is not None else None
        return Session(secrets.token_urlsafe(24), user, fingerprint)

    def _fingerprint(self, digest: str) -> str:
        return hmac.new(self._key, f"token:{digest}".encode(), hashlib.sha256).hexdigest()

    def read(self, request: Request) -> Session | None:
        """Return the request's session when its cookie is genuine and younger than SESSION_MAX_AGE."""
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        try:
            data: Any = self._session.loads(value, max_age=int(SESSION_MAX_AGE.total_seconds()))
        except BadSignature:  # a forged, altered or expired cookie is no session
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        return Session(data["sid"], data.get("user"), data.get("fp"))

    def caller(self, session: Session) -> Caller | None:
        """Return the logged-in caller of a session, None when it has none or its token was revoked."""
        if session.user is None or session.fingerprint is None:
            return None
        fingerprint = session.fingerprint
        found = digest_caller(self.settings, lambda digest: hmac.compare_digest(self._fingerprint(digest), fingerprint))
        return found if found is not None and found.user == session.user else None

    def store(self, request: Request, response: Response, session: Session) -> None:
        """Set the session cookie: signed, HttpOnly, SameSite=Lax, Secure over https, for SESSION_MAX_AGE."""
        value = self._session.dumps({"sid": session.sid, "user": session.user, "fp": session.fingerprint})
        _cookie(request, response, SESSION_COOKIE, value, SESSION_MAX_AGE)

    def csrf_token(self, session: Session) -> str:
        """Return the CSRF token of a session (the same for all its forms)."""
        return hmac.new(self._key, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session | None, token: object) -> bool:
        """Tell whether a form's token belongs to this session."""
        return session is not None and isinstance(token, str) and hmac.compare_digest(self.csrf_token(session), token)

    def flash(self, request: Request, response: Response, flash: Flash) -> None:
        """Leave a message for the next page (a signed cookie, so no other site can plant one)."""
        value = self._flash.dumps({"text": flash.text, "kind": flash.kind})
        _cookie(request, response, FLASH_COOKIE, value, FLASH_MAX_AGE)

    def take_flash(self, request: Request) -> Flash | None:
        """Return the message left for this page, if any (the caller clears the cookie)."""
        value = request.cookies.get(FLASH_COOKIE)
        if not value:
            return None
        try:
            data: Any = self._flash.loads(value, max_age=int(FLASH_MAX_AGE.total_seconds()))
        except BadSignature:
            return None
        return Flash(str(data.get("text", "")), str(data.get("kind", "ok"))) if isinstance(data, dict) else None


def _cookie(request: Request, response: Response, name: str, value: str, max_age: timedelta) -> None:
    response.set_cookie(
        name, value, max_age=int(max_age.total_seconds()), path="/ui", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def same_origin(request: Request) -> bool:
    """Tell whether a POST comes from the console's own origin: no Origin header (an old browser, a script) passes.

    The CSRF token is the defence; this refuses a cross-site form before its body is even read.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if origin == "null" or not parts.scheme or not parts.netloc:
        return False
    # the host alone: behind a proxy that ends TLS the app may see http while the browser says https
    host = request.headers.get("host") or request.url.netloc
    return parts.netloc.lower() == host.lower()
