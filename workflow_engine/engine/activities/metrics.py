"""Worker metrics of tasks: an interceptor timing each task's activity attempts and counting `for_each` items.

Activity attempts are timed and counted by outcome around the whole attempt (secrets resolution included).
Fan-out items are counted where the interpreter starts them, in a workflow outbound interceptor, only while
the workflow runs live (never when a history is replayed, so an evicted run is not counted twice). An item is
told apart by what the interpreter sends: an item's activity carries no summary (steps.py leaves it out to keep
per-item payloads small) and an item's child workflow has the id `<run>/<task>/<index>`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from temporalio import activity, workflow
from temporalio.exceptions import CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workflow_engine.metrics import FAN_OUT_ITEMS, TASK_DURATION, TASK_OUTCOMES, WORKER_REGISTRY

from ..types import ActivityInput
from .tasklogs import dropped_lines

CHILD_TASK_TYPE = "workflow"


class _DroppedLogLines(Collector):
    """`wfe_task_log_lines_dropped_total`, read from the task log writer's own counter when scraped."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Yield the counter's one sample."""
        yield CounterMetricFamily(
            "wfe_task_log_lines_dropped",
            "Task log lines this worker dropped (the database refused them, or its queue was full).",
            value=dropped_lines(),
        )


WORKER_REGISTRY.register(_DroppedLogLines())


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002 - SDK signature
        if not (input.args and isinstance(input.args[0], ActivityInput)):  # not a task (approval audit, checks)
            return await super().execute_activity(input)
        info = activity.info()
        workflow_name, task_type = info.workflow_type or "", info.activity_type
        outcome, started = "failed", time.perf_counter()
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
            return result
        except (asyncio.CancelledError, CancelledError):
            outcome = "cancelled"
            raise
        finally:
            TASK_DURATION.labels(workflow_name, task_type).observe(time.perf_counter() - started)
            TASK_OUTCOMES.labels(workflow_name, task_type, outcome).inc()


def _is_item(summary: str | None, args: Any) -> bool:
    """Whether an activity the interpreter starts is a `for_each` item (a task input without a summary)."""
    return summary is None and bool(args) and isinstance(args[0], dict) and "task_id" in args[0]


def _count_item(task_type: str) -> None:
    if not workflow.unsafe.is_replaying():
        FAN_OUT_ITEMS.labels(workflow.info().workflow_type, task_type).inc()


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:  # noqa: A002
        if _is_item(input.summary, input.args):
            _count_item(input.activity)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:  # noqa: A002
        if _is_item(input.summary, input.args):
            _count_item(input.activity)
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: StartChildWorkflowInput) -> workflow.ChildWorkflowHandle[Any, Any]:  # noqa: A002
        parent, _, index = input.id.rpartition("/")
        if index.isdigit() and parent.startswith(f"{workflow.info().workflow_id}/"):
            _count_item(CHILD_TASK_TYPE)
        return await super().start_child_workflow(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))


class TaskMetricsInterceptor(Interceptor):
    """Worker interceptor recording task durations and outcomes, and `for_each` items started."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        """Time every task activity."""
        return _ActivityInbound(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:  # noqa: A002
        """Count items where the interpreter starts them."""
        return _WorkflowInbound
