"""`POST /workflows/{id}/plan` against what runs then do: each shipped example planned, run and compared."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import TOKENS
from tests.polling import eventually

Json = dict[str, Any]
ENGINE_SLACK = 5.0  # seconds of scheduling a worst case leaves out (in-workflow `set` tasks count as 0)

ORDER = {
    "order_id": "ORD-12345",
    "customer_id": "CUST-789",
    "order_amount": 1500.0,
    "items": [{"product_id": "PROD-1", "quantity": 2}, {"product_id": "PROD-2", "quantity": 1}],
    "payment_method": {"type": "credit_card", "last4": "1234"},
    "customer_email": "customer@example.com",
    "customer_phone": "+1234567890",
}
SMALL_ORDER = {**ORDER, "order_id": "ORD-small", "order_amount": 250.0,
               "items": [{"product_id": f"PROD-{n}", "quantity": n} for n in range(1, 8)]}  # fmt: skip
CASES = [
    ("hello", {}),
    ("hello", {"who": "Ada", "times": 3}),
    ("sample", {}),
    ("sample", {"records": [{"region": "EU", "product": "x", "amount": 500.0}], "threshold": 100}),
    ("human_approval_workflow", {"employee": "ada", "amount": 120}),
    ("human_approval_workflow", {"employee": "ada", "amount": 900, "description": "laptop"}),
    ("order_processing_workflow", ORDER),
    ("order_processing_workflow", SMALL_ORDER),
]


async def _plan(api: httpx.AsyncClient, workflow_id: str, params: Json) -> Json:
    response = await api.post(f"/workflows/{workflow_id}/plan", json={"parameters": params})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _run(api: httpx.AsyncClient, workflow_id: str, params: Json) -> Json:
    """Start a run, approve every approval it waits for through the API, and return its final detail."""
    started = await api.post(f"/executions/workflows/{workflow_id}/execute", json={"parameters": params})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def look() -> Json:
        detail: Json = (await api.get(f"/executions/{execution_id}")).json()
        for task in detail["tasks"]:
            if task["status"] == "waiting_approval" and not task.get("approvals"):
                decided = await api.post(f"/executions/{execution_id}/approvals/{task['id']}",
                                         json={"decision": "approve"})  # fmt: skip
                assert decided.status_code == 200, decided.text
        return detail

    return await eventually(look, until=lambda d: d["status"] not in ("running", "waiting_approval"), within=60,
                            what=f"{execution_id} finishing")  # fmt: skip


def _compare(plan: Json, done: Json) -> None:
    """Every task the plan says runs completed, every skipped one was skipped; sizes and messages agree."""
    states = {task["id"]: task for task in done["tasks"]}
    assert done["status"] == "completed", done
    for task in plan["tasks"]:
        state = states[task["id"]]
        if task["outcome"] == "runs":
            assert state["status"] == "completed", (task["id"], state)
        elif task["outcome"] == "skipped":
            assert state["status"] == "skipped", (task["id"], state)
        else:
            assert task["outcome"] == "depends" and state["status"] in ("completed", "skipped"), (task, state)
            assert all(states[read]["status"] == "completed" for read in task["when_reads"])
        fan_out = task["for_each"]
        if fan_out is not None and fan_out["size"] is not None:
            assert len(state["output"]) == fan_out["size"], task["id"]
        if task["type"] == "approval" and task["outcome"] == "runs" and not task["unrendered"]:
            assert state["message"] == task["config"]["message"]
    for task_id in plan["on_failure"]:
        assert states[task_id]["status"] == "pending"
    started, ended = (datetime.fromisoformat(done[key]) for key in ("started_at", "finished_at"))
    if plan["worst_case"]["seconds"] is not None:  # it counts timeouts, retries and waits, not the engine's own steps
        assert (ended - started).total_seconds() <= plan["worst_case"]["seconds"] + ENGINE_SLACK


@pytest.mark.parametrize(("workflow_id", "params"), CASES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(CASES)])
async def test_the_plan_of_each_example_matches_what_its_run_does(
    api: httpx.AsyncClient, workflow_id: str, params: Json
) -> None:
    plan = await _plan(api, workflow_id, params)
    assert plan["workflow"] == workflow_id and plan["revision"] >= 1
    assert [task_id for level in plan["levels"] for task_id in level] == sorted(
        (t["id"] for t in plan["tasks"]), key=lambda t: next(x["level"] for x in plan["tasks"] if x["id"] == t)
    )
    _compare(plan, await _run(api, workflow_id, params))


async def test_the_example_plans_say_what_the_params_decide(api: httpx.AsyncClient) -> None:
    order = {t["id"]: t for t in (await _plan(api, "order_processing_workflow", SMALL_ORDER))["tasks"]}
    assert order["manager_approval"]["outcome"] == "skipped"
    assert order["reserve_stock"]["for_each"] == {"size": 7, "max_parallel": 5, "waves": 2, "reason": None}
    assert order["prepare_notification"]["config"]["subject"] == "Your order ORD-small is confirmed"
    sample = await _plan(api, "sample", {})
    score = next(t for t in sample["tasks"] if t["id"] == "score_rows")
    assert score["for_each"]["size"] is None and score["for_each"]["reason"] == "depends on extract"
    assert sample["worst_case"] == {"seconds": None, "text": "unknown (for_each size depends on extract) at score_rows"}
    expense = await _plan(api, "human_approval_workflow", {"employee": "ada", "amount": 900})
    assert expense["worst_case"]["seconds"] == (3 * 300 + 3) + 72 * 3600 + (3 * 300 + 3)


UPSTREAM = """\
name: plan-upstream
params:
  limit: {type: integer, default: 3}
