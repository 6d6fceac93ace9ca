"""Schedule routes: list and show the schedules of registered workflows; pause, unpause, trigger, backfill."""

from __future__ import annotations

from fastapi import APIRouter, Query
from temporalio.client import Client

from workflow_engine.api.auth import Operator, Viewer
from workflow_engine.api.deps import SessionDep, SettingsDep, TemporalDep
from workflow_engine.api.errors import PROBLEM_RESPONSES
from workflow_engine.api.schedules import backfill_runs, desired_schedules, find_schedule
from workflow_engine.api.schemas import (
    BackfillRequest,
    ScheduleAction,
    ScheduleDetail,
    ScheduleList,
    ScheduleNote,
)
from workflow_engine.dsl.model import NAME_PATTERN
from workflow_engine.engine.client.schedules import (
    DesiredSchedule,
    ScheduleOwnedElsewhere,
    ScheduleView,
    backfill_schedule,
    describe_many,
    describe_schedule,
    pause_schedule,
    sync_schedule,
    trigger_schedule,
)

router = APIRouter(prefix="/schedules", tags=["schedules"])

_ERRORS = PROBLEM_RESPONSES


def _detail(desired: DesiredSchedule, view: ScheduleView | None) -> ScheduleDetail:
    if view is not None and view.owner_queue != desired.task_queue:  # another deployment's: not ours to show
        view = None
    entry = desired.entry
    return ScheduleDetail(
        id=desired.id, workflow_id=desired.workflow_id, schedule=desired.key, revision=desired.run_input.revision,
        cron=entry.cron, every=entry.every, offset=entry.offset, timezone=entry.timezone, overlap=entry.overlap,
        catchup_window=entry.catchup_window, jitter=entry.jitter, start_at=entry.start_at, end_at=entry.end_at,
        params=desired.run_input.params, synced=view is not None,
        paused=view.paused if view is not None else entry.paused, note=view.note if view is not None else None,
        next_runs=view.next_fires if view is not None else [], recent_runs=view.recent_runs if view else [],
        fired=view.fired if view is not None else 0,
    )  # fmt: skip


async def _synced(temporal: Client, desired: DesiredSchedule) -> None:
    """Create the schedule first if the periodic sync has not yet (a Temporal outage just ended, say).

    A schedule of that id made by another deployment (task queue) is a 409, never changed.
    """
    view = await describe_schedule(temporal, desired.id)
    if view is None:
        await sync_schedule(temporal, desired)
    elif view.owner_queue != desired.task_queue:
        raise ScheduleOwnedElsewhere(desired.id, view.owner_queue)


@router.get("", response_model=ScheduleList, responses=_ERRORS)
async def list_schedules(
    session: SessionDep, settings: SettingsDep, temporal: TemporalDep, _caller: Viewer,
    workflow_id: str | None = Query(None, pattern=NAME_PATTERN, description="Only this workflow's schedules."),
) -> ScheduleList:  # fmt: skip
    """List the schedules of every registered workflow (or one), with their next 5 fire times and last runs."""
    desired = await desired_schedules(session, settings, workflow_id)
    await session.close()  # no session stays open across the Temporal calls
    views = await describe_many(temporal, [d.id for d in desired])
    return ScheduleList(items=[_detail(d, v) for d, v in zip(desired, views, strict=True)])


@router.get("/{schedule_id}", response_model=ScheduleDetail, responses=_ERRORS)
async def get_schedule(
    schedule_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, _caller: Viewer
) -> ScheduleDetail:
    """Show one schedule: what its YAML says, whether it is paused, when it fires next and what it started."""
    desired = await find_schedule(session, settings, schedule_id)
    await session.close()
    return _detail(desired, await describe_schedule(temporal, desired.id))


async def _pause(
    schedule_id: str, body: ScheduleNote | None, session: SessionDep, settings: SettingsDep, temporal: Client,
    user: str, *, paused: bool,
) -> ScheduleDetail:  # fmt: skip
    desired = await find_schedule(session, settings, schedule_id)
    await session.close()
    await _synced(temporal, desired)
    verb = "paused" if paused else "unpaused"
    note = f"{verb} by {user}" + (f": {body.note}" if body is not None and body.note else "")
    await pause_schedule(temporal, desired.id, note, paused=paused)
    return _detail(desired, await describe_schedule(temporal, desired.id))


@router.post("/{schedule_id}/pause", response_model=ScheduleDetail, responses=_ERRORS)
async def pause(
    schedule_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, caller: Operator,
    body: ScheduleNote | None = None,
) -> ScheduleDetail:  # fmt: skip
    """Stop a schedule from starting runs until it is unpaused (or its YAML changes), with an optional note."""
    return await _pause(schedule_id, body, session, settings, temporal, caller.user, paused=True)


@router.post("/{schedule_id}/unpause", response_model=ScheduleDetail, responses=_ERRORS)
async def unpause(
    schedule_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, caller: Operator,
    body: ScheduleNote | None = None,
) -> ScheduleDetail:  # fmt: skip
    """Let a paused schedule start runs again, with an optional note."""
    return await _pause(schedule_id, body, session, settings, temporal, caller.user, paused=False)


@router.post("/{schedule_id}/trigger", response_model=ScheduleAction, status_code=202, responses=_ERRORS)
async def trigger(
    schedule_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, _caller: Operator
) -> ScheduleAction:
    """Start one run now with the schedule's params, whatever its overlap policy (paused schedules too)."""
    desired = await find_schedule(session, settings, schedule_id)
    await session.close()
    await _synced(temporal, desired)
    await trigger_schedule(temporal, desired.id)
    return ScheduleAction(schedule_id=desired.id, action="trigger", runs=1)


@router.post("/{schedule_id}/backfill", response_model=ScheduleAction, status_code=202, responses=_ERRORS)
async def backfill(
    schedule_id: str, body: BackfillRequest, session: SessionDep, settings: SettingsDep, temporal: TemporalDep,
    _caller: Operator,
) -> ScheduleAction:  # fmt: skip
    """Start the runs the schedule would have started from `start` to `end` (at most 1000), all of them."""
    desired = await find_schedule(session, settings, schedule_id)
    await session.close()
    runs = backfill_runs(desired, body.start, body.end)
    await _synced(temporal, desired)
    await backfill_schedule(temporal, desired.id, body.start, body.end)
    return ScheduleAction(schedule_id=desired.id, action="backfill", runs=runs)
