"""Browser fixtures: the real app (uvicorn, worker, Temporal) driven by Debian's chromium through Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Playwright, ViewportSize, async_playwright, expect
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import API_TOKENS, TOKENS
from tests.conftest import REPO_ROOT
from tests.polling import eventually
from tests.reliability.stack import free_port
from workflow_engine.api import create_app
from workflow_engine.devserver import temporal_binary
from workflow_engine.engine.types import SEARCH_ATTRIBUTES
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

# Without the background-networking flags chromium keeps calling Google's services, which a closed network drops.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
WAIT_MS = 20_000  # the longest any page wait may take
EXPECT_MS = 10_000  # an assertion on a page (a decision is a round trip to the run, on 2 busy cores in CI)
SCREENSHOTS = REPO_ROOT / "docs" / "images"


@functools.cache
def _chromium_from_script() -> tuple[str | None, str]:
    """Run scripts/test-browser.sh once per session (it installs Debian's chromium when missing)."""
    script = REPO_ROOT / "scripts" / "test-browser.sh"
    try:
        done = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{script.name} did not run: {exc}"
    match = re.search(r"^export CHROMIUM_PATH='([^']+)'$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        said = done.stderr.strip() or done.stdout.strip()
        return None, f"{script.name} exited {done.returncode} without a chromium" + (f": {said}" if said else "")
    return match[1], ""


def chromium_path() -> str:
    """Return the chromium to drive: CHROMIUM_PATH when set (`make test`), else what scripts/test-browser.sh found."""
    path = os.environ.get("CHROMIUM_PATH")
    why = ""
    if not path:
        path, why = _chromium_from_script()
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"no chromium for the browser tests ({why or f'{path} is not executable'}); "
                    "run scripts/test-browser.sh or set CHROMIUM_PATH")  # fmt: skip
    return path


@pytest_asyncio.fixture(scope="package")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """Start a Temporal dev server of the browser tests' own.

    The inbox asks every waiting run of the namespace for its state; runs other tests left waiting, their workers
    gone, would make every inbox page wait out the query timeout (5 s).
    """
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    """Start Playwright's driver once; it never downloads a browser."""
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    expect.set_options(timeout=EXPECT_MS)
    async with async_playwright() as driver:
        yield driver


@pytest_asyncio.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    """Launch the system's chromium, headless, once per session."""
    launched = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=WAIT_MS)
    yield launched
    await launched.close()


@pytest_asyncio.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """Yield a fresh browser profile (no cookies) at 1280x800 whose waits are bounded."""
    fresh = await browser.new_context(viewport=VIEWPORT)
    fresh.set_default_timeout(WAIT_MS)
    fresh.set_default_navigation_timeout(WAIT_MS)
    yield fresh
    await fresh.close()


@pytest_asyncio.fixture
async def page(context: BrowserContext) -> Page:
    """Return a tab of this test's browser profile."""
    return await context.new_page()


@dataclass
class Console:
    """The console served on a free port: its base URL and an API client (bearer tokens when auth is on)."""

    url: str
    api: httpx.AsyncClient
    temporal: Client
    started: list[str] = field(default_factory=list)

    async def start(self, workflow: str, params: dict[str, Any], user: str | None = None) -> str:
        """Start a run through the JSON API (as `user` when auth is on); return its execution id."""
        headers = {"Authorization": f"Bearer {TOKENS[user]}"} if user else {}
        response = await self.api.post(f"/executions/workflows/{workflow}/execute", json={"parameters": params},
                                       headers=headers)  # fmt: skip
        assert response.status_code == 202, response.text
        execution_id: str = response.json()["execution_id"]
        self.started.append(execution_id)
        return execution_id

    async def end_runs(self) -> None:
        """Terminate the runs this test started that still wait: the next test's inbox should not list them."""
        for execution_id in self.started:
            with contextlib.suppress(RPCError):  # it has ended on its own
                await self.temporal.get_workflow_handle(execution_id).terminate(reason="browser test over")

    async def run(self, execution_id: str, user: str | None = None) -> dict[str, Any]:
        """Return `GET /executions/{id}`."""
        headers = {"Authorization": f"Bearer {TOKENS[user]}"} if user else {}
        response = await self.api.get(f"/executions/{execution_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def until_waiting(self, execution_id: str, user: str | None = None) -> dict[str, Any]:
        """Wait until the run waits for an approval and the pending-approvals inbox lists it (eventually consistent)."""
        headers = {"Authorization": f"Bearer {TOKENS[user]}"} if user else {}

        async def listed() -> bool:
            inbox = await self.api.get("/approvals", params={"status": "pending"}, headers=headers)
            assert inbox.status_code == 200, inbox.text
            return any(item["execution_id"] == execution_id for item in inbox.json()["items"])

        await eventually(listed, within=20, what=f"{execution_id} in the pending approvals inbox")
        return await self.run(execution_id, user)


async def _serve(client: Client, settings: Settings) -> AsyncIterator[Console]:
    for source in (REPO_ROOT / "workflows").iterdir():
        if source.suffix in (".yaml", ".py"):
            shutil.copy(source, settings.workflows_dir / source.name)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, temporal_client=client), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    async with build_worker(client, settings):
        task = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started or task.done(), within=20, what="uvicorn serving")
            assert not task.done(), "uvicorn exited"
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=20) as api:
                served = Console(url, api, client)
                try:
                    yield served
                finally:
                    await served.end_runs()
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=30)


@pytest_asyncio.fixture
async def console(client: Client, settings: Settings) -> AsyncIterator[Console]:
    """Serve the console with API_TOKENS (alice operator+approver, vera viewer, otto operator: tests/api)."""
    async for served in _serve(client, settings.model_copy(update={"api_tokens": API_TOKENS})):
        yield served


@pytest_asyncio.fixture
async def local_console(client: Client, settings: Settings) -> AsyncIterator[Console]:
    """Serve the console in local mode (no API_TOKENS: loopback only, no login)."""
    async for served in _serve(client, settings):
        yield served


async def screenshot(page: Page, name: str) -> None:
    """Write docs/images/<name>.png (the README's pictures) when WFE_SCREENSHOTS=1; otherwise do nothing."""
    if os.environ.get("WFE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{name}.png")
