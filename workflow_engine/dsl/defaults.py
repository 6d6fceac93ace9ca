"""What a task gets when neither it nor its definition's `defaults` say: the engine's timeout and retry policy."""

from __future__ import annotations

from datetime import timedelta

from .model import ActivityTask, Defaults, RetryPolicy

DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1), backoff_coefficient=2.0)
# Temporal's own defaults for what a retry policy leaves out (temporalio.common.RetryPolicy).
DEFAULT_INITIAL_INTERVAL = timedelta(seconds=1)
DEFAULT_BACKOFF_COEFFICIENT = 2.0
MAXIMUM_INTERVAL_FACTOR = 100  # no maximum_interval: 100 times the initial interval


def task_limits(task: ActivityTask, defaults: Defaults) -> tuple[timedelta | None, timedelta | None, RetryPolicy]:
    """A task's start-to-close and schedule-to-close timeouts and retry policy: its own, the definition's, ours."""
    timeouts = task.timeouts
    start_to_close = task.timeout or (timeouts.start_to_close if timeouts else None) or defaults.timeout
    schedule_to_close = timeouts.schedule_to_close if timeouts else None
    if start_to_close is None and schedule_to_close is None:
        start_to_close = DEFAULT_TASK_TIMEOUT
    return start_to_close, schedule_to_close, task.retry_policy or defaults.retry_policy or DEFAULT_RETRY
