"""Workflow-side steps of the interpreter: activities, child workflows, fan-out, timers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, RetryState

from workflow_engine.dsl import DslError, ExpressionError, WorkflowDefinition, render, resolve_params
from workflow_engine.dsl.expressions import iter_templates, render_keeping, root_names
from workflow_engine.dsl.instants import parse_instant
from workflow_engine.dsl.model import ActivityTask, SleepTask, WorkflowTask

from ..types import FAN_OUT_FINISHES_PATCH, ActivityResult, FanOutBatch, RunInput
from .options import LOCAL_ACTIVITY_TYPES, ActivityOptions, activity_options, activity_queue

SECRETS = frozenset({"secrets"})

# Looked up once: each read of a module attribute in workflow code goes through the sandbox's module proxy.
_current_task = asyncio.current_task


def item_scope(task: ActivityTask | WorkflowTask, context: dict[str, Any]) -> dict[str, Any]:
    """The part of the context a fan-out item's templates read (a batch child gets only this)."""
    templates = task.config if isinstance(task, ActivityTask) else task.config.params
    names = {name for _, source in iter_templates(templates) for name in root_names(source)}
    return {name: value for name, value in context.items() if name in names}


class StepFailed(Exception):
    """A step ended in failure: the message to show and the attempts it took."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.message, self.attempts = message, attempts


def _root_cause(exc: BaseException) -> tuple[str, int]:
    """Return the innermost failure message and the attempt recorded in its details."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    attempt = 0
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        attempt = int(cause.details[0].get("attempt", 0))
    return (cause.message if isinstance(cause, ApplicationError) else str(cause)), attempt


# Told (items ended, items in all) as a fan-out's items end.
Progress = Callable[[int, int], None]


class FanOutFailed(StepFailed):
    """A fan-out item failed: the first failure, and the outputs of the items that completed (by index)."""

    def __init__(self, message: str, attempts: int, completed: dict[int, Any]) -> None:
        super().__init__(message, attempts)
        self.completed = completed


class _NotStarted(Exception):
    """An item a failed fan-out never started."""


def _succeeded(future: asyncio.Task[tuple[Any, int]]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


async def _settle(futures: list[asyncio.Task[tuple[Any, int]]], failures: list[Exception]) -> None:
    """Wait for every item; after the first failure items no longer start, and the running ones finish.

    Runs from before FAN_OUT_FINISHES_PATCH (no failure noted in `failures`) raise the first failure at once instead,
    and the caller cancels the other items, as it always did.
    """
    while True:
        unfinished = [future for future in futures if not future.done()]
        if unfinished:
            await workflow.wait(unfinished, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception() is not None), None)
        if failed is not None and not failures:
            error = failed.exception()
            assert error is not None
            raise error
        if all(future.done() for future in futures):
            return


def cancel_requested() -> bool:
    """Whether the running task or item was asked to cancel (its activity or child then fails with the cancellation)."""
    current = _current_task()
    return current is not None and current.cancelling() > 0


