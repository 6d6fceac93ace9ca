"""Execution endpoints: idempotent execute, wait, listing, history, cancel, terminate, retry, errors, auth, limits."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.polling import eventually
from workflow_engine.api import create_app
from workflow_engine.engine.client.visibility import decode_token, encode_token, visibility_query
from workflow_engine.engine.types import RunInput, RunStatus
from workflow_engine.errors import ValidationFailedError
from workflow_engine.settings import Settings
from workflow_engine.storage import Execution, create_engine, repository, session_factory, upgrade_database

from .conftest import TOKENS, _copy_examples, _serve

Json = dict[str, Any]


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def _key() -> str:
    return f"key-{uuid.uuid4().hex}"


async def _execute(
    api: httpx.AsyncClient,
    workflow: str,
    body: Json | None = None,
    *,
    expect: int = 202,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Json:
    response = await api.post(f"/executions/workflows/{workflow}/execute", json=body or {}, headers=headers or {},
                              params=params or {})  # fmt: skip
    assert response.status_code == expect, response.text
    result: Json = response.json()
    return result


async def _detail(api: httpx.AsyncClient, execution_id: str, headers: dict[str, str] | None = None) -> Json:
    response = await api.get(f"/executions/{execution_id}", headers=headers or {})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _until(api: httpx.AsyncClient, execution_id: str, done: Callable[[Json], bool], limit: float = 20.0) -> Json:
    """Poll the execution until `done` holds."""
    return await eventually(lambda: _detail(api, execution_id), until=done, within=limit, what=f"{execution_id} ready")


def _finished(body: Json) -> bool:
    return body["status"] not in ("running", "waiting_approval")


def _task(body: Json, task_id: str) -> Json:
    task: Json = next(t for t in body["tasks"] if t["id"] == task_id)
    return task


async def _napping(api: httpx.AsyncClient) -> str:
    """Start a `slow` run and return its id once its 5 s sleep is running."""
    execution_id: str = (await _execute(api, "slow", {"parameters": {"label": "nap"}}))["execution_id"]
    await _until(api, execution_id, lambda b: _task(b, "nap")["status"] == "running")
    return execution_id


async def _listed(api: httpx.AsyncClient, params: dict[str, Any], wanted: set[str], limit: float = 20.0) -> list[Json]:
    """Poll `GET /executions` until every wanted id is listed (visibility is eventually consistent)."""

    async def listing() -> list[Json]:
        response = await api.get("/executions", params=params)
        assert response.status_code == 200, response.text
        items: list[Json] = response.json()["items"]
        return items

    return await eventually(
        listing, until=lambda items: wanted <= {item["execution_id"] for item in items}, within=limit, interval=0.2,
        what=f"GET /executions?{params} listing {wanted}",
    )  # fmt: skip


async def _runs_with_id(client: Client, execution_id: str) -> int:
    """How many Temporal runs carry this workflow id (polled: visibility lags)."""

    async def count() -> int:
        return (await client.count_workflows(f"WorkflowId = '{execution_id}'")).count

    return await eventually(count, within=10, what=f"visibility listing a run of {execution_id}")


# --- execute: idempotency, revisions, wait --------------------------------------------------------------


async def test_concurrent_repeats_of_a_key_start_one_run(api: httpx.AsyncClient, client: Client) -> None:
    key = _key()
    body = {"parameters": {"who": "Ada"}, "execution_id": key}
    responses = await asyncio.gather(
        *(api.post("/executions/workflows/hello/execute", json=body) for _ in range(4)),
        api.post("/executions/workflows/hello/execute", json={"parameters": {"who": "Ada"}},
                 headers={"Idempotency-Key": key}),
    )  # fmt: skip
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 202], [r.text for r in responses]
    assert {r.json()["execution_id"] for r in responses} == {key}
    assert all(r.json()["workflow_id"] == "hello" and r.json()["revision"] == 1 for r in responses)
    done = await _until(api, key, _finished)
    assert done["status"] == "completed" and done["parameters"] == {"who": "Ada", "times": 2}
    again = await _execute(api, "hello", {"execution_id": key}, expect=200)
    assert again == {"execution_id": key, "workflow_id": "hello", "revision": 1, "status": "completed"}
    assert await _runs_with_id(client, key) == 1
    history = await client.get_workflow_handle(key).fetch_history()
    assert history.events[0].workflow_execution_started_event_attributes.first_execution_run_id


async def test_a_key_names_one_request(api: httpx.AsyncClient) -> None:
    key = _key()
    await _execute(api, "hello", headers={"Idempotency-Key": key})
    other = await _execute(api, "broken", {"execution_id": key}, expect=409)
    assert other["code"] == "conflict" and "'hello'" in other["detail"]
    differ = await _execute(api, "hello", {"execution_id": key}, headers={"Idempotency-Key": _key()}, expect=422)
    assert differ["code"] == "validation_failed"


async def test_invalid_keys_are_422(api: httpx.AsyncClient) -> None:
    for key in ("", "has space", "a/b", "x" * 201, ".", "..", "-lead", "ünï"):
        body = await _execute(api, "hello", {"execution_id": key}, expect=422)
        assert body["code"] == "invalid_request" and body["errors"][0]["path"] == "body.execution_id"
        if key and key.isascii():  # headers carry ASCII only
            header = await _execute(api, "hello", headers={"Idempotency-Key": key}, expect=422)
            assert header["errors"][0]["path"] == "header.Idempotency-Key"


async def test_a_key_of_a_run_started_outside_the_api(api: httpx.AsyncClient, client: Client, task_queue: str) -> None:
    key = _key()
    handle = await client.start_workflow(
        "hello", RunInput(definition={}, revision=1), id=key, task_queue=f"{task_queue}-nobody-polls"
    )
    try:
        other = await _execute(api, "slow", {"execution_id": key}, expect=409)
        assert "workflow 'hello'" in other["detail"]
        same = await _execute(api, "hello", {"execution_id": key}, expect=409)
        assert "not started through the API" in same["detail"]
    finally:
        await handle.terminate("test over")
    assert await _runs_with_id(client, key) == 1


async def test_execute_an_older_revision(api: httpx.AsyncClient, workflows_dir: Path) -> None:
    source = (workflows_dir / "hello.yaml").read_text().replace("default: world", "default: there")
    registered = await api.post("/workflows", content=source, headers={"content-type": "application/yaml"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["revision"] == 2
    current = await _execute(api, "hello", params={"wait": "true"}, expect=200)
    older = await _execute(api, "hello", {"revision": 1}, params={"wait": "true"}, expect=200)
    assert (current["revision"], current["output"]["greeting"]) == (2, "Hello, there!")
    assert (older["revision"], older["output"]["greeting"]) == (1, "Hello, world!")
    missing = await _execute(api, "hello", {"revision": 3}, expect=404)
    assert "no revision 3" in missing["detail"]
    assert (await _execute(api, "hello", {"revision": 0}, expect=422))["code"] == "invalid_request"


async def test_invalid_parameters_of_an_older_revision_list_every_problem(api: httpx.AsyncClient) -> None:
    body = await _execute(api, "hello", {"revision": 1, "parameters": {"who": 1, "times": 0, "x": 1}}, expect=422)
    assert {e["path"] for e in body["errors"]} == {"parameters.who", "parameters.times", "parameters.x"}


async def test_wait_answers_with_the_finished_run(api: httpx.AsyncClient) -> None:
    body = await _execute(api, "broken", params={"wait": "true"}, expect=200)
    assert body["status"] == "failed" and body["finished_at"]
    assert "cannot import 'broken_module'" in _task(body, "call")["error"]
    assert body["workflow_id"] == "broken" and body["revision"] == 1 and body["parameters"] == {}
    # the wait answers from the result it waited for and the run's recorded states: the same as a later GET
    assert body == await _detail(api, body["execution_id"])
    completed = await _execute(api, "hello", {"parameters": {"who": "Ada"}}, params={"wait": "true"}, expect=200)
    assert completed["status"] == "completed" and completed["output"]["greeting"] == "Hello, Ada!"
    assert completed == await _detail(api, completed["execution_id"])


async def test_wait_gives_up_after_the_timeout(api: httpx.AsyncClient) -> None:
    started = asyncio.get_running_loop().time()
    body = await _execute(api, "slow", params={"wait": "true", "timeout": "0.5"}, expect=202)
    assert asyncio.get_running_loop().time() - started < 4
    assert body["status"] == "running" and body["finished_at"] is None
    assert [t["id"] for t in body["tasks"]] == ["begin", "nap", "finish"]
    repeat = await _execute(api, "slow", {"execution_id": body["execution_id"]}, params={"wait": "true"}, expect=200)
    assert repeat["status"] == "completed" and repeat["output"] == {"label": "slow"}


async def test_wait_timeout_is_checked(api: httpx.AsyncClient) -> None:
    for seconds in ("0", "301", "soon", "-1"):
        body = await _execute(api, "hello", params={"wait": "true", "timeout": seconds}, expect=422)
        assert body["errors"][0]["path"] == "query.timeout"


# --- listing ----------------------------------------------------------------------------------------------


async def test_list_filters_by_workflow_status_and_time(api: httpx.AsyncClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    hello = (await _execute(api, "hello", params={"wait": "true"}, expect=200))["execution_id"]
    broken = (await _execute(api, "broken", params={"wait": "true"}, expect=200))["execution_id"]
    napping = await _napping(api)
    try:
        items = await _listed(api, {"started_after": before.isoformat()}, {hello, broken, napping})
        by_id = {item["execution_id"]: item for item in items}
        assert by_id[hello]["status"] == "completed" and by_id[hello]["workflow_id"] == "hello"
        assert by_id[hello]["revision"] == 1 and by_id[hello]["finished_at"]
        assert by_id[broken]["status"] == "failed"
        assert by_id[napping]["status"] == "running" and by_id[napping]["finished_at"] is None
        starts = [item["started_at"] for item in items]
        assert starts == sorted(starts, reverse=True)

        failed = await _listed(api, {"status": "failed", "started_after": before.isoformat()}, {broken})
        assert {item["status"] for item in failed} == {"failed"}
        ids = {i["execution_id"] for i in await _listed(api, {"workflow_id": "hello"}, {hello})}
        assert broken not in ids and napping not in ids
        both = await _listed(api, {"status": ["running", "failed"], "workflow_id": "slow"}, {napping})
        assert {item["workflow_id"] for item in both} == {"slow"}
        future = await api.get("/executions", params={"started_after": (datetime.now(UTC) + timedelta(hours=1))
                                                      .isoformat()})  # fmt: skip
        assert future.json() == {"items": [], "next_page_token": None}
        old = await api.get("/executions", params={"started_before": "2000-01-01T00:00:00", "workflow_id": "hello"})
        assert old.json()["items"] == []
    finally:
        await api.post(f"/executions/{napping}/terminate")


async def test_list_pages_with_an_opaque_token(api: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    # finished runs only: a run that closes while we page moves in Temporal's order (closed first)
    ids = {(await _execute(api, "hello", params={"wait": "true"}, expect=200))["execution_id"] for _ in range(3)}
    filters = {"workflow_id": "hello", "status": "completed", "started_after": before.isoformat()}
    await _listed(api, filters, ids)
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {**filters, "limit": 1}
        if token:
            params["page_token"] = token
        page = (await api.get("/executions", params=params)).json()
        assert len(page["items"]) <= 1
        seen += [item["execution_id"] for item in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen)), seen  # other tests' runs may be listed too


async def test_children_and_batches_are_not_listed(api: httpx.AsyncClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    parent = await _execute(api, "parent", params={"wait": "true"}, expect=200)
    assert parent["status"] == "completed" and parent["output"] == {"greeting": "Hello, child!"}
    items = await _listed(api, {"started_after": before.isoformat()}, {parent["execution_id"]})
    assert not [item for item in items if "/" in item["execution_id"]]


async def test_list_shows_runs_waiting_for_approval(api: httpx.AsyncClient) -> None:
    run = await _execute(api, "human_approval_workflow", {"parameters": {"employee": "ada", "amount": 900}})
    execution_id = run["execution_id"]
    try:
        await _until(api, execution_id, lambda b: b["status"] == "waiting_approval")
        items = await _listed(
            api, {"status": "waiting_approval", "workflow_id": "human_approval_workflow"}, {execution_id}
        )
        assert {item["status"] for item in items} == {"waiting_approval"}
    finally:
        await api.post(f"/executions/{execution_id}/terminate")


def test_visibility_query_and_page_tokens() -> None:
    query = visibility_query(
        workflow_id="hello", statuses=[RunStatus.RUNNING, RunStatus.FAILED, RunStatus.RUNNING],
        started_after=datetime(2026, 1, 2, 3, 4, 5), started_before=datetime(2026, 1, 3, tzinfo=UTC),
    )  # fmt: skip
    assert query == (
        "ParentWorkflowId IS NULL AND ExecutionStatus != 'ContinuedAsNew' AND WfeWorkflowName = 'hello' AND "
        "((ExecutionStatus = 'Running' AND (WfeWaitingApproval IS NULL OR WfeWaitingApproval = false)) OR "
        "ExecutionStatus = 'Failed') AND StartTime >= '2026-01-02T03:04:05.000000Z' AND "
        "StartTime < '2026-01-03T00:00:00.000000Z'"
    )
    token = encode_token(b'{"RunID": "x"}')
    assert decode_token(token) == b'{"RunID": "x"}' and decode_token(None) is None
    for bad in ("AAAA", token[:-1], token + "x", "a b"):
        with pytest.raises(ValidationFailedError):
            decode_token(bad)


async def test_list_refuses_bad_filters(api: httpx.AsyncClient) -> None:
    cases: list[dict[str, Any]] = [
        {"status": "sleeping"},
        {"workflow_id": "Not A Name"},
        {"limit": 0},
        {"limit": 501},
        {"started_after": "yesterday"},
        {"page_token": "%%%"},
        {"page_token": "bm90IGEgdG9rZW4"},
    ]
    for params in cases:
        response = await api.get("/executions", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


# --- history ----------------------------------------------------------------------------------------------


async def test_history_is_a_readable_timeline(api: httpx.AsyncClient) -> None:
    run = await _execute(api, "hello", {"parameters": {"who": "Zebulon"}}, params={"wait": "true"}, expect=200)
    response = await api.get(f"/executions/{run['execution_id']}/history")
    assert response.status_code == 200, response.text
    assert "Zebulon" not in response.text  # parameters and outputs are payloads: never shown
    events = response.json()["events"]
    assert [e["event_id"] for e in events] == sorted(e["event_id"] for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "WorkflowExecutionStarted" and types[-1] == "WorkflowExecutionCompleted"
    assert not [t for t in types if t in ("WorkflowTaskScheduled", "WorkflowTaskStarted", "WorkflowTaskCompleted")]
    assert "workflow hello started on task queue" in events[0]["details"]
    marker = next(e for e in events if e["type"] == "MarkerRecorded")
    assert (marker["summary"], marker["details"]) == ("Say hello", "local activity log completed, attempt 1")
    repeat = [e for e in events if e["task_id"] == "repeat"]
    assert [e["type"] for e in repeat] == ["ActivityTaskScheduled", "ActivityTaskStarted", "ActivityTaskCompleted"]
    assert {e["summary"] for e in repeat} == {"Repeat the greeting"}
    assert repeat[1]["details"] == "activity python started, attempt 1"
    everything = (await api.get(f"/executions/{run['execution_id']}/history", params={"workflow_tasks": "true"})).json()
    assert "WorkflowTaskStarted" in [e["type"] for e in everything["events"]]


async def test_history_explains_failures_timers_children_and_updates(api: httpx.AsyncClient) -> None:
    broken = await _execute(api, "broken", params={"wait": "true"}, expect=200)
    events = (await api.get(f"/executions/{broken['execution_id']}/history")).json()["events"]
    failed = next(e for e in events if e["type"] == "ActivityTaskFailed")
    assert failed["task_id"] == "call" and "cannot import 'broken_module'" in failed["details"]
    assert "workflow failed: task 'call' failed" in events[-1]["details"]

    parent = await _execute(api, "parent", params={"wait": "true"}, expect=200)
    events = (await api.get(f"/executions/{parent['execution_id']}/history")).json()["events"]
    child = [e for e in events if e["type"].startswith(("StartChild", "ChildWorkflow"))]
    assert [e["type"] for e in child] == [
        "StartChildWorkflowExecutionInitiated", "ChildWorkflowExecutionStarted", "ChildWorkflowExecutionCompleted",
    ]  # fmt: skip
    assert {e["task_id"] for e in child} == {"child"}
    assert f"child workflow {parent['execution_id']}/child (hello) requested" == child[0]["details"]

    expense = await _execute(api, "human_approval_workflow", {"parameters": {"employee": "ada", "amount": 900}})
    await _until(api, expense["execution_id"], lambda b: b["status"] == "waiting_approval")
    decided = await api.post(f"/executions/{expense['execution_id']}/approvals/manager_approval",
                             json={"decision": "approve"})  # fmt: skip
    assert decided.status_code == 200, decided.text
    await _until(api, expense["execution_id"], _finished)
    events = (await api.get(f"/executions/{expense['execution_id']}/history")).json()["events"]
    details = [e["details"] for e in events]
    assert any(d.startswith("update approve accepted") for d in details), details
    assert "update approve completed" in details


async def test_history_of_an_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/executions/nope-nope/history")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- cancel, terminate ------------------------------------------------------------------------------------


async def test_cancel_a_sleeping_run(api: httpx.AsyncClient) -> None:
    execution_id = await _napping(api)
    response = await api.post(f"/executions/{execution_id}/cancel", json={"reason": "not needed"})
    assert response.status_code == 202, response.text
    assert response.json() == {"execution_id": execution_id, "status": "running", "detail": "cancellation requested"}
    body = await _until(api, execution_id, _finished)
    assert body["status"] == "cancelled" and body["finished_at"]
    states = {t["id"]: (t["status"], t["error"]) for t in body["tasks"]}
    assert states == {"begin": ("completed", None), "nap": ("cancelled", None), "finish": ("pending", None)}
    events = (await api.get(f"/executions/{execution_id}/history")).json()["events"]
    requested = next(e for e in events if e["type"] == "WorkflowExecutionCancelRequested")
    assert "not needed (by local)" in requested["details"]
    assert events[-1]["type"] == "WorkflowExecutionCanceled"
    again = await api.post(f"/executions/{execution_id}/cancel")
    assert again.status_code == 409 and "is cancelled" in again.json()["detail"]


async def test_terminate_a_run(api: httpx.AsyncClient) -> None:
    execution_id = await _napping(api)
    response = await api.post(f"/executions/{execution_id}/terminate", json={"reason": "stuck"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "terminated"
    body = await _detail(api, execution_id)
    assert body["status"] == "terminated"
    assert _task(body, "nap")["status"] == "cancelled" and _task(body, "nap")["error"] == "stopped: the run terminated"
    events = (await api.get(f"/executions/{execution_id}/history")).json()["events"]
    assert events[-1]["type"] == "WorkflowExecutionTerminated" and "stuck (by local)" in events[-1]["details"]
    for action in ("terminate", "cancel"):
        again = await api.post(f"/executions/{execution_id}/{action}")
        assert again.status_code == 409, again.text
        assert "is terminated" in again.json()["detail"]


async def test_stop_errors(api: httpx.AsyncClient) -> None:
    for action in ("cancel", "terminate"):
        missing = await api.post(f"/executions/no-such-run/{action}")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        for body in ({"reason": 5}, {"why": "x"}, {"reason": "x" * 1001}):
            response = await api.post(f"/executions/no-such-run/{action}", json=body)
            assert response.status_code == 422, (body, response.text)


# --- retry ------------------------------------------------------------------------------------------------


async def test_retry_starts_a_linked_run_with_the_same_revision_and_parameters(api: httpx.AsyncClient) -> None:
    original = await _execute(api, "hello", {"parameters": {"who": "Ada", "times": 3}}, params={"wait": "true"},
                              expect=200)  # fmt: skip
    response = await api.post(f"/executions/{original['execution_id']}/retry")
    assert response.status_code == 202, response.text
    retried = response.json()
    assert retried["retry_of"] == original["execution_id"] and retried["execution_id"] != original["execution_id"]
    assert (retried["workflow_id"], retried["revision"], retried["status"]) == ("hello", 1, "running")
    body = await _until(api, retried["execution_id"], _finished)
    assert body["retry_of"] == original["execution_id"]
    assert body["parameters"] == {"who": "Ada", "times": 3} and body["output"] == original["output"]
    assert (await _detail(api, original["execution_id"]))["retry_of"] is None


async def test_retry_with_a_key_is_idempotent(api: httpx.AsyncClient) -> None:
    failed = await _execute(api, "broken", params={"wait": "true"}, expect=200)
    key = _key()
    url = f"/executions/{failed['execution_id']}/retry"
    first = await api.post(url, headers={"Idempotency-Key": key})
    second = await api.post(url, headers={"Idempotency-Key": key})
    assert (first.status_code, second.status_code) == (202, 200), (first.text, second.text)
    assert first.json()["execution_id"] == second.json()["execution_id"] == key
    assert second.json()["retry_of"] == failed["execution_id"]
    as_execute = await _execute(api, "broken", {"execution_id": key}, expect=409)
    assert "a retry of" in as_execute["detail"]


async def test_retry_errors(api: httpx.AsyncClient, client: Client, task_queue: str) -> None:
    assert (await api.post("/executions/no-such-run/retry")).status_code == 404
    napping = await _napping(api)
    running = await api.post(f"/executions/{napping}/retry")
    assert running.status_code == 409 and "still running" in running.json()["detail"]
    await api.post(f"/executions/{napping}/terminate")
    outside = await client.start_workflow(
        "hello", RunInput(definition={}, revision=1), id=_key(), task_queue=f"{task_queue}-nobody-polls"
    )
    await outside.terminate("test over")
    unknown = await api.post(f"/executions/{outside.id}/retry")
    assert unknown.status_code == 404 and "execution index" in unknown.json()["detail"]


# --- errors and auth --------------------------------------------------------------------------------------


async def test_odd_ids_are_never_a_500(api: httpx.AsyncClient) -> None:
    for execution_id in ("x" * 2000, "%E2%9C%93", "a:b.c-d", "%20", "0", "..%2F..%2Fetc"):
        for method, suffix in (("GET", ""), ("GET", "/history"), ("POST", "/cancel"), ("POST", "/terminate"),
                               ("POST", "/retry")):  # fmt: skip
            response = await api.request(method, f"/executions/{execution_id}{suffix}")
            assert response.status_code in (404, 422), (execution_id, method, suffix, response.text)
            assert response.headers["content-type"] == "application/problem+json"


async def test_temporal_unreachable_is_503(settings: Settings, workflows_dir: Path) -> None:
    _copy_examples(workflows_dir)
    await upgrade_database(settings.database_url)
    app = create_app(settings.model_copy(update={"temporal_address": "127.0.0.1:1"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        responses = [
            await http.post("/executions/workflows/hello/execute", json={"execution_id": "k"}),
            await http.get("/executions"),
            await http.get("/executions/some-run"),
            await http.get("/executions/some-run/history"),
            await http.post("/executions/some-run/cancel"),
            await http.post("/executions/some-run/terminate"),
            await http.post("/executions/some-run/retry"),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert "cannot reach Temporal at 127.0.0.1:1" in response.json()["detail"]


async def test_roles(authed_api: httpx.AsyncClient) -> None:
    api = authed_api
    denied = await api.post("/executions/workflows/slow/execute", json={}, headers=_auth("viewer"))
    assert denied.status_code == 403
    execution_id = (await _execute(api, "slow", headers=_auth("operator")))["execution_id"]
    assert (await api.get("/executions", headers=_auth("viewer"))).status_code == 200
    assert (await api.get(f"/executions/{execution_id}", headers=_auth("viewer"))).status_code == 200
    assert (await api.get(f"/executions/{execution_id}/history", headers=_auth("viewer"))).status_code == 200
    for action in ("cancel", "terminate", "retry"):
        response = await api.post(f"/executions/{execution_id}/{action}", headers=_auth("viewer"))
        assert response.status_code == 403 and response.json()["code"] == "forbidden", action
        assert (await api.post(f"/executions/{execution_id}/{action}")).status_code == 401
    assert (await api.get("/executions")).status_code == 401
    cancelled = await api.post(f"/executions/{execution_id}/cancel", headers=_auth("operator"))
    assert cancelled.status_code == 202, cancelled.text
    body = await api.get(f"/executions/{execution_id}", headers=_auth("viewer"))
    assert body.json()["started_by"] == "otto"


# --- large outputs -----------------------------------------------------------------------------------------


async def test_a_large_output_is_returned_whole_by_the_api(api: httpx.AsyncClient) -> None:
    run = await _execute(api, "big", params={"wait": "true"}, expect=200)
    assert run["status"] == "completed" and run["output"] == {"rows": 6000, "last": "row 005999"}
    detail = await _detail(api, run["execution_id"])
    report = next(task for task in detail["tasks"] if task["id"] == "report")
    rows = report["output"]["rows"]
    assert len(rows) == 6000 and rows[-1] == {"id": 5999, "label": "row 005999", "padding": "." * 80}


# --- activity kinds with limits of their own ------------------------------------------------------------------


async def test_runs_started_by_the_api_send_limited_kinds_to_their_own_queue(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    _copy_examples(workflows_dir)
    limited = settings.model_copy(update={"worker_activity_concurrency": "python=3"})
    async for api in _serve(client, limited):
        run = await _execute(api, "hello", {"parameters": {"who": "Ada"}}, params={"wait": "true"}, expect=200)
        assert run["status"] == "completed"
    history = await client.get_workflow_handle(run["execution_id"]).fetch_history()
    queues = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert queues and set(queues) == {f"{limited.temporal_task_queue}/python"}


# --- the execution index survives a crash between the Temporal start and its row ---------------------------


async def _index_row(database_url: str, execution_id: str) -> Execution | None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await repository.get_execution(session=session, execution_id=execution_id)
    finally:
        await engine.dispose()


async def _lose_index_row(database_url: str, execution_id: str) -> None:
    """Leave the state an API crash right after the Temporal start leaves: the run, but no index row."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await session.execute(delete(Execution).where(Execution.execution_id == execution_id))
            await session.commit()
    finally:
        await engine.dispose()
    assert await _index_row(database_url, execution_id) is None


