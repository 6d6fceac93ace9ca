"""Saga compensation on a real Temporal server: reverse completion order, retries, failures, cancellation, items."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from tests.polling import eventually
from workflow_engine.api.schemas import TaskState as ExecutionTask
from workflow_engine.dsl import parse_definition
from workflow_engine.engine.client.resume import RetryMode, final_states, plan_resume
from workflow_engine.engine.types import COMPENSATE_PATCH, ChildDefinition, RunInput, TaskState, TaskStatus
from workflow_engine.engine.workflow.compensation import Saga
from workflow_engine.engine.workflow.steps import Steps
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

from .conftest import Outcome, Runner

SAGA = '''
"""Steps and their compensations, each appending what it did to a journal file (one JSON line per call)."""
import json
import time
from pathlib import Path


def _note(journal, entry):
    with open(journal, "a") as f:
        f.write(json.dumps(entry) + "\\n")


def do(journal, name, seconds=0):
    time.sleep(seconds)
    _note(journal, ["do", name])
    return {"id": f"{name}-1"}


def undo(journal, name, output):
    _note(journal, ["undo", name, output])
    return f"undid {name}"


def undo_flaky(journal, name, output):
    calls = Path(journal + "." + name)
    count = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(count))
    if count < 2:
        raise ConnectionError(f"undo {name} attempt {count} failed")
    _note(journal, ["undo", name, output])
    return f"undid {name} after {count}"


def undo_broken(journal, name, output):
    _note(journal, ["undo-failed", name])
    raise RuntimeError(f"cannot undo {name}")


def undo_slow(journal, name, output, seconds):
    _note(journal, ["undo-start", name])
    time.sleep(seconds)
    _note(journal, ["undo", name, output])


def boom(journal):
    _note(journal, ["boom"])
    raise RuntimeError("card declined")


def note(journal, *words):
    _note(journal, list(words))
'''

# a and b run together and b completes first; c needs both; d fails: c, a, b are undone in that order
FOUR_TASKS = """
name: saga-four
params:
  journal: {type: string, required: true}
tasks:
  - id: a
    depends_on: []
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", a, 0.8]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", a, "${{ output.id }}"]}
  - id: b
    depends_on: []
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", b]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", b, "${{ task.output.id }}"]}
  - id: c
    depends_on: [a, b]
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", c]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", c, "${{ tasks.a.output.id }}"]}
  - id: d
    activity_type: python
    config: {function: "saga:boom", args: ["${{ params.journal }}"]}
    retry_policy: {max_attempts: 1}
on_failure:
  - id: alert
    activity_type: python
    config:
      function: "saga:note"
      args: ["${{ params.journal }}", on_failure, "${{ error.task_id }}", "${{ tasks.a.status }}"]
"""


def _journal(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _markers(handle: WorkflowHandle[Any, Any]) -> list[bytes]:
    history = await handle.fetch_history()
    return [e.SerializeToString() for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]


async def test_a_failing_run_undoes_its_completed_tasks_in_reverse_completion_order_once_each(
    run_yaml: Runner, workflows_dir: Path, client: Client
) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    outcome = await run_yaml(FOUR_TASKS, {"journal": str(journal)})
    assert outcome.failure is not None
    assert outcome.state["status"] == "failed"
    assert _journal(journal) == [
        ["do", "b"], ["do", "a"], ["do", "c"], ["boom"],
        ["undo", "c", "a-1"], ["undo", "a", "a-1"], ["undo", "b", "b-1"],
        ["on_failure", "d", "compensated"],
    ]  # fmt: skip
    statuses = {t["id"]: t["status"] for t in outcome.state["tasks"]}
    assert statuses == {"a": "compensated", "b": "compensated", "c": "compensated", "d": "failed", "alert": "completed"}
    a = outcome.task("a")
    assert a["output"] == {"id": "a-1"}  # the task keeps what it did; its compensation says how it was undone
    assert a["compensation"]["status"] == "completed"
    assert a["compensation"]["output"] == "undid a" and a["compensation"]["attempts"] == 1
    assert a["compensation"]["error"] is None
    assert a["compensation"]["started_at"] <= a["compensation"]["finished_at"]
    assert "compensation" not in outcome.task("d")
    shown = ExecutionTask.model_validate(a)  # what GET /executions/{id} answers for it
    assert shown.status == TaskStatus.COMPENSATED and shown.compensation == a["compensation"]
    assert any(COMPENSATE_PATCH.encode() in marker for marker in await _markers(outcome.handle))
    # the compensations are activities with a summary of their own, in the order they ran
    history = await outcome.handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.input.payloads[0].data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    ids = [json.loads(data)["task_id"] for data in scheduled]
    assert ids == ["a", "b", "c", "d", "c:compensate", "a:compensate", "b:compensate", "alert"]

    # a resumed run does not keep a compensated task: its effect was undone, so it runs again
    definition = parse_definition(FOUR_TASKS)
    states = await final_states(client, outcome.handle.id)
    plan = plan_resume(definition, 1, states, execution_id=outcome.handle.id, mode=RetryMode.FROM_FAILURE)
    assert plan.kept == []
    assert plan.rerun == ["a", "b", "c", "d"]


async def test_a_compensation_retries_per_its_policy_and_one_that_fails_for_good_does_not_stop_the_others(
    run_yaml: Runner, workflows_dir: Path
) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    outcome = await run_yaml(
        """
