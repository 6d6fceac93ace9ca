"""Temporal activity options for a task: timeouts, retry policy, queue, applied over defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy as TemporalRetryPolicy

from workflow_engine.dsl.defaults import task_limits
from workflow_engine.dsl.model import ActivityTask, Defaults, RetryPolicy

# Our remote activities heartbeat every second or two while they run, so a task of a worker that died is retried
# after this long instead of after its whole start-to-close timeout (`timeouts.heartbeat` overrides it).
DEFAULT_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Built-ins cheap enough to run as local activities: no task-queue round trip per step.
LOCAL_ACTIVITY_TYPES = ("log",)


def activity_queue(base: str, activity_type: str) -> str:
    """Return the task queue where remote activities of one kind run unless a task names its own queue.

    One queue per kind, each polled by a worker with its own limit (WORKER_ACTIVITY_CONCURRENCY), so a
    kind that is slow or busy never takes the slots of another.
    """
    return f"{base}/{activity_type}"


@dataclass(frozen=True)
class ActivityOptions:
    """Keyword arguments for `workflow.execute_activity`."""

    start_to_close_timeout: timedelta | None
    schedule_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None
    retry_policy: TemporalRetryPolicy
    task_queue: str | None


def temporal_retry(policy: RetryPolicy) -> TemporalRetryPolicy:
    """Translate the DSL retry policy into Temporal's."""
    return TemporalRetryPolicy(
        maximum_attempts=policy.max_attempts or 0,
        initial_interval=policy.initial_interval or timedelta(seconds=1),
        backoff_coefficient=policy.backoff_coefficient or 2.0,
        maximum_interval=policy.maximum_interval,
        non_retryable_error_types=list(policy.non_retryable_errors) or None,
    )


def activity_options(task: ActivityTask, defaults: Defaults) -> ActivityOptions:
    """Resolve a task's options: its own settings first, then the definition defaults, then ours."""
    start_to_close, schedule_to_close, policy = task_limits(task, defaults)
    return ActivityOptions(
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=schedule_to_close,
        heartbeat_timeout=(task.timeouts.heartbeat if task.timeouts else None) or DEFAULT_HEARTBEAT_TIMEOUT,
        retry_policy=temporal_retry(policy),
        task_queue=task.task_queue,
    )
