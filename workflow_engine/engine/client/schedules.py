"""Temporal Schedules of registered workflows: build one from a `schedules:` entry, sync, read and steer it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.dsl.model import Schedule as ScheduleEntry
from workflow_engine.errors import ConflictError

from ..types import SA_REVISION, SA_WORKFLOW_NAME, RunInput
from .errors import RPC_TIMEOUT, temporal_call
from .executions import IndexMemo

# On every schedule we create: which workflow and entry it belongs to, and the task queue of the deployment that
# created it (schedules without it are not ours; two deployments sharing a namespace use different queues).
SCHEDULE_MEMO = "wfe_schedule"
# In the action's memo (so in every scheduled run's memo too): what the schedule was built from.
SOURCE_MEMO = "wfe_schedule_source"
# How many fire times a description lists.
NEXT_FIRES = 5

_OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}


def schedule_id(workflow_id: str, key: str) -> str:
    """The Temporal Schedule id of one entry: `<workflow>.<schedule id>` (workflow names have no dots)."""
    return f"{workflow_id}.{key}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DesiredSchedule:
    """One `schedules:` entry of a workflow's current revision, with everything its runs are started with."""

    workflow_id: str
    key: str
    entry: ScheduleEntry
    run_input: RunInput
    task_queue: str
    execution_timeout: timedelta | None
    content_hash: str  # of the revision: a changed YAML changes it

    @property
    def id(self) -> str:
        """The Temporal Schedule id."""
        return schedule_id(self.workflow_id, self.key)

    @property
    def yaml_digest(self) -> str:
        """What the YAML says about this schedule: when it changes, the schedule is reset to it (pause included)."""
        return _digest([self.content_hash, self.run_input.revision, self.key, self.entry.model_dump(mode="json")])

    @property
    def pins_digest(self) -> str:
        """What else its runs are started with (child revisions, queues, settings): updated without a reset."""
        run_input = self.run_input
        children = {name: child.revision for name, child in sorted(run_input.children.items())}
        return _digest([children, run_input.kind_queues, run_input.fan_out_batch, self.task_queue,
                        str(self.execution_timeout)])  # fmt: skip


def build_schedule(desired: DesiredSchedule, state: ScheduleState | None = None) -> Schedule:
    """The Temporal Schedule of an entry; `state` keeps a schedule's current pause state instead of the YAML's."""
    entry = desired.entry
    spec = ScheduleSpec(
        cron_expressions=[entry.cron] if entry.cron else [],
        intervals=[ScheduleIntervalSpec(every=entry.every, offset=entry.offset)] if entry.every else [],
        time_zone_name=entry.timezone,
        jitter=entry.jitter,
        start_at=entry.start_at,
        end_at=entry.end_at,
    )
    index = IndexMemo(workflow_id=desired.workflow_id, revision=desired.run_input.revision,
                      started_by=f"schedule:{desired.key}")  # fmt: skip
    source = {"yaml": desired.yaml_digest, "pins": desired.pins_digest}
    action = ScheduleActionStartWorkflow(
        desired.workflow_id,
        desired.run_input,
        id=f"{desired.workflow_id}-{desired.key}",  # Temporal appends the fire time
        task_queue=desired.task_queue,
        execution_timeout=desired.execution_timeout,
        typed_search_attributes=TypedSearchAttributes([
            SearchAttributePair(SA_WORKFLOW_NAME, desired.workflow_id),
            SearchAttributePair(SA_REVISION, desired.run_input.revision),
        ]),
        memo={**index.as_memo(), SOURCE_MEMO: source},
        static_summary=f"{desired.workflow_id} rev {desired.run_input.revision} (schedule {desired.key})",
    )  # fmt: skip
    policy = SchedulePolicy(overlap=_OVERLAP[entry.overlap], catchup_window=entry.catchup_window)
    if state is None:
        state = ScheduleState(paused=entry.paused, note="paused in the YAML" if entry.paused else None)
    return Schedule(action=action, spec=spec, policy=policy, state=state)


def _source(client: Client, description: ScheduleDescription) -> dict[str, Any]:
    """What an existing schedule was built from (its action's memo), or {} when that cannot be read."""
    action = description.schedule.action
    memo = getattr(action, "memo", None) or {}
    payload = memo.get(SOURCE_MEMO)
    if payload is None:
        return {}
    try:
        value = client.data_converter.payload_converter.from_payload(payload)
    except Exception:  # noqa: BLE001 - unreadable: treat as foreign and rebuild
        return {}
    return value if isinstance(value, dict) else {}


async def sync_schedule(client: Client, desired: DesiredSchedule) -> str:
    """Create or update the schedule of one entry; return `created`, `updated`, `reset` or `unchanged`.

    A schedule whose YAML is unchanged keeps its pause state (a pause made in the API or the Temporal UI
    survives); a changed YAML resets the schedule to what the file says. Safe to run from several processes.
    """
    handle = client.get_schedule_handle(desired.id)
    async with temporal_call(client, subject=f"schedule {desired.id!r}"):
        try:
            await client.create_schedule(
                desired.id, build_schedule(desired), rpc_timeout=RPC_TIMEOUT,
                memo={SCHEDULE_MEMO: {"workflow_id": desired.workflow_id, "schedule": desired.key,
                                      "task_queue": desired.task_queue}},
                search_attributes=TypedSearchAttributes([SearchAttributePair(SA_WORKFLOW_NAME, desired.workflow_id)]),
            )  # fmt: skip
            return "created"
        except ScheduleAlreadyRunningError:
            pass
        outcome = "unchanged"

        async def updater(current: ScheduleUpdateInput) -> ScheduleUpdate | None:
            nonlocal outcome
            owner = _owner_queue(await current.description.memo())
            if owner != desired.task_queue:
                raise ScheduleOwnedElsewhere(desired.id, owner)
            source = _source(client, current.description)
            if source.get("yaml") != desired.yaml_digest:
                outcome = "reset"
                return ScheduleUpdate(schedule=build_schedule(desired))
            if source.get("pins") != desired.pins_digest:
                outcome = "updated"
                return ScheduleUpdate(schedule=build_schedule(desired, current.description.schedule.state))
            return None

        await handle.update(updater, rpc_timeout=RPC_TIMEOUT)
        return outcome