async def test_the_run_carries_its_index_entry_in_its_memo(api: httpx.AsyncClient, client: Client) -> None:
    run = await _execute(api, "hello", {"parameters": {"who": "Ada"}}, params={"wait": "true"}, expect=200)
    memo = await (await client.get_workflow_handle(run["execution_id"]).describe()).memo()
    assert memo.keys() == {"wfe_index", "wfe_final"}  # the final task states are recorded as the run closes
    assert memo["wfe_index"] == {"workflow_id": "hello", "revision": 1, "started_by": "local", "retry_of": None}


async def test_a_keyed_repeat_rebuilds_a_lost_index_row(
    api: httpx.AsyncClient, client: Client, database_url: str
) -> None:
    key = _key()
    await _execute(api, "hello", {"parameters": {"who": "Ada"}, "execution_id": key}, params={"wait": "true"},
                   expect=200)  # fmt: skip
    await _lose_index_row(database_url, key)
    again = await _execute(api, "hello", {"execution_id": key}, expect=200)
    assert again == {"execution_id": key, "workflow_id": "hello", "revision": 1, "status": "completed"}
    row = await _index_row(database_url, key)
    assert row is not None
    assert (row.workflow_id, row.revision, row.parameters, row.started_by, row.retry_of) == (
        "hello", 1, {"who": "Ada", "times": 2}, "local", None,
    )  # fmt: skip
    assert await _runs_with_id(client, key) == 1
    other = await _execute(api, "slow", {"execution_id": key}, expect=409)
    assert "'hello'" in other["detail"]


