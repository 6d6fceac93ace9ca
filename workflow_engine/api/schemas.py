"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from workflow_engine.dsl.plan import Plan
from workflow_engine.engine.client.resume import RetryMode
from workflow_engine.engine.types import RunStatus, TaskStatus


class Health(BaseModel):
    """Liveness of the API and of what it depends on."""

    status: Literal["ok", "degraded"]
    database: str
    temporal: str


class TaskSummary(BaseModel):
    """A task as declared in a definition."""

    id: str
    name: str
    type: str
    activity_type: str | None = None
    depends_on: list[str]


class WorkflowSummary(BaseModel):
    """A registered workflow in the listing."""

    workflow_id: str
    revision: int
    version: str | None = None
    description: str | None = None
    updated_at: str


class WorkflowList(BaseModel):
    """One page of registered workflows."""

    items: list[WorkflowSummary]
    total: int


class WorkflowDetail(WorkflowSummary):
    """A workflow's current revision: params schema, tasks and source."""

    params: dict[str, Any]
    tasks: list[TaskSummary]
    source_path: str | None = None
    source_yaml: str


class RegisterRequest(BaseModel):
    """A definition sent as JSON instead of a YAML body."""

    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(max_length=1024 * 1024)
    file: str | None = Field(None, max_length=255, description="Name shown in error positions.")


class DefinitionWarning(BaseModel):
    """Something a valid definition declares that does not run yet (e.g. `schedules:`), with its position."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None


class RegisterResponse(BaseModel):
    """The revision a registration maps to."""

    workflow_id: str
    revision: int
    created: bool
    warnings: list[DefinitionWarning] = Field(
        default_factory=list, description="What the definition declares that does not run yet; empty when nothing."
    )


class ValidateResponse(BaseModel):
    """A definition that passed validation (dry run)."""

    valid: bool
    workflow_id: str
    tasks: list[TaskSummary]
    warnings: list[DefinitionWarning] = Field(
        default_factory=list, description="What the definition declares that does not run yet; empty when nothing."
    )


class RevisionSummary(BaseModel):
    """One immutable revision of a workflow."""

    revision: int
    content_hash: str
    current: bool
    source_path: str | None = None
    created_at: str


class ReloadResponse(BaseModel):
    """What a rescan of the workflows directory registered and refused."""

    registered: list[RegisterResponse]
    invalid: dict[str, list[dict[str, Any]]]


class ExecuteRequest(BaseModel):
    """Body of an execute call."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)


class ExecuteResponse(BaseModel):
    """Answer to an execute call: the new run's id."""

    execution_id: str
    workflow_id: str
    revision: int
    status: RunStatus


class TaskState(BaseModel):
    """Live state of one task of a run (approval tasks also carry message, deadline and approvals)."""

    id: str
    name: str
    type: str = "activity"
    status: TaskStatus
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: str | None = None
    message: str | None = None
    deadline: str | None = None
    approvers: list[str] | None = None
    required_approvals: int | None = None
    approvals: list[dict[str, Any]] | None = None
    reused_from: str | None = Field(
        None, description="A resumed run's task kept from this execution (it did not run again in this one)."
    )
    items_total: int | None = Field(None, description="A `for_each` task's number of items (once it has started).")
    items_done: int | None = Field(None, description="How many of its items have ended so far.")
    notifications: list[dict[str, Any]] | None = Field(
        None, description="Notifications sent about this task (`notify`): `{event, channel, ok, error}` each."
    )
    compensation: dict[str, Any] | None = Field(
        None, description="Its `compensate` activity's `{status, output, error, attempts, started_at, finished_at}`."
    )
    waiting_for: str | None = Field(None, description="A task with `concurrency` queued for this key.")


class ApprovalRequest(BaseModel):
    """A decision on a waiting approval task; the approver is the authenticated caller."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str | None = Field(None, max_length=4000)


class ApprovalResponse(BaseModel):
    """The task's state after the decision."""

    execution_id: str
    task: dict[str, Any]


class ApprovalInbox(BaseModel):
    """Every approval waiting for a decision."""

    items: list[dict[str, Any]]


class ExecutionDetail(BaseModel):
    """Live state of one run."""

    execution_id: str
    workflow_id: str
    revision: int | None
    status: RunStatus
    parameters: dict[str, Any] | None = None
    tasks: list[TaskState]
    tasks_source: Literal["worker", "declared"] = Field(
        "worker",
        description="`worker`: task states answered by a worker (live). `declared`: no worker answered within "
        "2 s, so `tasks` lists the pinned revision's tasks: `pending` when no worker has run the workflow yet "
        "(a fact), else `unknown`; status, output and error still come from Temporal.",
    )
    output: Any = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    started_by: str | None = None
    audit: list[dict[str, Any]] = Field(default_factory=list)
    retry_of: str | None = Field(None, description="The execution this run retries (started by `retry`).")
    concurrency: dict[str, Any] | None = Field(
        None,
        description="A running run's concurrency keys: `waiting_for` (`run` or a task id -> the key it waits in line "
        "for) and `run_key` (the key the run holds).",
    )


class Problem(BaseModel):
    """An error body (RFC 9457 problem details) with a stable `code`."""

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


# An idempotency key (`execution_id` or `Idempotency-Key`) becomes the Temporal workflow id as is.
# It starts with a letter or digit so that `.` and `..` (which clients fold in URLs) are never ids.
# Numbers that reach the database (revisions, offsets) stay within every backend's INTEGER: a larger one is a 422.
DB_INT_MAX = 2**31 - 1
# Task log line ids are 64-bit (SQLite's INTEGER too): a larger cursor is refused with a 422, never a 500.
LOG_ID_MAX = 2**63 - 1
EXECUTION_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
EXECUTION_KEY_MAX = 200


