"""Client helpers: how the API and CLI start, inspect, wait for, cancel and reach Temporal runs.

Every Temporal call runs in `temporal_call` (errors.py), so callers (the API routes) never see a raw `RPCError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.errors import ConflictError, GoneError, NotFoundError

from ..types import (
    FINAL_MEMO,
    SA_REVISION,
    SA_WAITING_APPROVAL,
    SA_WORKFLOW_NAME,
    STATUS_QUERY,
    RunInput,
    RunStatus,
    TaskStatus,
)
from .errors import RPC_TIMEOUT, temporal_call

# A query needs a worker; without one, answer from what Temporal and the registry know.
QUERY_TIMEOUT = timedelta(seconds=2)
# The memo entry of runs started through the API: what the execution index records (parameters are in the input).
INDEX_MEMO = "wfe_index"
# A history this short has had no workflow task completed: no worker has run the workflow, so no task has started.
_UNRUN_HISTORY_LENGTH = 3
_A = TypeVar("_A")
_B = TypeVar("_B")

# Temporal's execution status as ours (a run that continued as new goes on in its next run).
_RUN_STATUSES = {
    WorkflowExecutionStatus.RUNNING: RunStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.TERMINATED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.RUNNING,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}


class ExecutionExistsError(ConflictError):
    """A run with this execution id already exists (and has closed), so no new one was started."""


@dataclass(frozen=True)
class IndexMemo:
    """What the execution index records about a run started through the API, carried in the run's memo.

    With it (and the parameters in the run's input) a lost index row can be rebuilt from Temporal alone.
    """

    workflow_id: str
    revision: int
    started_by: str | None
    retry_of: str | None = None

    def as_memo(self) -> dict[str, Any]:
        """Return the memo of a run started with this entry."""
        return {INDEX_MEMO: asdict(self)}

    @classmethod
    def from_memo(cls, value: object) -> IndexMemo | None:
        """Read the entry from a decoded memo value; None when the run was not started through the API."""
        if not isinstance(value, dict):
            return None
        workflow_id, revision = value.get("workflow_id"), value.get("revision")
        started_by, retry_of = value.get("started_by"), value.get("retry_of")
        if not isinstance(workflow_id, str) or not isinstance(revision, int) or isinstance(revision, bool):
            return None
        return cls(
            workflow_id=workflow_id,
            revision=revision,
            started_by=started_by if isinstance(started_by, str) else None,
            retry_of=retry_of if isinstance(retry_of, str) else None,
        )


async def start_execution(
    client: Client,
    *,
    workflow_name: str,
    execution_id: str,
    task_queue: str,
    run_input: RunInput,
    execution_timeout: timedelta | None = None,
    reuse_existing: bool = False,
    index: IndexMemo | None = None,
) -> bool:
    """Start one run of the interpreter under the workflow type `workflow_name`.

    Args:
        client: The Temporal client.
        workflow_name: The workflow type (the YAML `name`).
        execution_id: The Temporal workflow id of the run.
        task_queue: The queue the workers poll.
        run_input: The pinned definition, revision and parameters.
        execution_timeout: The definition's overall timeout, if any.
        reuse_existing: Make the start idempotent: a running run with this id is kept (no second run),
            and an id whose run has closed is never reused (`ExecutionExistsError`).
        index: The execution index entry of a run started through the API, kept in the run's memo.

    Returns:
        Whether this call started the run (False: `reuse_existing` found a running run with this id).

    Raises:
        ExecutionExistsError: `reuse_existing` is set and a closed run already has this id.
        UnavailableError: Temporal cannot be reached.
    """
    policies: dict[str, Any] = {}
    if reuse_existing:
        policies = {
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        }
    async with temporal_call(client, execution_id):
        try:
            handle = await client.start_workflow(
                workflow_name,
                run_input,
                id=execution_id,
                task_queue=task_queue,
                execution_timeout=execution_timeout,
                static_summary=f"{workflow_name} rev {run_input.revision}",
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_WORKFLOW_NAME, workflow_name),
                        SearchAttributePair(SA_REVISION, run_input.revision),
                    ]
                ),
                memo=index.as_memo() if index is not None else None,
                rpc_timeout=RPC_TIMEOUT,
                **policies,
            )
        except WorkflowAlreadyStartedError:
            raise ExecutionExistsError(f"execution {execution_id!r} already exists and has finished") from None
    # The server says whether USE_EXISTING kept a running run; the SDK keeps its answer only privately.
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", True))


async def _describe(client: Client, execution_id: str) -> WorkflowExecutionDescription:
    async with temporal_call(client, execution_id):
        return await client.get_workflow_handle(execution_id).describe(rpc_timeout=RPC_TIMEOUT)


def _temporal_status(execution: WorkflowExecution) -> RunStatus:
    """Our status of a run from Temporal's alone (never `waiting_approval`)."""
    return _RUN_STATUSES.get(execution.status, RunStatus.RUNNING) if execution.status else RunStatus.RUNNING


def run_status(execution: WorkflowExecution) -> RunStatus:
    """Return our status of a run (`waiting_approval` from its search attribute)."""
    status = _temporal_status(execution)
    if status == RunStatus.RUNNING and execution.typed_search_attributes.get(SA_WAITING_APPROVAL):
        return RunStatus.WAITING_APPROVAL
    return status


@dataclass(frozen=True)
class RunDescription:
    """What Temporal says about a run without asking a worker."""

    workflow_type: str
    status: RunStatus
    revision: int | None
    index: IndexMemo | None = None


async def _index_memo(description: WorkflowExecutionDescription) -> IndexMemo | None:
    try:
        return IndexMemo.from_memo(await description.memo_value(INDEX_MEMO, None))
    except Exception:  # noqa: BLE001 - a memo we cannot read is no index entry, never a failed status
        return None


async def execution_status(client: Client, execution_id: str) -> RunDescription:
    """Return the workflow type, status, pinned revision (search attribute) and index memo of a run.

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    description = await _describe(client, execution_id)
    revision = description.typed_search_attributes.get(SA_REVISION)
    return RunDescription(description.workflow_type, run_status(description), revision, await _index_memo(description))


async def execution_input(client: Client, execution_id: str) -> RunInput:
    """Return the input a run started with (the first event of its latest run: continue-as-new keeps the params).

    Raises:
        NotFoundError: Temporal does not know the run.
        GoneError: The input was stored by reference and that row is gone.
        UnavailableError: Temporal cannot be reached.
    """
    handle = client.get_workflow_handle(execution_id)
    async with temporal_call(client, execution_id):
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=RPC_TIMEOUT):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            decoded = await client.data_converter.decode(payloads, [RunInput])
            if decoded and isinstance(decoded[0], RunInput):
                return decoded[0]
            break
    raise NotFoundError(f"execution {execution_id!r} has no readable input")


async def describe_execution(client: Client, execution_id: str, known: Outcome | None = None) -> dict[str, Any]:
    """Return status, task states, output and error of one run, live from Temporal.

    Describe and the status query go together (one round trip). The query is refused by Temporal itself when the
    run has closed, so no worker replays it; a closed run's task states come from the memo its interpreter wrote
    as it closed (FINAL_MEMO). Runs without one (terminated, timed out, too large, closed before the memo existed)
    are queried, which makes a worker replay them.

    `tasks_source` is `worker` when the states come from the interpreter (its memo or a worker's answer), else
    None (`tasks` is then empty); `never_ran` tells that no workflow task has completed yet, and `index` is the
    run's index memo. `known`: how the run ended, when a result call just told (`wait_closed`): then describe
    alone answers a run with its recorded states.
    """
    handle = client.get_workflow_handle(execution_id)
    if known is not None:
        description, answer = await _describe(client, execution_id), None
        if not _temporal_status(description).closed:  # not the run the result came from: read it as usual
            return await describe_execution(client, execution_id)
    else:
        description, answer = await _both(_describe(client, execution_id), _task_states(client, handle, open_only=True))
    status = _temporal_status(description)
    if answer is None and not status.closed:  # it closed between the two calls
        description = await _describe(client, execution_id)
        status = _temporal_status(description)
    if not status.closed:
        tasks, tasks_source, concurrency = answer or ([], None, None)
        output, error = None, None
    elif (recorded := await _recorded_states(description)) is not None:
        tasks, tasks_source, concurrency = recorded, "worker", None
        output, error = await _outcome(client, handle, status, known)
    else:
        (tasks, tasks_source, _), (output, error) = await _both(
            _replayed_states(client, handle), _outcome(client, handle, status, known)
        )
        concurrency = None
    if status == RunStatus.RUNNING and any(t.get("status") == TaskStatus.WAITING_APPROVAL for t in tasks):
        status = RunStatus.WAITING_APPROVAL
    return {
        "execution_id": execution_id,
        "workflow_type": description.workflow_type,
        "status": status,
        "tasks": tasks,
        "output": output,
        "error": error,
        "started_at": description.start_time.isoformat() if description.start_time else None,
        "finished_at": description.close_time.isoformat() if description.close_time else None,
        "tasks_source": tasks_source,
        "concurrency": concurrency,
        "never_ran": description.history_length <= _UNRUN_HISTORY_LENGTH,
        "index": await _index_memo(description),
    }


async def _both(first: Awaitable[_A], second: Awaitable[_B]) -> tuple[_A, _B]:
    """Await two calls at once; when one fails the other is cancelled and the failure raised, the first's first."""
    tasks = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await tasks[0], await tasks[1]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved: a failure of the other call is not logged as never retrieved


async def recorded_states(client: Client, execution_id: str) -> list[dict[str, Any]] | None:
    """The final task states a closed run's interpreter recorded in its memo; None when it has none (or runs).

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    description = await _describe(client, execution_id)
    return await _recorded_states(description) if _temporal_status(description).closed else None


async def _recorded_states(description: WorkflowExecutionDescription) -> list[dict[str, Any]] | None:
    """The task states a closed run's interpreter recorded in its memo; None when it has none we can read."""
    try:
        value = await description.memo_value(FINAL_MEMO, None)
    except Exception:  # noqa: BLE001 - e.g. a memo stored by reference whose row is gone: ask a worker instead
        return None
    tasks = value.get("tasks") if isinstance(value, dict) else None
    return [task for task in tasks if isinstance(task, dict)] if isinstance(tasks, list) else None


async def _replayed_states(client: Client, handle: WorkflowHandle[Any, Any]) -> _States:
    """Ask a worker for a closed run's task states (it replays the run to answer)."""
    return await _task_states(client, handle) or ([], None, None)


# the status query's task states, who answered (`worker` or None) and the run's `concurrency` keys (waited for, held)
_States = tuple[list[dict[str, Any]], str | None, dict[str, Any] | None]


async def _task_states(client: Client, handle: WorkflowHandle[Any, Any], *, open_only: bool = False) -> _States | None:
    """Ask a worker for the task states (the status query); ([], None, None) when no worker answers in time.

    With `open_only`, Temporal refuses the query of a closed run without passing it to a worker (None).
    """
    reject = QueryRejectCondition.NOT_OPEN if open_only else None
    async with temporal_call(client, handle.id, rpc_timeout=QUERY_TIMEOUT):
        try:
            state = await handle.query(STATUS_QUERY, rpc_timeout=QUERY_TIMEOUT, reject_condition=reject)
        except WorkflowQueryRejectedError:
            return None
        except RPCError as exc:
            if exc.status == RPCStatusCode.UNAVAILABLE:
                raise
            return [], None, None
        except Exception:  # noqa: BLE001 - no worker to answer: still report what Temporal knows
            return [], None, None
    concurrency = state.get("concurrency")
    return list(state.get("tasks", [])), "worker", concurrency if isinstance(concurrency, dict) else None


async def _outcome(
    client: Client, handle: WorkflowHandle[Any, Any], status: RunStatus, known: Outcome | None = None
) -> tuple[Any, str | None]:
    """Return (output, error): the output of a completed run, the error of a failed one, else neither.

    `known` is what a result call already answered (no second call then).
    """
    if status not in (RunStatus.COMPLETED, RunStatus.FAILED):
        return None, None
    if known is None:
        async with temporal_call(client, handle.id):
            known = await _ended(handle.result(rpc_timeout=RPC_TIMEOUT))
    if status == RunStatus.COMPLETED:
        return known.output, known.error
    return None, known.error


@dataclass(frozen=True)
class Outcome:
    """How a closed run ended, as its result call answered: its output, or the error it failed with."""

    output: Any = None
    error: str | None = None


async def _ended(result: Awaitable[Any]) -> Outcome:
    """Await a run's result call as its Outcome: the output, or the error it failed with."""
    try:
        return Outcome(output=await result)
    except WorkflowFailureError as exc:  # failed, cancelled, terminated or timed out
        cause = exc.cause
        return Outcome(error=getattr(cause, "message", None) or str(cause))
    except GoneError as exc:  # e.g. the output was stored by reference and that row was deleted
        return Outcome(error=f"the output is no longer available: {exc.message}")


async def wait_closed(client: Client, execution_id: str, seconds: float) -> Outcome | None:
    """Wait until a run closes (following continue-as-new), at most `seconds`; None when it has not closed.

    Raises:
        NotFoundError: Temporal does not know the run.
        UnavailableError: Temporal cannot be reached.
    """
    handle = client.get_workflow_handle(execution_id)
    async with temporal_call(client, execution_id, rpc_timeout=None):  # the wait has a limit of its own
        try:
            return await asyncio.wait_for(_ended(handle.result()), seconds)
        except TimeoutError:
            return None


async def _stop(client: Client, execution_id: str, outcome: RunStatus, stop: Callable[[], Awaitable[None]]) -> None:
    """Make the `stop` call (cancel or terminate) that ends a run `outcome`, if it is running."""
    status = run_status(await _describe(client, execution_id))
    if status.closed:
        raise ConflictError(f"execution {execution_id!r} is {status}; only a running execution can be {outcome}")
    async with temporal_call(client, execution_id):
        try:
            await stop()
        except RPCError as exc:
            # Temporal answers NOT_FOUND ("already completed") when the run closed between our check and the call.
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise ConflictError(
                f"execution {execution_id!r} has finished; only a running execution can be {outcome}"
            ) from None


async def cancel_execution(client: Client, execution_id: str, reason: str) -> None:
    """Ask a running run to cancel: the interpreter cancels its running tasks and the run ends `cancelled`.

    Raises:
        NotFoundError: Temporal does not know the run.
        ConflictError: The run has already finished.
        UnavailableError: Temporal cannot be reached.
    """
    handle = client.get_workflow_handle(execution_id)
    await _stop(
        client, execution_id, RunStatus.CANCELLED, lambda: handle.cancel(reason=reason, rpc_timeout=RPC_TIMEOUT)
    )


async def terminate_execution(client: Client, execution_id: str, reason: str) -> None:
    """End a running run at once, without giving the workflow a chance to clean up.

    Raises:
        NotFoundError: Temporal does not know the run.
        ConflictError: The run has already finished.
        UnavailableError: Temporal cannot be reached.
    """
    handle = client.get_workflow_handle(execution_id)
    await _stop(
        client, execution_id, RunStatus.TERMINATED, lambda: handle.terminate(reason=reason, rpc_timeout=RPC_TIMEOUT)
    )


async def count_running(client: Client, workflow_name: str, recent_ids: list[str] | None = None) -> int:
    """Count every running execution of a workflow.

    Visibility is eventually consistent, so runs started in the last moments (`recent_ids`, from the
    execution index) are also checked one by one; one that Temporal does not know is not running.

    Raises:
        UnavailableError: Temporal cannot be reached.
    """
    query = f"{SA_WORKFLOW_NAME.name} = '{workflow_name}' AND ExecutionStatus = 'Running'"
    async with temporal_call(client, rpc_timeout=None):  # every page has RPC_TIMEOUT, however many pages there are
        running = {execution.id async for execution in client.list_workflows(query, rpc_timeout=RPC_TIMEOUT)}
    for execution_id in recent_ids or []:
        if execution_id not in running and await _is_running(client, execution_id):
            running.add(execution_id)
    return len(running)


async def _is_running(client: Client, execution_id: str) -> bool:
    try:
        description = await _describe(client, execution_id)
    except NotFoundError:  # never started (a crash before the start) or removed by retention
        return False
    return description.status == WorkflowExecutionStatus.RUNNING