name: saga-retries
params:
  journal: {type: string, required: true}
defaults:
  retry_policy: {max_attempts: 2, initial_interval: 100ms}
tasks:
  - id: a
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", a]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", a, "${{ output.id }}"]}
  - id: b
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", b]}
    compensate:
      activity_type: python
      config: {function: "saga:undo_broken", args: ["${{ params.journal }}", b, "${{ output.id }}"]}
  - id: c
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", c]}
    compensate:
      activity_type: python
      config: {function: "saga:undo_flaky", args: ["${{ params.journal }}", c, "${{ output.id }}"]}
      retry_policy: {max_attempts: 3, initial_interval: 100ms}
  - id: d
    activity_type: python
    config: {function: "saga:boom", args: ["${{ params.journal }}"]}
    retry_policy: {max_attempts: 1}
on_failure:
  - id: alert
    activity_type: python
    config: {function: "saga:note", args: ["${{ params.journal }}", on_failure, "${{ tasks.b.status }}"]}
""",
        {"journal": str(journal)},
    )
    assert outcome.failure is not None
    assert _journal(journal) == [
        ["do", "a"], ["do", "b"], ["do", "c"], ["boom"],
        ["undo", "c", "c-1"],
        ["undo-failed", "b"], ["undo-failed", "b"],  # the definition's default policy: 2 attempts
        ["undo", "a", "a-1"],
        ["on_failure", "compensation_failed"],
    ]  # fmt: skip
    c, b, a = outcome.task("c"), outcome.task("b"), outcome.task("a")
    assert c["status"] == "compensated"
    assert c["compensation"]["attempts"] == 2 and c["compensation"]["output"] == "undid c after 2"
    assert b["status"] == "compensation_failed"
    assert b["compensation"]["status"] == "failed"
    assert "cannot undo b" in b["compensation"]["error"] and b["compensation"]["attempts"] == 2
    assert a["status"] == "compensated"
    assert outcome.task("alert")["status"] == "completed"


async def test_cancelling_the_run_compensates_what_completed(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    cancelling: list[asyncio.Task[None]] = []

    async def cancel_when_napping(handle: WorkflowHandle[Any, Any]) -> None:
        async def napping() -> bool:
            state = await handle.query("status")
            return any(t["id"] == "nap" and t["status"] == "running" for t in state["tasks"])

        await eventually(napping, within=20, interval=0.05, what="the nap running")
        await handle.cancel()

    outcome = await run_yaml(
        """
name: saga-cancel
params:
  journal: {type: string, required: true}
tasks:
  - id: reserve
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", reserve]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", reserve, "${{ output.id }}"]}
  - id: nap
    type: sleep
    config: {duration: 1h}
  - id: never
    activity_type: log
    config: {message: unreachable}
    compensate: {activity_type: log, config: {message: "never undone"}}
""",
        {"journal": str(journal)},
        on_start=lambda handle: cancelling.append(asyncio.create_task(cancel_when_napping(handle))),
    )
    await asyncio.wait_for(cancelling[0], timeout=30)
    assert outcome.state["status"] == "cancelled"
    assert _journal(journal) == [["do", "reserve"], ["undo", "reserve", "reserve-1"]]
    statuses = {t["id"]: t["status"] for t in outcome.state["tasks"]}
    assert statuses == {"reserve": "compensated", "nap": "cancelled", "never": "pending"}


async def test_a_successful_run_compensates_nothing(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    outcome = await run_yaml(
        """
