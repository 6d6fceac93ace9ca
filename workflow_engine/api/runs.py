"""What the execution routes do: start runs idempotently, show them, wait for them and retry them.

Idempotency: a key (the body's `execution_id` or the `Idempotency-Key` header) is the Temporal workflow id.
A repeat finds the run in Temporal (and the execution index) and returns it; Temporal's USE_EXISTING /
REJECT_DUPLICATE id policies decide the race of concurrent first requests, so a second run can never start.

No database transaction is open across a Temporal call: a start validates, ends its reads, starts the run
(its memo carries what the execution index needs) and only then writes the index row, in a short
transaction of its own. A crash between the two leaves a run without a row; a keyed repeat, `GET` or
`retry` of that run rebuilds the row from the memo and the run's input.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from workflow_engine.dsl import WorkflowDefinition, resolve_params
from workflow_engine.engine.client.executions import (
    ExecutionExistsError,
    IndexMemo,
    Outcome,
    RunDescription,
    describe_execution,
    execution_input,
    execution_status,
    start_execution,
)
from workflow_engine.engine.client.resume import RetryMode, final_states, plan_resume
from workflow_engine.engine.types import RunInput, RunStatus, TaskStatus
from workflow_engine.errors import ConflictError, GoneError, NotFoundError, ValidationFailedError
from workflow_engine.metrics import RUNS_STARTED
from workflow_engine.settings import Settings
from workflow_engine.storage import ApprovalRecord, Execution, repository

from .definitions import DefinitionCache
from .schemas import ExecutionDetail, TaskState

logger = logging.getLogger(__name__)

# Task states a stopped run (cancelled, terminated, timed out) leaves behind: they become `cancelled`.
_UNFINISHED_TASKS = (TaskStatus.RUNNING, TaskStatus.WAITING_APPROVAL)
# Runs whose task states stand as the worker reported them: still going, or ended by their own tasks.
_SETTLED_RUNS = (RunStatus.RUNNING, RunStatus.WAITING_APPROVAL, RunStatus.COMPLETED, RunStatus.FAILED)


@dataclass(frozen=True)
class StartedRun:
    """A run an execute or retry call answers with; `created` is False for an idempotent repeat."""

    execution_id: str
    workflow_id: str
    revision: int
    status: RunStatus
    created: bool
    retry_of: str | None = None


def idempotency_key(body_key: str | None, header_key: str | None) -> str | None:
    """Return the one idempotency key of a request, from the body's `execution_id` or the header.

    Raises:
        ValidationFailedError: Both are given and differ.
    """
    if body_key is not None and header_key is not None and body_key != header_key:
        raise ValidationFailedError(
            "execution_id and the Idempotency-Key header differ; send one of them",
            details=[{"path": "execution_id", "message": "differs from the Idempotency-Key header"}],
        )
    return body_key if body_key is not None else header_key


async def _end_reads(session: AsyncSession) -> None:
    """End the session's transaction, so that no lock or snapshot is held across the network call that follows."""
    await session.commit()


async def _record(session: AsyncSession, execution_id: str) -> Execution | None:
    record = await repository.get_execution(session=session, execution_id=execution_id)
    await _end_reads(session)
    return record


async def _index(session: AsyncSession, execution_id: str, index: IndexMemo, params: dict[str, object]) -> None:
    """Write a run's index row in a transaction of its own; a row already written by a concurrent request stays."""
    try:
        await repository.add_execution(
            session=session, execution_id=execution_id, workflow_id=index.workflow_id, revision=index.revision,
            parameters=params, started_by=index.started_by, retry_of=index.retry_of,
        )  # fmt: skip
        await session.commit()
    except IntegrityError:  # a concurrent keyed request (or a repair) wrote the same row
        await session.rollback()


