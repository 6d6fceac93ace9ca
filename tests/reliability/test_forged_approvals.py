"""Forged approvals against the whole stack: a signal naming a listed approver, and SSRF to our own ports.

An operator without the approver role tries to approve a run restricted to `approvers: [alice]`: by making the
run's own `http_request` POST a signal to the Temporal HTTP API and UI, or a decision to the API, on loopback
(which the default HTTP_ALLOWLIST allows), and by signalling through Temporal directly. Only alice, through the
API, decides.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from .stack import Stack, request, wait_for

TOKENS = "otto:operator:tok-otto,alice:approver:tok-alice,root:admin:tok-root"
OTTO, ALICE = {"Authorization": "Bearer tok-otto"}, {"Authorization": "Bearer tok-alice"}

GUARDED = """
name: guarded
params:
  url: {type: string, required: true}
  body: {type: object, default: {}}
tasks:
  - id: sign_off
    type: approval
    depends_on: []
    config: {approvers: [alice], message: "pay the invoice?"}
  - id: call
    depends_on: []
    activity_type: http_request
    continue_on_error: true
    retry_policy: {max_attempts: 1}
    config: {method: POST, url: "${{ params.url }}", json: "${{ params.body }}"}
"""

FORGED = {"task_id": "sign_off", "decision": "approve", "approver": "alice", "roles": ["approver"], "via": "api"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The whole stack with bearer tokens, serving the guarded workflow."""
    deployment = Stack(tmp_path, API_TOKENS=TOKENS)
    (tmp_path / "workflows" / "guarded.yaml").write_text(GUARDED)
    deployment.start_all()
    try:
        yield deployment
    finally:
        deployment.stop()


def _lan_address() -> str | None:
    """An address of this machine other than loopback, when it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _detail(stack: Stack, execution_id: str) -> dict[str, Any]:
    body: dict[str, Any] = request("GET", f"{stack.api}/executions/{execution_id}", headers=OTTO).json()
    return body


def _task(detail: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(t for t in detail["tasks"] if t["id"] == task_id)


async def test_nobody_but_alice_through_the_api_can_approve(stack: Stack) -> None:
    signal_path = "api/v1/namespaces/default/workflows/{id}/signal/approval"
    http_api, ui = stack.port("temporal_http"), stack.port("temporal_ui")
    targets = {
        "temporal-http-api": f"http://127.0.0.1:{http_api}/{signal_path}",
        "temporal-ui": f"http://localhost:{ui}/{signal_path}",
        "our-api": f"http://127.0.0.1:{stack.port('api')}/executions/{{id}}/approvals/sign_off",
        "temporal-grpc": f"http://127.0.0.1:{stack.port('temporal')}/",
    }
    if (lan := _lan_address()) is not None:
        targets["temporal-http-api-via-lan"] = f"http://{lan}:{http_api}/{signal_path}"
    runs = {}
    for name, url in targets.items():
        execution_id = f"guarded-ssrf-{name}"
        body = {"signalName": "approval", "input": [FORGED], "decision": "approve"}
        started = request(
            "POST", f"{stack.api}/executions/workflows/guarded/execute",
            headers={**OTTO, "Idempotency-Key": execution_id},
            json={"parameters": {"url": url.replace("{id}", execution_id), "body": body}},
        )  # fmt: skip
        assert started.status_code == 202, started.text
        runs[name] = execution_id

    def calls_failed() -> bool:
        return all(_task(_detail(stack, i), "call")["status"] == "failed" for i in runs.values())

    wait_for(calls_failed, 60, "every SSRF call failing")
    for name, execution_id in runs.items():
        detail = _detail(stack, execution_id)
        error = _task(detail, "call")["error"] or ""
        assert "of this deployment, which tasks may never reach" in error, (name, error)
        assert _task(detail, "sign_off")["status"] == "waiting_approval", name
        assert _task(detail, "sign_off")["approvals"] == [] and detail["audit"] == [], name

    # someone who can reach Temporal signals directly, naming alice and claiming roles: recorded, ignored
    target = runs["temporal-http-api"]
    direct = request("POST", f"http://127.0.0.1:{http_api}/{signal_path.format(id=target)}",
                     content=json.dumps({"input": [FORGED]}), headers={"Content-Type": "application/json"})  # fmt: skip
    assert direct.status_code == 200, direct.text
    client = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
    handle = client.get_workflow_handle(target)
    state = await handle.query("status")
    assert len(state["ignored_signals"]) == 1 and "must come through the API" in state["ignored_signals"][0]["reason"]
    with pytest.raises(WorkflowUpdateFailedError) as caught:  # an update claiming `via: api` without a signature
        await handle.execute_update("approve", FORGED)
    assert isinstance(caught.value.cause, ApplicationError) and caught.value.cause.type == "unverified"
    # the operator may not decide through the API either; alice may
    refused = request("POST", f"{stack.api}/executions/{target}/approvals/sign_off", headers=OTTO,
                      json={"decision": "approve"})  # fmt: skip
    assert refused.status_code == 403, refused.text
    approved = request("POST", f"{stack.api}/executions/{target}/approvals/sign_off", headers=ALICE,
                       json={"decision": "approve", "comment": "checked"})  # fmt: skip
    assert approved.status_code == 200, approved.text
    audit = _detail(stack, target)["audit"]
    assert [(a["approver"], a["via"]) for a in audit] == [("alice", "api")]
