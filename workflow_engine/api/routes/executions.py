"""Execution routes: start, list, show, explain (history), read task logs, cancel, terminate and retry runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, BeforeValidator

from workflow_engine.api.auth import Operator, Viewer
from workflow_engine.api.deps import DefinitionsDep, SessionDep, SessionsDep, SettingsDep, TemporalDep
from workflow_engine.api.errors import PROBLEM_RESPONSES
from workflow_engine.api.logs import LogQuery, check_run, follow, log_page
from workflow_engine.api.runs import StartedRun, execution_detail, idempotency_key, retry_run, start_run
from workflow_engine.api.schemas import (
    DB_INT_MAX,
    EXECUTION_KEY_MAX,
    EXECUTION_KEY_PATTERN,
    LOG_ID_MAX,
    ExecuteResponse,
    ExecuteRunRequest,
    ExecutionDetail,
    ExecutionHistory,
    ExecutionList,
    ExecutionListItem,
    HistoryEntry,
    RetryRequest,
    RetryResponse,
    StopRequest,
    StopResponse,
    TaskLogPage,
)
from workflow_engine.dsl.instants import parse_instant
from workflow_engine.dsl.model import NAME_PATTERN
from workflow_engine.engine.client.executions import cancel_execution, terminate_execution, wait_closed
from workflow_engine.engine.client.history import execution_history
from workflow_engine.engine.client.visibility import list_executions, visibility_query
from workflow_engine.engine.types import RunStatus

router = APIRouter(prefix="/executions", tags=["executions"])

_ERRORS = PROBLEM_RESPONSES


def _iso_only(value: Any) -> Any:
    """Accept only ISO 8601 text: pydantic alone would also read `0.5` as a Unix timestamp."""
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 datetime") from None
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=EXECUTION_KEY_MAX,
        pattern=EXECUTION_KEY_PATTERN,
        description="Same as the body's `execution_id`: a repeat returns the existing run.",
    ),
]
WAIT_DEFAULT, WAIT_MAX = 30.0, 300.0


def _json(model: BaseModel, status_code: int) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code)


def _started(run: StartedRun) -> JSONResponse:
    """202 for a new run, 200 for the run a repeated idempotency key names."""
    model = ExecuteResponse(
        execution_id=run.execution_id, workflow_id=run.workflow_id, revision=run.revision, status=run.status
    )
    if run.retry_of is not None:
        model = RetryResponse(**model.model_dump(), retry_of=run.retry_of)
    return _json(model, 202 if run.created else 200)


async def _waited(session: SessionDep, temporal: TemporalDep, execution_id: str, seconds: float) -> JSONResponse:
    outcome = await wait_closed(temporal, execution_id, seconds)
    detail = await execution_detail(session=session, temporal=temporal, execution_id=execution_id, known=outcome)
    return _json(detail, 200 if outcome is not None else 202)


@router.post(
    "/workflows/{workflow_id}/execute",
    status_code=202,
    response_model=ExecuteResponse,
    responses={
        200: {
            "model": ExecuteResponse | ExecutionDetail,
            "description": "The run a repeated idempotency key names; with `wait=true`, the finished run's detail.",
        },
        202: {
            "model": ExecuteResponse | ExecutionDetail,
            "description": "Started; with `wait=true`, the detail of the run still going when `timeout` passed.",
        },
        **_ERRORS,
    },
)
async def execute(
    workflow_id: str,
    caller: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    definitions: DefinitionsDep,
    idempotency: IdempotencyKey = None,
    wait: Annotated[bool, Query(description="Answer when the run has finished (or `timeout` has passed).")] = False,
    wait_seconds: Annotated[
        float, Query(alias="timeout", gt=0, le=WAIT_MAX, description="Seconds `wait` waits at most.")
    ] = WAIT_DEFAULT,
    body: ExecuteRunRequest | None = None,
) -> JSONResponse:
    """Validate the parameters and start a run (202); a repeated idempotency key returns the existing run (200).

    With `wait=true` the answer is the run's full detail: 200 once it has finished, 202 when `timeout` passed.
    """
    body = body or ExecuteRunRequest()
    run = await start_run(
        session=session, temporal=temporal, settings=settings, definitions=definitions, user=caller.user,
        workflow_id=workflow_id, parameters=body.parameters, revision=body.revision,
        key=idempotency_key(body.execution_id, idempotency),
    )  # fmt: skip
    if wait:
        return await _waited(session, temporal, run.execution_id, wait_seconds)
    return _started(run)


@router.get("", response_model=ExecutionList, responses=_ERRORS)
async def list_runs(
    temporal: TemporalDep,
    _caller: Viewer,
    workflow_id: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only runs of this workflow.")] = None,
    status: Annotated[list[RunStatus] | None, Query(description="Only runs in these statuses.")] = None,
    started_after: Annotated[IsoDatetime | None, Query(description="ISO 8601; without a zone, UTC.")] = None,
    started_before: Annotated[IsoDatetime | None, Query(description="ISO 8601; without a zone, UTC.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str | None, Query(max_length=4096, description="From the previous page.")] = None,
) -> ExecutionList:
    """List top-level runs, newest first, from Temporal visibility (eventually consistent)."""
    query = visibility_query(
        workflow_id=workflow_id, statuses=status or (), started_after=started_after, started_before=started_before
    )
    page = await list_executions(temporal, query, limit=limit, page_token=page_token)
    return ExecutionList(
        items=[ExecutionListItem.model_validate(item) for item in page.items], next_page_token=page.next_page_token
    )


@router.get("/{execution_id}", response_model=ExecutionDetail, responses=_ERRORS)
async def get_execution(
    execution_id: str, session: SessionDep, temporal: TemporalDep, _caller: Viewer
) -> ExecutionDetail:
    """Show a run's status, every task's state, its output and error, live from Temporal."""
    return await execution_detail(session=session, temporal=temporal, execution_id=execution_id)


@router.get("/{execution_id}/history", response_model=ExecutionHistory, responses=_ERRORS)
async def history(
    execution_id: str,
    temporal: TemporalDep,
    _caller: Viewer,
    workflow_tasks: Annotated[bool, Query(description="Also list every workflow task's bookkeeping events.")] = False,
) -> ExecutionHistory:
    """Show the run's Temporal history as a readable timeline (no payloads)."""
    events = await execution_history(temporal, execution_id, workflow_tasks=workflow_tasks)
    return ExecutionHistory(execution_id=execution_id, events=[HistoryEntry.model_validate(e) for e in events])


