"""Keeps Temporal Schedules equal to the `schedules:` of current revisions, and reads and steers them.

The database says what should exist (each registered workflow's current revision, unless the file that
owns it is gone); Temporal holds what does. `sync_workflow` and `sync_all` make Temporal match: create,
update (a changed YAML resets a schedule, pause included; anything else keeps its pause state) and delete.
They run after every registration, reload, directory scan and delete, and every `SCHEDULES_SYNC_SECONDS`,
so a Temporal outage only delays them. No database session is open while Temporal is called.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from workflow_engine.dsl import DslError, WorkflowDefinition, resolve_params
from workflow_engine.engine.client.connection import TemporalConnection
from workflow_engine.engine.client.schedules import (
    DesiredSchedule,
    delete_schedule,
    our_schedule_ids,
    sync_schedule,
)
from workflow_engine.engine.types import RunInput
from workflow_engine.errors import EngineError, NotFoundError, ValidationFailedError
from workflow_engine.settings import Settings
from workflow_engine.storage import Definition, repository

from .definitions import DefinitionCache

logger = logging.getLogger(__name__)

# A backfill may start at most this many runs.
MAX_BACKFILL_RUNS = 1000
# How long a registration, reload or delete waits for its schedules to sync before it answers anyway.
CHANGE_SYNC_WAIT = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _desired_of(session: AsyncSession, settings: Settings, record: Definition) -> list[DesiredSchedule]:
    """The schedules one registered workflow asks for; none when its owning file is gone."""
    if record.file_path is not None and not await asyncio.to_thread(Path(record.file_path).is_file):
        return []
    revision = await repository.get_revision(session=session, workflow_id=record.workflow_id,
                                             number=record.current_revision)  # fmt: skip
    if revision is None or not revision.definition.get("schedules"):
        return []
    try:
        definition = WorkflowDefinition.model_validate(revision.definition)
    except ValidationError as exc:  # stored by a release whose `schedules:` contract was laxer
        logger.error("schedules of %s not synced: revision %d no longer validates: %s", record.workflow_id,
                     revision.number, exc)  # fmt: skip
        return []
    try:
        children = await DefinitionCache().children(session, definition)
    except DslError as exc:
        logger.error("schedules of %s not synced: %s", record.workflow_id, exc)
        return []
    desired = []
    for key, entry in definition.keyed_schedules():
        try:
            params = resolve_params(definition, dict(entry.params))
        except DslError as exc:
            logger.error("schedule %s.%s not synced: %s", record.workflow_id, key, exc)
            continue
        run_input = RunInput(
            definition=revision.definition, revision=revision.number, params=params, started_by=f"schedule:{key}",
            children=children, fan_out_batch=settings.fan_out_batch_size,
            kind_queues=sorted(settings.activity_concurrency),
        )  # fmt: skip
        desired.append(DesiredSchedule(
            workflow_id=record.workflow_id, key=key, entry=entry, run_input=run_input,
            task_queue=settings.temporal_task_queue, execution_timeout=definition.timeout,
            content_hash=revision.content_hash,
        ))  # fmt: skip
    return desired


async def desired_schedules(
    session: AsyncSession, settings: Settings, workflow_id: str | None = None
) -> list[DesiredSchedule]:
    """What the registry says should be scheduled: of one workflow, or of all, in workflow order."""
    if workflow_id is not None:
        record = await repository.get_definition(session=session, workflow_id=workflow_id)
        records = [record] if record is not None else []
    else:
        records = await repository.all_definitions(session=session)
    desired: list[DesiredSchedule] = []
    for record in records:
        desired.extend(await _desired_of(session, settings, record))
    return desired


async def find_schedule(session: AsyncSession, settings: Settings, identifier: str) -> DesiredSchedule:
    """The schedule with this id (`<workflow>.<schedule id>`), or a 404."""
    workflow_id, _, _ = identifier.partition(".")
    for desired in await desired_schedules(session, settings, workflow_id):
        if desired.id == identifier:
            return desired
    raise NotFoundError(f"schedule {identifier!r} not found")


@dataclass
class SyncReport:
    """What a sync did, per schedule id."""

    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def log(self) -> None:
        """Log what changed and what failed (unchanged schedules are not worth a line)."""
        for identifier, outcome in self.done.items():
            if outcome != "unchanged":
                logger.info("schedule %s %s", identifier, outcome)
        for identifier, message in self.failed.items():
            logger.warning("schedule %s not synced (retried later): %s", identifier, message)


async def _apply(
    temporal: Client, settings: Settings, desired: list[DesiredSchedule], existing: Iterable[str], report: SyncReport
) -> SyncReport:
    wanted = {d.id for d in desired}
    for schedule in desired:
        try:
            report.done[schedule.id] = await sync_schedule(temporal, schedule)
        except EngineError as exc:
            report.failed[schedule.id] = exc.message
    for identifier in sorted(set(existing) - wanted):
        try:
            report.done[identifier] = (
                "deleted" if await delete_schedule(temporal, identifier, settings.temporal_task_queue) else "gone"
            )
        except EngineError as exc:
            report.failed[identifier] = exc.message
    report.log()
    return report


async def sync_workflow(
    *, sessions: async_sessionmaker[AsyncSession], temporal: Client, settings: Settings, workflow_id: str,
    known: Iterable[str] = (),
) -> SyncReport:  # fmt: skip
    """Make one workflow's schedules match its current revision; `known` are ids it may have had."""
    async with sessions() as session:
        desired = await desired_schedules(session, settings, workflow_id)
    report = SyncReport()
    try:
        listed = await our_schedule_ids(temporal, settings.temporal_task_queue)
    except EngineError as exc:
        report.failed[workflow_id] = exc.message
        listed = {}
    existing = {identifier for identifier, owner in listed.items() if owner == workflow_id} | set(known)
    return await _apply(temporal, settings, desired, existing, report)