async def _repaired(session: AsyncSession, temporal: Client, execution_id: str, index: IndexMemo) -> Execution | None:
    """Rebuild the index row of a run started through the API whose row was lost (a crash after the start)."""
    try:
        params = (await execution_input(temporal, execution_id)).params
    except GoneError as exc:  # its input was stored by reference and that row is gone: nothing to rebuild from
        logger.warning("execution %s has no index row and its input is gone: %s", execution_id, exc.message)
        return None
    await _index(session, execution_id, index, params)
    logger.info("execution %s had no index row: rebuilt it from the run's memo and input", execution_id)
    return await _record(session, execution_id)


async def _existing(
    session: AsyncSession, temporal: Client, key: str, workflow_id: str, retry_of: str | None
) -> StartedRun | None:
    """The run an idempotency key already names, if any (409 when it was used for another request)."""
    record = await _record(session, key)
    try:
        run: RunDescription | None = await execution_status(temporal, key)
    except NotFoundError:
        run = None
    if record is None and run is None:
        return None
    if record is None and run is not None and run.index is not None:
        record = await _repaired(session, temporal, key, run.index)
    owner = record.workflow_id if record is not None else run.workflow_type if run is not None else ""
    if owner != workflow_id:
        raise ConflictError(f"execution id {key!r} is already used by a run of workflow {owner!r}")
    if record is not None and record.retry_of != retry_of:
        used = f"a retry of {record.retry_of!r}" if record.retry_of else "a run that is not a retry"
        raise ConflictError(f"execution id {key!r} is already used by {used}")
    if run is None:
        raise ConflictError(f"execution id {key!r} was used by a run that Temporal no longer keeps")
    revision = record.revision if record is not None else run.revision
    if revision is None:
        raise ConflictError(f"execution id {key!r} is already used by a run that was not started through the API")
    return StartedRun(key, workflow_id, revision, run.status, created=False, retry_of=retry_of)


async def start_run(
    *,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    definitions: DefinitionCache,
    user: str,
    workflow_id: str,
    parameters: dict[str, object],
    revision: int | None = None,
    key: str | None = None,
    retry_of: str | None = None,
    resume: Callable[[WorkflowDefinition, int], dict[str, Any]] | None = None,
) -> StartedRun:
    """Validate the parameters and start a run, or return the run an idempotency key already names.

    Args:
        session: The request's database session (its reads end before Temporal is called).
        temporal: The Temporal client.
        settings: The API settings (task queue).
        definitions: The process's parsed revisions.
        user: Who starts the run.
        workflow_id: The registered workflow.
        parameters: The run's parameters, validated against the revision's `params`.
        revision: A registered revision to run instead of the current one.
        key: An idempotency key, used as the execution id.
        retry_of: The run this one retries, recorded in the execution index.
        resume: Given the revision's definition and number, the state a resumed run keeps (`RunInput.resume`).

    Raises:
        NotFoundError: The workflow or revision is not registered.
        DslError: The parameters are invalid (every problem listed).
        ConflictError: The key names a run of another workflow.
        UnavailableError: Temporal cannot be reached.
    """
    if key is not None and (found := await _existing(session, temporal, key, workflow_id, retry_of)) is not None:
        return found
    pinned = await definitions.revision(session, workflow_id, revision)
    definition = pinned.definition
    params = resolve_params(definition, dict(parameters))
    children = await definitions.children(session, definition)
    run_input = RunInput(
        definition=pinned.stored,
        revision=pinned.number,
        params=params,
        started_by=user,
        children=children,
        fan_out_batch=settings.fan_out_batch_size,
        kind_queues=sorted(settings.activity_concurrency),
        resume=resume(definition, pinned.number) if resume is not None else None,
    )
    await _end_reads(session)
    execution_id = key or f"{workflow_id}-{uuid.uuid4().hex[:20]}"
    index = IndexMemo(workflow_id=workflow_id, revision=pinned.number, started_by=user, retry_of=retry_of)
    try:
        started = await start_execution(
            temporal, workflow_name=workflow_id, execution_id=execution_id, task_queue=settings.temporal_task_queue,
            run_input=run_input, execution_timeout=definition.timeout, reuse_existing=key is not None, index=index,
        )  # fmt: skip
    except ExecutionExistsError:  # the key's run started and closed since we looked: answer with it
        started = False
    if not started:  # a concurrent request with the same key started the run first
        if key is not None and (found := await _existing(session, temporal, key, workflow_id, retry_of)) is not None:
            return found
        raise ConflictError(f"execution id {execution_id!r} is being started by another request")
    RUNS_STARTED.labels(workflow_id).inc()
    await _index(session, execution_id, index, params)
    return StartedRun(execution_id, workflow_id, pinned.number, RunStatus.RUNNING, created=True, retry_of=retry_of)


