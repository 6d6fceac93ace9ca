"""What every console page shares: templates, the visitor (caller + session), role and CSRF checks, error pages.

Errors are mapped to pages in one place, `ConsoleRoute`: a route raises the error tree's exceptions as the API
does and the visitor sees a readable page with the error's status, never a 500 or problem+json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData

from workflow_engine.dsl import DslError
from workflow_engine.errors import EngineError, ForbiddenError, UnavailableError

from ..auth import Caller, authenticate, local_mode
from ..deps import SettingsDep
from .session import CSRF_FIELD, FLASH_COOKIE, Flash, Session, Sessions, same_origin

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
# A page of buttons that decide approvals must not be framed by another site (clickjacking); no script runs.
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Exception):
    """A page asked for without a (live) session while API_TOKENS is set: the visitor is sent to log in."""


class CsrfRefused(ForbiddenError):
    """A POST without this session's CSRF token, or from another origin."""

    code = "csrf"


@dataclass(frozen=True)
class Visitor:
    """Who looks at a page: the caller (with roles), their session, and whether its cookie must be set."""

    caller: Caller
    session: Session
    fresh: bool
    local: bool

    def can(self, role: str) -> bool:
        """Tell whether the visitor holds `role`."""
        return self.caller.has(role)

    def need(self, role: str) -> None:
        """Refuse (403) a visitor without `role`, as the API does.

        Raises:
            ForbiddenError: The visitor lacks the role.
        """
        if not self.can(role):
            raise ForbiddenError(f"{self.caller.user!r} needs the {role} role for this")


def sessions_of(request: Request) -> Sessions:
    """Return the app's session signer, made on first use (the signing key file may not exist before)."""
    state = request.app.state
    sessions: Sessions | None = getattr(state, "console_sessions", None)
    if sessions is None:
        try:
            sessions = state.console_sessions = Sessions(state.settings)
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot read the approval signing key the console's cookies use: {exc}") from None
    return sessions


async def visitor(request: Request, settings: SettingsDep) -> Visitor:
    """FastAPI dependency: the caller of a console page (local mode: `local` from loopback only).

    Raises:
        LoginRequired: API_TOKENS is set and the session is missing, expired or its token revoked.
        TokensRequiredError: Local mode and the request is not from this machine.
    """
    sessions = sessions_of(request)
    session = sessions.read(request)
    if local_mode(settings):
        caller = authenticate(settings, None, request.client.host if request.client else None)
        return Visitor(caller, session or sessions.new(), fresh=session is None, local=True)
    known = sessions.caller(session) if session is not None else None
    if session is None or known is None:
        raise LoginRequired()
    return Visitor(known, session, fresh=False, local=False)


VisitorDep = Annotated[Visitor, Depends(visitor)]


async def checked_form(request: Request, session: Session | None) -> FormData:
    """Read a POSTed form after refusing a cross-origin one or one without this session's CSRF token.

    Raises:
        CsrfRefused: The Origin header names another site, or the token is missing or not this session's.
    """
    if not same_origin(request):
        raise CsrfRefused(f"refused a form sent from another site ({request.headers.get('origin')})")
    form = await request.form()
    if not sessions_of(request).csrf_ok(session, form.get(CSRF_FIELD)):
        raise CsrfRefused(
            "this form's security token is missing or expired (it protects you from forged requests); "
            "go back, reload the page and send it again"
        )
    return form


async def posted(request: Request, who: VisitorDep) -> FormData:
    """FastAPI dependency: the POSTed form of a visitor, CSRF-checked."""
    return await checked_form(request, who.session)


FormDep = Annotated[FormData, Depends(posted)]


def render(
    request: Request, template: str, context: Mapping[str, Any], *, who: Visitor | None = None,
    session: Session | None = None, status_code: int = 200, flash: Flash | None = None,
) -> HTMLResponse:  # fmt: skip
    """Render a page with the nav, the flash message (given or left by the last page) and the CSRF token."""
    sessions = sessions_of(request)
    session = session or (who.session if who is not None else None)
    left = sessions.take_flash(request)
    body = _ENV.get_template(template).render(
        request=request, who=who, flash=flash or left, csrf_field=CSRF_FIELD,
        csrf_token=sessions.csrf_token(session) if session is not None else "", **context,
    )  # fmt: skip
    response = HTMLResponse(body, status_code=status_code, headers=_HEADERS)
    if who is not None and who.fresh:
        sessions.store(request, response, who.session)
    if left is not None:
        response.delete_cookie(FLASH_COOKIE, path="/ui")
    return response


def redirect(request: Request, url: str, flash: Flash | None = None) -> RedirectResponse:
    """Answer a POST with 303 to `url`, leaving `flash` for the page it lands on."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        sessions_of(request).flash(request, response, flash)
    return response


def error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    """A readable page for an error (the nav still works; no session is needed)."""
    context = {"title": title, "detail": detail, "status": status_code}
    return render(request, "error.html", context, status_code=status_code, flash=Flash(detail, "error"))


def local_path(target: str | None, default: str = "/ui") -> str:
    """Return `target` if it is a console path (a `next` parameter must not send anyone to another site)."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return default


class ConsoleRoute(APIRoute):
    """A console route: errors of the tree become pages with their status; no session sends to the login page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler (dependencies included) so its errors become pages."""
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(wanted)}", status_code=303)
            except EngineError as exc:
                title = "Refused" if exc.status_code in (403, 409) else exc.code.replace("_", " ").capitalize()
                return error_page(request, exc.status_code, title, exc.message)
            except DslError as exc:
                return error_page(request, 422, "Invalid", "; ".join(str(issue) for issue in exc.issues))
            except RequestValidationError as exc:  # a query parameter out of bounds, say
                detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
                return error_page(request, 422, "Invalid request", detail)

        return page
