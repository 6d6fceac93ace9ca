"""GET /executions/{id} of a closed run reads the final task states its interpreter kept in the memo, no worker needed.

Each run finishes on a worker; then the worker is stopped and the run is read by an API with no worker polling
its queue, so a status query could only time out (`tasks_source: declared`): an answer from the worker's states
proves no worker was asked, so nothing was replayed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from tests.polling import eventually
from workflow_engine.api import create_app
from workflow_engine.engine.client.executions import execution_input
from workflow_engine.engine.types import FINAL_MEMO, STATUS_QUERY
from workflow_engine.settings import Settings

from .conftest import _copy_examples, _serve

Json = dict[str, Any]

FAILING = """
name: closing-fails
tasks:
  - id: first
    activity_type: log
    config: {message: first}
  - id: broken
    depends_on: [first]
    type: set
    config: {value: "${{ 1 / size(params.empty) }}"}
  - id: never
    depends_on: [broken]
    activity_type: log
    config: {message: never}
params:
  empty: {type: array, default: []}
on_failure:
  - id: cleanup
    type: set
    config: {failed: "${{ error.task_id }}"}
"""


@asynccontextmanager
async def _no_worker(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone: no worker polls the runs' queue any more."""
    app = create_app(settings, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30) as http,
    ):
        yield http


async def _get(api: httpx.AsyncClient, execution_id: str) -> Json:
    response = await api.get(f"/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _run(api: httpx.AsyncClient, workflow: str, parameters: Json | None = None) -> str:
    response = await api.post(f"/executions/workflows/{workflow}/execute", json={"parameters": parameters or {}},
                              params={"wait": "true"})  # fmt: skip
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def _queried(client: Client, execution_id: str) -> list[Json]:
    """The task states a worker reports for the run (it replays the closed run to answer)."""
    state = await client.get_workflow_handle(execution_id).query(STATUS_QUERY)
    tasks: list[Json] = state["tasks"]
    return tasks


def _states(body: Json) -> list[tuple[str, str]]:
    return [(t["id"], t["status"]) for t in body["tasks"]]


async def test_a_completed_run_is_read_without_a_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    _copy_examples(workflows_dir)
    async for api in _serve(client, settings):
        execution_id = await _run(api, "hello", {"who": "Ada"})
        queried = await _queried(client, execution_id)
        memo = await (await client.get_workflow_handle(execution_id).describe()).memo()
    assert memo[FINAL_MEMO]["tasks"] == queried  # the memo holds what the status query answers
    async with _no_worker(client, settings) as api:
        body = await _get(api, execution_id)
    assert (body["status"], body["tasks_source"]) == ("completed", "worker")
    assert _states(body) == [("greet", "completed"), ("repeat", "completed")]
    assert body["tasks"][0]["output"] == "Hello, Ada!"
    assert body["output"]["greeting"] == "Hello, Ada!"
    assert body["started_by"] == "local"


async def test_a_failed_run_and_its_on_failure_tasks_are_read_without_a_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    (workflows_dir / "closing_fails.yaml").write_text(FAILING)
    async for api in _serve(client, settings):
        execution_id = await _run(api, "closing-fails")
        queried = await _queried(client, execution_id)
    async with _no_worker(client, settings) as api:
        body = await _get(api, execution_id)
    assert (body["status"], body["tasks_source"]) == ("failed", "worker")
    assert _states(body) == [("first", "completed"), ("broken", "failed"), ("never", "pending"),
                             ("cleanup", "completed")]  # fmt: skip
    assert body["tasks"][3]["output"] == {"failed": "broken"}
    assert "broken" in body["error"]
    assert [(t["id"], t["status"], t["output"], t["error"]) for t in body["tasks"]] == [
        (t["id"], t["status"], t["output"], t["error"]) for t in queried
    ]


async def test_a_cancelled_run_is_read_without_a_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    _copy_examples(workflows_dir)
    async for api in _serve(client, settings):
        started = await api.post("/executions/workflows/slow/execute", json={"parameters": {}})
        execution_id = started.json()["execution_id"]
        handle = client.get_workflow_handle(execution_id)
        detail = partial(_get, api, execution_id)
        await eventually(detail, until=lambda b: ("nap", "running") in _states(b), within=20, what="the run naps")
        cancelled = await api.post(f"/executions/{execution_id}/cancel")
        assert cancelled.status_code < 300, cancelled.text
        await eventually(detail, until=lambda b: b["status"] == "cancelled", within=20, what="the run is cancelled")
        memo = await (await handle.describe()).memo()
    assert FINAL_MEMO in memo
    async with _no_worker(client, settings) as api:
        body = await _get(api, execution_id)
    assert (body["status"], body["tasks_source"]) == ("cancelled", "worker")
    assert _states(body) == [("begin", "completed"), ("nap", "cancelled"), ("finish", "pending")]


async def test_a_run_without_final_states_in_its_memo_asks_a_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    _copy_examples(workflows_dir)
    async for api in _serve(client, settings):
        execution_id = await _run(api, "big", {"rows": 500})  # ~50 KiB of output: too large for the memo
        memo = await (await client.get_workflow_handle(execution_id).describe()).memo()
        assert FINAL_MEMO not in memo
        answered = await _get(api, execution_id)  # the worker replays the run to answer
    assert (answered["status"], answered["tasks_source"]) == ("completed", "worker")
    assert _states(answered) == [("report", "completed"), ("summary", "completed")]
    assert answered["tasks"][1]["output"] == {"rows": 500, "last": "row 000499"}
    async with _no_worker(client, settings) as api:
        body = await _get(api, execution_id)
    assert (body["status"], body["tasks_source"]) == ("completed", "declared")  # nobody could answer
    assert _states(body) == [("report", "unknown"), ("summary", "unknown")]
    assert body["output"] == answered["output"]


async def test_a_failed_run_resumes_from_its_recorded_states_without_a_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    (workflows_dir / "closing_fails.yaml").write_text(FAILING)
    async for api in _serve(client, settings):
        execution_id = await _run(api, "closing-fails")
    async with _no_worker(client, settings) as api:  # a status query could only time out: a 503
        response = await api.post(f"/executions/{execution_id}/retry", json={})
    assert response.status_code == 202, response.text
    resumed = await execution_input(client, response.json()["execution_id"])
    assert resumed.resume is not None
    kept = {task_id: state["status"] for task_id, state in resumed.resume["tasks"].items()}
    assert kept.get("first") == "completed" and "broken" not in kept and "never" not in kept
