"""Saga compensation: as a run fails or is cancelled, undo its completed tasks that say how, latest first.

Each `compensate` block runs as an activity through the same path a task's activity takes (`Steps.execute`:
options, retry policy, queue, secrets rendered in the worker), one at a time, in reverse completion order; a
`for_each` task is undone once per completed item, last item first. A compensation that fails is recorded
(`compensation_failed`) and the others still run. Compensations run in a task of their own, shielded from a
cancellation of the run, which takes effect once they are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from temporalio import workflow

from workflow_engine.dsl import ExpressionError, Task, WorkflowDefinition, render
from workflow_engine.dsl.model import ActivityTask, Compensation

from ..types import COMPENSATE_PATCH, TaskState, TaskStatus
from .steps import StepFailed, Steps

# Looked up once: each read of a module attribute in workflow code goes through the sandbox's module proxy.
_create_task = asyncio.create_task
_shield = asyncio.shield


def _compensation(task: Task) -> Compensation | None:
    spec = getattr(task, "compensate", None)
    return spec if isinstance(spec, Compensation) else None


def _undoable(state: TaskState) -> bool:
    """Whether the task did something to undo: it completed, or it is a fan-out that failed part-way."""
    return state.status == TaskStatus.COMPLETED or (state.status == TaskStatus.FAILED and bool(state.items))


def _step(task: Task, spec: Compensation) -> ActivityTask:
    """The compensation as an activity task of its own id, so the steps' per-task caches never mix the two."""
    return ActivityTask.model_construct(
        id=f"{task.id}:compensate", name=f"compensate {task.display_name}", activity_type=spec.activity_type,
        config=spec.config, timeout=spec.timeout, timeouts=spec.timeouts, retry_policy=spec.retry_policy,
        task_queue=spec.task_queue,
    )  # fmt: skip


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if the caller is cancelled meanwhile; then let that cancellation through."""
    inner = _create_task(work)
    cancelled = False
    while True:
        try:
            await _shield(inner)
        except asyncio.CancelledError:
            if inner.done():  # the work itself was cancelled (the worker is evicting the run)
                raise
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError


class Saga:
    """The completion order of a run's tasks that have `compensate`, and the compensations it runs once."""

    def __init__(self, steps: Steps) -> None:
        """Run compensations through `steps`, the run's own."""
        self.steps = steps
        self.order: list[str] = []  # tasks with `compensate` completed in this run, as they completed
        self.ran = False

    def note(self, task: Task) -> None:
        """Remember that `task` completed (now), if it can be compensated."""
        if _compensation(task) is not None:
            self.order.append(task.id)

    def due(self, definition: WorkflowDefinition, tasks: dict[str, TaskState]) -> list[Task]:
        """The completed tasks to compensate, latest first.

        Tasks a resumed or continued run carried over completed before those of this run, ordered by when they
        finished (then by definition order).
        """
        compensable = {task.id: task for task in definition.tasks if _compensation(task) is not None}
        done = [tid for tid in compensable if _undoable(tasks[tid])]
        noted = set(self.order)
        position = {tid: i for i, tid in enumerate(compensable)}
        carried = sorted(
            (tid for tid in done if tid not in noted),
            key=lambda tid: (datetime.fromisoformat(tasks[tid].finished_at or "0001-01-01T00:00:00+00:00"),
                             position[tid]),
        )  # fmt: skip
        sequence = [*carried, *(tid for tid in self.order if _undoable(tasks[tid]))]
        return [compensable[tid] for tid in reversed(sequence)]

    async def run(self, definition: WorkflowDefinition, tasks: dict[str, TaskState], context: dict[str, Any]) -> None:
        """Compensate the completed tasks (once per run; nothing without `compensate` in the definition)."""
        if self.ran:
            return
        self.ran = True
        if not any(_compensation(task) is not None for task in definition.tasks):
            return  # runs of definitions without compensations record no marker: their histories replay as before
        if not workflow.patched(COMPENSATE_PATCH):
            return
        due = self.due(definition, tasks)
        if due:
            await _shielded(self._undo_all(due, definition, tasks, context))

    async def _undo_all(
        self, due: list[Task], definition: WorkflowDefinition, tasks: dict[str, TaskState], context: dict[str, Any]
    ) -> None:
        for task in due:
            state = tasks[task.id]
            started = workflow.now().isoformat()
            record = await self._undo(task, state, definition, context)
            record.update(started_at=started, finished_at=workflow.now().isoformat())
            state.compensation = record
            ok = record["status"] == TaskStatus.COMPLETED.value
            state.status = TaskStatus.COMPENSATED if ok else TaskStatus.COMPENSATION_FAILED
            context["tasks"][task.id]["status"] = state.status.value

    async def _undo(
        self, task: Task, state: TaskState, definition: WorkflowDefinition, context: dict[str, Any]
    ) -> dict[str, Any]:
        spec = _compensation(task)
        assert spec is not None
        step = _step(task, spec)
        if getattr(task, "for_each", None) is None:
            return await self._one(step, definition, self._scope(task, state.output, context))
        if state.status == TaskStatus.COMPLETED:
            outputs = dict(enumerate(state.output)) if isinstance(state.output, list) else {}
        else:  # failed part-way: the items that completed; a resume must not keep them once undone
            outputs, state.items = {int(index): output for index, output in (state.items or {}).items()}, None
        try:
            items = render(getattr(task, "for_each", None), context)
        except ExpressionError as exc:
            return {"status": TaskStatus.FAILED.value, "error": f"ExpressionError: {exc}", "items": []}
        items = items if isinstance(items, list) else []
        records = []
        for index in sorted(outputs, reverse=True):
            scope = {**self._scope(task, outputs[index], context),
                     "item": items[index] if index < len(items) else None, "index": index}  # fmt: skip
            records.append({"index": index, **await self._one(step, definition, scope)})
        ok = all(r["status"] == TaskStatus.COMPLETED.value for r in records)
        failed = next((r["error"] for r in records if r["status"] != TaskStatus.COMPLETED.value), None)
        return {"status": (TaskStatus.COMPLETED if ok else TaskStatus.FAILED).value, "error": failed,
                "attempts": sum(r["attempts"] for r in records), "items": records}  # fmt: skip

    @staticmethod
    def _scope(task: Task, output: Any, context: dict[str, Any]) -> dict[str, Any]:
        return {**context, "output": output, "task": {"id": task.id, "name": task.display_name, "output": output}}

    async def _one(self, step: ActivityTask, definition: WorkflowDefinition, scope: dict[str, Any]) -> dict[str, Any]:
        """Run one compensation activity; its failure is the record's, never the caller's."""
        try:
            output, attempts = await self.steps.execute(step, definition, scope)
        except StepFailed as exc:
            workflow.logger.warning("compensation %s failed: %s", step.id, exc.message)
            return {"status": TaskStatus.FAILED.value, "output": None, "error": exc.message, "attempts": exc.attempts}
        except ExpressionError as exc:
            return {"status": TaskStatus.FAILED.value, "output": None, "error": f"ExpressionError: {exc}",
                    "attempts": 0}  # fmt: skip
        return {"status": TaskStatus.COMPLETED.value, "output": output, "error": None, "attempts": attempts}