name: saga-success
params:
  journal: {type: string, required: true}
tasks:
  - id: a
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", a]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", a, "${{ output.id }}"]}
output: "${{ tasks.a.output }}"
""",
        {"journal": str(journal)},
    )
    assert outcome.failure is None and outcome.result == {"id": "a-1"}
    assert _journal(journal) == [["do", "a"]]
    assert outcome.task("a")["status"] == "completed" and "compensation" not in outcome.task("a")
    assert not any(COMPENSATE_PATCH.encode() in marker for marker in await _markers(outcome.handle))


async def test_a_for_each_task_is_compensated_once_per_item_last_item_first(
    run_yaml: Runner, workflows_dir: Path
) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    outcome = await run_yaml(
        """
name: saga-items
params:
  journal: {type: string, required: true}
  rooms: {type: array, default: [x, y, z]}
tasks:
  - id: book
    for_each: "${{ params.rooms }}"
    max_parallel: 1
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", "${{ item }}"]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", "${{ item }}-${{ index }}", "${{ output.id }}"]}
  - id: pay
    activity_type: python
    config: {function: "saga:boom", args: ["${{ params.journal }}"]}
    retry_policy: {max_attempts: 1}
""",
        {"journal": str(journal)},
    )
    assert outcome.failure is not None
    assert _journal(journal) == [
        ["do", "x"], ["do", "y"], ["do", "z"], ["boom"],
        ["undo", "z-2", "z-1"], ["undo", "y-1", "y-1"], ["undo", "x-0", "x-1"],
    ]  # fmt: skip
    book = outcome.task("book")
    assert book["status"] == "compensated"
    assert [item["index"] for item in book["compensation"]["items"]] == [2, 1, 0]
    assert all(item["status"] == "completed" for item in book["compensation"]["items"])


async def test_a_fan_out_that_fails_part_way_undoes_its_completed_items_and_a_resume_redoes_them(
    run_yaml: Runner, workflows_dir: Path, client: Client
) -> None:
    (workflows_dir / "saga.py").write_text(
        SAGA
        + """

def do_or_fail(journal, name):
    if name == "bad":
        _note(journal, ["fail", name])
        raise ValueError("no room " + name)
    return do(journal, name)
"""
    )
    journal = workflows_dir / "journal.jsonl"
    source = """
name: saga-partial-items
params:
  journal: {type: string, required: true}
tasks:
  - id: first
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", first]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", first, "${{ output.id }}"]}
  - id: book
    depends_on: [first]
    for_each: [x, y, bad]
    max_parallel: 1
    activity_type: python
    config: {function: "saga:do_or_fail", args: ["${{ params.journal }}", "${{ item }}"]}
    retry_policy: {max_attempts: 1}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", "${{ item }}", "${{ output.id }}"]}
"""
    outcome = await run_yaml(source, {"journal": str(journal)})
    assert outcome.failure is not None
    assert _journal(journal) == [
        ["do", "first"], ["do", "x"], ["do", "y"], ["fail", "bad"],
        ["undo", "y", "y-1"], ["undo", "x", "x-1"], ["undo", "first", "first-1"],
    ]  # fmt: skip
    book = outcome.task("book")
    assert book["status"] == "compensated" and "no room bad" in book["error"]
    assert [item["index"] for item in book["compensation"]["items"]] == [1, 0]
    assert "items" not in book or not book["items"]  # undone items are not kept for a resume
    states = await final_states(client, outcome.handle.id)
    plan = plan_resume(parse_definition(source), 1, states, execution_id="x", mode=RetryMode.FROM_FAILURE)
    assert plan.kept == [] and plan.resume["tasks"] == {}


async def test_a_cancellation_during_the_compensations_lets_them_finish_then_cancels_the_run(
    run_yaml: Runner, workflows_dir: Path
) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    cancelling: list[asyncio.Task[None]] = []

    async def cancel_while_undoing(handle: WorkflowHandle[Any, Any]) -> None:
        await eventually(lambda: ["undo-start", "b"] in _journal(journal), within=20, interval=0.05,
                         what="the compensation of b running")  # fmt: skip
        await handle.cancel()

    outcome = await run_yaml(
        """
name: saga-cancel-while-undoing
params:
  journal: {type: string, required: true}
