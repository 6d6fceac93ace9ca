"""The generic interpreter: one dynamic workflow runs any registered definition."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflow_engine.dsl import (
        ExpressionError,
        Task,
        WorkflowDefinition,
        dependencies,
        is_true,
        render,
    )
    from workflow_engine.dsl.model import RetryPolicy

    from .types import STATUS_QUERY, ActivityInput, ActivityResult, RunInput

DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1), backoff_coefficient=2.0)
_DONE = ("completed", "failed", "skipped", "cancelled")


def _temporal_retry(policy: RetryPolicy) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        maximum_attempts=policy.max_attempts or 0,
        initial_interval=policy.initial_interval or timedelta(seconds=1),
        backoff_coefficient=policy.backoff_coefficient or 2.0,
        maximum_interval=policy.maximum_interval,
        non_retryable_error_types=list(policy.non_retryable_errors) or None,
    )


def _failure_message(exc: BaseException) -> tuple[str, int | None]:
    """Return the root cause message of an activity failure and the attempt it came from."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    attempt = None
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        attempt = cause.details[0].get("attempt")
    message = cause.message if isinstance(cause, ApplicationError | ActivityError) else str(cause)
    return message, attempt


@workflow.defn(dynamic=True)
class Interpreter:
    """Runs the tasks of the pinned definition as a DAG and answers the `status` query."""

    def __init__(self) -> None:
        """Start with no tasks; `run` fills the state from the definition."""
        self._tasks: dict[str, dict[str, Any]] = {}
        self._context: dict[str, Any] = {}

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> dict[str, Any]:
        """Return every task's state in definition order."""
        return {"tasks": list(self._tasks.values())}

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> Any:
        """Run every task, then render and return the workflow `output`."""
        run_input = workflow.payload_converter().from_payload(args[0].payload, RunInput)
        definition = WorkflowDefinition.model_validate(run_input.definition)
        info = workflow.info()
        self._tasks = {
            t.id: {
                "id": t.id,
                "name": t.display_name,
                "status": "pending",
                "attempts": 0,
                "started_at": None,
                "finished_at": None,
                "output": None,
                "error": None,
            }
            for t in definition.tasks
        }
        self._context = {
            "params": run_input.params,
            "tasks": {t.id: {"status": "pending", "output": None, "error": None} for t in definition.tasks},
            "workflow": {
                "name": info.workflow_type,
                "revision": run_input.revision,
                "execution_id": info.workflow_id,
                "started_at": info.start_time.isoformat(),
            },
        }
        await self._run_dag(definition)
        try:
            return render(definition.output, self._context)
        except ExpressionError as exc:
            raise ApplicationError(f"output: {exc}", type="ExpressionError", non_retryable=True) from None

    async def _run_dag(self, definition: WorkflowDefinition) -> None:
        graph = dependencies(definition)
        pending = [t.id for t in definition.tasks]
        running: dict[str, asyncio.Task[None]] = {}
        while pending or running:
            for task_id in list(pending):
                if len(running) >= definition.max_parallel:
                    break
                if all(self._tasks[dep]["status"] in _DONE for dep in graph[task_id]):
                    pending.remove(task_id)
                    running[task_id] = asyncio.ensure_future(self._run_task(definition, definition.task(task_id)))
            done, _ = await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for task_id in [tid for tid, fut in running.items() if fut in done]:
                del running[task_id]
                state = self._tasks[task_id]
                if state["status"] == "failed" and not definition.task(task_id).continue_on_error:
                    for other in running.values():
                        other.cancel()
                    if running:
                        await workflow.wait(list(running.values()))
                    raise ApplicationError(
                        f"task {task_id!r} failed: {state['error']}",
                        {"task_id": task_id},
                        type="TaskFailed",
                        non_retryable=True,
                    )

    async def _run_task(self, definition: WorkflowDefinition, task: Task) -> None:
        state = self._tasks[task.id]
        try:
            if task.when is not None and not is_true(render(task.when, self._context)):
                self._finish(task.id, "skipped")
                return
            config = render(task.config, self._context)
        except ExpressionError as exc:
            self._finish(task.id, "failed", error=f"ExpressionError: {exc}")
            return
        state["status"], state["started_at"] = "running", workflow.now().isoformat()
        self._context["tasks"][task.id]["status"] = "running"
        timeouts = task.timeouts
        start_to_close = task.timeout or (timeouts and timeouts.start_to_close) or definition.defaults.timeout
        schedule_to_close = timeouts.schedule_to_close if timeouts else None
        if start_to_close is None and schedule_to_close is None:
            start_to_close = DEFAULT_TASK_TIMEOUT
        policy = task.retry_policy or definition.defaults.retry_policy or DEFAULT_RETRY
        try:
            result = await workflow.execute_activity(
                task.activity_type,
                ActivityInput(task_id=task.id, config=config, execution_id=workflow.info().workflow_id),
                result_type=ActivityResult,
                start_to_close_timeout=start_to_close,
                schedule_to_close_timeout=schedule_to_close,
                heartbeat_timeout=timeouts.heartbeat if timeouts else None,
                retry_policy=_temporal_retry(policy),
                summary=task.display_name,
            )
        except ActivityError as exc:
            message, attempt = _failure_message(exc)
            state["attempts"] = attempt or state["attempts"]
            self._finish(task.id, "failed", error=message)
            return
        except (asyncio.CancelledError, CancelledError):
            self._finish(task.id, "cancelled")
            raise
        state["attempts"] = result.attempt
        self._finish(task.id, "completed", output=result.output)

    def _finish(self, task_id: str, status: str, *, output: Any = None, error: str | None = None) -> None:
        state = self._tasks[task_id]
        state.update(status=status, finished_at=workflow.now().isoformat(), output=output, error=error)
        self._context["tasks"][task_id] = {"status": status, "output": output, "error": error}
