"""The CLI's HTTP client for the API: start runs, show status, decide approvals, with clear errors."""

from __future__ import annotations

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
