"""Workflow routes: register, validate, reload, list and show definitions, their revisions and graph, delete them."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from workflow_engine.api.auth import Admin, Viewer
from workflow_engine.api.deps import (
    ActivityTypesDep,
    DefinitionsDep,
    PythonModulesDep,
    SchedulesDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalDep,
)
from workflow_engine.api.errors import PROBLEM_RESPONSES
from workflow_engine.api.registration import (
    Registration,
    delete_registered,
    off_loop,
    register_directory,
    register_source,
)
from workflow_engine.api.schedules import desired_schedules
from workflow_engine.api.schemas import (
    DB_INT_MAX,
    DefinitionWarning,
    PlanRequest,
    PlanResponse,
    RegisterRequest,
    RegisterResponse,
    ReloadResponse,
    RevisionSummary,
    TaskSummary,
    ValidateResponse,
    WorkflowDetail,
    WorkflowList,
    WorkflowSummary,
)
from workflow_engine.dsl import DslError, Issue, WorkflowDefinition, dependencies
from workflow_engine.dsl.graph import mermaid
from workflow_engine.dsl.plan import plan_stored
from workflow_engine.dsl.prepared import outline
from workflow_engine.engine.client.executions import count_running
from workflow_engine.errors import ConflictError, NotFoundError
from workflow_engine.storage import Definition, Revision, repository
from workflow_engine.storage.models import utcnow

router = APIRouter(prefix="/workflows", tags=["workflows"])
# Runs younger than this may be missing from Temporal visibility; they are checked one by one.
VISIBILITY_LAG = timedelta(minutes=10)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": RegisterRequest.model_json_schema()},
        },
    }
}
_ERRORS = PROBLEM_RESPONSES


async def _source(request: Request) -> tuple[str, str]:
    """Return (yaml text, file name) from a YAML body or a JSON `{"yaml": ...}` body."""
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            body = RegisterRequest.model_validate(json.loads(raw))
        except ValueError as exc:
            raise DslError([Issue("body", f'expected {{"yaml": "..."}}: {exc}', None)]) from None
        return body.yaml, body.file or "<request>"
    try:
        return raw.decode("utf-8"), "<request>"
    except UnicodeDecodeError:
        raise DslError([Issue("body", "the YAML body is not UTF-8 text", None)]) from None


def _warning(notice: Issue) -> DefinitionWarning:
    return DefinitionWarning(
        path=notice.path, message=notice.message, file=notice.file, line=notice.line, column=notice.column
    )


def _registered(result: Registration) -> RegisterResponse:
    return RegisterResponse(
        workflow_id=result.workflow_id, revision=result.revision, created=result.created,
        warnings=[_warning(notice) for notice in result.warnings],
    )  # fmt: skip


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


@router.post("", response_model=RegisterResponse, status_code=201, openapi_extra=_BODY, responses=_ERRORS)
async def register(
    request: Request, response: Response, session: SessionDep, _caller: Admin, activity_types: ActivityTypesDep,
    python_modules: PythonModulesDep, schedules: SchedulesDep,
) -> RegisterResponse:  # fmt: skip
    """Register a definition: 201 for a new revision, 200 when the content is known, 422 with every problem.

    The registered content becomes current (also when it is an older revision's); 409 when concurrent
    registrations kept conflicting (try again). `warnings` lists what is allowed but likely a mistake (an
    unbounded schedule `overlap`), with file, line and column. Its `schedules:` are synced to Temporal
    Schedules before the answer (by the periodic sync when Temporal is down; after it when Temporal is slow).
    """
    text, file = await _source(request)
    result = await register_source(
        session=session, text=text, file=file, activity_types=activity_types, python_modules=python_modules
    )
    await session.close()
    await schedules.after_change(result.workflow_id)
    if not result.created:
        response.status_code = 200
    return _registered(result)


@router.post("/validate", response_model=ValidateResponse, openapi_extra=_BODY, responses=_ERRORS)
async def validate(
    request: Request, _caller: Viewer, activity_types: ActivityTypesDep, python_modules: PythonModulesDep
) -> ValidateResponse:
    """Check a definition without registering it (dry run); 422 lists every problem, `warnings` likely mistakes."""
    text, file = await _source(request)
    found = await off_loop(outline, text, file=file, activity_types=activity_types, python_modules=python_modules)
    return ValidateResponse(valid=True, workflow_id=found.name, tasks=[TaskSummary(**task) for task in found.tasks],
                            warnings=[_warning(notice) for notice in found.warnings])  # fmt: skip


@router.post("/reload", response_model=ReloadResponse, responses=_ERRORS)
async def reload(
    settings: SettingsDep, sessions: SessionsDep, _caller: Admin, activity_types: ActivityTypesDep,
    python_modules: PythonModulesDep, schedules: SchedulesDep,
) -> ReloadResponse:  # fmt: skip
    """Rescan the workflows directory now (the API also notices changes by itself).

    A file is registered only when its content changed since a scan last registered it, so an unchanged
    file never reverts a registration made through the API; 409 when a file kept conflicting (try again).
    """
    report = await register_directory(
        sessions=sessions,
        directory=settings.workflows_dir,
        activity_types=activity_types,
        python_modules=python_modules,
    )
    await schedules.after_change()
    if report.conflicts:
        raise ConflictError(f"reloading conflicted with concurrent changes to {', '.join(sorted(report.conflicts))}; "
                            "the other files were registered; try again")  # fmt: skip
    return ReloadResponse(
        registered=[_registered(r) for r in report.registered],
        invalid={path: [issue.as_dict() for issue in issues] for path, issues in report.invalid.items()},
    )  # fmt: skip


@router.get("/{workflow_id}/revisions", response_model=list[RevisionSummary], responses=_ERRORS)
async def revisions(workflow_id: str, session: SessionDep, _caller: Viewer) -> list[RevisionSummary]:
    """List every revision of a workflow, newest first."""
    record, _ = await load_current(session, workflow_id)
    return [
        RevisionSummary(revision=r.number, content_hash=r.content_hash, current=r.number == record.current_revision,
                        source_path=r.source_path, created_at=r.created_at.isoformat())
        for r in await repository.list_revisions(session=session, workflow_id=workflow_id)
    ]  # fmt: skip


@router.get(
    "/{workflow_id}/graph",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **_ERRORS},
)
async def graph(
    workflow_id: str, session: SessionDep, _caller: Viewer, revision: int | None = Query(None, ge=1, le=DB_INT_MAX)
) -> PlainTextResponse:
    """Return the task DAG as Mermaid text (paste into any Mermaid renderer)."""
    _, current = await load_current(session, workflow_id)
    chosen = current
    if revision is not None:
        found = await repository.get_revision(session=session, workflow_id=workflow_id, number=revision)
        if found is None:
            raise NotFoundError(f"workflow {workflow_id!r} has no revision {revision}")
        chosen = found
    return PlainTextResponse(mermaid(WorkflowDefinition.from_stored(chosen.definition)))


@router.post("/{workflow_id}/plan", response_model=PlanResponse, responses=_ERRORS)
async def plan(
    workflow_id: str,
    body: PlanRequest,
    session: SessionDep,
    definitions: DefinitionsDep,
    settings: SettingsDep,
    _caller: Viewer,
) -> PlanResponse:
    """What a run with these parameters would do, without starting one (like reading the definition: viewer).

    DAG levels, the tasks `when` skips (or the tasks whose outputs decide it), configs rendered as far as the
    parameters go, static `for_each` sizes and the worst-case duration; 422 lists invalid parameters as a start
    does. Child workflows are planned on their current revisions; one that is not registered has an unknown
    duration.
    """
    pinned = await definitions.revision(session, workflow_id, body.revision)
    try:
        children = await definitions.children(session, pinned.definition)
    except DslError:  # a start refuses this; a plan shows what it can
        children = {}
    await session.close()
    stored = {name: child.definition for name, child in children.items()}
    return await off_loop(plan_stored, json.dumps(pinned.stored), given=body.parameters, revision=pinned.number,
                          children=stored, task_queue=settings.temporal_task_queue)  # fmt: skip


@router.delete("/{workflow_id}", status_code=204, responses=_ERRORS)
async def delete(
    workflow_id: str, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, _caller: Admin,
    schedules: SchedulesDep, force: bool = False,
) -> Response:  # fmt: skip
    """Remove a workflow and its revisions (and its schedules); refused while runs are active unless `force=true`."""
    await load_current(session, workflow_id)
    had = [desired.id for desired in await desired_schedules(session, settings, workflow_id)]
    recent = await repository.recent_execution_ids(
        session=session, workflow_id=workflow_id, since=utcnow() - VISIBILITY_LAG
    )
    await session.rollback()  # no transaction (nor lock) stays open across the Temporal call
    running = await count_running(temporal, workflow_id, recent)
    if running and not force:
        raise ConflictError(f"workflow {workflow_id!r} has {running} running execution(s); use force=true")
    if not await delete_registered(session=session, workflow_id=workflow_id):
        raise NotFoundError(f"workflow {workflow_id!r} is not registered")
    await session.close()
    await schedules.after_change(workflow_id, known=had)
    return Response(status_code=204)


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