async def retry_run(
    *, session: AsyncSession, temporal: Client, settings: Settings, definitions: DefinitionCache, user: str,
    execution_id: str, key: str | None,
    mode: RetryMode = RetryMode.FROM_FAILURE, task_id: str | None = None, latest: bool = False,
) -> StartedRun:  # fmt: skip
    """Start a new run of a closed one, linked to it by `retry_of`: resumed (`mode`) or restarted.

    The new run has the original's parameters, and its revision (or, `latest`, the current one). from_failure
    and from_task keep what the original completed (`engine/client/resume.py`); restart runs everything again.
    A run started through the API whose index row was lost gets it back (from its memo and input) first.

    Raises:
        NotFoundError: The run is not in the execution index, or its revision is no longer registered.
        ConflictError: The run is still running, or the resuming revision lacks a task it would keep.
        GoneError: Temporal no longer keeps the run, so there is no state to resume (restart still works).
        ValidationFailedError: from_task names no task of the revision.
        UnavailableError: Temporal cannot be reached, or no worker answered for the run's final state.
    """
    original = await _record(session, execution_id)
    try:
        run: RunDescription | None = await execution_status(temporal, execution_id)
    except NotFoundError:  # Temporal dropped the closed run (retention); the index still knows what to run
        run = None
    if original is None and run is not None and run.index is not None:
        original = await _repaired(session, temporal, execution_id, run.index)
    if original is None:
        raise NotFoundError(f"execution {execution_id!r} is not in the execution index (only runs started through "
                            "the API can be retried)")  # fmt: skip
    if run is not None and not run.status.closed:
        raise ConflictError(f"execution {execution_id!r} is still {run.status}; cancel or terminate it first")
    revision = None if latest else original.revision
    resume = None
    if mode != RetryMode.RESTART:
        if key is not None and (found := await _existing(session, temporal, key, original.workflow_id,
                                                         execution_id)) is not None:  # fmt: skip
            return found
        resume = await _resume_from(session, temporal, execution_id, run, mode, task_id)
    return await start_run(
        session=session, temporal=temporal, settings=settings, definitions=definitions, user=user,
        workflow_id=original.workflow_id,
        parameters=original.parameters, revision=revision, key=key, retry_of=execution_id, resume=resume,
    )  # fmt: skip


async def _resume_from(
    session: AsyncSession, temporal: Client, execution_id: str, run: RunDescription | None, mode: RetryMode,
    task_id: str | None,
) -> Callable[[WorkflowDefinition, int], dict[str, Any]]:  # fmt: skip
    """Read what a closed run ended with; return how the resuming revision keeps it (checked against it)."""
    if run is None:
        raise GoneError(f"execution {execution_id!r} is no longer kept by Temporal (its retention has passed), so "
                        "its task states are gone; retry it with mode restart to run everything again")  # fmt: skip
    await _end_reads(session)  # no transaction stays open across the Temporal calls
    states = await final_states(temporal, execution_id)
    original = await execution_input(temporal, execution_id)
    handlers = frozenset(task.id for task in WorkflowDefinition.from_stored(original.definition).on_failure)

    def plan(definition: WorkflowDefinition, revision: int) -> dict[str, Any]:
        return plan_resume(definition, revision, states, execution_id=execution_id, mode=mode, task_id=task_id,
                           handlers=handlers).resume  # fmt: skip

    return plan


