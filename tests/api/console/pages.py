"""Helpers of the console tests: log in, read a page's CSRF token, post a form, start and stop runs."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from temporalio.client import Client

from tests.polling import eventually

from ..conftest import TOKENS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF token in {page.url}: {page.text[:500]}"
    return found.group(1)


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def flash(page: httpx.Response) -> str:
    found = re.search(r'data-testid="flash"[^>]*>(.*?)</div>', page.text, re.S)
    return html.unescape(found.group(1)) if found else ""


async def login(http: httpx.AsyncClient, user: str) -> httpx.Response:
    """Log `user` in through the form; the client keeps the session cookie."""
    page = await http.get("/ui/login")
    assert page.status_code == 200, page.text
    response = await http.post("/ui/login", data={"token": TOKENS[user], "csrf_token": csrf(page), "next": "/ui"})
    assert response.status_code == 303, response.text
    return response


async def post_form(http: httpx.AsyncClient, page_url: str, action: str, data: dict[str, str]) -> httpx.Response:
    """GET the page holding a form (for its CSRF token and `next`, as a browser sends them), then POST the form."""
    page = await http.get(page_url)
    assert page.status_code == 200, page.text
    hidden = dict(re.findall(r'<input type="hidden" name="(next)" value="([^"]*)"', page.text)[:1])
    return await http.post(action, data={**hidden, **data, "csrf_token": csrf(page)})


async def start(
    http: httpx.AsyncClient, workflow: str, params: dict[str, Any], headers: dict[str, str] | None = None
) -> str:
    response = await http.post(f"/executions/workflows/{workflow}/execute", json={"parameters": params},
                               headers=headers or {})  # fmt: skip
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def state(http: httpx.AsyncClient, execution_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await http.get(f"/executions/{execution_id}", headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(
    http: httpx.AsyncClient, execution_id: str, statuses: tuple[str, ...], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return await eventually(
        lambda: state(http, execution_id, headers), until=lambda body: body["status"] in statuses, within=20,
        what=f"{execution_id} reaching {statuses}",
    )  # fmt: skip


async def in_inbox(http: httpx.AsyncClient, execution_id: str, task_id: str) -> httpx.Response:
    """The inbox page once it lists the approval (visibility is eventually consistent)."""
    marker = f'data-testid="approval-{execution_id}-{task_id}"'
    return await eventually(lambda: http.get("/ui"), until=lambda page: marker in page.text, within=15,
                            what=f"{execution_id} in the console inbox")  # fmt: skip


async def stop(client: Client, *execution_ids: str) -> None:
    """Terminate runs still waiting, so later inbox listings do not ask their (gone) worker."""
    for execution_id in execution_ids:
        handle = client.get_workflow_handle(execution_id)
        if (await handle.describe()).status is not None and (await handle.describe()).close_time is None:
            await handle.terminate("test over")
