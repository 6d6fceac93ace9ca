"""Approvals through the API and through Temporal signals, with policy, audit and the inbox."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client

from tests.polling import eventually

from .conftest import TOKENS


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


async def _state(api: httpx.AsyncClient, execution_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await api.get(f"/executions/{execution_id}", headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(
    api: httpx.AsyncClient, execution_id: str, statuses: tuple[str, ...], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return await eventually(
        lambda: _state(api, execution_id, headers), until=lambda body: body["status"] in statuses, within=20,
        what=f"{execution_id} reaching {statuses}",
    )  # fmt: skip


async def _start(
    api: httpx.AsyncClient, workflow: str, params: dict[str, Any], headers: dict[str, str] | None = None
) -> str:
    response = await api.post(f"/executions/workflows/{workflow}/execute", json={"parameters": params},
                              headers=headers or {})  # fmt: skip
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def test_small_expense_needs_no_approval(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, "human_approval_workflow", {"employee": "ada", "amount": 100})
    body = await _until(api, execution_id, ("completed", "failed"))
    assert body["status"] == "completed"
    assert body["output"]["needed_approval"] is False
    assert [t["status"] for t in body["tasks"]] == ["completed", "skipped", "completed"]


async def test_large_expense_waits_shows_in_inbox_and_completes_once_approved(api: httpx.AsyncClient) -> None:
    execution_id = await _start(
        api, "human_approval_workflow", {"employee": "ada", "amount": 1200, "description": "laptop"}
    )
    body = await _until(api, execution_id, ("waiting_approval",))
    waiting = next(t for t in body["tasks"] if t["id"] == "manager_approval")
    assert waiting["status"] == "waiting_approval"
    assert waiting["message"] == "Approve 1200.0 for ada: laptop?"
    assert waiting["deadline"] is not None

    async def in_inbox() -> dict[str, Any] | None:  # visibility is eventually consistent
        inbox = (await api.get("/approvals", params={"status": "pending"})).json()["items"]
        return next((item for item in inbox if item["execution_id"] == execution_id), None)

    item = await eventually(in_inbox, within=10, what=f"{execution_id} in the pending approvals inbox")
    assert (item["task_id"], item["workflow_id"], item["message"]) == (
        "manager_approval", "human_approval_workflow", "Approve 1200.0 for ada: laptop?",
    )  # fmt: skip

    decided = await api.post(f"/executions/{execution_id}/approvals/manager_approval",
                             json={"decision": "approve", "comment": "fine"})  # fmt: skip
    assert decided.status_code == 200, decided.text
    assert decided.json()["task"]["approvals"][0]["approver"] == "local"
    done = await _until(api, execution_id, ("completed", "failed"))
    assert done["status"] == "completed"
    assert done["output"]["booking"]["approved_by"] == ["local"]
    approval = next(t for t in done["tasks"] if t["id"] == "manager_approval")
    assert approval["output"]["decision"] == "approve"
    assert [(a["approver"], a["decision"], a["comment"], a["via"]) for a in done["audit"]] == [
        ("local", "approve", "fine", "api")
    ]

    again = await api.post(f"/executions/{execution_id}/approvals/manager_approval", json={"decision": "approve"})
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


async def test_rejection_fails_the_run(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, "human_approval_workflow", {"employee": "ada", "amount": 9000})
    await _until(api, execution_id, ("waiting_approval",))
    response = await api.post(f"/executions/{execution_id}/approvals/manager_approval",
                              json={"decision": "reject", "comment": "too much"})  # fmt: skip
    assert response.status_code == 200
    body = await _until(api, execution_id, ("completed", "failed"))
    assert body["status"] == "failed"
    approval = next(t for t in body["tasks"] if t["id"] == "manager_approval")
    assert approval["status"] == "rejected"
    assert "rejected by local" in body["error"]


async def test_decision_errors_are_precise(api: httpx.AsyncClient) -> None:
    execution_id = await _start(api, "human_approval_workflow", {"employee": "ada", "amount": 1200})
    await _until(api, execution_id, ("waiting_approval",))
    cases = [
        (f"/executions/{execution_id}/approvals/nope", {"decision": "approve"}, 404),
        (f"/executions/{execution_id}/approvals/check", {"decision": "approve"}, 404),  # not an approval task
        (f"/executions/{execution_id}/approvals/manager_approval", {"decision": "maybe"}, 422),
        (f"/executions/{execution_id}/approvals/manager_approval", {"decision": "approve", "approver": "x"}, 422),
        ("/executions/no-such-run/approvals/manager_approval", {"decision": "approve"}, 404),
    ]
    for url, payload, status in cases:
        response = await api.post(url, json=payload)
        assert response.status_code == status, (url, payload, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_signal_decisions_work_and_invalid_signals_are_ignored(api: httpx.AsyncClient, client: Client) -> None:
    execution_id = await _start(api, "human_approval_workflow", {"employee": "ada", "amount": 1200})
    await _until(api, execution_id, ("waiting_approval",))
    handle = client.get_workflow_handle(execution_id)
    await handle.signal("approval", {"task_id": "book", "decision": "approve", "approver": "eve"})
    await handle.signal("approval", "not even an object")
    await handle.signal("approval", {"task_id": "manager_approval", "decision": "approve", "approver": "dave",
                                     "comment": "via temporal"})  # fmt: skip
    body = await _until(api, execution_id, ("completed", "failed"))
    assert body["status"] == "completed"
    assert [(a["approver"], a["via"]) for a in body["audit"]] == [("dave", "signal")]
    state = await handle.query("status")
    reasons = [ignored["reason"] for ignored in state["ignored_signals"]]
    assert reasons == ["unknown approval task 'book'", "unknown approval task ''"]


async def test_auth_matrix(authed_api: httpx.AsyncClient) -> None:
    api = authed_api
    assert (await api.get("/workflows")).status_code == 401
    assert (await api.get("/workflows", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await api.get("/workflows", headers=_auth("viewer"))).status_code == 200
    assert (await api.get("/health")).status_code == 200  # health needs no token
    denied = await api.post("/executions/workflows/hello/execute", json={}, headers=_auth("viewer"))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    execution_id = await _start(api, "managed-order", {"order_id": "o-1", "order_amount": 5000, "items": [1, 2]},
                                headers=_auth("alice"))  # fmt: skip
    await _until(api, execution_id, ("waiting_approval",), _auth("viewer"))
    url = f"/executions/{execution_id}/approvals/manager_approval"
    assert (await api.post(url, json={"decision": "approve"}, headers=_auth("operator"))).status_code == 403
    self_approval = await api.post(url, json={"decision": "approve"}, headers=_auth("alice"))
    assert self_approval.status_code == 403
    assert "started this run" in self_approval.json()["detail"]
    assert (await api.post(url, json={"decision": "approve"}, headers=_auth("bob"))).status_code == 200
    assert (await api.post(url, json={"decision": "approve"}, headers=_auth("bob"))).status_code == 409  # twice
    assert (await _state(api, execution_id, _auth("viewer")))["status"] == "waiting_approval"  # 1 of 2
    assert (await api.post(url, json={"decision": "approve"}, headers=_auth("root"))).status_code == 200  # role:admin
    body = await _until(api, execution_id, ("completed", "failed"), _auth("viewer"))
    assert body["status"] == "completed", body
    assert body["started_by"] == "alice"
    assert [a["approver"] for a in body["audit"]] == ["bob", "root"]
    assert body["output"] == {"invoice": {"invoice_id": "INV-o-1", "lines": 2}, "reserved_lines": 2}
