"""The console's session cookie and CSRF tokens: signed, bound to one session, ended by revoking the token."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from workflow_engine.api.auth import token_caller
from workflow_engine.api.console.session import SESSION_COOKIE, Sessions, same_origin
from workflow_engine.settings import Settings

from ..conftest import API_TOKENS


def _request(cookie: str | None = None, scheme: str = "http", origin: str | None = None) -> Request:
    headers = [(b"host", b"console.example")]
    if cookie is not None:
        headers.append((b"cookie", f"{SESSION_COOKIE}={cookie}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return Request({"type": "http", "method": "POST", "scheme": scheme, "path": "/ui", "headers": headers,
                    "server": ("console.example", 80), "query_string": b""})  # fmt: skip


def _settings(tmp_path: Path, tokens: str = API_TOKENS) -> Settings:
    return Settings(_env_file=None, api_tokens=tokens, approval_signing_key_file=tmp_path / "key")


def _cookie(sessions: Sessions, token: str) -> str:
    caller, digest = token_caller(sessions.settings, token)
    response = Response()
    sessions.store(_request(), response, sessions.new(caller.user, digest))
    header = response.headers["set-cookie"]
    assert token not in header and digest not in header  # only an HMAC of the token's digest
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_session_names_its_user_until_the_token_is_revoked(tmp_path: Path) -> None:
    sessions = Sessions(_settings(tmp_path))
    cookie = _cookie(sessions, "tok-bob")
    session = sessions.read(_request(cookie))
    assert session is not None and session.user == "bob"
    caller = sessions.caller(session)
    assert caller is not None and caller.user == "bob" and caller.has("approver") and not caller.has("operator")

    revoked = Sessions(_settings(tmp_path, API_TOKENS.replace("bob:approver:tok-bob,", "")))
    assert revoked.caller(session) is None  # same key, bob's token gone: the session ends
    renamed = Sessions(_settings(tmp_path, API_TOKENS.replace("bob:approver:tok-bob", "bob:admin:tok-bob2")))
    assert renamed.caller(session) is None  # a new token for bob is not the one he logged in with


def test_a_tampered_or_foreign_cookie_is_no_session(tmp_path: Path) -> None:
    sessions = Sessions(_settings(tmp_path))
    cookie = _cookie(sessions, "tok-bob")
    assert sessions.read(_request(cookie[:-3] + "xyz")) is None
    other = Sessions(_settings(tmp_path / "elsewhere"))  # another deployment's key
    assert other.read(_request(cookie)) is None


def test_csrf_tokens_are_bound_to_their_session(tmp_path: Path) -> None:
    sessions = Sessions(_settings(tmp_path))
    one, two = sessions.new(), sessions.new()
    assert sessions.csrf_ok(one, sessions.csrf_token(one))
    assert not sessions.csrf_ok(two, sessions.csrf_token(one))
    assert not sessions.csrf_ok(None, sessions.csrf_token(one)) and not sessions.csrf_ok(one, None)


def test_only_the_consoles_own_origin_may_post() -> None:
    assert same_origin(_request())  # no Origin header: the CSRF token decides
    assert same_origin(_request(origin="http://console.example"))
    assert same_origin(_request(origin="https://console.example"))  # behind a proxy that ends TLS
    assert not same_origin(_request(origin="https://evil.example"))
    assert not same_origin(_request(origin="null"))