tasks:
  - {id: count, type: set, config: {n: "${{ params.limit * 2 }}"}}
  - {id: big, type: set, when: "${{ tasks.count.output.n > 4 }}", config: {seen: "${{ tasks.count.output.n }}"}}
  - {id: small, type: set, depends_on: [count], when: "${{ tasks.count.output.n <= 4 }}", config: {x: 1}}
  - {id: each, type: set, config: {rows: "${{ [1, 2, 3].map(x, x * params.limit) }}"}}
"""


async def test_a_when_that_reads_upstream_outputs_is_reported_and_then_decided_by_the_run(
    api: httpx.AsyncClient,
) -> None:
    registered = await api.post("/workflows", content=UPSTREAM, headers={"Content-Type": "application/yaml"})
    assert registered.status_code == 201, registered.text
    for limit, expected in (
        (3, {"big": "completed", "small": "skipped"}),
        (1, {"big": "skipped", "small": "completed"}),
    ):
        plan = await _plan(api, "plan-upstream", {"limit": limit})
        tasks = {t["id"]: t for t in plan["tasks"]}
        assert (tasks["big"]["outcome"], tasks["big"]["reason"], tasks["big"]["when_reads"]) == (
            "depends", "depends on count", ["count"]
        )  # fmt: skip
        assert tasks["count"]["config"] == {"n": limit * 2}
        assert tasks["each"]["config"] == {"rows": [limit, 2 * limit, 3 * limit]}
        done = await _run(api, "plan-upstream", {"limit": limit})
        _compare(plan, done)
        assert {t["id"]: t["status"] for t in done["tasks"] if t["id"] in expected} == expected
        assert next(t for t in done["tasks"] if t["id"] == "each")["output"] == tasks["each"]["config"]


async def test_invalid_params_unknown_workflows_and_revisions_answer_as_a_start_does(api: httpx.AsyncClient) -> None:
    body = {"parameters": {"amount": -1, "coupon": "x"}}
    planned = await api.post("/workflows/human_approval_workflow/plan", json=body)
    started = await api.post("/executions/workflows/human_approval_workflow/execute", json=body)
    assert planned.status_code == started.status_code == 422
    assert planned.json()["errors"] == started.json()["errors"]
    assert {e["path"] for e in planned.json()["errors"]} == {"parameters.coupon", "parameters.employee",
                                                             "parameters.amount"}  # fmt: skip
    missing = await api.post("/workflows/nope/plan", json={"parameters": {}})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    old = await api.post("/workflows/hello/plan", json={"parameters": {}, "revision": 99})
    assert old.status_code == 404 and "has no revision 99" in old.json()["detail"]
    extra = await api.post("/workflows/hello/plan", json={"parameters": {}, "dry": True})
    assert extra.status_code == 422 and extra.json()["code"] == "invalid_request"


async def test_a_viewer_may_plan(authed_api: httpx.AsyncClient) -> None:
    path, body = "/workflows/hello/plan", {"parameters": {"who": "Vera"}}
    assert (await authed_api.post(path, json=body)).status_code == 401
    answer = await authed_api.post(path, json=body, headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["tasks"][0]["config"] == {"message": "Hello, Vera!"}