async def test_get_and_retry_rebuild_a_lost_index_row(api: httpx.AsyncClient, database_url: str) -> None:
    first = await _execute(api, "hello", {"parameters": {"who": "Bo", "times": 3}}, params={"wait": "true"},
                           expect=200)  # fmt: skip
    await _lose_index_row(database_url, first["execution_id"])
    shown = await _detail(api, first["execution_id"])
    assert (shown["revision"], shown["parameters"], shown["started_by"]) == (1, {"who": "Bo", "times": 3}, "local")
    assert await _index_row(database_url, first["execution_id"]) is not None

    retried = await api.post(f"/executions/{first['execution_id']}/retry")
    assert retried.status_code == 202, retried.text
    await _lose_index_row(database_url, retried.json()["execution_id"])  # a retry's row holds its retry_of too
    await _until(api, retried.json()["execution_id"], _finished)
    again = await api.post(f"/executions/{retried.json()['execution_id']}/retry")
    assert again.status_code == 202, again.text
    assert again.json()["retry_of"] == retried.json()["execution_id"]
    row = await _index_row(database_url, retried.json()["execution_id"])
    assert row is not None and (row.retry_of, row.parameters) == (first["execution_id"], {"who": "Bo", "times": 3})


async def test_large_parameters_start_while_other_writes_go_on(api: httpx.AsyncClient, workflows_dir: Path) -> None:
    """Parameters over OUTPUT_INLINE_LIMIT_BYTES are stored in the database by the start itself: no lock waits."""
    who = "x" * (400 * 1024)
    source = (workflows_dir / "slow.yaml").read_text().replace("name: slow", "name: slow-copy")
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(20):
        big, other = await asyncio.gather(
            api.post("/executions/workflows/hello/execute", json={"parameters": {"who": who, "times": 1}}),
            api.post("/workflows", content=source, headers={"content-type": "application/yaml"}),
        )
    seconds = asyncio.get_running_loop().time() - started
    assert big.status_code == 202, big.text[:500]
    assert other.status_code == 201, other.text
    assert seconds < 10, seconds
    shown = await _detail(api, big.json()["execution_id"])
    assert shown["parameters"] == {"who": who, "times": 1}