class Steps:
    """The steps of one run, which the interpreter calls with the context they read; task state stays with it."""

    def __init__(self, run_input: RunInput) -> None:
        """Serve the run of `run_input` (its pins: children, batch size, kind queues, who started it)."""
        self.run_input = run_input
        self.options: dict[str, ActivityOptions] = {}  # per task id, resolved once
        self.templated: dict[str, bool] = {}  # per task id: whether its config holds a template at all

    async def sleep(self, task: SleepTask, context: dict[str, Any]) -> None:
        """Wait on a durable timer for a duration or until a moment."""
        if task.config.duration is not None:
            await workflow.sleep(task.config.duration, summary=task.display_name)
            return
        until = render(task.config.until, context)
        try:
            moment = parse_instant(str(until))
        except ValueError:
            raise ExpressionError(f"until {until!r} is not an ISO 8601 datetime") from None
        if moment.tzinfo is None:
            raise ExpressionError(f"until {until!r} has no timezone")
        delay = moment - workflow.now()
        if delay.total_seconds() > 0:
            await workflow.sleep(delay, summary=task.display_name)

    async def execute(
        self, task: ActivityTask | WorkflowTask, definition: WorkflowDefinition, context: dict[str, Any],
        done: dict[int, Any] | None = None, progress: Progress | None = None,
    ) -> tuple[Any, int]:  # fmt: skip
        """Run an activity or child workflow task, once or once per `for_each` item (`done`: items kept).

        `progress(done, total)` is told how many items of an in-workflow fan-out have ended, as they end.
        """
        if task.for_each is None:
            return await self._one(task, definition, context, None)
        items = render(task.for_each, context)
        if not isinstance(items, list):
            raise ExpressionError(f"for_each must give a list, got {type(items).__name__}")
        if len(items) > self.run_input.fan_out_batch:
            return await self._fan_out_in_children(task, items, context)
        return await self.fan_out(task, definition, items, offset=0, context=context, done=done, progress=progress)

    async def fan_out(
        self, task: ActivityTask | WorkflowTask, definition: WorkflowDefinition, items: list[Any], *, offset: int,
        context: dict[str, Any], done: dict[int, Any] | None = None, progress: Progress | None = None,
    ) -> tuple[list[Any], int]:  # fmt: skip
        """Run one step per item, at most `max_parallel` at once; outputs keep the item order.

        `done` holds outputs of items a resumed run keeps (by index): those items do not run again. When an item
        fails, items not started yet never start, those running finish, and `FanOutFailed` carries the outputs
        of every item that completed.
        """
        done = done or {}
        limit = asyncio.Semaphore(task.max_parallel) if task.max_parallel and task.max_parallel < len(items) else None
        failures: list[Exception] = []  # the first item failure (in time), in runs with FAN_OUT_FINISHES_PATCH

        async def run(index: int, item: Any) -> tuple[Any, int]:
            try:
                return await self._one(task, definition, {**context, "item": item, "index": index}, index)
            except Exception as exc:
                # noted before the item frees its `max_parallel` slot, so no waiting item starts after it
                if not failures and not cancel_requested() and workflow.patched(FAN_OUT_FINISHES_PATCH):
                    failures.append(exc)
                raise

        async def one(index: int, item: Any) -> tuple[Any, int]:
            if index in done:
                return done[index], 0
            if limit is None:
                return await run(index, item)
            async with limit:
                if failures:
                    raise _NotStarted
                return await run(index, item)

        futures = [asyncio.create_task(one(offset + i, item)) for i, item in enumerate(items)]
        if progress is not None:  # state only, for the status query: no command depends on it
            ended = [0]

            def tally(_: asyncio.Task[tuple[Any, int]]) -> None:
                ended[0] += 1
                progress(ended[0], len(futures))

            progress(0, len(futures))
            for future in futures:
                future.add_done_callback(tally)
        try:
            await _settle(futures, failures)
        except BaseException:
            for future in futures:
                future.cancel()
            await workflow.wait(futures)
            raise
        if failures:
            failure = failures[0]
            completed = {offset + i: f.result()[0] for i, f in enumerate(futures) if _succeeded(f)}
            message = failure.message if isinstance(failure, StepFailed) else f"ExpressionError: {failure}"
            raise FanOutFailed(message, getattr(failure, "attempts", 0), completed)
        results = [future.result() for future in futures]
        return [output for output, _ in results], max((attempts for _, attempts in results), default=0)

    async def _fan_out_in_children(
        self, task: ActivityTask | WorkflowTask, items: list[Any], context: dict[str, Any]
    ) -> tuple[list[Any], int]:
        info, size = workflow.info(), self.run_input.fan_out_batch
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        # whole batches only: two batches of 200 at once would break a max_parallel of 250
        at_once = task.max_parallel // size if task.max_parallel else len(batches)
        limit = asyncio.Semaphore(max(1, at_once))
        scope = item_scope(task, context)

        async def batch(number: int, chunk: list[Any]) -> Any:
            async with limit:
                # a batch gets its items and only the context its templates read, not the run's params again
                run_input = self.run_input.for_batch(
                    FanOutBatch(task=task.id, items=chunk, offset=number * size, context=scope)
                )
                try:
                    return await workflow.execute_child_workflow(
                        info.workflow_type, run_input, id=f"{info.workflow_id}/{task.id}/batch-{number}",
                        task_queue=info.task_queue,
                        static_summary=f"{task.display_name}: items from {number * size}",
                    )  # fmt: skip
                except ChildWorkflowError as exc:
                    message, attempts = _root_cause(exc)
                    raise StepFailed(message, attempts) from None

        results = await asyncio.gather(*(batch(n, chunk) for n, chunk in enumerate(batches)))
        outputs = [output for result in results for output in result["outputs"]]
        return outputs, max(result["attempts"] for result in results)

    async def run_batch(self, definition: WorkflowDefinition, batch: FanOutBatch) -> dict[str, Any]:
        """Body of a fan-out batch child: run its slice of items and return their outputs in order."""
        task = definition.task(batch.task)
        assert isinstance(task, ActivityTask | WorkflowTask)
        try:
            outputs, attempts = await self.fan_out(task, definition, batch.items, offset=batch.offset,
                                                   context=batch.context)  # fmt: skip
        except (StepFailed, ExpressionError) as exc:
            message = exc.message if isinstance(exc, StepFailed) else f"ExpressionError: {exc}"
            raise ApplicationError(message, {"attempt": getattr(exc, "attempts", 0)}, type="TaskFailed",
                                   non_retryable=True) from None  # fmt: skip
        return {"outputs": outputs, "attempts": attempts}

    async def _one(
        self, task: ActivityTask | WorkflowTask, definition: WorkflowDefinition, scope: dict[str, Any],
        index: int | None,
    ) -> tuple[Any, int]:  # fmt: skip
        if isinstance(task, WorkflowTask):
            return await self._child(task, scope, index)
        return await self._activity(task, definition, scope, index)

    async def _activity(
        self, task: ActivityTask, definition: WorkflowDefinition, scope: dict[str, Any], index: int | None
    ) -> tuple[Any, int]:
        templated = self.templated.get(task.id)
        if templated is None:
            templated = self.templated[task.id] = next(iter_templates(task.config), None) is not None
        options = self.options.get(task.id)
        if options is None:
            options = self.options[task.id] = activity_options(task, definition.defaults)
        # ActivityInput as the JSON object it encodes to: `dataclasses.asdict` would deep-copy the config per item.
        # A config without templates renders to an equal copy of itself: it is sent as it is (no copy per step).
        arg: dict[str, Any] = {"task_id": task.id, "config": task.config}
        if templated:
            arg["config"], arg["deferred"] = render_keeping(task.config, scope, defer=SECRETS)
        # Fan-out items carry no summary: the SDK pays per payload, and a summary per item cost 7% of a 500-item
        # fan-out (docs/benchmarks.md). The item's task is in its input (`task_id`), which the history API reads.
        summary = task.display_name if index is None else None
        try:
            if task.activity_type in LOCAL_ACTIVITY_TYPES and options.task_queue is None:
                result = await workflow.execute_local_activity(
                    task.activity_type, arg, result_type=ActivityResult, summary=summary,
                    start_to_close_timeout=options.start_to_close_timeout,
                    schedule_to_close_timeout=options.schedule_to_close_timeout, retry_policy=options.retry_policy,
                )  # fmt: skip
            else:
                result = await workflow.execute_activity(
                    task.activity_type, arg, result_type=ActivityResult, summary=summary,
                    start_to_close_timeout=options.start_to_close_timeout,
                    schedule_to_close_timeout=options.schedule_to_close_timeout,
                    heartbeat_timeout=options.heartbeat_timeout, retry_policy=options.retry_policy,
                    task_queue=options.task_queue or self._kind_queue(task.activity_type),
                )  # fmt: skip
        except (ActivityError, ApplicationError) as exc:  # local activity failures arrive unwrapped
            message, attempts = _root_cause(exc)
            exhausted = isinstance(exc, ActivityError) and exc.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
            if not attempts and exhausted:  # a timed-out attempt carries no attempt number
                attempts = options.retry_policy.maximum_attempts
            raise StepFailed(message, attempts or 1) from None
        return result.output, result.attempt

    def _kind_queue(self, activity_type: str) -> str | None:
        """Route a kind with its own limit to its queue; others stay on the run's queue (eager dispatch)."""
        if activity_type in self.run_input.kind_queues:
            return activity_queue(workflow.info().task_queue, activity_type)
        return None

    async def _child(self, task: WorkflowTask, scope: dict[str, Any], index: int | None) -> tuple[Any, int]:
        name = task.config.workflow
        child = self.run_input.children.get(name)
        if child is None:
            raise StepFailed(f"workflow {name!r} was not registered when this run started")
        child_definition = WorkflowDefinition.from_stored(child.definition)
        try:
            params = resolve_params(child_definition, render(task.config.params, scope))
        except DslError as exc:
            raise StepFailed(f"parameters of child workflow {name!r}: {exc}") from None
        info = workflow.info()
        child_id = f"{info.workflow_id}/{task.id}" + ("" if index is None else f"/{index}")
        # the child's own `timeout` still bounds it; the task's `timeout` may only tighten it
        timeout = min(filter(None, (task.timeout, child_definition.timeout)), default=None)
        try:
            output = await workflow.execute_child_workflow(
                name,
                self.run_input.for_child(child.definition, child.revision, params),
                id=child_id, task_queue=info.task_queue, execution_timeout=timeout,
                static_summary=task.display_name,
            )  # fmt: skip
        except ChildWorkflowError as exc:
            message, _ = _root_cause(exc)
            raise StepFailed(f"child workflow {child_id!r} failed: {message}", 1) from None
        return output, 1
