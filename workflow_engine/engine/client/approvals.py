"""Client side of approvals: send a decision as an update, and list every waiting approval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.errors import (
    ConflictError,
    EngineError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    ValidationFailedError,
)

from ..signing import sign, signing_key
from .errors import temporal_error

__all__ = ["pending_approvals", "send_decision", "signing_key"]
from ..types import APPROVE_UPDATE, SA_WAITING_APPROVAL, STATUS_QUERY

_REFUSALS: dict[str, type[EngineError]] = {
    "unknown_task": NotFoundError,
    "not_waiting": ConflictError,
    "duplicate": ConflictError,
    "invalid_decision": ValidationFailedError,
    "not_allowed": ForbiddenError,
    "self_approval": ForbiddenError,
    "unverified": ForbiddenError,
}
UPDATE_TIMEOUT = timedelta(seconds=15)


async def send_decision(client: Client, execution_id: str, payload: dict[str, Any], *, key: bytes) -> dict[str, Any]:
    """Sign a decision the API has authenticated, deliver it through the `approve` update, return the task's state.

    Raises:
        NotFoundError: The run or task is unknown.
        ConflictError: The run is closed, the task is not waiting, or the approver already decided.
        ForbiddenError: The approver may not decide, or the workers do not share the API's signing key.
        UnavailableError: Temporal or every worker is unreachable.
    """
    payload = sign(key, {**payload, "execution_id": execution_id})
    handle = client.get_workflow_handle(execution_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"execution {execution_id!r} not found") from None
        raise UnavailableError(f"Temporal is unavailable: {exc.message}") from None
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise ConflictError(f"execution {execution_id!r} is {status}; approvals are only taken while it runs")
    try:
        result: dict[str, Any] = await handle.execute_update(APPROVE_UPDATE, payload, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type in _REFUSALS:
            raise _REFUSALS[cause.type](cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == "invalid_signature":
            raise ForbiddenError(
                f"the worker did not accept the API's signature ({cause.message}); the API and every worker must "
                "share APPROVAL_SIGNING_KEY (or APPROVAL_SIGNING_KEY_FILE)"
            ) from None
        raise ConflictError(f"decision refused: {getattr(cause, 'message', cause)}") from None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE):
            raise UnavailableError("no worker answered the decision in time; is a worker running?") from None
        raise temporal_error(client, exc, execution_id) from None
    return result


async def pending_approvals(client: Client, *, limit: int = 200) -> list[dict[str, Any]]:
    """Return every task waiting for approval across running executions (the inbox)."""
    query = f"{SA_WAITING_APPROVAL.name} = true AND ExecutionStatus = 'Running'"
    inbox: list[dict[str, Any]] = []
    try:
        executions = [execution async for execution in client.list_workflows(query, limit=limit)]
    except RPCError as exc:
        raise temporal_error(client, exc) from None
    for execution in executions:
        try:
            state = await client.get_workflow_handle(execution.id).query(STATUS_QUERY, rpc_timeout=timedelta(seconds=5))
        except Exception:  # noqa: BLE001 - a run that cannot answer now is left out of this page
            continue
        for task in state.get("tasks", []):
            if task.get("status") == "waiting_approval":
                inbox.append(
                    {
                        "execution_id": execution.id,
                        "workflow_id": execution.workflow_type,
                        "task_id": task["id"],
                        "name": task["name"],
                        "message": task.get("message"),
                        "approvers": task.get("approvers"),
                        "required_approvals": task.get("required_approvals"),
                        "approvals": task.get("approvals", []),
                        "deadline": task.get("deadline"),
                        "waiting_since": task.get("started_at"),
                    }
                )
    return inbox
