"""Console runs: the list with workflow and status filters, and a run's page (DAG, tasks, logs, Temporal link)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from workflow_engine.dsl import dependencies
from workflow_engine.dsl.model import NAME_PATTERN
from workflow_engine.engine.client.visibility import list_executions, visibility_query
from workflow_engine.engine.types import RunStatus
from workflow_engine.errors import NotFoundError, ValidationFailedError

from ..deps import DefinitionsDep, SessionDep, SettingsDep, TemporalDep
from ..logs import LogQuery, log_page
from ..runs import execution_detail
from ..schemas import ExecutionDetail
from .dag import render_svg
from .pages import ConsoleRoute, VisitorDep, render

router = APIRouter(route_class=ConsoleRoute)

LOG_LINES = 2000  # per page: the run page shows the first lines of each task; the API serves them all
STATUSES = [status.value for status in RunStatus]


@router.get("/runs")
async def runs(
    request: Request, who: VisitorDep, temporal: TemporalDep,
    workflow: str | None = Query(None, max_length=200), status: str | None = Query(None, max_length=40),
    page_token: str | None = Query(None, max_length=4096),
) -> Response:  # fmt: skip
    """List runs newest first, filtered by workflow and status (Temporal visibility, eventually consistent)."""
    workflow = (workflow or "").strip() or None
    if workflow is not None and not re.fullmatch(NAME_PATTERN, workflow):
        raise ValidationFailedError(f"{workflow!r} is not a workflow name")
    if status and status not in STATUSES:
        raise ValidationFailedError(f"status must be one of {', '.join(STATUSES)}")
    query = visibility_query(workflow_id=workflow, statuses=[RunStatus(status)] if status else ())
    page = await list_executions(temporal, query, limit=50, page_token=page_token)
    more = None
    if page.next_page_token:
        filters = urlencode({"workflow": workflow or "", "status": status or "", "page_token": page.next_page_token})
        more = f"/ui/runs?{filters}"
    context = {"items": page.items, "workflow": workflow or "", "status": status or "", "statuses": STATUSES,
               "more": more}  # fmt: skip
    return render(request, "runs.html", context, who=who)


def _pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, sort_keys=True, default=str)


async def _graph(
    session: SessionDep, definitions: DefinitionsDep, detail: ExecutionDetail
) -> dict[str, tuple[str, ...]]:
    """The run's task graph from its pinned revision; without one, its tasks in order (a chain)."""
    if detail.revision is not None:
        try:
            pinned = await definitions.revision(session, detail.workflow_id, detail.revision)
        except NotFoundError:  # the workflow was deleted since: draw what the run reports
            pass
        else:
            await session.commit()
            return dict(dependencies(pinned.definition))
    ids = [task.id for task in detail.tasks]
    return {task_id: ((ids[i - 1],) if i else ()) for i, task_id in enumerate(ids)}


@router.get("/runs/{execution_id}")
async def run(
    request: Request, execution_id: str, who: VisitorDep, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, definitions: DefinitionsDep,
) -> Response:  # fmt: skip
    """A run: its status, the task DAG coloured by status, each task's attempts, output, error and log lines."""
    detail = await execution_detail(session=session, temporal=temporal, execution_id=execution_id)
    graph = await _graph(session, definitions, detail)
    logs = await log_page(session=session, temporal=temporal, query=LogQuery(execution_id=execution_id,
                                                                               limit=LOG_LINES))  # fmt: skip
    await session.commit()
    lines: dict[str, list[str]] = {}
    for entry in logs.items:
        lines.setdefault(entry.task_id, []).append(f"#{entry.attempt} {entry.stream}: {entry.line}")
    statuses = {task.id: task.status.value for task in detail.tasks}
    names = {task.id: task.name for task in detail.tasks}
    waiting = [task.id for task in detail.tasks if task.status.value == "waiting_approval"]
    context = {
        "run": detail,
        "tasks": [{"task": task, "output": _pretty(task.output), "logs": lines.get(task.id, [])}
                  for task in detail.tasks],
        "dag": Markup(render_svg(graph, statuses, names)),  # built by dag.py, every label escaped
        "output": _pretty(detail.output),
        "parameters": _pretty(detail.parameters),
        "waiting": waiting,
        "refresh": not detail.status.closed,
        "truncated": logs.next_after is not None,
        "temporal_url": f"{settings.temporal_ui_base}/namespaces/{quote(settings.temporal_namespace)}"
                        f"/workflows/{quote(execution_id)}",
    }  # fmt: skip
    return render(request, "run.html", context, who=who)