@router.get(
    "/{execution_id}/logs",
    response_model=TaskLogPage,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With `follow=true`, Server-Sent Events."},
               **_ERRORS},
)  # fmt: skip
async def logs(
    execution_id: str,
    session: SessionDep,
    sessions: SessionsDep,
    temporal: TemporalDep,
    _caller: Viewer,
    task_id: Annotated[str | None, Query(max_length=255, description="Only this task's lines.")] = None,
    attempt: Annotated[int | None, Query(ge=1, le=DB_INT_MAX, description="Only this attempt's lines.")] = None,
    after: Annotated[
        int, Query(ge=0, le=LOG_ID_MAX, description="Only lines after this id (a previous line's `id`).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    follow_: Annotated[
        bool, Query(alias="follow", description="Stream lines as Server-Sent Events until the run closes.")
    ] = False,
) -> TaskLogPage | StreamingResponse:
    """Show what the run's task attempts printed, logged and failed with (secrets masked), oldest first."""
    query = LogQuery(execution_id=execution_id, task_id=task_id, attempt=attempt, after=after, limit=limit)
    if not follow_:
        return await log_page(session=session, temporal=temporal, query=query)
    await check_run(session=session, temporal=temporal, execution_id=execution_id)
    stream = follow(sessions=sessions, temporal=temporal, query=query)
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/{execution_id}/cancel", status_code=202, response_model=StopResponse, responses=_ERRORS)
async def cancel(
    execution_id: str, caller: Operator, temporal: TemporalDep, body: StopRequest | None = None
) -> StopResponse:
    """Ask a running run to cancel: its running tasks end `cancelled`, then the run does (409 if finished)."""
    reason = (body.reason if body else None) or "cancelled through the API"
    await cancel_execution(temporal, execution_id, f"{reason} (by {caller.user})")
    return StopResponse(execution_id=execution_id, status=RunStatus.RUNNING, detail="cancellation requested")


@router.post("/{execution_id}/terminate", response_model=StopResponse, responses=_ERRORS)
async def terminate(
    execution_id: str, caller: Operator, temporal: TemporalDep, body: StopRequest | None = None
) -> StopResponse:
    """End a running run at once, without cleanup (409 if it has finished)."""
    reason = (body.reason if body else None) or "terminated through the API"
    await terminate_execution(temporal, execution_id, f"{reason} (by {caller.user})")
    return StopResponse(execution_id=execution_id, status=RunStatus.TERMINATED, detail="terminated")


@router.post(
    "/{execution_id}/retry",
    status_code=202,
    response_model=RetryResponse,
    responses={200: {"model": RetryResponse, "description": "A repeat of an idempotency key."}, **_ERRORS},
)
async def retry(
    execution_id: str,
    caller: Operator,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    definitions: DefinitionsDep,
    idempotency: IdempotencyKey = None,
    body: RetryRequest | None = None,
) -> JSONResponse:
    """Start a new run of a closed one with its parameters, linked to it by `retry_of`.

    By default it resumes from the failure: tasks that completed (or were skipped, or approved) keep their
    status and output (`reused_from` names the run they come from) and do not run again; the rest runs.
    `mode: from_task` runs `task_id` and its descendants again, `restart` everything; `revision: latest` resumes
    on the current revision. 410 when Temporal no longer keeps the run (restart still works), 409 when the
    resuming revision lacks a task the run would keep.
    """
    body = body or RetryRequest()
    run = await retry_run(
        session=session, temporal=temporal, settings=settings, definitions=definitions, user=caller.user,
        execution_id=execution_id, key=idempotency, mode=body.mode, task_id=body.task_id,
        latest=body.revision == "latest",
    )  # fmt: skip
    return _started(run)
