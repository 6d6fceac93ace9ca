"""The interpreter on a real Temporal server: order, params, outputs, retries and failures."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from .conftest import Runner

FLAKY = '''
"""Fails until the third call, counting calls per key."""
calls: dict[str, int] = {}


def flaky(key: str) -> str:
    calls[key] = calls.get(key, 0) + 1
    if calls[key] < 3:
        raise ConnectionError(f"attempt {calls[key]} failed")
    return f"ok after {calls[key]}"


class ValidationError(Exception):
    pass


def invalid(key: str) -> None:
    calls[key] = calls.get(key, 0) + 1
    raise ValidationError("order is invalid")


async def add(a: int, b: int) -> int:
    return a + b


def not_json() -> object:
    return object()
'''


def _write_module(workflows_dir: Path) -> None:
    (workflows_dir / "helpers.py").write_text(FLAKY)


async def test_sequential_tasks_run_in_order_with_params_and_output(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        """
name: seq
params:
  who: {type: string, required: true}
  n: {type: integer, default: 4}
tasks:
  - id: first
    name: First step
    activity_type: log
    config: {message: "hi ${{ params.who }}"}
  - id: second
    activity_type: python
    config: {function: "helpers:add", args: ["${{ params.n }}", 38]}
  - id: third
    activity_type: log
    config: {message: "${{ tasks.first.output }} / ${{ tasks.second.output }}"}
output:
  total: "${{ tasks.second.output }}"
  text: "${{ tasks.third.output }}"
""",
        {"who": "Ada"},
    )
    assert outcome.failure is None
    assert outcome.result == {"total": 42, "text": "hi Ada / 42"}
    tasks = outcome.state["tasks"]
    assert [t["id"] for t in tasks] == ["first", "second", "third"]
    assert [t["status"] for t in tasks] == ["completed"] * 3
    assert tasks[0]["name"] == "First step"
    starts = [datetime.fromisoformat(t["started_at"]) for t in tasks]
    ends = [datetime.fromisoformat(t["finished_at"]) for t in tasks]
    assert ends[0] <= starts[1] and ends[1] <= starts[2]
    assert outcome.state["status"] == "completed"


async def test_workflow_type_is_the_yaml_name_and_activity_summary_is_the_task_name(
    run_yaml: Runner, workflows_dir: Path
) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        "name: named-flow\ntasks:\n  - id: only\n    name: The only step\n    activity_type: python\n"
        "    config: {function: 'helpers:add', args: [1, 2]}\n"
        "  - id: note\n    activity_type: log\n    config: {message: x}\n"
    )
    description = await outcome.handle.describe()
    assert description.workflow_type == "named-flow"
    history = await outcome.handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert len(scheduled) == 1
    assert scheduled[0].activity_task_scheduled_event_attributes.activity_type.name == "python"
    assert b"The only step" in scheduled[0].user_metadata.summary.data
    # `log` is cheap: it runs as a local activity (a marker), not a task-queue round trip
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
               and e.marker_recorded_event_attributes.marker_name != "core_patch"]  # fmt: skip
    assert len(markers) == 1
    assert outcome.task("note")["output"] == "x"


async def test_retries_are_counted_until_success(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        """
name: retry
tasks:
  - id: flaky
    activity_type: python
    config: {function: "helpers:flaky", kwargs: {key: "${{ workflow.execution_id }}"}}
    retry_policy: {max_attempts: 5, initial_interval: 100ms, backoff_coefficient: 1.0}
"""
    )
    assert outcome.failure is None
    flaky = outcome.task("flaky")
    assert flaky["status"] == "completed"
    assert flaky["attempts"] == 3
    assert flaky["output"] == "ok after 3"


async def test_exhausted_retries_fail_the_run_with_the_cause(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        """
name: exhausted
tasks:
  - id: flaky
    activity_type: python
    config: {function: "helpers:flaky", kwargs: {key: "${{ workflow.execution_id }}"}}
    retry_policy: {max_attempts: 2, initial_interval: 100ms}
  - id: never
    activity_type: log
    config: {message: unreachable}