def _final_tasks(tasks: list[TaskState], status: RunStatus, finished_at: str | None) -> list[TaskState]:
    """A closed run has no running task: what ran when it was cancelled, terminated or timed out was stopped."""
    if status in _SETTLED_RUNS:
        return tasks
    note = None if status == RunStatus.CANCELLED else f"stopped: the run {status.replace('_', ' ')}"
    return [
        t.model_copy(update={"status": TaskStatus.CANCELLED, "finished_at": t.finished_at or finished_at,
                             "error": note})
        if t.status in _UNFINISHED_TASKS else t
        for t in tasks
    ]  # fmt: skip


async def _declared_tasks(session: AsyncSession, record: Execution, never_ran: bool) -> list[TaskState]:
    """Tasks of the pinned revision, shown when no worker answers: `pending` only while that is a fact."""
    revision = await repository.get_revision(session=session, workflow_id=record.workflow_id, number=record.revision)
    if revision is None:
        return []
    definition: WorkflowDefinition = WorkflowDefinition.from_stored(revision.definition)
    # before any workflow task has completed no task can have started; after, only a worker knows
    status = TaskStatus.PENDING if never_ran else TaskStatus.UNKNOWN
    return [TaskState(id=t.id, name=t.display_name, status=status) for t in definition.tasks]


async def execution_detail(
    *, session: AsyncSession, temporal: Client, execution_id: str, known: Outcome | None = None
) -> ExecutionDetail:
    """Return a run's status, every task's state, output and error (live from Temporal) with its index entry.

    Temporal and the database are read at the same time; the database's short reads end before Temporal answers
    is awaited (no transaction waits on Temporal), and Temporal's error, if any, is the one raised.

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    live, stored = await asyncio.gather(
        describe_execution(temporal, execution_id, known), _stored(session, execution_id), return_exceptions=True
    )
    if isinstance(live, BaseException):
        raise live
    if isinstance(stored, BaseException):
        raise stored
    record, approvals = stored
    if record is None and isinstance(live["index"], IndexMemo):
        record = await _repaired(session, temporal, execution_id, live["index"])
    answered = live["tasks_source"] == "worker"
    tasks = [TaskState.model_validate(t) for t in live["tasks"]]
    if not answered and record is not None:
        tasks = await _declared_tasks(session, record, never_ran=bool(live["never_ran"]))
    audit = await _audit(session, execution_id, tasks, approvals)
    await _end_reads(session)
    return ExecutionDetail(
        execution_id=execution_id,
        workflow_id=record.workflow_id if record else live["workflow_type"],
        revision=record.revision if record else None,
        parameters=record.parameters if record else None,
        tasks=_final_tasks(tasks, live["status"], live["finished_at"]),
        tasks_source="worker" if answered else "declared",
        status=live["status"],
        output=live["output"],
        error=live["error"],
        started_at=live["started_at"],
        finished_at=live["finished_at"],
        started_by=record.started_by if record else None,
        retry_of=record.retry_of if record else None,
        audit=audit,
        concurrency=live.get("concurrency"),
    )  # fmt: skip


async def _stored(session: AsyncSession, execution_id: str) -> tuple[Execution | None, list[ApprovalRecord]]:
    """A run's index row and its own approval audit, in one short read."""
    record = await repository.get_execution(session=session, execution_id=execution_id)
    approvals = await repository.list_approval_records(session=session, execution_id=execution_id)
    await _end_reads(session)
    return record, approvals


async def _audit(
    session: AsyncSession, execution_id: str, tasks: list[TaskState], approvals: list[ApprovalRecord]
) -> list[dict[str, Any]]:
    """The run's approval audit; a resumed run's kept approvals show the entries of the run that decided them."""
    entries = [(execution_id, record) for record in approvals]
    kept = [(t.reused_from, t.id) for t in tasks if t.reused_from is not None and t.type == "approval"]
    for source, task_id in kept:
        records = await repository.list_approval_records(session=session, execution_id=source)
        entries.extend((source, record) for record in records if record.task_id == task_id)
    return [
        {"task_id": a.task_id, "approver": a.approver, "decision": a.decision, "comment": a.comment, "via": a.via,
         "at": a.decided_at.isoformat(), **({"execution_id": source} if source != execution_id else {})}
        for source, a in entries
    ]  # fmt: skip
