"""Console login and logout: a token (one of API_TOKENS) exchanged for a signed session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from workflow_engine.errors import UnauthenticatedError

from ..auth import local_mode, token_caller
from ..deps import SettingsDep
from .pages import ConsoleRoute, checked_form, local_path, redirect, render, sessions_of
from .session import SESSION_COOKIE, Flash

router = APIRouter(route_class=ConsoleRoute)


@router.get("/login")
async def login_page(
    request: Request, settings: SettingsDep, next_: str | None = Query(None, alias="next")
) -> Response:
    """Show the token form (local mode has no login: straight to the inbox)."""
    if local_mode(settings):
        return redirect(request, local_path(next_))
    sessions = sessions_of(request)
    # an anonymous session whose id the form's CSRF token is bound to; logging in replaces it
    session = sessions.read(request) or sessions.new()
    response = render(request, "login.html", {"next": local_path(next_)}, session=session)
    sessions.store(request, response, session)
    return response


@router.post("/login")
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the token; on success start a new session (a new id) and go where the visitor was going."""
    if local_mode(settings):
        return redirect(request, "/ui")
    sessions = sessions_of(request)
    form = await checked_form(request, sessions.read(request))
    target = local_path(str(form.get("next") or ""))
    try:
        caller, digest = token_caller(settings, str(form.get("token") or "").strip())
    except UnauthenticatedError:
        session = sessions.new()
        response = render(request, "login.html", {"next": target}, session=session, status_code=401,
                          flash=Flash("unknown or revoked token", "error"))  # fmt: skip
        sessions.store(request, response, session)
        return response
    welcome = redirect(request, target, Flash(f"logged in as {caller.user}"))
    sessions.store(request, welcome, sessions.new(caller.user, digest))
    return welcome


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked: another site must not log anyone out either)."""
    sessions = sessions_of(request)
    await checked_form(request, sessions.read(request))
    response = redirect(request, "/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response
