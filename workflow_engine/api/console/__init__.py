"""The approvers' console at /ui: server-rendered pages (inbox, runs, workflows) over the API's own functions."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from . import inbox, login, runs, workflows

STATIC = Path(__file__).parent / "static"

ROUTERS: tuple[APIRouter, ...] = (login.router, inbox.router, runs.router, workflows.router)


def mount(app: FastAPI) -> None:
    """Serve the console's pages and its stylesheet (/ui/static) from `app`."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")
    for router in ROUTERS:
        app.include_router(router, prefix="/ui", include_in_schema=False)


__all__ = ["mount"]
