"""The closed, typed model of a workflow definition (DSL v1)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_SHORT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TASK_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


def _parse_duration(value: Any) -> Any:
    """Turn `500ms`/`30s`/`5m`/`2h`/`7d` into a timedelta; leave ISO 8601 to pydantic."""
    if isinstance(value, bool) or isinstance(value, int | float):
        raise ValueError("a duration must be a string such as 30s, 5m, 2h, 7d or PT30S")
    if isinstance(value, str):
        match = _SHORT_DURATION.match(value)
        if match:
            try:
                return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
            except OverflowError:
                raise ValueError(f"duration {value!r} is too large") from None
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"invalid duration {value!r}; use 500ms, 30s, 5m, 2h, 7d or PT30S")
    return value


def _positive(value: timedelta) -> timedelta:
    """Reject zero and negative durations."""
    if value <= timedelta(0):
        raise ValueError("a duration must be greater than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


class _Closed(BaseModel):
    """Base of every DSL node: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ParamType = Literal["string", "integer", "number", "boolean", "array", "object", "datetime"]


class ParamSpec(_Closed):
    """A typed input of the workflow."""

    type: ParamType = "string"
    required: bool = False
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        """Refuse a pattern that is not a valid regular expression."""
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class RetryPolicy(_Closed):
    """How a task's activity is retried."""

    max_attempts: int | None = Field(None, ge=1)
    initial_interval: Duration | None = None
    backoff_coefficient: float | None = Field(None, ge=1.0)
    maximum_interval: Duration | None = None
    non_retryable_errors: list[str] = Field(default_factory=list)


class Timeouts(_Closed):
    """Per-task Temporal activity timeouts."""

    start_to_close: Duration | None = None
    schedule_to_close: Duration | None = None
    heartbeat: Duration | None = None


class Defaults(_Closed):
    """Options applied to every task that does not set its own."""

    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None


class ActivityTask(_Closed):
    """A step run by a worker activity (`log`, `python`, ...)."""

    id: str = Field(pattern=TASK_ID_PATTERN)
    name: str | None = None
    type: Literal["activity"] = "activity"
    activity_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] | None = None
    when: str | None = None
    timeout: Duration | None = None
    timeouts: Timeouts | None = None
    retry_policy: RetryPolicy | None = None
    continue_on_error: bool = False

    @property
    def display_name(self) -> str:
        """The name shown in the Temporal UI and the API."""
        return self.name or self.id


Task = ActivityTask


class WorkflowDefinition(_Closed):
    """One YAML file: a named workflow with params, options, tasks and output."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str | None = None
    description: str | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    timeout: Duration | None = None
    max_parallel: int = Field(50, ge=1, le=1000)
    defaults: Defaults = Field(default_factory=Defaults)
    tasks: list[Task] = Field(min_length=1)
    output: Any = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """Accept `version: 1.0` as the label "1.0"."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, value: timedelta | None) -> timedelta | None:
        """A whole-run timeout must be positive."""
        return None if value is None else _positive(value)

    def task(self, task_id: str) -> Task:
        """Return the task with this id."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)
