"""`compensate:` on a task: the activity that undoes it when its run fails or is cancelled (a saga step)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .durations import Duration

# model.py imports this module once RetryPolicy and Timeouts exist, before the tasks that use Compensation
from .model import RetryPolicy, Timeouts, _Closed


class Compensation(_Closed):
    """An activity that undoes a completed task, with the task's `output` (and `task.output`) in scope.

    Like an activity task: an activity type and its config, timeouts, retry policy and queue (each falls back to
    the definition's `defaults`, then the engine's). A `for_each` task is compensated once per completed item,
    with that item's `output`, `item` and `index`.
    """

    activity_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration | None = None
    timeouts: Timeouts | None = None
    retry_policy: RetryPolicy | None = None
    task_queue: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_start_to_close(self) -> Compensation:
        """`timeout` is shorthand for `timeouts.start_to_close`; both at once are ambiguous."""
        if self.timeout is not None and self.timeouts is not None and self.timeouts.start_to_close is not None:
            raise ValueError("set either timeout or timeouts.start_to_close, not both")
        return self
