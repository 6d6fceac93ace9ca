"""Activities of keyed concurrency: ask a key's lock workflow for it (starting the lock), and check its holders."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from ..concurrency import (
    LOCK_ACQUIRE_ACTIVITY,
    LOCK_ACQUIRE_UPDATE,
    LOCK_CHECK_ACTIVITY,
    LOCK_WORKFLOW,
    AcquireInput,
    LockAnswer,
    LockState,
)


@activity.defn(name=LOCK_ACQUIRE_ACTIVITY)
async def acquire_key(ask: AcquireInput) -> LockAnswer:
    """Send the request to the key's lock in one update-with-start: the lock starts if no run of it is open.

    The lock answers idempotently by request id, so a retried attempt (or a replayed local activity) asking
    again gets the request's current answer, never a second place in the queue.
    """
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        LOCK_WORKFLOW,
        LockState(key=ask.key),
        id=ask.lock_id,
        task_queue=ask.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"concurrency key {ask.key}"[:200],
    )
    answer: LockAnswer = await activity.client().execute_update_with_start_workflow(
        LOCK_ACQUIRE_UPDATE, ask.request, start_workflow_operation=start, result_type=LockAnswer
    )
    return answer


@activity.defn(name=LOCK_CHECK_ACTIVITY)
async def closed_workflows(workflow_ids: list[str]) -> list[str]:
    """Return which of `workflow_ids` no longer run (closed, or gone): their holds on a key are void."""
    client = activity.client()
    closed = []
    for workflow_id in workflow_ids:
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            closed.append(workflow_id)
            continue
        if described.status != WorkflowExecutionStatus.RUNNING:
            closed.append(workflow_id)
    return closed
