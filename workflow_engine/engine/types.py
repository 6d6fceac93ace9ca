"""Data passed between the interpreter workflow, its activities and clients (sandbox-safe)."""

# No `from __future__ import annotations` here: the SDK calls `typing.get_type_hints` on these dataclasses for
# every payload it converts, and evaluating string annotations made that 3x slower (32 µs against 9 µs).
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Self

from temporalio.common import SearchAttributeKey

STATUS_QUERY = "status"
APPROVAL_SIGNAL = "approval"
APPROVE_UPDATE = "approve"
RECORD_APPROVAL_ACTIVITY = "record_approval"
VERIFY_APPROVAL_ACTIVITY = "verify_approval"
# Runs that reached this marker take decisions as signed (API) or unverified (signal, unsigned update) ones.
SIGNED_APPROVALS_PATCH = "wfe-signed-approvals"
# Runs that reached this marker let a failed fan-out's started items finish (and keep their outputs for a resume)
# instead of cancelling them; items not started yet are not started.
FAN_OUT_FINISHES_PATCH = "wfe-fan-out-finishes-started-items"
# Runs that reached this marker record their final task states (what `status` answers) in the memo entry
# FINAL_MEMO when they complete, fail or are cancelled, so a client reads a closed run without a worker's replay.
FINAL_STATES_PATCH = "wfe-final-states-memo"
FINAL_MEMO = "wfe_final"
# Runs that reached this marker send the notifications their definition's `notify` asks for (`notify` activity).
NOTIFY_PATCH = "wfe-notify"
NOTIFY_ACTIVITY = "notify"
# Compensation (`compensate:` on tasks): runs whose definition has one record this marker when the run fails or is
# cancelled, then undo its completed tasks, latest first (engine/workflow/compensation.py).
COMPENSATE_PATCH = "wfe-compensate"
# Final states larger than this (serialized) are not put in the memo, which visibility listings carry for every
# run; a reader falls back to the status query for such runs (docs/decisions.md).
FINAL_MEMO_MAX_BYTES = 32 * 1024

# Search attributes, so runs can be filtered in the Temporal UI and by the API.
SA_WORKFLOW_NAME = SearchAttributeKey.for_keyword("WfeWorkflowName")
SA_REVISION = SearchAttributeKey.for_int("WfeRevision")
SA_WAITING_APPROVAL = SearchAttributeKey.for_bool("WfeWaitingApproval")
SEARCH_ATTRIBUTES = (SA_WORKFLOW_NAME, SA_REVISION, SA_WAITING_APPROVAL)


class TaskStatus(StrEnum):
    """Where one task of a run stands; the one spelling of each task status (query, API, CLI)."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    # a completed task undone by its `compensate` activity as the run failed or was cancelled (or not: it failed)
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    # only from the API: the run's tasks are read from the definition and no worker said what they did
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """Whether the task has ended (successfully or not) and will not run again in this run."""
        return self in _FINISHED_TASKS

    @property
    def fatal(self) -> bool:
        """Whether this end fails the run (unless the task sets `continue_on_error`)."""
        return self in (TaskStatus.FAILED, TaskStatus.REJECTED)


_FINISHED_TASKS = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
) | {TaskStatus.COMPENSATED, TaskStatus.COMPENSATION_FAILED}


class RunStatus(StrEnum):
    """Where a run stands, from Temporal's execution status (and the waiting-approval search attribute)."""

    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"

    @property
    def closed(self) -> bool:
        """Whether the run has ended."""
        return self not in (RunStatus.RUNNING, RunStatus.WAITING_APPROVAL)


@dataclass
class TaskState:
    """What the `status` query reports of one task; approval tasks also carry their request and decisions."""

    id: str
    name: str
    type: str
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: str | None = None
    # approval tasks, once they wait (`approvals` is a list from then on)
    message: str | None = None
    approvals: list[dict[str, Any]] | None = None
    approvers: list[str] | None = None
    required_approvals: int | None = None
    deadline: str | None = None
    # a resumed run's task that kept the state of the run it retries (`POST /executions/{id}/retry`)
    reused_from: str | None = None
    # a `for_each` task that failed part-way: the outputs of the items that completed, by index ("0", "1", ...)
    items: dict[str, Any] | None = None
    # a `for_each` task run in this workflow (not in batch children): how many items it has, and how many ended
    items_total: int | None = None
    items_done: int | None = None
    # an approval task that notified (or a failed task whose run notified): one `{channel, ok, error}` per channel
    notifications: list[dict[str, Any]] | None = None
    # a compensated task: `{status, output, error, attempts, started_at, finished_at}` of its `compensate` activity
    # (a `for_each` task's: `items`, one `{index, status, output, error, attempts}` per completed item)
    compensation: dict[str, Any] | None = None
    # a task with `concurrency` queued for its key: the key it waits for (engine/workflow/keyed.py)
    waiting_for: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The task as the `status` query reports it: the approval keys only once an approval task has waited."""
        data: dict[str, Any] = {
            "id": self.id, "name": self.name, "type": self.type, "status": self.status.value,
            "attempts": self.attempts, "started_at": self.started_at, "finished_at": self.finished_at,
            "output": self.output, "error": self.error,
        }  # fmt: skip
        if self.approvals is not None:
            data.update(message=self.message, approvals=self.approvals, approvers=self.approvers,
                        required_approvals=self.required_approvals, deadline=self.deadline)  # fmt: skip
        if self.reused_from is not None:
            data["reused_from"] = self.reused_from
        if self.items is not None:
            data["items"] = self.items
        if self.items_total is not None:
            data.update(items_total=self.items_total, items_done=self.items_done)
        if self.notifications is not None:
            data["notifications"] = self.notifications
        if self.compensation is not None:
            data["compensation"] = self.compensation
        if self.waiting_for is not None:
            data["waiting_for"] = self.waiting_for
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Read a task written by `as_json` (a continue-as-new `resume`, of this version or an older one)."""
        known = {name: value for name, value in data.items() if name in _TASK_STATE_FIELDS}
        return cls(**{**known, "status": TaskStatus(data.get("status", TaskStatus.PENDING))})


