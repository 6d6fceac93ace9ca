"""Console workflows: the registered definitions, one definition's YAML and revisions, and its run form."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_engine.dsl import DslError, WorkflowDefinition
from workflow_engine.storage import repository

from ..deps import DefinitionsDep, SessionDep, SettingsDep, TemporalDep
from ..routes.workflows import load_current
from ..runs import start_run
from .forms import fields, read
from .pages import ConsoleRoute, FormDep, Visitor, VisitorDep, redirect, render
from .session import Flash

router = APIRouter(route_class=ConsoleRoute)


@router.get("/workflows")
async def workflows(request: Request, who: VisitorDep, session: SessionDep) -> Response:
    """List the registered workflows with their current revision."""
    items = []
    for record in await repository.list_definitions(session=session, limit=1000):
        _, revision = await load_current(session, record.workflow_id)
        description = revision.definition.get("description")
        items.append({"id": record.workflow_id, "revision": revision.number, "description": description,
                      "updated_at": record.updated_at})  # fmt: skip
    await session.commit()
    return render(request, "workflows.html", {"items": items}, who=who)


async def _page(
    request: Request, who: Visitor, session: AsyncSession, workflow_id: str, *, typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200, flash: Flash | None = None,
) -> Response:  # fmt: skip
    record, revision = await load_current(session, workflow_id)
    definition = WorkflowDefinition.from_stored(revision.definition)
    revisions = await repository.list_revisions(session=session, workflow_id=workflow_id)
    await session.commit()
    context = {
        "workflow_id": workflow_id, "current": revision, "revisions": revisions, "definition": definition,
        "fields": fields(definition, typed, errors), "runs_url": f"/ui/runs?workflow={quote(workflow_id)}",
        "current_number": record.current_revision,
    }  # fmt: skip
    return render(request, "workflow.html", context, who=who, status_code=status_code, flash=flash)


@router.get("/workflows/{workflow_id}")
async def workflow(request: Request, workflow_id: str, who: VisitorDep, session: SessionDep) -> Response:
    """A workflow: its current YAML, every revision, and (for operators) the run form."""
    return await _page(request, who, session, workflow_id)


@router.post("/workflows/{workflow_id}/run")
async def run(
    request: Request, workflow_id: str, who: VisitorDep, form: FormDep, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, definitions: DefinitionsDep,
) -> Response:  # fmt: skip
    """Start a run of the current revision as the visitor; invalid parameters come back beside their fields."""
    who.need("operator")
    _, revision = await load_current(session, workflow_id)
    typed, params, errors = read(WorkflowDefinition.from_stored(revision.definition), form)
    if not errors:
        try:
            started = await start_run(
                session=session, temporal=temporal, settings=settings, definitions=definitions, user=who.caller.user,
                workflow_id=workflow_id, parameters=params,
            )  # fmt: skip
        except DslError as exc:  # the revision changed since the form was read: show its problems the same way
            errors = {issue.path.removeprefix("parameters."): issue.message for issue in exc.issues}
        else:
            opened = f"/ui/runs/{quote(started.execution_id)}"
            return redirect(request, opened, Flash(f"started {started.execution_id}"))
    return await _page(request, who, session, workflow_id, typed=typed, errors=errors, status_code=422,
                       flash=Flash("the run was not started: see the fields below", "error"))  # fmt: skip
