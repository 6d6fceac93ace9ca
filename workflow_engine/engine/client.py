"""Client helpers: how the API and CLI start, inspect and reach Temporal runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.errors import NotFoundError, UnavailableError
from workflow_engine.settings import Settings

from .types import SA_WORKFLOW_NAME, SEARCH_ATTRIBUTES, STATUS_QUERY, RunInput

# A query needs a worker; without one, answer from what Temporal and the registry know.
QUERY_TIMEOUT = timedelta(seconds=2)

_STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


async def connect(settings: Settings) -> Client:
    """Connect to the Temporal frontend named by the settings."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=settings.temporal_tls,
            api_key=settings.temporal_api_key,
        )
    except RuntimeError as exc:
        raise UnavailableError(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from None


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on the namespace if missing (dev server and self-hosted clusters)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    kinds = {
        "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "BOOL": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: kinds[key.indexed_value_type.name]
        for key in SEARCH_ATTRIBUTES
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )


class TemporalConnection:
    """Connects on first use and keeps the client, so a process can start before Temporal is up."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        """Remember the settings; `client` lets callers share an existing connection."""
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        """Return the connected client, connecting now if needed."""
        async with self._lock:
            if self._client is None:
                self._client = await connect(self._settings)
            return self._client


async def start_execution(
    client: Client,
    *,
    workflow_name: str,
    execution_id: str,
    task_queue: str,
    run_input: RunInput,
    execution_timeout: timedelta | None = None,
) -> None:
    """Start one run of the interpreter under the workflow type `workflow_name`."""
    try:
        await client.start_workflow(
            workflow_name,
            run_input,
            id=execution_id,
            task_queue=task_queue,
            execution_timeout=execution_timeout,
            static_summary=f"{workflow_name} rev {run_input.revision}",
        )
    except RPCError as exc:
        raise _translate(exc, execution_id) from None


def _translate(exc: RPCError, execution_id: str) -> Exception:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(f"execution {execution_id!r} not found in Temporal")
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return UnavailableError(f"Temporal is unavailable: {exc.message}")
    return exc


async def describe_execution(client: Client, execution_id: str) -> dict[str, Any]:
    """Return status, task states, output and error of one run, live from Temporal."""
    handle = client.get_workflow_handle(execution_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        raise _translate(exc, execution_id) from None
    status = _STATUS_NAMES.get(description.status, "running") if description.status else "running"
    tasks: list[dict[str, Any]] = []
    try:
        state = await handle.query(STATUS_QUERY, rpc_timeout=QUERY_TIMEOUT)
        tasks = list(state.get("tasks", []))
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE,):
            raise _translate(exc, execution_id) from None
    except Exception:  # noqa: BLE001 - no worker to answer: still report what Temporal knows
        tasks = []
    if status == "running" and any(t.get("status") == "waiting_approval" for t in tasks):
        status = "waiting_approval"
    output: Any = None
    error: str | None = None
    if status == "completed":
        output = await handle.result()
    elif status == "failed":
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            error = getattr(cause, "message", None) or str(cause)
    return {
        "execution_id": execution_id,
        "workflow_type": description.workflow_type,
        "status": status,
        "tasks": tasks,
        "output": output,
        "error": error,
        "started_at": description.start_time.isoformat() if description.start_time else None,
        "finished_at": description.close_time.isoformat() if description.close_time else None,
    }


async def count_running(client: Client, workflow_name: str, recent_ids: list[str] | None = None) -> int:
    """Count running executions of a workflow.

    Visibility is eventually consistent, so runs started in the last moments (`recent_ids`, from the
    execution index) are also checked one by one.
    """
    query = f"{SA_WORKFLOW_NAME.name} = '{workflow_name}' AND ExecutionStatus = 'Running'"
    try:
        running = {execution.id async for execution in client.list_workflows(query, limit=1000)}
        for execution_id in recent_ids or []:
            if execution_id not in running:
                description = await client.get_workflow_handle(execution_id).describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    running.add(execution_id)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return len(running)
        raise UnavailableError(f"Temporal is unavailable: {exc.message}") from None
    return len(running)
