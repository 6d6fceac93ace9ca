"""API fixtures: the real app (lifespan included) over ASGI, a real worker and Temporal."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from temporalio.client import Client

from tests.conftest import REPO_ROOT
from workflow_engine.api import create_app
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker


@pytest_asyncio.fixture
async def api(
    client: Client, settings: Settings, database_url: str, workflows_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client for an app whose workflows dir holds the repository's examples."""
    for folder in (REPO_ROOT / "workflows", Path(__file__).parent / "workflows"):
        for source in folder.iterdir():
            if source.suffix in (".yaml", ".py"):
                shutil.copy(source, workflows_dir / source.name)
    app_settings = settings.model_copy(update={"database_url": database_url})
    app = create_app(app_settings, temporal_client=client)
    async with (
        build_worker(client, app_settings),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http
