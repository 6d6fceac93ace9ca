"""ASGI entry point: `uvicorn workflow_engine.api.main:app` serves the API built from the settings."""

from __future__ import annotations

import sys

from fastapi import FastAPI
from pydantic import ValidationError

from workflow_engine.api.app import create_app
from workflow_engine.api.auth import parse_tokens
from workflow_engine.cli import configure_logging, setting_errors
from workflow_engine.settings import get_settings


def build_app() -> FastAPI:
    """Return the API for the environment's settings, as `python -m workflow_engine api` serves it.

    Invalid settings print one line each and exit 2, as the CLI does. The bind address is uvicorn's
    here, so local mode (no API_TOKENS) is enforced per request instead: only loopback callers.
    """
    try:
        settings = get_settings()
        parse_tokens(settings.api_tokens)
    except ValidationError as exc:
        print("\n".join(setting_errors(exc)), file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:  # a malformed API_TOKENS entry
        print(f"setting API_TOKENS: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging()
    return create_app(settings)


app = build_app()