tasks:
  - id: a
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", a]}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", a, "${{ output.id }}"]}
  - id: b
    activity_type: python
    config: {function: "saga:do", args: ["${{ params.journal }}", b]}
    compensate:
      activity_type: python
      config: {function: "saga:undo_slow", args: ["${{ params.journal }}", b, "${{ output.id }}", 1.5]}
  - id: c
    activity_type: python
    config: {function: "saga:boom", args: ["${{ params.journal }}"]}
    retry_policy: {max_attempts: 1}
on_failure:
  - id: alert
    activity_type: python
    config: {function: "saga:note", args: ["${{ params.journal }}", on_failure]}
""",
        {"journal": str(journal)},
        on_start=lambda handle: cancelling.append(asyncio.create_task(cancel_while_undoing(handle))),
    )
    await asyncio.wait_for(cancelling[0], timeout=30)
    assert _journal(journal) == [
        ["do", "a"], ["do", "b"], ["boom"], ["undo-start", "b"], ["undo", "b", "b-1"], ["undo", "a", "a-1"],
    ]  # fmt: skip
    assert outcome.state["status"] == "cancelled"  # the cancellation took effect once the compensations were done
    statuses = {t["id"]: t["status"] for t in outcome.state["tasks"]}
    assert statuses == {"a": "compensated", "b": "compensated", "c": "failed", "alert": "pending"}


CHILD = """
name: saga-child
tasks:
  - {id: only, type: set, config: {n: 7}}
output: "${{ tasks.only.output.n }}"
"""


async def test_a_workflow_task_is_compensated_with_the_child_output(
    workflows_dir: Path, client: Client, settings: Settings
) -> None:
    (workflows_dir / "saga.py").write_text(SAGA)
    journal = workflows_dir / "journal.jsonl"
    child = parse_definition(CHILD)
    definition = parse_definition(
        """
name: saga-parent
params:
  journal: {type: string, required: true}
tasks:
  - id: sub
    type: workflow
    config: {workflow: saga-child}
    compensate:
      activity_type: python
      config: {function: "saga:undo", args: ["${{ params.journal }}", sub, "${{ output }}"]}
  - id: fail
    activity_type: python
    config: {function: "saga:boom", args: ["${{ params.journal }}"]}
    retry_policy: {max_attempts: 1}
"""
    )
    async with build_worker(client, settings):
        handle = await client.start_workflow(
            definition.name,
            RunInput(
                definition=definition.model_dump(mode="json"), revision=1, params={"journal": str(journal)},
                children={child.name: ChildDefinition(definition=child.model_dump(mode="json"), revision=1)},
            ),
            id=f"saga-parent-{uuid.uuid4().hex}", task_queue=settings.temporal_task_queue,
        )  # fmt: skip
        outcome = await Outcome.of(client, handle)
    assert outcome.failure is not None
    assert _journal(journal) == [["boom"], ["undo", "sub", 7]]
    assert outcome.task("sub")["status"] == "compensated"


def test_tasks_carried_over_from_an_earlier_run_are_undone_after_this_runs_by_when_they_finished() -> None:
    definition = parse_definition(
        "name: carried\ntasks:\n"
        + "".join(
            f"  - {{id: {t}, depends_on: [], activity_type: log, config: {{message: {t}}},"
            f" compensate: {{activity_type: log, config: {{message: undo}}}}}}\n"
            for t in ("a", "b", "c", "d", "e")
        )
        + "  - {id: plain, depends_on: [], activity_type: log, config: {message: x}}\n"
    )
    done = TaskStatus.COMPLETED
    tasks = {
        "a": TaskState(id="a", name="a", type="activity", status=done, finished_at="2026-01-01T00:00:02+00:00"),
        "b": TaskState(id="b", name="b", type="activity", status=done, finished_at="2026-01-01T00:00:01.5+00:00"),
        "c": TaskState(id="c", name="c", type="activity", status=done, finished_at="2026-01-01T00:00:09+00:00"),
        "d": TaskState(id="d", name="d", type="activity", status=TaskStatus.FAILED),
        "e": TaskState(id="e", name="e", type="activity", status=done, finished_at="2026-01-01T00:00:05+00:00"),
        "plain": TaskState(id="plain", name="plain", type="activity", status=done),
    }
    saga = Saga(Steps(RunInput(definition=definition.model_dump(mode="json"), revision=1)))
    saga.order = ["e", "c"]  # completed in this run, e first; a and b came with the resume
    assert [task.id for task in saga.due(definition, tasks)] == ["c", "e", "a", "b"]