async def sync_all(*, sessions: async_sessionmaker[AsyncSession], temporal: Client, settings: Settings) -> SyncReport:
    """Make every schedule match the registry, and delete ours that nothing asks for any more."""
    async with sessions() as session:
        desired = await desired_schedules(session, settings)
    listed = await our_schedule_ids(temporal, settings.temporal_task_queue)
    return await _apply(temporal, settings, desired, listed, SyncReport())


class ScheduleSyncer:
    """Runs this process's syncs one at a time: right after a change, and every `SCHEDULES_SYNC_SECONDS`.

    A sync never fails its caller: a registration is stored whatever Temporal says, and what could not be
    synced is logged and retried by the next periodic round.
    """

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], connection: TemporalConnection, settings: Settings
    ) -> None:
        """Remember where the registry and Temporal are."""
        self._sessions, self._connection, self._settings = sessions, connection, settings
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[SyncReport | None]] = set()

    async def workflow(self, workflow_id: str, known: Iterable[str] = ()) -> SyncReport | None:
        """Sync one workflow's schedules now; None when Temporal or the database could not be reached."""
        async with self._lock:
            try:
                temporal = await self._connection.get()
                return await sync_workflow(sessions=self._sessions, temporal=temporal, settings=self._settings,
                                           workflow_id=workflow_id, known=known)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - retried by the periodic sync; the change itself is stored
                logger.warning("schedules of %s not synced (retried later): %s", workflow_id, exc)
                return None

    async def everything(self) -> SyncReport | None:
        """Sync every schedule now; None when Temporal or the database could not be reached."""
        async with self._lock:
            try:
                temporal = await self._connection.get()
                return await sync_all(sessions=self._sessions, temporal=temporal, settings=self._settings)
            except Exception as exc:  # noqa: BLE001 - the next round retries
                logger.warning("schedules not synced (retried later): %s", exc)
                return None

    async def after_change(self, workflow_id: str | None = None, known: Iterable[str] = ()) -> None:
        """Sync one workflow (or all) after a registry change, waiting at most CHANGE_SYNC_WAIT seconds.

        A Temporal that does not answer must not hold up the answer to a registration (its calls may take
        RPC_TIMEOUT each): past the wait the sync goes on in the background, until `run` is cancelled.
        """
        job = self.workflow(workflow_id, known) if workflow_id is not None else self.everything()
        task = asyncio.create_task(job)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        await asyncio.wait({task}, timeout=CHANGE_SYNC_WAIT)

    async def run(self) -> None:
        """Sync now, then every `SCHEDULES_SYNC_SECONDS` (only now when it is 0), until cancelled."""
        try:
            await self.everything()
            interval = self._settings.schedules_sync_seconds
            if interval <= 0:
                await asyncio.Future()  # nothing periodic: wait to be cancelled
            while True:
                await asyncio.sleep(interval)
                await self.everything()
        finally:
            for task in list(self._pending):  # syncs after a change still waiting for Temporal
                task.cancel()


def _interval_fires(start: datetime, end: datetime, every: timedelta, offset: timedelta) -> int:
    """How many fires of `every` fall from `start` to `end`, both included (Temporal aligns them to epoch + offset)."""
    first = -((_EPOCH + offset - start) // every)  # the smallest n with epoch + offset + n * every >= start
    last = (end - _EPOCH - offset) // every
    return max(last - first + 1, 0)


def backfill_runs(desired: DesiredSchedule, start: datetime, end: datetime) -> int:
    """How many runs a backfill from `start` to `end` starts; a 422 past MAX_BACKFILL_RUNS or a bad range."""
    if end <= start:
        raise ValidationFailedError("backfill end must be after its start")
    entry = desired.entry
    if entry.every is not None:
        count = _interval_fires(start, end, entry.every, entry.offset or timedelta(0))
    else:
        assert entry.cron is not None
        # Temporal counts both ends; croniter's next fire is strictly after the moment it starts from
        fires = croniter(entry.cron, (start - timedelta(microseconds=1)).astimezone(ZoneInfo(entry.timezone)))
        count = 0
        while count <= MAX_BACKFILL_RUNS and fires.get_next(datetime) <= end:
            count += 1
    if count > MAX_BACKFILL_RUNS:
        raise ValidationFailedError(
            f"a backfill may start at most {MAX_BACKFILL_RUNS} runs; this range has more: make it shorter"
        )
    return count