"""
    )
    assert outcome.failure is not None
    assert outcome.state["status"] == "failed"
    flaky = outcome.task("flaky")
    assert flaky["status"] == "failed"
    assert flaky["attempts"] == 2
    assert "ConnectionError: attempt 2 failed" in flaky["error"]
    assert outcome.task("never")["status"] == "pending"
    assert "flaky" in (outcome.state["error"] or "")


async def test_non_retryable_errors_stop_retrying_at_once(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        """
name: nonretry
tasks:
  - id: check
    activity_type: python
    config: {function: "helpers:invalid", kwargs: {key: "${{ workflow.execution_id }}"}}
    retry_policy: {max_attempts: 5, initial_interval: 100ms, non_retryable_errors: [ValidationError]}
"""
    )
    assert outcome.failure is not None
    check = outcome.task("check")
    assert check["attempts"] == 1
    assert "order is invalid" in check["error"]


async def test_when_false_skips_and_skipped_dependency_is_satisfied(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: conditional
params:
  amount: {type: number, required: true}
tasks:
  - id: big
    activity_type: log
    when: "${{ params.amount > 1000.0 }}"
    config: {message: big}
  - id: after
    activity_type: log
    config: {message: "big was ${{ tasks.big.status }}"}
""",
        {"amount": 500},
    )
    assert outcome.failure is None
    assert outcome.task("big")["status"] == "skipped"
    assert outcome.task("after")["output"] == "big was skipped"


async def test_continue_on_error_records_the_failure_and_goes_on(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        """
name: tolerant
tasks:
  - id: check
    activity_type: python
    config: {function: "helpers:invalid", kwargs: {key: "${{ workflow.execution_id }}"}}
    retry_policy: {max_attempts: 1}
    continue_on_error: true
  - id: next
    activity_type: log
    config: {message: "check ${{ tasks.check.status }}"}
"""
    )
    assert outcome.failure is None
    assert outcome.task("check")["status"] == "failed"
    assert outcome.task("next")["output"] == "check failed"


async def test_runtime_expression_error_fails_fast_and_non_retryable(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: badexpr
params:
  data: {type: object, default: {}}
tasks:
  - id: use
    activity_type: log
    config: {message: "${{ params.data.missing }}"}
"""
    )
    assert outcome.failure is not None
    cause = outcome.failure.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert cause.type == "TaskFailed"
    assert "ExpressionError" in (outcome.task("use")["error"] or "")
    history = await outcome.handle.fetch_history()
    task_failures = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert task_failures == []


async def test_non_json_return_value_is_a_clear_error(run_yaml: Runner, workflows_dir: Path) -> None:
    _write_module(workflows_dir)
    outcome = await run_yaml(
        "name: notjson\ntasks:\n  - id: f\n    activity_type: python\n    config: {function: 'helpers:not_json'}\n"
    )
    assert outcome.failure is not None
    task = outcome.task("f")
    assert task["attempts"] == 1
    assert "not JSON-serialisable" in task["error"]


async def test_unknown_module_is_a_clear_non_retryable_error(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        "name: nomod\ntasks:\n  - id: f\n    activity_type: python\n    config: {function: 'no_such_mod:f'}\n",
        settings_update={"python_modules": "no_such_mod"},  # allowed, so the worker tries to import it
    )
    assert outcome.failure is not None
    task = outcome.task("f")
    assert task["attempts"] == 1
    assert "cannot import 'no_such_mod'" in task["error"]


async def test_independent_tasks_run_concurrently(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "slow.py").write_text(
        "import asyncio\n\nasync def nap(s: float) -> float:\n    await asyncio.sleep(s)\n    return s\n"
    )
    outcome = await run_yaml(
        """
name: parallel
tasks:
  - id: a
    depends_on: []
    activity_type: python
    config: {function: "slow:nap", args: [1.0]}
  - id: b
    depends_on: []
    activity_type: python
    config: {function: "slow:nap", args: [1.0]}
  - id: join
    depends_on: [a, b]
    activity_type: log
    config: {message: "${{ tasks.a.output + tasks.b.output }}"}
"""
    )
    assert outcome.failure is None
    a, b = outcome.task("a"), outcome.task("b")
    a_start, a_end = datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["finished_at"])
    b_start, b_end = datetime.fromisoformat(b["started_at"]), datetime.fromisoformat(b["finished_at"])
    assert a_start < b_end and b_start < a_end  # the two one-second naps overlapped
    assert outcome.task("join")["output"] == "2.0"
