"""Workflow side of notifications: which channels an event uses, rendered, and sent by the `notify` activity.

A notification never blocks nor fails the run: an approval's are started without being awaited (their outcome
lands in the task's `notifications` whenever it comes), a failure's are awaited for a bounded time before the
run closes, and every problem (a template, an exhausted retry) is recorded and logged, not raised.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflow_engine.dsl import ExpressionError, WorkflowDefinition
from workflow_engine.dsl.expressions import render_keeping
from workflow_engine.dsl.model import ApprovalTask
from workflow_engine.dsl.notify import TaskNotify

from ..types import NOTIFY_ACTIVITY, NOTIFY_PATCH, NotifyInput, TaskState
from .steps import SECRETS

CHANNELS = ("webhook", "email")
# Per attempt: the longest webhook timeout (60s) or an SMTP exchange (30s per operation), with room to spare.
ATTEMPT_TIMEOUT = timedelta(seconds=75)
# An approval's notification keeps trying this long (unless the run closes first)...
APPROVAL_WINDOW = timedelta(minutes=10)
# ...a failure's only this long, since the run waits for it before it closes.
FAILURE_WINDOW = timedelta(seconds=60)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)  # fmt: skip

Handle = workflow.ActivityHandle[dict[str, Any]]


def _block(definition: WorkflowDefinition, task: ApprovalTask | None, event: str) -> TaskNotify | None:
    """The task's own `notify` for its approval, else the workflow's when it hears of `event`."""
    if task is not None and task.notify is not None:
        return task.notify
    if definition.notify is not None and event in definition.notify.events:
        return definition.notify
    return None


def _failed(error: BaseException) -> str:
    cause: BaseException = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause) or type(cause).__name__


def _record(notifications: list[dict[str, Any]], event: str, channel: str, handle: Handle) -> None:
    """Note how one channel's notification ended (a done callback: it must never raise)."""
    raised = None if handle.cancelled() else handle.exception()
    error = "cancelled" if handle.cancelled() else None if raised is None else _failed(raised)
    if error is not None:
        workflow.logger.warning("%s notification not sent: %s", channel, error)
    notifications.append({"event": event, "channel": channel, "ok": error is None, "error": error})


def _start(
    definition: WorkflowDefinition, task: ApprovalTask | None, event: str, state: TaskState | None,
    context: dict[str, Any], details: dict[str, Any], window: timedelta,
) -> list[Handle]:  # fmt: skip
    """Start one `notify` activity per channel of the event; record what cannot start in `state`."""
    block = _block(definition, task, event)
    if block is None or not workflow.patched(NOTIFY_PATCH):
        return []
    notifications: list[dict[str, Any]] = []
    if state is not None:  # a rejected approval's task also notes the failure it caused
        if state.notifications is None:
            state.notifications = []
        notifications = state.notifications
    info = workflow.info()
    handles = []
    for channel in CHANNELS:
        config = getattr(block, channel)
        if config is None:
            continue
        try:
            rendered, deferred = render_keeping(
                config.model_dump(mode="json", exclude_none=True), context, defer=SECRETS
            )
        except ExpressionError as exc:
            workflow.logger.warning("%s notification not sent: %s", channel, exc)
            notifications.append({"event": event, "channel": channel, "ok": False, "error": f"ExpressionError: {exc}"})
            continue
        notice = NotifyInput(
            event=event, channel=channel, config=rendered, workflow_name=definition.name,
            execution_id=info.workflow_id, task_id=state.id if state is not None else None, details=details,
            deferred=deferred,
        )  # fmt: skip
        handle = workflow.start_activity(
            NOTIFY_ACTIVITY, notice, result_type=dict, start_to_close_timeout=ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=window, retry_policy=RETRY, summary=f"notify {event} ({channel})",
        )  # fmt: skip
        handle.add_done_callback(partial(_record, notifications, event, channel))
        handles.append(handle)
    return handles


def notify_waiting(
    definition: WorkflowDefinition, task: ApprovalTask, state: TaskState, context: dict[str, Any]
) -> None:
    """Tell the approval's channels that it waits, without waiting for them."""
    details = {
        "message": state.message, "approvers": state.approvers, "required_approvals": state.required_approvals,
        "deadline": state.deadline,
    }  # fmt: skip
    _start(definition, task, "approval", state, context, details, APPROVAL_WINDOW)


async def notify_failure(
    definition: WorkflowDefinition, state: TaskState | None, error: str, context: dict[str, Any]
) -> None:
    """Tell the workflow's channels that the run failed, waiting at most FAILURE_WINDOW; never raises."""
    handles = _start(definition, None, "failure", state, context, {"error": error}, FAILURE_WINDOW)
    if handles:
        await workflow.wait(handles)  # each ends within its schedule-to-close window; failures are recorded
