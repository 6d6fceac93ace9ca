"""Execution routes: start a run of a registered workflow and show a run's live state."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from workflow_engine.api.auth import Operator, Viewer
from workflow_engine.api.deps import SessionDep, SettingsDep, TemporalDep
from workflow_engine.api.registry import resolve_children
from workflow_engine.api.routes.workflows import load_current
from workflow_engine.api.schemas import ExecuteRequest, ExecuteResponse, ExecutionDetail, Problem, TaskState
from workflow_engine.dsl import WorkflowDefinition, resolve_params
from workflow_engine.engine import RunInput, describe_execution, start_execution
from workflow_engine.errors import NotFoundError
from workflow_engine.storage import repository

router = APIRouter(prefix="/executions", tags=["executions"])

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}}


@router.post("/workflows/{workflow_id}/execute", status_code=202, response_model=ExecuteResponse, responses=_ERRORS)
async def execute(
    workflow_id: str,
    caller: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: ExecuteRequest | None = None,
) -> ExecuteResponse:
    """Validate the parameters and start a run pinned to the current revision."""
    _, revision = await load_current(session, workflow_id)
    definition = WorkflowDefinition.model_validate(revision.definition)
    params = resolve_params(definition, body.parameters if body else {})
    execution_id = f"{workflow_id}-{uuid.uuid4().hex[:20]}"
    await repository.add_execution(
        session=session,
        execution_id=execution_id,
        workflow_id=workflow_id,
        revision=revision.number,
        parameters=params,
        started_by=caller.user,
    )
    await start_execution(
        temporal,
        workflow_name=workflow_id,
        execution_id=execution_id,
        task_queue=settings.temporal_task_queue,
        run_input=RunInput(
            definition=revision.definition,
            revision=revision.number,
            params=params,
            started_by=caller.user,
            children=await resolve_children(session=session, definition=definition),
        ),
        execution_timeout=definition.timeout,
    )
    await session.commit()
    return ExecuteResponse(
        execution_id=execution_id, workflow_id=workflow_id, revision=revision.number, status="running"
    )


@router.get("/{execution_id}", response_model=ExecutionDetail, responses=_ERRORS)
async def get_execution(
    execution_id: str, session: SessionDep, temporal: TemporalDep, _caller: Viewer
) -> ExecutionDetail:
    """Show a run's status, every task's state, its output and error, live from Temporal."""
    record = await repository.get_execution(session=session, execution_id=execution_id)
    try:
        live = await describe_execution(temporal, execution_id)
    except NotFoundError:
        raise NotFoundError(f"execution {execution_id!r} not found") from None
    tasks = live["tasks"]
    if not tasks and record is not None:
        tasks = await _declared_tasks(session, record.workflow_id, record.revision)
    return ExecutionDetail(
        execution_id=execution_id,
        workflow_id=record.workflow_id if record else live["workflow_type"],
        revision=record.revision if record else None,
        parameters=record.parameters if record else None,
        tasks=tasks,
        status=live["status"],
        output=live["output"],
        error=live["error"],
        started_at=live["started_at"],
        finished_at=live["finished_at"],
        started_by=record.started_by if record else None,
        audit=[
            {"task_id": a.task_id, "approver": a.approver, "decision": a.decision, "comment": a.comment,
             "via": a.via, "at": a.decided_at.isoformat()}
            for a in await repository.list_approval_records(session=session, execution_id=execution_id)
        ],
    )  # fmt: skip


async def _declared_tasks(session: SessionDep, workflow_id: str, number: int) -> list[TaskState]:
    """Tasks of the pinned revision, all pending: what to show before a worker has run the workflow."""
    revision = await repository.get_revision(session=session, workflow_id=workflow_id, number=number)
    if revision is None:
        return []
    definition = WorkflowDefinition.model_validate(revision.definition)
    return [TaskState(id=t.id, name=t.display_name, status="pending") for t in definition.tasks]
