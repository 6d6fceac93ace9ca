"""Client side of approvals: send a decision as an update, and list every waiting approval."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
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
from ..types import APPROVE_UPDATE, SA_WAITING_APPROVAL, STATUS_QUERY, TaskStatus
from .errors import RPC_TIMEOUT, temporal_call

__all__ = ["execution_approvals", "pending_approvals", "send_decision", "signing_key"]

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
# Asking each waiting run for its tasks: a run whose worker does not answer in time is left out of the inbox.
INBOX_QUERY_TIMEOUT = timedelta(seconds=5)
INBOX_QUERIES = 16
_NO_WORKER = "no worker answered the decision in time; is a worker running?"


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
    async with temporal_call(client, execution_id):
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise ConflictError(f"execution {execution_id!r} is {status}; approvals are only taken while it runs")
    return await _decide(client, handle, payload)


async def _decide(client: Client, handle: WorkflowHandle[Any, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Deliver a signed decision through the `approve` update; a refusal becomes the error it names."""
    async with temporal_call(client, handle.id, rpc_timeout=UPDATE_TIMEOUT):
        try:
            result: dict[str, Any] = await handle.execute_update(APPROVE_UPDATE, payload, rpc_timeout=UPDATE_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            raise _refusal(exc.cause) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:  # the SDK's form of DEADLINE_EXCEEDED for an update
            raise UnavailableError(_NO_WORKER) from None
        except RPCError as exc:
            if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE):
                raise UnavailableError(_NO_WORKER) from None
            raise
    return result


def _refusal(cause: BaseException) -> EngineError:
    """The error a run's refusal of a decision names (its `ApplicationError` type)."""
    if isinstance(cause, ApplicationError) and cause.type in _REFUSALS:
        return _REFUSALS[cause.type](cause.message)
    if isinstance(cause, ApplicationError) and cause.type == "invalid_signature":
        return ForbiddenError(
            f"the worker did not accept the API's signature ({cause.message}); the API and every worker must "
            "share APPROVAL_SIGNING_KEY (or APPROVAL_SIGNING_KEY_FILE)"
        )
    return ConflictError(f"decision refused: {getattr(cause, 'message', cause)}")


async def pending_approvals(client: Client, *, limit: int = 200) -> list[dict[str, Any]]:
    """Return every task waiting for approval across running executions (the inbox).

    Each item also carries the run's `started_by` and the task's `policy` (its approval config, without the
    message), as the run reports them, so a caller can tell who may decide with the run's own rules.

    Raises:
        UnavailableError: Temporal cannot be reached.
    """
    query = f"{SA_WAITING_APPROVAL.name} = true AND ExecutionStatus = 'Running'"
    async with temporal_call(client, rpc_timeout=None):  # every page has RPC_TIMEOUT
        executions = [
            execution async for execution in client.list_workflows(query, limit=limit, rpc_timeout=RPC_TIMEOUT)
        ]
    # asked INBOX_QUERIES at a time: runs whose worker is gone cost INBOX_QUERY_TIMEOUT together, not one by one
    gate = asyncio.Semaphore(INBOX_QUERIES)

    async def items_of(execution_id: str, workflow_type: str) -> list[dict[str, Any]]:
        async with gate:
            return await _waiting_items(client, execution_id, workflow_type)

    answers = await asyncio.gather(*(items_of(e.id, e.workflow_type) for e in executions))
    return [item for items in answers for item in items]


async def execution_approvals(client: Client, execution_id: str) -> list[dict[str, Any]]:
    """Return the inbox items of one run (its tasks waiting for approval); none when it is closed or silent.

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    handle = client.get_workflow_handle(execution_id)
    async with temporal_call(client, execution_id):
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    if description.status != WorkflowExecutionStatus.RUNNING:
        return []
    return await _waiting_items(client, execution_id, description.workflow_type)


async def _waiting_items(client: Client, execution_id: str, workflow_type: str) -> list[dict[str, Any]]:
    """The inbox items of one running run, from its worker; none when no worker answers now."""
    state = await _status(client, execution_id)
    policies = state.get("approval_policies") or {}
    return [
        {
            "execution_id": execution_id,
            "workflow_id": workflow_type,
            "task_id": task["id"],
            "name": task["name"],
            "message": task.get("message"),
            "approvers": task.get("approvers"),
            "required_approvals": task.get("required_approvals"),
            "approvals": task.get("approvals", []),
            "deadline": task.get("deadline"),
            "waiting_since": task.get("started_at"),
            "started_by": state.get("started_by"),
            "policy": policies.get(task["id"]),
        }
        for task in state.get("tasks", [])
        if task.get("status") == TaskStatus.WAITING_APPROVAL
    ]


async def _status(client: Client, execution_id: str) -> dict[str, Any]:
    """A running run's `status` query answer; empty when no worker answers now."""
    handle = client.get_workflow_handle(execution_id)
    async with temporal_call(client, execution_id, rpc_timeout=INBOX_QUERY_TIMEOUT):
        try:
            state: dict[str, Any] = await handle.query(STATUS_QUERY, rpc_timeout=INBOX_QUERY_TIMEOUT)
        except Exception:  # noqa: BLE001 - a run that cannot answer now is left out of this page
            return {}
    return state