class ExecuteRunRequest(ExecuteRequest):
    """Body of an execute call: parameters, and optionally an idempotency key and an older revision."""

    execution_id: str | None = Field(
        None,
        min_length=1,
        max_length=EXECUTION_KEY_MAX,
        pattern=EXECUTION_KEY_PATTERN,
        description="Idempotency key, used as the execution id: a repeat returns the existing run.",
    )
    revision: int | None = Field(
        None, ge=1, le=DB_INT_MAX, description="Run this registered revision instead of the current one."
    )


class PlanRequest(BaseModel):
    """Body of a plan call: the parameters a run would get, and optionally an older revision."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    revision: int | None = Field(
        None, ge=1, le=DB_INT_MAX, description="Plan this revision instead of the current one."
    )


# What a run with these parameters would do (workflow_engine/dsl/plan.py): the API answers the DSL's own model.
PlanResponse = Plan


class RetryRequest(BaseModel):
    """How to retry a closed run: resume it (the default: from_failure) or run everything again (restart)."""

    model_config = ConfigDict(extra="forbid")

    mode: RetryMode = Field(
        RetryMode.FROM_FAILURE,
        description="from_failure: keep completed and skipped tasks (and completed for_each items), run the rest; "
        "from_task: run task_id and everything downstream again; restart: run everything again.",
    )
    task_id: str | None = Field(None, max_length=255, description="The task to run again from (mode from_task).")
    revision: Literal["same", "latest"] = Field(
        "same", description="Run the original's revision, or the workflow's current one (fix a bug, then resume)."
    )


class RetryResponse(ExecuteResponse):
    """Answer to a retry: the new run and the run it retries."""

    retry_of: str


class ExecutionListItem(BaseModel):
    """One run in the executions listing (from Temporal visibility)."""

    execution_id: str
    workflow_id: str
    revision: int | None = None
    status: RunStatus
    started_at: str
    finished_at: str | None = None


class ExecutionList(BaseModel):
    """One page of runs; pass `next_page_token` back as `page_token` for the next one."""

    items: list[ExecutionListItem]
    next_page_token: str | None = None


class HistoryEntry(BaseModel):
    """One event of a run's history, in words (no payloads)."""

    event_id: int
    time: str
    type: str = Field(description="Temporal event type, e.g. `ActivityTaskScheduled`.")
    task_id: str | None = None
    summary: str | None = Field(None, description="The task's display name, when the event belongs to a task.")
    details: str


class ExecutionHistory(BaseModel):
    """A readable timeline of a run's latest Temporal run."""

    execution_id: str
    events: list[HistoryEntry]


class TaskLogEntry(BaseModel):
    """One line a task attempt printed, logged or failed with (secrets masked)."""

    id: int = Field(description="Cursor: pass it as `after` to read the lines that follow.")
    task_id: str
    attempt: int
    stream: str = Field(description="`stdout`, `stderr`, `log`, `http`, `error` or `marker` (log truncated).")
    line: str
    logged_at: datetime


class TaskLogPage(BaseModel):
    """A page of a run's task logs, oldest first."""

    execution_id: str
    items: list[TaskLogEntry]
    next_after: int | None = Field(None, description="The `after` of the next page; null when this one was short.")


class StopRequest(BaseModel):
    """Optional body of cancel and terminate calls."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1000)


class StopResponse(BaseModel):
    """Answer to cancel and terminate calls."""

    execution_id: str
    status: RunStatus
    detail: str


class ScheduleRun(BaseModel):
    """One run a schedule started."""

    execution_id: str | None
    scheduled_at: str
    started_at: str


class ScheduleDetail(BaseModel):
    """A schedule of a registered workflow: what its YAML says and what Temporal does with it."""

    id: str = Field(description="The Temporal Schedule id: `<workflow>.<schedule id>`.")
    workflow_id: str
    schedule: str = Field(description="The entry's `id` in the YAML (its index when it has none).")
    revision: int = Field(description="The revision its runs start with.")
    cron: str | None
    every: timedelta | None
    offset: timedelta | None
    timezone: str
    overlap: str
    catchup_window: timedelta
    jitter: timedelta | None
    start_at: datetime | None
    end_at: datetime | None
    params: dict[str, Any]
    synced: bool = Field(description="False until the schedule exists in Temporal (it is synced within seconds).")
    paused: bool
    note: str | None = Field(description="The note of the last pause or unpause.")
    next_runs: list[datetime] = Field(description="The next (at most 5) fire times.")
    recent_runs: list[ScheduleRun] = Field(description="The last runs it started, newest first.")
    fired: int = Field(description="How many runs it has started.")


class ScheduleList(BaseModel):
    """Schedules of registered workflows, in workflow order."""

    items: list[ScheduleDetail]


class ScheduleNote(BaseModel):
    """An optional note for a pause or an unpause (shown in the Temporal UI)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000)


class BackfillRequest(BaseModel):
    """A time range whose missed fires to run now (both ends with a time zone)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class ScheduleAction(BaseModel):
    """What a trigger or backfill asked Temporal for: it starts the runs within seconds."""

    schedule_id: str
    action: Literal["trigger", "backfill"]
    runs: int = Field(description="How many runs it starts.")
