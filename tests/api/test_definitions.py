"""The start path's parsed revisions: cached per revision, yet every start pins what is current in the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from temporalio.client import Client

from workflow_engine.api import create_app
from workflow_engine.api.definitions import DefinitionCache
from workflow_engine.engine.client.executions import execution_input
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, session_factory

PARENT = """name: parent-of-greeter
tasks:
  - id: child
    type: workflow
    config: {workflow: greeter}
"""


def _greeter(text: str) -> str:
    return f"""name: greeter
tasks:
  - id: say
    activity_type: log
    config: {{message: "{text}"}}
"""


@pytest_asyncio.fixture
async def bare(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app on an empty workflows directory (no worker: runs are started, never run)."""
    app = create_app(settings, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


async def _register(api: httpx.AsyncClient, text: str) -> int:
    response = await api.post("/workflows", content=text, headers={"content-type": "application/yaml"})
    assert response.status_code in (200, 201), response.text
    revision: int = response.json()["revision"]
    return revision


async def _started_child(api: httpx.AsyncClient, client: Client) -> tuple[int, str]:
    """Start the parent; return the child revision and message its run pinned."""
    response = await api.post("/executions/workflows/parent-of-greeter/execute", json={})
    assert response.status_code == 202, response.text
    run_input = await execution_input(client, response.json()["execution_id"])
    child = run_input.children["greeter"]
    return child.revision, child.definition["tasks"][0]["config"]["message"]


async def test_a_parent_whose_child_is_not_registered_is_refused_naming_the_task(bare: httpx.AsyncClient) -> None:
    await _register(bare, PARENT)
    response = await bare.post("/executions/workflows/parent-of-greeter/execute", json={})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["path"], error["message"]) == (
        "parent-of-greeter.tasks.child.config.workflow",
        "workflow 'greeter' is not registered",
    )


async def test_each_start_pins_the_child_current_then(bare: httpx.AsyncClient, client: Client) -> None:
    await _register(bare, PARENT)
    await _register(bare, _greeter("one"))
    assert await _started_child(bare, client) == (1, "one")
    await _register(bare, _greeter("two"))  # the parent is unchanged and parsed once; its child moved on
    assert await _started_child(bare, client) == (2, "two")
    assert await _started_child(bare, client) == (2, "two")


async def test_a_revision_number_reused_after_a_delete_runs_the_new_content(
    bare: httpx.AsyncClient, client: Client
) -> None:
    await _register(bare, PARENT)
    assert await _register(bare, _greeter("before")) == 1
    assert await _started_child(bare, client) == (1, "before")
    assert (await bare.delete("/workflows/greeter", params={"force": "true"})).status_code == 204
    assert await _register(bare, _greeter("after")) == 1  # same number, other content
    assert await _started_child(bare, client) == (1, "after")
    response = await bare.post("/executions/workflows/greeter/execute", json={})
    run_input = await execution_input(client, response.json()["execution_id"])
    assert run_input.definition["tasks"][0]["config"]["message"] == "after"


async def test_a_registration_through_another_api_process_counts_at_the_next_start(
    bare: httpx.AsyncClient, client: Client, settings: Settings, tmp_path: Path
) -> None:
    await _register(bare, PARENT)
    await _register(bare, _greeter("one"))
    assert await _started_child(bare, client) == (1, "one")
    other = create_app(settings, temporal_client=client)  # a second API process on the same database
    async with (
        other.router.lifespan_context(other),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as second,
    ):
        await _register(second, _greeter("from the other process"))
    assert await _started_child(bare, client) == (2, "from the other process")


async def test_the_cache_keeps_at_most_its_size_and_drops_the_least_recently_used(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    app = create_app(settings)
    cache = DefinitionCache(size=2)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
        ):
            for name in ("a", "b", "c"):
                await _register(api, _greeter(name).replace("name: greeter", f"name: greeter-{name}"))
        async with sessions() as session:
            first = await cache.revision(session, "greeter-a")
            await cache.revision(session, "greeter-b")
            assert await cache.revision(session, "greeter-a") is first  # a hit: the same parsed object
            await cache.revision(session, "greeter-c")  # evicts b, the least recently used
            assert len(cache) == 2
            assert await cache.revision(session, "greeter-a") is first
    finally:
        await engine.dispose()
