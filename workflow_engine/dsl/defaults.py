"""What a task gets when neither it nor its definition's `defaults` say: the engine's timeout and retry policy."""

from __future__ import annotations

from datetime import timedelta

from .model import RetryPolicy

DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1), backoff_coefficient=2.0)
# Temporal's own defaults for what a retry policy leaves out (temporalio.common.RetryPolicy).
DEFAULT_INITIAL_INTERVAL = timedelta(seconds=1)
DEFAULT_BACKOFF_COEFFICIENT = 2.0
MAXIMUM_INTERVAL_FACTOR = 100  # no maximum_interval: 100 times the initial interval
