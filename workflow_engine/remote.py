"""The CLI's HTTP client for the API: start runs, show status, decide approvals, follow logs, with clear errors."""

from __future__ import annotations

import json as json_module
from collections.abc import Iterator
from typing import Any

import httpx

from workflow_engine.settings import Settings


class ApiError(Exception):
    """The API answered with an error (problem+json) or could not be reached."""


def call(settings: Settings, method: str, path: str, json: Any = None) -> Any:
    """Send one request to the API and return the decoded JSON answer."""
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    try:
        response = httpx.request(method, f"{settings.api_base_url}{path}", json=json, headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise ApiError(f"cannot reach the API at {settings.api_base_url}: {exc}") from None
    if response.is_error:
        try:
            problem = response.json()
            detail = f"{problem.get('code', 'error')}: {problem.get('detail', response.text)}"
        except ValueError:
            detail = response.text
        raise ApiError(f"HTTP {response.status_code} {detail}")
    return response.json()


def stream_events(settings: Settings, path: str) -> Iterator[tuple[str, Any]]:
    """Follow a Server-Sent Events answer of the API, yielding (event name, `data` decoded as JSON) per event."""
    headers = {"Accept": "text/event-stream"}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    try:
        with httpx.stream("GET", f"{settings.api_base_url}{path}", headers=headers, timeout=None) as response:
            if response.is_error:
                response.read()
                raise ApiError(f"HTTP {response.status_code} {response.text}")
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    yield event, json_module.loads(line[len("data:") :].strip())
                elif not line:
                    event = "message"
    except httpx.TransportError as exc:
        raise ApiError(f"cannot reach the API at {settings.api_base_url}: {exc}") from None
