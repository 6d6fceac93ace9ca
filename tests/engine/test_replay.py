"""Replay recorded histories through the interpreter: nondeterministic changes to it fail here.

`tests/engine/histories/` holds one real run per construct (sequential, DAG, for_each, for_each in batch
children and one such child, a for_each whose items fail part-way (the `wfe-fan-out-finishes-started-items`
patch's new branch: running items finish, waiting ones never start), set, sleep, approval approved and rejected
(recorded before signed approvals, so they replay the `wfe-signed-approvals` patch's old branch), approval
decided by signed and unverified decisions, on_failure, child workflow, continue_on_error, the first run of
one that continued as new, runs that completed, failed and were cancelled after the `wfe-final-states-memo`
patch, which keeps their final task states in the memo, and a rejected approval after the `wfe-notify` patch,
whose approval and failure notifications fail, and a failed run whose completed tasks are compensated (the
`wfe-compensate` patch).
Each is replayed twice: without the sandbox, as the worker runs the interpreter by default, and in the
sandbox (WORKER_WORKFLOW_SANDBOX=true), which refuses a clock read, randomness or I/O in workflow code: this
is where such a call is caught when the worker runs unsandboxed. A change to the interpreter that would break
executions already in flight (a different command sequence for the same history) makes its replay fail.

When a change is deliberate and running executions are handled (drained, or patched with
`workflow.patched`), re-record the histories from the repository root and commit them:

    .venv/bin/python -m tests.engine.record_histories
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflow_engine.engine.types import (
    COMPENSATE_PATCH,
    FAN_OUT_FINISHES_PATCH,
    FINAL_MEMO,
    FINAL_STATES_PATCH,
    NOTIFY_PATCH,
)
from workflow_engine.engine.workflow.interpreter import Interpreter
from workflow_engine.worker import workflow_runner

from .record_histories import HISTORIES, SCENARIOS

_ENDINGS = {
    "completed": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    "failed": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    "cancelled": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    "continued": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


def _replayer(sandboxed: bool = True) -> Replayer:
    """A replayer running the interpreter as `build_worker` does, in the sandbox or not."""
    return Replayer(workflows=[Interpreter], workflow_runner=workflow_runner(sandboxed))


def _history(name: str, data: dict[str, Any] | None = None) -> WorkflowHistory:
    raw = data if data is not None else json.loads((HISTORIES / f"{name}.json").read_text())
    return WorkflowHistory.from_json(SCENARIOS[name].workflow_id(name), raw)


def test_every_construct_has_one_recorded_history() -> None:
    assert sorted(path.stem for path in HISTORIES.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("sandboxed", [False, True], ids=["unsandboxed", "sandboxed"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_recorded_history_replays_deterministically(name: str, sandboxed: bool) -> None:
    history = _history(name)
    assert history.events[-1].event_type == _ENDINGS[SCENARIOS[name].ends]  # the recording ran to its end
    result = await _replayer(sandboxed).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"


def _patches(name: str) -> set[str]:
    """The patch ids a recorded history's markers name."""
    data = json.loads((HISTORIES / f"{name}.json").read_text())
    markers = [
        e["markerRecordedEventAttributes"] for e in data["events"] if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    payloads = [m["details"]["patch-data"]["payloads"][0] for m in markers if m.get("markerName") == "core_patch"]
    return {json.loads(base64.b64decode(payload["data"]))["id"] for payload in payloads}


def test_the_partial_fan_out_failure_is_the_only_fan_out_history_with_the_patch() -> None:
    assert _patches("for_each_partial_failure") == {FAN_OUT_FINISHES_PATCH}
    for name in ("for_each", "for_each_batches", "for_each_batch_child"):
        assert FAN_OUT_FINISHES_PATCH not in _patches(name), name


def test_only_the_final_states_histories_keep_them_in_the_memo_before_they_close() -> None:
    recorded = sorted(name for name in SCENARIOS if name.startswith("final_states_"))
    assert recorded == ["final_states_cancelled", "final_states_completed", "final_states_failed"]
    for name in sorted(SCENARIOS):
        assert (FINAL_STATES_PATCH in _patches(name)) == (
            name in recorded or name in ("notify", "compensate", "concurrency")
        ), name
    for name in recorded:
        events = json.loads((HISTORIES / f"{name}.json").read_text())["events"]
        assert events[-2]["eventType"] == "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED", name  # just before the close
        fields = events[-2]["workflowPropertiesModifiedEventAttributes"]["upsertedMemo"]["fields"]
        final = json.loads(base64.b64decode(fields[FINAL_MEMO]["data"]))
        assert [task["status"] for task in final["tasks"]] == {
            "final_states_completed": ["completed", "completed"],
            "final_states_failed": ["completed", "failed", "completed"],
            "final_states_cancelled": ["completed", "cancelled"],
        }[name]


def test_the_notify_history_starts_the_approval_notification_and_awaits_the_failure_one() -> None:
    for name in sorted(SCENARIOS):
        assert (NOTIFY_PATCH in _patches(name)) == (name == "notify"), name
    events = json.loads((HISTORIES / "notify.json").read_text())["events"]
    kinds = [e["eventType"].removeprefix("EVENT_TYPE_") for e in events]
    scheduled = [i for i, kind in enumerate(kinds) if kind == "ACTIVITY_TASK_SCHEDULED"]
    assert [events[i]["activityTaskScheduledEventAttributes"]["activityType"]["name"] for i in scheduled] == [
        "notify",
        "notify",
    ]
    assert scheduled[0] < kinds.index("WORKFLOW_EXECUTION_SIGNALED") < scheduled[1]  # the approval waited meanwhile
    assert kinds[-3:] == [
        "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
        "WORKFLOW_PROPERTIES_MODIFIED",
        "WORKFLOW_EXECUTION_FAILED",
    ]
    assert kinds.index("ACTIVITY_TASK_FAILED", scheduled[1]) < len(kinds) - 3  # the failure's ended before the close


async def test_a_history_the_interpreter_would_not_produce_fails_to_replay() -> None:
    data = json.loads((HISTORIES / "sequential.json").read_text())
    scheduled = [e for e in data["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert scheduled, "the sequential history schedules the python task"
    scheduled[0]["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "shell"
    result = await _replayer().replay_workflow(_history("sequential", data), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower()


def test_the_compensate_history_undoes_its_tasks_latest_first_before_on_failure() -> None:
    for name in sorted(SCENARIOS):
        assert (COMPENSATE_PATCH in _patches(name)) == (name == "compensate"), name
    events = json.loads((HISTORIES / "compensate.json").read_text())["events"]
    final = json.loads(base64.b64decode(
        events[-2]["workflowPropertiesModifiedEventAttributes"]["upsertedMemo"]["fields"][FINAL_MEMO]["data"]
    ))  # fmt: skip
    statuses = {task["id"]: task["status"] for task in final["tasks"]}
    assert statuses == {"reserve": "compensated", "notify": "compensated", "charge": "failed", "alert": "completed"}
    undone = {task["id"]: task["compensation"] for task in final["tasks"] if "compensation" in task}
    assert undone["notify"]["output"] == "unreserve reserved 3" and undone["reserve"]["output"] == [3]
    assert undone["notify"]["finished_at"] <= undone["reserve"]["started_at"]
