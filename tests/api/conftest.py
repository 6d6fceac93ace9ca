"""API fixtures: the real app (lifespan included) over ASGI, a real worker and Temporal."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
import uvicorn
from temporalio.client import Client

from tests.conftest import REPO_ROOT
from tests.polling import eventually
from tests.reliability.stack import free_port
from workflow_engine.api import create_app
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

TOKENS = {
    "viewer": "tok-viewer",
    "operator": "tok-operator",
    "alice": "tok-alice",
    "bob": "tok-bob",
    "carol": "tok-carol",
    "root": "tok-root",
}
API_TOKENS = (
    "vera:viewer:tok-viewer,otto:operator:tok-operator,alice:operator+approver:tok-alice,"
    "bob:approver:tok-bob,carol:approver:tok-carol,root:admin:sha256:"
    "88e8e6f0d3e7e2c1fe922bba5916d4f7704881fab00b260e334153831fd8b432"  # sha256 of tok-root
)


def _copy_examples(workflows_dir: Path) -> None:
    for folder in (REPO_ROOT / "workflows", Path(__file__).parent / "workflows"):
        for source in folder.iterdir():
            if source.suffix in (".yaml", ".py"):
                shutil.copy(source, workflows_dir / source.name)


async def _serve(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal_client=client)
    async with (
        build_worker(client, settings),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


@pytest_asyncio.fixture
async def api(
    client: Client, settings: Settings, database_url: str, workflows_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client (local mode, no auth) for an app serving the repository's examples."""
    _copy_examples(workflows_dir)
    async for http in _serve(client, settings.model_copy(update={"database_url": database_url})):
        yield http


@pytest_asyncio.fixture
async def authed_api(client: Client, settings: Settings, workflows_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client for an app that requires bearer tokens (see API_TOKENS)."""
    _copy_examples(workflows_dir)
    async for http in _serve(client, settings.model_copy(update={"api_tokens": API_TOKENS})):
        yield http


@pytest_asyncio.fixture
async def served(client: Client, settings: Settings) -> AsyncIterator[str]:
    """Serve the API (local mode) with uvicorn on a free port, with a worker; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, temporal_client=client), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    async with build_worker(client, settings):
        task = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started or task.done(), within=20, what="uvicorn serving")
            assert not task.done(), "uvicorn exited"
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=30)
