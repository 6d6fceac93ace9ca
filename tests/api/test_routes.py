"""Every route of the first API slice, success and error paths, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.polling import eventually
from workflow_engine.api import create_app
from workflow_engine.settings import Settings


async def _wait_finished(api: httpx.AsyncClient, execution_id: str, limit: float = 20.0) -> dict[str, Any]:
    """Poll the execution until it leaves `running`."""

    async def detail() -> dict[str, Any]:
        response = await api.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return await eventually(
        detail, until=lambda b: b["status"] not in ("running", "waiting_approval"), within=limit,
        what=f"{execution_id} finishing",
    )  # fmt: skip


async def test_health_reports_database_and_temporal(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def test_health_is_503_when_temporal_is_unreachable(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"temporal_address": "127.0.0.1:1"}))
    from workflow_engine.storage import upgrade_database

    await upgrade_database(settings.database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        health = await http.get("/health")
        execute = await http.post("/executions/workflows/hello/execute", json={})
    assert health.status_code == 503
    assert health.json()["database"] == "ok" and health.json()["temporal"].startswith("error")
    assert execute.status_code in (404, 503)


async def test_workflows_in_the_directory_are_listed_and_shown(api: httpx.AsyncClient) -> None:
    listing = await api.get("/workflows")
    assert listing.status_code == 200
    ids = [item["workflow_id"] for item in listing.json()["items"]]
    assert "hello" in ids
    detail = await api.get("/workflows/hello")
    assert detail.status_code == 200
    body = detail.json()
    assert body["revision"] == 1
    assert body["params"]["times"] == {
        "type": "integer",
        "required": False,
        "default": 2,
        "minimum": 1.0,
        "maximum": 10.0,
    }
    assert [(t["id"], t["depends_on"]) for t in body["tasks"]] == [("greet", []), ("repeat", ["greet"])]
    assert "name: hello" in body["source_yaml"]


async def test_unknown_workflow_is_404_problem(api: httpx.AsyncClient) -> None:
    for response in (await api.get("/workflows/nope"), await api.post("/executions/workflows/nope/execute", json={})):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
        assert "nope" in response.json()["detail"]


async def test_execute_runs_to_completion_with_task_states(api: httpx.AsyncClient) -> None:
    response = await api.post("/executions/workflows/hello/execute", json={"parameters": {"who": "Ada", "times": 2}})
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["workflow_id"] == "hello" and started["revision"] == 1 and started["status"] == "running"
    body = await _wait_finished(api, started["execution_id"])
    assert body["status"] == "completed"
    assert body["output"] == {"greeting": "Hello, Ada!", "repeated": ["1. Hello, Ada!", "2. Hello, Ada!"], "count": 2}
    assert [(t["id"], t["status"], t["attempts"]) for t in body["tasks"]] == [
        ("greet", "completed", 1),
        ("repeat", "completed", 1),
    ]
    assert body["parameters"] == {"who": "Ada", "times": 2}
    assert body["started_at"] and body["finished_at"] and body["error"] is None


async def test_execute_without_body_uses_defaults(api: httpx.AsyncClient) -> None:
    response = await api.post("/executions/workflows/hello/execute")
    assert response.status_code == 202, response.text
    body = await _wait_finished(api, response.json()["execution_id"])
    assert body["output"]["greeting"] == "Hello, world!"


async def test_invalid_parameters_are_422_listing_every_problem(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/executions/workflows/hello/execute", json={"parameters": {"who": 1, "times": 99, "extra": True}}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert {e["path"] for e in body["errors"]} == {"parameters.who", "parameters.times", "parameters.extra"}


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"parameters": [1]}', b'{"params": {}}'],
)
async def test_malformed_bodies_are_422_not_500(api: httpx.AsyncClient, payload: bytes) -> None:
    response = await api.post(
        "/executions/workflows/hello/execute", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


async def test_unknown_execution_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/executions/does-not-exist")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_failed_run_reports_the_error(api: httpx.AsyncClient) -> None:
    response = await api.post("/executions/workflows/broken/execute", json={})
    assert response.status_code == 202
    body = await _wait_finished(api, response.json()["execution_id"])
    assert body["status"] == "failed"
    assert "task 'call' failed" in body["error"]
    assert body["tasks"][0]["status"] == "failed"
    assert "cannot import 'broken_module': this module is broken on purpose" in body["tasks"][0]["error"]


async def test_terminated_run_reports_terminated(api: httpx.AsyncClient, client: Client) -> None:
    terminated = await api.post("/executions/workflows/hello/execute", json={})
    tid = terminated.json()["execution_id"]
    await client.get_workflow_handle(tid).terminate("stop")
    after = await _wait_finished(api, tid)
    assert after["status"] == "terminated"
