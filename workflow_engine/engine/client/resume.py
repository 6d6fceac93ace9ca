"""Resuming a closed run: read its final task states, and plan which of them a new run keeps."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import Client

from workflow_engine.dsl import WorkflowDefinition, task_graph
from workflow_engine.dsl.graph import downstream
from workflow_engine.errors import ConflictError, UnavailableError, ValidationFailedError

from ..types import STATUS_QUERY, TaskState, TaskStatus
from .errors import temporal_call
from .executions import recorded_states

# A closed run answers the status query from a worker that replays its history: allow for a long one.
FINAL_STATE_TIMEOUT = timedelta(seconds=15)
# What a new run keeps of a task: its recorded status and output (an approved approval is `completed`).
_REUSABLE = (TaskStatus.COMPLETED, TaskStatus.SKIPPED)


class RetryMode(StrEnum):
    """How `POST /executions/{id}/retry` starts the new run."""

    FROM_FAILURE = "from_failure"  # keep completed and skipped tasks; run the rest
    FROM_TASK = "from_task"  # run the task and everything downstream again; keep what completed upstream
    RESTART = "restart"  # run everything again


async def final_states(client: Client, execution_id: str) -> dict[str, TaskState]:
    """The task states a closed run ended with: recorded in its memo, else as its `status` query reports them.

    Only a run without recorded states (terminated, timed out, too large, closed before they were recorded)
    needs a worker, which replays it to answer.

    Raises:
        UnavailableError: No worker answered (the message says how to go on), or Temporal is down.
        NotFoundError: Temporal no longer has the run.
    """
    recorded = await recorded_states(client, execution_id)
    if recorded is not None:
        return {task["id"]: TaskState.from_json(task) for task in recorded if "id" in task}
    handle = client.get_workflow_handle(execution_id)
    try:
        async with temporal_call(client, execution_id, rpc_timeout=FINAL_STATE_TIMEOUT):
            state = await handle.query(STATUS_QUERY, rpc_timeout=FINAL_STATE_TIMEOUT)
    except UnavailableError as exc:
        raise UnavailableError(
            f"resuming {execution_id!r} reads its final task states from a worker, which replays the closed run; "
            f"none answered ({exc.message}); start a worker, or retry with mode restart"
        ) from None
    tasks = state.get("tasks", []) if isinstance(state, dict) else []
    return {task["id"]: TaskState.from_json(task) for task in tasks if isinstance(task, dict) and "id" in task}


@dataclass(frozen=True)
class ResumePlan:
    """What a resumed run starts with (`RunInput.resume`), and which tasks it keeps and runs."""

    resume: dict[str, Any]
    kept: list[str]
    rerun: list[str]


def _to_rerun(definition: WorkflowDefinition, mode: RetryMode, task_id: str | None) -> frozenset[str]:
    """The tasks that run again whatever they did: the chosen task and its descendants (from_task)."""
    if mode != RetryMode.FROM_TASK:
        return frozenset()
    ids = [task.id for task in definition.tasks]
    if task_id is None or task_id not in ids:
        raise ValidationFailedError(
            f"task_id {task_id!r} is not a task of {definition.name!r}: choose one of {', '.join(ids)}"
            if task_id is not None else "mode from_task needs a task_id"
        )  # fmt: skip
    return frozenset({task_id}) | downstream(task_graph(definition.tasks), task_id)


def _check_kept(definition: WorkflowDefinition, states: dict[str, TaskState], execution_id: str, revision: int) -> None:
    """A task the original completed must still exist, with the same type, in the revision that resumes it."""
    types = {task.id: task.type for task in definition.tasks}
    problems = []
    for state in states.values():
        if state.status not in _REUSABLE:
            continue
        if state.id not in types:
            problems.append(f"task {state.id!r} ({state.status} there) no longer exists")
        elif types[state.id] != state.type:
            problems.append(f"task {state.id!r} changed its type from {state.type} to {types[state.id]}")
    if problems:
        raise ConflictError(f"revision {revision} cannot resume execution {execution_id!r}: {'; '.join(problems)}; "
                            "retry with mode from_task or restart")  # fmt: skip


def plan_resume(
    definition: WorkflowDefinition, revision: int, states: dict[str, TaskState], *, execution_id: str,
    mode: RetryMode, task_id: str | None = None, handlers: frozenset[str] = frozenset(),
) -> ResumePlan:  # fmt: skip
    """Plan a resumed run of `definition` from the final `states` of `execution_id`.

    Completed and skipped tasks (approved approvals included) keep their status, output and decisions, marked
    `reused_from`; with from_task, the chosen task and its descendants run again. A `for_each` task that failed
    part-way keeps the outputs of its completed items, and only the others run. `on_failure` tasks (`handlers`:
    those of the original run) always run anew. Raises a 409 when a kept task is gone from (or changed type in)
    the resuming revision.
    """
    rerun = _to_rerun(definition, mode, task_id)
    skip = rerun | handlers | {task.id for task in definition.on_failure}
    states = {tid: state for tid, state in states.items() if tid not in skip}
    _check_kept(definition, states, execution_id, revision)
    tasks: dict[str, dict[str, Any]] = {}
    context: dict[str, dict[str, Any]] = {}
    kept = []
    for task in definition.tasks:
        state = states.get(task.id)
        if state is None:
            continue
        if state.status in _REUSABLE:
            reused = replace(state, reused_from=state.reused_from or execution_id, items=None)
            tasks[task.id] = reused.as_json()
            context[task.id] = {"status": reused.status.value, "output": reused.output, "error": reused.error}
            kept.append(task.id)
        elif state.items and getattr(task, "for_each", None) is not None:
            partial = TaskState(id=task.id, name=state.name, type=state.type, items=state.items)
            tasks[task.id] = partial.as_json()
    rerun_ids = [task.id for task in definition.tasks if task.id not in kept]
    return ResumePlan(resume={"tasks": tasks, "context": context}, kept=kept, rerun=rerun_ids)
