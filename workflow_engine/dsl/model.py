"""The closed, typed model of a workflow definition (DSL v1)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .concurrency import Concurrency
from .durations import Duration
from .instants import parse_instant
from .notify import TaskNotify, WorkflowNotify

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TASK_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
MAX_TASKS = 1000
MAX_FOR_EACH_PARALLEL = 1000


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
    # sizes of an array (items), an object (keys) or a string (characters)
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _lengths_apply(self) -> ParamSpec:
        """Lengths are for arrays, objects and strings, and the minimum cannot exceed the maximum."""
        if (self.min_length is not None or self.max_length is not None) and self.type not in (
            "array", "object", "string"
        ):  # fmt: skip
            raise ValueError(f"min_length and max_length apply to array, object and string params, not {self.type}")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError("min_length must not be greater than max_length")
        return self

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
    backoff_coefficient: float | None = Field(None, ge=1.0, le=100.0)
    maximum_interval: Duration | None = None
    non_retryable_errors: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _intervals_ordered(self) -> RetryPolicy:
        """The maximum interval cannot be shorter than the first one."""
        if self.initial_interval and self.maximum_interval and self.maximum_interval < self.initial_interval:
            raise ValueError("maximum_interval must not be shorter than initial_interval")
        return self


class Timeouts(_Closed):
    """Per-task Temporal activity timeouts."""

    start_to_close: Duration | None = None
    schedule_to_close: Duration | None = None
    heartbeat: Duration | None = None


class Defaults(_Closed):
    """Options applied to every task that does not set its own."""

    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None


class _TaskBase(_Closed):
    """What every task has: identity, ordering, condition and failure tolerance."""

    id: str = Field(pattern=TASK_ID_PATTERN)
    name: str | None = None
    description: str | None = None
    depends_on: list[str] | None = None
    when: str | None = None
    continue_on_error: bool = False
    concurrency: Concurrency | None = Field(None, description="At most `limit` tasks with this key at once.")

    @property
    def display_name(self) -> str:
        """The name shown in the Temporal UI and the API."""
        return self.name or self.id


class _FanOut(_Closed):
    """Mixin fields of tasks that can run once per item of a list."""

    for_each: str | list[Any] | None = None
    max_parallel: int | None = Field(None, ge=1, le=MAX_FOR_EACH_PARALLEL)

    @model_validator(mode="after")
    def _parallel_needs_items(self) -> _FanOut:
        """A task-level max_parallel only means something with for_each."""
        if self.max_parallel is not None and self.for_each is None:
            raise ValueError("max_parallel on a task needs for_each")
        return self


class _ActivitySpec(_Closed):
    """What runs an activity: its type and config, timeouts, retry policy and queue (shared by tasks and undos)."""

    activity_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration | None = None
    timeouts: Timeouts | None = None
    retry_policy: RetryPolicy | None = None
    task_queue: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_start_to_close(self) -> _ActivitySpec:
        """`timeout` is shorthand for `timeouts.start_to_close`; both at once are ambiguous."""
        if self.timeout is not None and self.timeouts is not None and self.timeouts.start_to_close is not None:
            raise ValueError("set either timeout or timeouts.start_to_close, not both")
        return self


class Compensation(_ActivitySpec):
    """`compensate:` on a task: an activity that undoes it, with the task's `output` (and `task.output`) in scope.

    Each setting left out falls back to the definition's `defaults`, then the engine's. A `for_each` task is
    compensated once per completed item, with that item's `output`, `item` and `index`.
    """


class ActivityTask(_TaskBase, _FanOut, _ActivitySpec):
    """A step run by a worker activity (`log`, `python`, `http_request`, `shell`, plugins)."""

    type: Literal["activity"] = "activity"
    compensate: Compensation | None = Field(None, description="Undoes this task when the run fails or is cancelled.")


class ApprovalConfig(_Closed):
    """Who may decide, how many must approve, and what a timeout means."""

    message: str = "Approval required"
    approvers: list[str] | None = Field(None, min_length=1)
    required_approvals: int = Field(1, ge=1, le=100)
    allow_self_approval: bool = True
    # accept decisions sent straight to Temporal (signal, unsigned update) although `approvers` lists who may decide
    allow_unverified: bool = False
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve", "fail"] = "reject"

    @model_validator(mode="after")
    def _policy_consistent(self) -> ApprovalConfig:
        """N-of-M needs at least N listed approvers; on_timeout needs a timeout."""
        if self.approvers is not None and self.required_approvals > len(set(self.approvers)):
            raise ValueError(
                f"required_approvals is {self.required_approvals} but only {len(set(self.approvers))} "
                "distinct approvers are listed"
            )
        # checked on the value, not on whether it was written, so a stored (dumped) definition re-validates
        if self.on_timeout != "reject" and self.timeout is None:
            raise ValueError(f"on_timeout: {self.on_timeout} needs a timeout")
        return self


class ApprovalTask(_TaskBase):
    """A pause until enough allowed people approve (or someone rejects, or it times out)."""

    type: Literal["approval"]
    config: ApprovalConfig = Field(default_factory=ApprovalConfig)
    notify: TaskNotify | None = Field(None, description="Who hears that this task waits, instead of the workflow's.")


class SleepConfig(_Closed):
    """A durable timer: a duration, or an absolute time (ISO 8601 or an expression)."""

    duration: Duration | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SleepConfig:
        """Exactly one of duration and until."""
        if (self.duration is None) == (self.until is None):
            raise ValueError("set exactly one of duration and until")
        if self.until is not None and "${{" not in self.until:
            try:
                moment = parse_instant(self.until)
            except ValueError:
                raise ValueError(f"until {self.until!r} is not an ISO 8601 datetime") from None
            if moment.tzinfo is None:
                raise ValueError("until needs a timezone, e.g. 2026-12-01T00:00:00Z")
        return self


class SleepTask(_TaskBase):
    """Waits on a durable Temporal timer; no activity, no worker slot."""

    type: Literal["sleep"]
    config: SleepConfig


class ChildWorkflowConfig(_Closed):
    """Which registered workflow to run as a child, with which params."""

    workflow: str = Field(pattern=NAME_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)


class WorkflowTask(_TaskBase, _FanOut):
    """Runs another registered definition as a Temporal child workflow."""

    type: Literal["workflow"]
    config: ChildWorkflowConfig
    timeout: Duration | None = None
    compensate: Compensation | None = Field(None, description="Undoes this task when the run fails or is cancelled.")


class SetTask(_TaskBase):
    """Computes named values in the workflow itself (no activity)."""

    type: Literal["set"]
    config: dict[str, Any] = Field(min_length=1)


def _task_kind(value: Any) -> str:
    """Pick the task model from `type`, which defaults to activity."""
    if isinstance(value, dict):
        kind = value.get("type", "activity")
        return kind if isinstance(kind, str) else "invalid"
    return str(getattr(value, "type", "activity"))


Task = Annotated[
    Annotated[ActivityTask, Tag("activity")]
    | Annotated[ApprovalTask, Tag("approval")]
    | Annotated[SleepTask, Tag("sleep")]
    | Annotated[WorkflowTask, Tag("workflow")]
    | Annotated[SetTask, Tag("set")],
    Discriminator(_task_kind),
]
TASK_TYPES = ("activity", "approval", "sleep", "workflow", "set")


SCHEDULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Temporal refuses shorter catch-up windows.
_MIN_CATCHUP = timedelta(seconds=10)
AwareDatetime = Annotated[datetime, BeforeValidator(lambda v: parse_instant(v) if isinstance(v, str) else v)]
# croniter extensions Temporal refuses: L, W and ? in the day-of-month field, L and ? in the weekday one.
_DAY_OF_MONTH_EXTENSIONS = re.compile(r"[lw?]", re.IGNORECASE)
_WEEKDAY_EXTENSIONS = re.compile(r"[l?]", re.IGNORECASE)


class Schedule(_Closed):
    """When a workflow starts by itself: a cron or an interval, fixed params and policies (a Temporal Schedule)."""

    id: str | None = Field(None, pattern=SCHEDULE_ID_PATTERN, description="Unique in the file; default: its index.")
    cron: str | None = Field(None, description="5-field cron (minute hour day month weekday) or @daily, @hourly...")
    every: Duration | None = Field(None, description="An interval instead of a cron, e.g. 15m.")
    offset: Duration | None = Field(None, description="With `every`: shift the fire times by this much.")
    timezone: str = "UTC"
    params: dict[str, Any] = Field(default_factory=dict)
    overlap: Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"] = "skip"
    catchup_window: Duration = Field(
        timedelta(minutes=1), description="Fires missed while Temporal was down run late if they are this recent."
    )
    jitter: Duration | None = Field(None, description="Delay each fire by a random time up to this.")
    paused: bool = False
    start_at: AwareDatetime | None = Field(None, description="Fire from this moment on (with a time zone).")
    end_at: AwareDatetime | None = Field(None, description="Fire until this moment (with a time zone).")

    @field_validator("cron")
    @classmethod
    def _cron_valid(cls, value: str | None) -> str | None:
        """Five-field cron (or @daily style), checked by croniter, without the extensions Temporal refuses."""
        if value is None:
            return value
        fields = value.split()
        extended = len(fields) == 5 and bool(
            _DAY_OF_MONTH_EXTENSIONS.search(fields[2]) or _WEEKDAY_EXTENSIONS.search(fields[4])
        )
        if value.strip() not in _CRON_MACROS and (len(fields) != 5 or extended or not croniter.is_valid(value)):
            raise ValueError(
                f"invalid cron expression {value!r}; expected 5 fields like '0 9 * * 1-5', or @daily, @hourly..."
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        """An IANA time zone name such as Europe/Paris."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris") from None
        return value

    @field_validator("start_at", "end_at")
    @classmethod
    def _has_zone(cls, value: datetime | None) -> datetime | None:
        """Moments must say their time zone (2027-01-01T00:00:00Z)."""
        if value is not None and value.tzinfo is None:
            raise ValueError("a moment needs a time zone, e.g. 2027-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> Schedule:
        """Exactly one of cron and every; offset only with every; a window that ends after it starts."""
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of cron or every")
        if self.every is not None and self.every < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        if self.offset is not None and (self.every is None or self.offset >= self.every):
            raise ValueError("offset needs every, and must be shorter than it")
        if self.catchup_window < _MIN_CATCHUP:
            raise ValueError("catchup_window must be at least 10s")
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class WorkflowDefinition(_Closed):
    """One YAML file: a named workflow with params, options, tasks and output."""

    name: str = Field(pattern=NAME_PATTERN)
    version: Annotated[str | None, WithJsonSchema({"type": ["string", "number"]})] = None
    description: str | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    timeout: Duration | None = None
    max_parallel: int = Field(50, ge=1, le=1000)
    defaults: Defaults = Field(default_factory=Defaults)
    schedules: list[Schedule] = Field(default_factory=list)
    tasks: list[Task] = Field(min_length=1, max_length=MAX_TASKS)
    on_failure: list[Task] = Field(default_factory=list, max_length=MAX_TASKS)
    notify: WorkflowNotify | None = Field(None, description="Default notifications: approvals waiting, run failures.")
    concurrency: Concurrency | None = Field(None, description="At most `limit` runs with this key at once.")
    output: Any = None
    # Test cases for `workflow_engine test` (dsl/testcases.py checks them); never part of a run or a revision.
    tests: list[Any] | None = Field(None, exclude=True, description="Test cases (docs/testing.md); runs ignore them.")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """Accept `version: 1.0` as the label "1.0"."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> WorkflowDefinition:
        """Validate a stored or pinned definition (a full `model_dump`) again, leaving out its schedules.

        A run never uses `schedules`, so a revision stored before a change to their contract still loads.
        """
        return cls.model_validate({key: value for key, value in data.items() if key != "schedules"})

    def keyed_schedules(self) -> list[tuple[str, Schedule]]:
        """Each schedule with its id: its own `id`, else its index in the list."""
        return [(schedule.id or str(index), schedule) for index, schedule in enumerate(self.schedules)]

    def task(self, task_id: str) -> Task:
        """Return the task (or on_failure task) with this id."""
        for task in (*self.tasks, *self.on_failure):
            if task.id == task_id:
                return task
        raise KeyError(task_id)