# --- a status without the worker says so -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _without_worker(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30) as http,
    ):
        yield http


async def test_a_status_no_worker_answered_says_its_tasks_are_declared(
    client: Client, settings: Settings, workflows_dir: Path
) -> None:
    _copy_examples(workflows_dir)
    lonely = settings.model_copy(update={"temporal_task_queue": f"{settings.temporal_task_queue}-nobody-polls"})
    async with _without_worker(client, lonely) as api:
        waiting = await _execute(api, "hello")  # no worker polls this queue: nothing has run
        body = await _detail(api, waiting["execution_id"])
        assert (body["status"], body["tasks_source"]) == ("running", "declared")
        assert [(t["id"], t["status"]) for t in body["tasks"]] == [("greet", "pending"), ("repeat", "pending")]
        await api.post(f"/executions/{waiting['execution_id']}/terminate")
        # a terminated run has no final states in its memo: only a worker could tell, and none answers
        stopped = await _detail(api, waiting["execution_id"])
        assert (stopped["status"], stopped["tasks_source"]) == ("terminated", "declared")
        assert [(t["id"], t["status"]) for t in stopped["tasks"]] == [("greet", "pending"), ("repeat", "pending")]


# --- request limits -----------------------------------------------------------------------------------------


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_a_body_over_the_limit_is_413_with_or_without_a_length(api: httpx.AsyncClient) -> None:
    url = "/executions/workflows/hello/execute"
    big = b'{"parameters": {"who": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    sized = await api.post(url, content=big, headers={"content-type": "application/json"})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await api.post(url, content=chunks(), headers={"content-type": "application/json"})
    for response in (sized, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "body_too_large" and "API_MAX_BODY_BYTES" in response.json()["detail"]
    yaml_big = "name: big-file\n# " + "x" * (2 * 1024 * 1024) + "\ntasks: []\n"
    own_cap = await api.post("/workflows", content=yaml_big, headers={"content-type": "application/yaml"})
    assert own_cap.status_code == 422 and "larger than 1024 KiB" in own_cap.text, own_cap.text


async def test_json_nested_too_deep_is_422_naming_the_path(api: httpx.AsyncClient) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    for url, text in (
        ("/workflows", deep),
        ("/workflows", '{"yaml": "x", "file": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}"),
        ("/workflows/validate", deep),
        ("/executions/workflows/hello/execute", '{"parameters": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}"),
    ):
        response = await api.post(url, content=text, headers={"content-type": "application/json"})
        assert response.status_code == 422, (url, response.text[:300])
        assert response.json()["code"] == "nesting_too_deep", response.text[:300]
    params = await _execute(api, "hello", {"parameters": {"who": _nested(700)}}, expect=422)
    assert params["errors"][0]["path"] == "body.parameters.who" + ".a" * 62, params["errors"]
    assert "API_MAX_JSON_DEPTH" in params["detail"]
    flow_yaml = "{name: deep, tasks: [], x: " + "[" * 10_000 + "]" * 10_000 + "}"
    registered = await api.post("/workflows", json={"yaml": flow_yaml})
    assert registered.status_code == 422 and "nesting deeper than" in registered.text, registered.text[:300]


async def test_parameters_nested_within_the_limit_run(api: httpx.AsyncClient) -> None:
    source = ("name: deep\nparams:\n  data: {type: object}\ntasks:\n  - id: a\n    activity_type: log\n"
              "    config: {message: hi}\noutput:\n  data: \"${{ params.data }}\"\n")  # fmt: skip
    assert (
        await api.post("/workflows", content=source, headers={"content-type": "application/yaml"})
    ).status_code == 201
    data = _nested(60)
    run = await _execute(api, "deep", {"parameters": {"data": data}}, params={"wait": "true"}, expect=200)
    assert run["status"] == "completed" and run["output"] == {"data": data}
    wrong = await _execute(api, "hello", {"parameters": {"who": _nested(60)}}, expect=422)
    assert wrong["code"] == "validation_failed" and wrong["errors"][0]["path"] == "parameters.who"


async def test_docs_are_served_unless_turned_off(client: Client, settings: Settings, workflows_dir: Path) -> None:
    _copy_examples(workflows_dir)
    authed = settings.model_copy(update={"api_tokens": "vera:viewer:tok-viewer"})
    async with _without_worker(client, authed) as api:
        for path in ("/docs", "/redoc", "/openapi.json", "/health"):
            assert (await api.get(path)).status_code == 200, path  # open without a token, as documented
        assert (await api.get("/workflows")).status_code == 401
    async with _without_worker(client, authed.model_copy(update={"api_docs_enabled": False})) as api:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await api.get(path)).status_code == 404, path
        assert (await api.get("/health")).status_code == 200
