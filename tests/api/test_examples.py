"""The shipped examples and the reference README's demo, run exactly as a user pastes them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from tests.polling import eventually

Json = dict[str, Any]

# The reference README's demo curl body, byte for byte what users paste.
DEMO = {
    "parameters": {
        "order_id": "ORD-12345",
        "customer_id": "CUST-789",
        "order_amount": 1500.00,
        "items": [{"product_id": "PROD-1", "quantity": 2}],
        "payment_method": {"type": "credit_card", "last4": "1234"},
        "customer_email": "customer@example.com",
        "customer_phone": "+1234567890",
    }
}
ORDER = "/executions/workflows/order_processing_workflow/execute"

# The reference README's "Creating a Custom Workflow" example, as written there.
MY_WORKFLOW = """\
# workflows/my_workflow.yaml
name: my-workflow
version: 1.0
description: "My custom workflow"

tasks:
  - id: task1
    name: "Test Task"
    type: activity
    activity_type: http_request
    config:
      url: https://httpbin.org/get
      method: GET
"""


def _demo(**changes: Any) -> Json:
    """The demo body with some parameters replaced (None removes one)."""
    params = {**DEMO["parameters"], **changes}
    return {"parameters": {name: value for name, value in params.items() if value is not None}}


async def _start(api: httpx.AsyncClient, path: str, body: Json) -> str:
    response = await api.post(path, json=body)
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def _until(api: httpx.AsyncClient, execution_id: str, done: Callable[[Json], bool], limit: float = 30.0) -> Json:
    async def detail() -> Json:
        response = await api.get(f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    return await eventually(detail, until=done, within=limit, what=f"{execution_id} reaching the state awaited")


def _finished(body: Json) -> bool:
    return body["status"] not in ("running", "waiting_approval")


def _tasks(body: Json) -> dict[str, Json]:
    return {task["id"]: task for task in body["tasks"]}


async def test_examples_are_registered_at_start(api: httpx.AsyncClient) -> None:
    for name in ("order_processing_workflow", "human_approval_workflow", "sample", "hello", "trip_booking"):
        response = await api.get(f"/workflows/{name}")
        assert response.status_code == 200, (name, response.text)
    for old in ("order-processing", "expense-approval"):
        assert (await api.get(f"/workflows/{old}")).status_code == 404


async def test_the_demo_curl_waits_for_the_manager_and_completes_once_approved(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, ORDER, DEMO)
    waiting = await _until(api, execution_id, lambda b: b["status"] in ("waiting_approval", "failed", "completed"))
    assert waiting["status"] == "waiting_approval", waiting
    tasks = _tasks(waiting)
    assert tasks["manager_approval"]["status"] == "waiting_approval"
    assert tasks["manager_approval"]["message"] == (
        "Order ORD-12345 of CUST-789 is worth 1500.0 (fraud risk medium, score 35): approve?"
    )
    # The parallel branches ran while the manager was asked; payment waits for the decision.
    assert {tasks[t]["status"] for t in ("validate_order", "reserve_stock", "fraud_check", "prepare_notification")} == {
        "completed"
    }
    assert tasks["charge_payment"]["status"] == "pending"

    decided = await api.post(f"/executions/{execution_id}/approvals/manager_approval", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "completed", done
    assert done["started_by"] == "local"
    output = done["output"]
    assert output["transaction_id"].startswith("TX-") and len(output["transaction_id"]) == 19
    assert output == {
        "order_id": "ORD-12345",
        "status": "confirmed",
        "needed_approval": True,
        "approved_by": ["local"],
        "fraud_risk": "medium",
        "reservations": ["RSV-ORD-12345-1"],
        "transaction_id": output["transaction_id"],
        "invoice": {
            "invoice_id": "INV-ORD-12345",
            "customer_id": "CUST-789",
            "lines": 1,
            "total": 1500.0,
            "transaction_id": output["transaction_id"],
        },
        "notified": True,
    }
    assert [(a["approver"], a["decision"], a["via"]) for a in done["audit"]] == [("local", "approve", "api")]
    statuses = {task["id"]: task["status"] for task in done["tasks"]}
    assert statuses.pop("alert") == "pending"  # on_failure never ran
    assert set(statuses.values()) == {"completed"}


async def test_an_order_under_1000_skips_the_approval(api: httpx.AsyncClient) -> None:
    items = [{"product_id": f"PROD-{n}", "quantity": n} for n in range(1, 8)]
    execution_id = await _start(api, ORDER, _demo(order_amount=250, items=items, order_id="ORD-small-1"))
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "completed", done
    assert done["audit"] == []
    assert _tasks(done)["manager_approval"]["status"] == "skipped"
    output = done["output"]
    assert (output["needed_approval"], output["approved_by"], output["fraud_risk"]) == (False, [], "low")
    assert output["reservations"] == [f"RSV-ORD-small-1-{n}" for n in range(1, 8)]  # fan-out keeps the item order
    assert output["invoice"]["lines"] == 7 and output["invoice"]["total"] == 250.0


async def test_invalid_demo_parameters_are_refused_with_every_problem(api: httpx.AsyncClient) -> None:
    body = _demo(customer_email="not-an-email", customer_id=None, customer_phone="12345", order_amount=-1,
                 order_id="12345", items={"product_id": "PROD-1"}, payment_method="card", coupon="X")  # fmt: skip
    response = await api.post(ORDER, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problems = {(e["path"], e["message"]) for e in response.json()["errors"]}
    assert problems == {
        ("parameters.coupon", "unknown parameter"),
        ("parameters.customer_id", "required parameter is missing"),
        (
            "parameters.customer_email",
            "'not-an-email' does not match the pattern '^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$'",
        ),
        ("parameters.customer_phone", "'12345' does not match the pattern '^\\\\+[1-9][0-9]{6,14}$'"),
        ("parameters.order_amount", "-1 is less than the minimum 0"),
        ("parameters.order_id", "'12345' does not match the pattern '^ORD-[A-Za-z0-9-]{1,40}$'"),
        ("parameters.items", "expected array, got object"),
        ("parameters.payment_method", "expected object, got string"),
    }


async def test_an_order_without_items_is_refused_before_it_starts(api: httpx.AsyncClient) -> None:
    response = await api.post(ORDER, json=_demo(items=[]))
    assert response.status_code == 422, response.text
    problems = {(e["path"], e["message"]) for e in response.json()["errors"]}
    assert problems == {("parameters.items", "has 0 items, fewer than the minimum 1")}


async def test_an_unknown_payment_type_fails_validation_at_once_without_retries(api: httpx.AsyncClient) -> None:
    # what params cannot express (the payment type's values) is checked by validate_order; InvalidOrder is not retried
    execution_id = await _start(api, ORDER, _demo(payment_method={"type": "cash"}))
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "failed"
    validate = _tasks(done)["validate_order"]
    assert validate["status"] == "failed" and validate["attempts"] == 1, validate
    assert "payment_method.type must be one of credit_card" in validate["error"]
    assert {t: s["status"] for t, s in _tasks(done).items() if t != "validate_order"} == dict.fromkeys(
        ("reserve_stock", "fraud_check", "prepare_notification", "manager_approval", "charge_payment",
         "create_invoice", "notify_customer", "alert"), "pending",
    ) | {"alert": "completed"}  # fmt: skip


async def test_a_declined_card_fails_the_order_without_retrying_the_charge(api: httpx.AsyncClient) -> None:
    body = _demo(order_amount=99.5, payment_method={"type": "credit_card", "last4": "0002"})
    execution_id = await _start(api, ORDER, body)
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "failed"
    charge = _tasks(done)["charge_payment"]
    assert charge["status"] == "failed" and charge["attempts"] == 1, charge
    assert "card ending 0002 was declined" in charge["error"]
    assert _tasks(done)["create_invoice"]["status"] == "pending"


async def test_expense_approval_by_a_plain_temporal_signal(api: httpx.AsyncClient, client: Client) -> None:
    path = "/executions/workflows/human_approval_workflow/execute"
    small = await _start(api, path, {"parameters": {"employee": "ada", "amount": 120}})
    execution_id = await _start(api, path, {"parameters": {"employee": "ada", "amount": 1200, "description": "laptop"}})
    await _until(api, execution_id, lambda b: b["status"] == "waiting_approval")
    # What `temporal workflow signal --name approval --input '{...}'` sends: no approvers list, so it is accepted.
    await client.get_workflow_handle(execution_id).signal(
        "approval", {"task_id": "manager_approval", "decision": "approve", "approver": "dave"}
    )
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "completed", done
    assert done["output"]["needed_approval"] is True
    assert done["output"]["booking"]["approved_by"] == ["dave"]
    assert [(a["approver"], a["via"]) for a in done["audit"]] == [("dave", "signal")]
    quick = await _until(api, small, _finished)
    assert quick["status"] == "completed" and quick["output"]["needed_approval"] is False
    assert quick["output"]["booking"]["approved_by"] == []


async def test_sample_pipeline_runs_with_no_parameters(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, "/executions/workflows/sample/execute", {"parameters": {}})
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "completed", done
    assert done["output"] == {
        "summary": {"dataset": "sales-q1", "rows": 5, "rejected": 1, "flagged": ["us/widget", "apac/gadget"]},
        "by_region": {"apac": 199.99, "eu": 200.5, "us": 355.25},
        "by_product": {"gadget": 280.49, "gizmo": 45.25, "widget": 430.0},
        "report": "sales-q1: 5 rows (1 rejected), 2 above 150.0",
    }
    tasks = _tasks(done)
    assert len(tasks["score_rows"]["output"]) == 5
    # Fan-out then fan-in: the three branches started before any of them finished, the summary after all.
    branches = [tasks[t] for t in ("by_region", "by_product", "score_rows")]
    assert max(b["started_at"] for b in branches) <= min(b["finished_at"] for b in branches)
    assert tasks["summary"]["started_at"] >= max(b["finished_at"] for b in branches)


async def test_the_reference_minimal_example_registers_and_fails_clearly_offline(
    api: httpx.AsyncClient, workflows_dir: Path
) -> None:
    (workflows_dir / "my_workflow.yaml").write_text(MY_WORKFLOW)  # where the reference puts it
    report = (await api.post("/workflows/reload")).json()  # what the 2 s rescan does, now
    assert report["invalid"] == {}, report
    registered = (await api.get("/workflows/my-workflow")).json()
    assert (registered["version"], registered["tasks"][0]["activity_type"]) == ("1.0", "http_request"), registered
    started = time.monotonic()
    execution_id = await _start(api, "/executions/workflows/my-workflow/execute", {"parameters": {}})
    done = await _until(api, execution_id, _finished, limit=40)
    elapsed = time.monotonic() - started
    assert done["status"] == "failed", done
    task = _tasks(done)["task1"]
    assert task["status"] == "failed"
    assert task["attempts"] == 3, task  # the default retry policy: 3 attempts, 1 s then 2 s apart
    assert "GET https://httpbin.org/get" in task["error"]
    assert "DNS lookup of 'httpbin.org' failed" in task["error"], task["error"]
    assert "task 'task1' failed" in done["error"] and "httpbin.org" in done["error"]
    assert 3.0 <= elapsed < 30, elapsed  # backoff was waited, nothing hung
    print(f"\nmy-workflow offline: failed after {task['attempts']} attempts in {elapsed:.1f} s")


TRIP = "/executions/workflows/trip_booking/execute"


async def test_a_declined_trip_cancels_its_bookings_latest_first_then_tells_the_customer(
    api: httpx.AsyncClient,
) -> None:
    execution_id = await _start(api, TRIP, {"parameters": {"trip_id": "T-1", "card_last4": "0002"}})
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "failed", done
    tasks = _tasks(done)
    assert tasks["charge"]["status"] == "failed" and tasks["charge"]["attempts"] == 1  # PaymentDeclined: no retry
    undone = ("book_flight", "book_hotel", "book_car")
    assert {t: tasks[t]["status"] for t in undone} == dict.fromkeys(undone, "compensated")
    for task_id in undone:
        compensation = tasks[task_id]["compensation"]
        assert compensation["output"] == {"kind": task_id.removeprefix("book_"), "status": "cancelled",
                                          "booking": tasks[task_id]["output"]["booking"]}  # fmt: skip
    by_start = sorted(undone, key=lambda t: tasks[t]["compensation"]["started_at"])
    assert by_start == ["book_car", "book_hotel", "book_flight"]
    assert tasks["tell_customer"]["status"] == "completed"
    assert "flight compensated, hotel compensated, car compensated" in tasks["tell_customer"]["output"]


async def test_a_paid_trip_keeps_its_bookings(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, TRIP, {"parameters": {"trip_id": "T-2"}})
    done = await _until(api, execution_id, _finished)
    assert done["status"] == "completed", done
    assert set(done["output"]) == {"flight", "hotel", "car", "receipt"}
    assert all(task.get("compensation") is None for task in done["tasks"])
    assert _tasks(done)["tell_customer"]["status"] == "pending"


DEPLOY = "/executions/workflows/deploy/execute"


async def test_deploys_to_one_environment_run_one_at_a_time_in_arrival_order_and_others_in_parallel(
    api: httpx.AsyncClient,
) -> None:
    environment = ("dev", "staging", "prod")[int(time.time()) % 3]  # runs of other tests hold other keys
    other = next(e for e in ("dev", "staging", "prod") if e != environment)
    same = [await _start(api, DEPLOY, {"parameters": {"environment": environment, "version": f"1.{n}",
                                                      "seconds": 1}}) for n in range(3)]  # fmt: skip
    parallel = await _start(api, DEPLOY, {"parameters": {"environment": other, "version": "9.0", "seconds": 1}})
    waiting = await _until(api, same[-1], lambda b: bool((b.get("concurrency") or {}).get("waiting_for")))
    assert waiting["status"] == "running" and waiting["concurrency"]["waiting_for"] == {"run": f"deploy-{environment}"}
    page = await api.get(f"/ui/runs/{same[-1]}")
    assert page.status_code == 200 and 'data-testid="waiting-for-key"' in page.text
    assert f"deploy-{environment}" in page.text.split('data-testid="waiting-for-key"', 1)[1].split("</p>", 1)[0]
    outputs = []
    for execution_id in [*same, parallel]:
        done = await _until(api, execution_id, _finished, limit=60)
        assert done["status"] == "completed", done
        assert done["concurrency"] is None
        outputs.append(done["output"])
    spans = [(o["started_at"], o["finished_at"]) for o in outputs[:3]]
    assert [o["version"] for o in outputs[:3]] == ["1.0", "1.1", "1.2"]
    assert spans == sorted(spans) and all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans  # in line
    assert outputs[3]["started_at"] < spans[0][1]  # the other environment did not wait for this one