_TASK_STATE_FIELDS = frozenset(TaskState.__dataclass_fields__)


@dataclass
class ChildDefinition:
    """A definition a `workflow` task may start, pinned when the parent run started."""

    definition: dict[str, Any]
    revision: int


@dataclass
class FanOutBatch:
    """A slice of a large `for_each`, run in a child workflow to keep each history small."""

    task: str
    items: list[Any]
    offset: int
    context: dict[str, Any]


# A `for_each` over more items than this runs in child workflows of this many items (setting FAN_OUT_BATCH_SIZE).
FAN_OUT_BATCH = 1000


@dataclass
class RunInput:
    """The input of one execution: the pinned definition, its revision and the params."""

    definition: dict[str, Any]
    revision: int
    params: dict[str, Any] = field(default_factory=dict)
    started_by: str | None = None
    children: dict[str, ChildDefinition] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    batch: FanOutBatch | None = None
    # pinned with the run, like the definition: changing a setting never changes a running execution's commands
    fan_out_batch: int = FAN_OUT_BATCH
    # activity kinds with a limit of their own (WORKER_ACTIVITY_CONCURRENCY): they run from `<queue>/<kind>`
    kind_queues: list[str] = field(default_factory=list)

    def for_child(self, definition: dict[str, Any], revision: int, params: dict[str, Any]) -> Self:
        """The input of a child run of a `workflow` task: its own definition and params, this run's pins."""
        return replace(self, definition=definition, revision=revision, params=params, resume=None, batch=None)

    def for_batch(self, batch: FanOutBatch) -> Self:
        """The input of a fan-out batch child: its items and their context instead of this run's params."""
        return replace(self, params={}, resume=None, batch=batch)

    def for_continue_as_new(self, resume: dict[str, Any]) -> Self:
        """The input this run continues as new with: the same definition, params and pins, and its state."""
        return replace(self, resume=resume, batch=None)


@dataclass
class ActivityInput:
    """What every built-in activity receives: the task id and its rendered config.

    `deferred` lists the paths of the config's strings that still hold `${{ secrets.X }}` templates from the
    definition; the worker renders those and nothing else, so a value from the run that looks like a template is
    never read as one. None is an input scheduled before these paths existed: its every template is rendered.
    """

    task_id: str
    config: dict[str, Any]
    deferred: list[list[str | int]] | None = None


@dataclass
class ActivityResult:
    """What every built-in activity returns: the task output and the attempt that produced it."""

    output: Any
    attempt: int = 1


@dataclass
class ApprovalDecision:
    """One person's decision on an approval task (signal `approval` and update `approve`)."""

    task_id: str
    decision: str
    approver: str
    comment: str | None = None
    roles: list[str] = field(default_factory=list)
    via: str = "signal"
    # True: signed by the API (identity and roles proven); False: sent straight to Temporal, only the name is
    # known; None: a run from before signed approvals (SIGNED_APPROVALS_PATCH), judged as it was then
    verified: bool | None = None


@dataclass
class SignatureCheck:
    """What the `verify_approval` activity answers about a signed decision."""

    valid: bool
    reason: str | None = None


@dataclass
class ApprovalAudit:
    """One accepted decision, written to the database by the `record_approval` activity."""

    execution_id: str
    workflow_name: str
    task_id: str
    approver: str
    decision: str
    comment: str | None
    via: str
    at: str


@dataclass
class NotifyInput:
    """One notification for the `notify` activity: one channel's config and what happened.

    `channel` is the rendered `webhook` or `email` block of a `notify`, with its `${{ secrets.X }}` templates
    left for the activity; `event` (`approval` or `failure`) and `details` are plain data the activity never
    renders, so text from a run (a message, an error) cannot read a secret.
    """

    event: str
    channel: str
    config: dict[str, Any]
    workflow_name: str
    execution_id: str
    task_id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    deferred: list[list[str | int]] | None = None  # as in ActivityInput
