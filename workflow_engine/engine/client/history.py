"""A readable timeline of a run's Temporal history: one short line per event, never payload bytes.

Payloads (inputs, results, signal and update arguments) are never copied out. Only small, known
metadata is decoded: the activity summary (the task's display name), the `task_id` of an activity
input, a local activity's type and attempt, and search attribute values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from .errors import RPC_TIMEOUT, temporal_call

E = EventType
# Bookkeeping of every workflow task: left out unless asked for (failures and timeouts always shown).
WORKFLOW_TASK_EVENTS = frozenset(
    {E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED}
)
DETAIL_LIMIT = 300
_LOCAL_ACTIVITY_MARKER = "core_local_activity"


@dataclass
class _Source:
    """What a later event (completion, failure, firing) points back to: an activity, timer, child or update."""

    name: str
    task_id: str | None = None
    summary: str | None = None


Sources = dict[int, _Source]
Entry = tuple[str, _Source | None]
Handler = Callable[[HistoryEvent, Sources], Entry]
_HANDLERS: dict[int, Handler] = {}


def _on(*kinds: int) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for kind in kinds:
            _HANDLERS[kind] = handler
        return handler

    return register


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def _json(payload: Payload) -> Any:
    """Decode a small JSON payload (metadata only, never user data); None when it is not plain JSON."""
    if payload.metadata.get("encoding") != b"json/plain" or len(payload.data) > 64 * 1024:
        return None
    try:
        return json.loads(payload.data)
    except ValueError:
        return None


def _failure(failure: Failure) -> str:
    """The failure message and its causes (already masked by the worker)."""
    parts: list[str] = []
    current: Failure | None = failure
    while current is not None and len(parts) < 4:
        if current.message and current.message not in parts:
            parts.append(current.message)
        current = current.cause if current.HasField("cause") else None
    return ": ".join(parts) or "no message"


def _type_name(event_type: int) -> str:
    name = E.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]
    return "".join(part.capitalize() for part in name.split("_"))


def _retry(state: int) -> str:
    if state in (RetryState.RETRY_STATE_UNSPECIFIED, RetryState.RETRY_STATE_IN_PROGRESS):
        return ""
    return f" ({RetryState.Name(state).removeprefix('RETRY_STATE_').lower().replace('_', ' ')})"  # type: ignore[arg-type]


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _summary(event: HistoryEvent) -> str | None:
    if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
        return None
    value = _json(event.user_metadata.summary)
    return value if isinstance(value, str) else None


def _name(source: _Source | None, default: str = "?") -> str:
    return source.name if source else default


@_on(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
def _started(event: HistoryEvent, _: Sources) -> Entry:
    a = event.workflow_execution_started_event_attributes
    text = f"workflow {a.workflow_type.name} started on task queue {a.task_queue.name}"
    if a.continued_execution_run_id:
        text += f", continuing run {a.continued_execution_run_id}"
    if a.HasField("parent_workflow_execution"):
        text += f", child of {a.parent_workflow_execution.workflow_id}"
    return text, None


@_on(
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
)
def _closed(event: HistoryEvent, _: Sources) -> Entry:
    if event.HasField("workflow_execution_failed_event_attributes"):
        return f"workflow failed: {_failure(event.workflow_execution_failed_event_attributes.failure)}", None
    if event.HasField("workflow_execution_continued_as_new_event_attributes"):
        return (
            f"continued as new run {event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id}",
            None,
        )
    verb = {
        E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
        E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    }[event.event_type]
    return f"workflow {verb}", None


@_on(E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED, E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
def _stopped(event: HistoryEvent, _: Sources) -> Entry:
    if event.HasField("workflow_execution_terminated_event_attributes"):
        t = event.workflow_execution_terminated_event_attributes
        text, identity, reason = "workflow terminated", t.identity, t.reason
    else:
        c = event.workflow_execution_cancel_requested_event_attributes
        text, identity, reason = "cancellation requested", c.identity, c.cause
    text += f" by {identity}" if identity else ""
    return text + (f": {reason}" if reason else ""), None


@_on(
    E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
)
def _workflow_task(event: HistoryEvent, _: Sources) -> Entry:
    if event.HasField("workflow_task_failed_event_attributes"):
        return f"workflow task failed: {_failure(event.workflow_task_failed_event_attributes.failure)}", None
    if event.HasField("workflow_task_timed_out_event_attributes"):
        return "workflow task timed out (is a worker polling the task queue?)", None
    identity = event.workflow_task_started_event_attributes.identity
    return (f"picked up by {identity}" if identity else ""), None


@_on(E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
def _activity_scheduled(event: HistoryEvent, sources: Sources) -> Entry:
    a = event.activity_task_scheduled_event_attributes
    data = _json(a.input.payloads[0]) if a.input.payloads else None
    task_id = data.get("task_id") if isinstance(data, dict) else None
    source = _Source(a.activity_type.name, task_id if isinstance(task_id, str) else None, _summary(event))
    sources[event.event_id] = source
    return f"activity {source.name} scheduled", source


@_on(E.EVENT_TYPE_ACTIVITY_TASK_STARTED)
def _activity_started(event: HistoryEvent, sources: Sources) -> Entry:
    a = event.activity_task_started_event_attributes
    source = sources.get(a.scheduled_event_id)
    text = f"activity {_name(source)} started, attempt {a.attempt}"
    if a.attempt > 1 and a.HasField("last_failure"):
        text += f", after: {_failure(a.last_failure)}"
    return text, source


@_on(
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
)
def _activity_outcome(event: HistoryEvent, sources: Sources) -> Entry:
    field = event.WhichOneof("attributes")
    attributes: Any = getattr(event, field) if field else None
    source = sources.get(attributes.scheduled_event_id) if attributes is not None else None
    name = f"activity {_name(source)}"
    kind = event.event_type
    if kind == E.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        return f"{name} failed{_retry(attributes.retry_state)}: {_failure(attributes.failure)}", source
    if kind == E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        return f"{name} timed out{_retry(attributes.retry_state)}", source
    verb = {
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
        E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED: "asked to cancel",
        E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled",
    }[kind]
    return f"{name} {verb}", source


@_on(E.EVENT_TYPE_MARKER_RECORDED)
def _marker(event: HistoryEvent, _: Sources) -> Entry:
    a = event.marker_recorded_event_attributes
    if a.marker_name != _LOCAL_ACTIVITY_MARKER:
        return f"marker {a.marker_name}", None
    payloads = a.details["data"].payloads if "data" in a.details else []
    data = _json(payloads[0]) if payloads else None
    data = data if isinstance(data, dict) else {}
    source = _Source(str(data.get("activity_type") or "?"), None, _summary(event))
    attempt = f", attempt {data['attempt']}" if isinstance(data.get("attempt"), int) else ""
    if a.HasField("failure"):
        return f"local activity {source.name} failed{attempt}: {_failure(a.failure)}", source
    return f"local activity {source.name} completed{attempt}", source


@_on(E.EVENT_TYPE_TIMER_STARTED, E.EVENT_TYPE_TIMER_FIRED, E.EVENT_TYPE_TIMER_CANCELED)
def _timer(event: HistoryEvent, sources: Sources) -> Entry:
    if event.HasField("timer_started_event_attributes"):
        a = event.timer_started_event_attributes
        source = sources[event.event_id] = _Source(f"timer {a.timer_id}", None, _summary(event))
        return f"{source.name} started for {_duration(a.start_to_fire_timeout.ToTimedelta().total_seconds())}", source
    if event.HasField("timer_fired_event_attributes"):
        found = sources.get(event.timer_fired_event_attributes.started_event_id)
        return f"{_name(found, 'timer')} fired", found
    found = sources.get(event.timer_canceled_event_attributes.started_event_id)
    return f"{_name(found, 'timer')} cancelled", found


@_on(E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
def _signal(event: HistoryEvent, _: Sources) -> Entry:
    a = event.workflow_execution_signaled_event_attributes
    return f"signal {a.signal_name} received" + (f" from {a.identity}" if a.identity else ""), None


@_on(
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
)
def _update(event: HistoryEvent, sources: Sources) -> Entry:
    if event.HasField("workflow_execution_update_admitted_event_attributes"):
        return f"update {event.workflow_execution_update_admitted_event_attributes.request.input.name} admitted", None
    if event.HasField("workflow_execution_update_accepted_event_attributes"):
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        sources[event.event_id] = _Source(f"update {request.input.name}")
        return f"update {request.input.name} accepted" + (f" from {request.meta.identity}" if request.meta.identity
                                                           else ""), None  # fmt: skip
    if event.HasField("workflow_execution_update_rejected_event_attributes"):
        r = event.workflow_execution_update_rejected_event_attributes
        return f"update {r.rejected_request.input.name} rejected: {_failure(r.failure)}", None
    c = event.workflow_execution_update_completed_event_attributes
    name = _name(sources.get(c.accepted_event_id), "update")
    if c.outcome.HasField("failure"):
        return f"{name} failed: {_failure(c.outcome.failure)}", None
    return f"{name} completed", None


@_on(E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)
def _search_attributes(event: HistoryEvent, _: Sources) -> Entry:
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return "search attributes " + ", ".join(f"{k}={_json(v)}" for k, v in sorted(fields.items())), None


_CHILD_VERBS = {
    E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "could not start",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: "started",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "completed",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "failed",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "terminated",
}


@_on(E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, *_CHILD_VERBS)
def _child(event: HistoryEvent, sources: Sources) -> Entry:
    if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
        a = event.start_child_workflow_execution_initiated_event_attributes
        # A child's id is `<parent>/<task>[/<index> | /batch-<n>]`.
        parts = a.workflow_id.split("/")
        initiated = _Source(f"child workflow {a.workflow_id}", parts[1] if len(parts) > 1 else None, _summary(event))
        sources[event.event_id] = initiated
        return f"{initiated.name} ({a.workflow_type.name}) requested", initiated
    field = event.WhichOneof("attributes")
    attributes: Any = getattr(event, field) if field else None
    source = sources.get(attributes.initiated_event_id) if attributes is not None else None
    text = f"{_name(source, 'child workflow')} {_CHILD_VERBS[event.event_type]}"
    if attributes is not None and "failure" in attributes.DESCRIPTOR.fields_by_name and attributes.HasField("failure"):
        text += f": {_failure(attributes.failure)}"
    return text, source


def timeline(events: Iterable[HistoryEvent], *, workflow_tasks: bool = False) -> list[dict[str, Any]]:
    """Turn history events into readable entries.

    Args:
        events: The events of one run, in order.
        workflow_tasks: Also list the scheduled/started/completed events of every workflow task.

    Returns:
        One dict per event: `event_id`, `time`, `type` (e.g. `ActivityTaskScheduled`), `task_id` and
        `summary` when the event belongs to a task, and `details`, a short human sentence.
    """
    sources: Sources = {}
    entries: list[dict[str, Any]] = []
    for event in events:
        handler = _HANDLERS.get(event.event_type)
        details, source = handler(event, sources) if handler else ("", None)
        if event.event_type in WORKFLOW_TASK_EVENTS and not workflow_tasks:
            continue
        entries.append(
            {
                "event_id": event.event_id,
                "time": event.event_time.ToDatetime(tzinfo=UTC).isoformat(),
                "type": _type_name(event.event_type),
                "task_id": source.task_id if source else None,
                "summary": source.summary if source else None,
                "details": _short(details),
            }
        )
    return entries


async def execution_history(client: Client, execution_id: str, *, workflow_tasks: bool = False) -> list[dict[str, Any]]:
    """Fetch the history of the latest Temporal run of an execution, as a readable timeline.

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    async with temporal_call(client, execution_id, rpc_timeout=None):  # a long history takes pages, each RPC_TIMEOUT
        history = await client.get_workflow_handle(execution_id).fetch_history(rpc_timeout=RPC_TIMEOUT)
    return timeline(history.events, workflow_tasks=workflow_tasks)