class ScheduleOwnedElsewhere(ConflictError):
    """A schedule with this id exists but another deployment (task queue) made it: it is left alone."""

    def __init__(self, identifier: str, owner: str | None) -> None:
        """Name the schedule and the task queue of the deployment that owns it."""
        whose = f"the deployment on task queue {owner!r}" if owner else "something other than this engine"
        super().__init__(f"schedule {identifier!r} belongs to {whose}; it is left alone (rename the workflow, or "
                         "delete that schedule)")  # fmt: skip


def _owner_queue(memo: Mapping[str, Any]) -> str | None:
    """The task queue of the deployment that created a schedule (its SCHEDULE_MEMO), or None when it is not ours."""
    owner = memo.get(SCHEDULE_MEMO)
    queue = owner.get("task_queue") if isinstance(owner, dict) else None
    return queue if isinstance(queue, str) else None


async def delete_schedule(client: Client, identifier: str, task_queue: str) -> bool:
    """Delete one schedule of this deployment (its runs keep going); False when it did not exist."""
    handle = client.get_schedule_handle(identifier)
    async with temporal_call(client, subject=f"schedule {identifier!r}"):
        try:
            owner = _owner_queue(await (await handle.describe(rpc_timeout=RPC_TIMEOUT)).memo())
            if owner != task_queue:
                raise ScheduleOwnedElsewhere(identifier, owner)
            await handle.delete(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True


async def our_schedule_ids(client: Client, task_queue: str) -> dict[str, str]:
    """Every schedule this deployment (its task queue) created, as {schedule id: workflow id} (from visibility)."""
    found: dict[str, str] = {}
    async with temporal_call(client, rpc_timeout=None):
        async for listed in await client.list_schedules(page_size=500, rpc_timeout=RPC_TIMEOUT):
            owner = (await listed.memo()).get(SCHEDULE_MEMO)
            if (
                isinstance(owner, dict)
                and owner.get("task_queue") == task_queue
                and isinstance(owner.get("workflow_id"), str)
            ):
                found[listed.id] = owner["workflow_id"]
    return found


@dataclass(frozen=True)
class ScheduleView:
    """What Temporal says of one schedule: pause state, next fire times and recent runs."""

    paused: bool
    note: str | None
    next_fires: list[datetime]
    recent_runs: list[dict[str, Any]]
    fired: int
    owner_queue: str | None  # the task queue of the deployment that created it


async def describe_schedule(client: Client, identifier: str) -> ScheduleView | None:
    """Read one schedule's state from Temporal; None when it does not exist (not synced yet, or deleted)."""
    async with temporal_call(client, subject=f"schedule {identifier!r}"):
        try:
            description = await client.get_schedule_handle(identifier).describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
    info, state = description.info, description.schedule.state
    recent = []
    for result in reversed(info.recent_actions):
        action = result.action
        execution_id = action.workflow_id if isinstance(action, ScheduleActionExecutionStartWorkflow) else None
        recent.append({"execution_id": execution_id, "scheduled_at": result.scheduled_at.isoformat(),
                       "started_at": result.started_at.isoformat()})  # fmt: skip
    return ScheduleView(
        paused=state.paused, note=state.note, next_fires=list(info.next_action_times[:NEXT_FIRES]),
        recent_runs=recent, fired=info.num_actions, owner_queue=_owner_queue(await description.memo()),
    )  # fmt: skip


async def pause_schedule(client: Client, identifier: str, note: str, *, paused: bool) -> None:
    """Pause or unpause a schedule, with a note shown in the Temporal UI."""
    handle = client.get_schedule_handle(identifier)
    async with temporal_call(client, subject=f"schedule {identifier!r}"):
        if paused:
            await handle.pause(note=note, rpc_timeout=RPC_TIMEOUT)
        else:
            await handle.unpause(note=note, rpc_timeout=RPC_TIMEOUT)


async def trigger_schedule(client: Client, identifier: str) -> None:
    """Start one run now, whatever the overlap policy says about runs still going."""
    async with temporal_call(client, subject=f"schedule {identifier!r}"):
        await client.get_schedule_handle(identifier).trigger(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL, rpc_timeout=RPC_TIMEOUT
        )


async def backfill_schedule(client: Client, identifier: str, start: datetime, end: datetime) -> None:
    """Take the actions the schedule would have taken between `start` and `end`, every one of them."""
    backfill = ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    async with temporal_call(client, subject=f"schedule {identifier!r}"):
        await client.get_schedule_handle(identifier).backfill(backfill, rpc_timeout=RPC_TIMEOUT)


async def describe_many(client: Client, identifiers: list[str], *, at_once: int = 16) -> list[ScheduleView | None]:
    """Describe several schedules, a few at a time, in the order given."""
    limit = asyncio.Semaphore(at_once)

    async def one(identifier: str) -> ScheduleView | None:
        async with limit:
            return await describe_schedule(client, identifier)

    return list(await asyncio.gather(*(one(identifier) for identifier in identifiers)))
