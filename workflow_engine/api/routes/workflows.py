"""Registry routes: list registered workflows and show one."""

from __future__ import annotations

from fastapi import APIRouter, Query

from workflow_engine.api.auth import Viewer
from workflow_engine.api.deps import SessionDep
from workflow_engine.api.schemas import DB_INT_MAX, TaskSummary, WorkflowDetail, WorkflowList, WorkflowSummary
from workflow_engine.dsl import WorkflowDefinition, dependencies
from workflow_engine.errors import NotFoundError
from workflow_engine.storage import Definition, Revision, repository

router = APIRouter(prefix="/workflows", tags=["workflows"])


async def load_current(session: SessionDep, workflow_id: str) -> tuple[Definition, Revision]:
    """Return a definition and its current revision, or raise 404."""
    record = await repository.get_definition(session=session, workflow_id=workflow_id)
    revision = None
    if record is not None:
        revision = await repository.get_revision(
            session=session, workflow_id=workflow_id, number=record.current_revision
        )
    if record is None or revision is None:
        raise NotFoundError(f"workflow {workflow_id!r} is not registered")
    return record, revision


def task_summaries(definition: WorkflowDefinition) -> list[TaskSummary]:
    """Describe the main tasks of a definition with their resolved dependencies."""
    graph = dependencies(definition)
    return [
        TaskSummary(id=t.id, name=t.display_name, type=t.type, activity_type=getattr(t, "activity_type", None),
                    depends_on=list(graph[t.id]))
        for t in definition.tasks
    ]  # fmt: skip


def _summary(record: Definition, revision: Revision) -> WorkflowSummary:
    return WorkflowSummary(
        workflow_id=record.workflow_id,
        revision=revision.number,
        version=revision.definition.get("version"),
        description=revision.definition.get("description"),
        updated_at=record.updated_at.isoformat(),
    )


@router.get("", response_model=WorkflowList)
async def list_workflows(
    session: SessionDep,
    _caller: Viewer,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=DB_INT_MAX),
) -> WorkflowList:
    """List registered workflows with their current revision."""
    records = await repository.list_definitions(session=session, limit=limit, offset=offset)
    items = []
    for record in records:
        _, revision = await load_current(session, record.workflow_id)
        items.append(_summary(record, revision))
    return WorkflowList(items=items, total=await repository.count_definitions(session=session))


@router.get("/{workflow_id}", response_model=WorkflowDetail)
async def get_workflow(workflow_id: str, session: SessionDep, _caller: Viewer) -> WorkflowDetail:
    """Show a workflow's current revision: params, tasks and source."""
    record, revision = await load_current(session, workflow_id)
    definition = WorkflowDefinition.from_stored(revision.definition)
    tasks = task_summaries(definition)
    return WorkflowDetail(
        **_summary(record, revision).model_dump(),
        params={name: spec.model_dump(mode="json", exclude_none=True) for name, spec in definition.params.items()},
        tasks=tasks,
        source_path=revision.source_path,
        source_yaml=revision.source_yaml,
    )
