"""One mapping of Temporal failures to the error tree of `workflow_engine.errors`, and one RPC timeout."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.errors import ConflictError, EngineError, NotFoundError, UnavailableError, ValidationFailedError

# Every other call: long enough for a busy server, short enough that a hung one becomes a 503.
RPC_TIMEOUT = timedelta(seconds=10)


def temporal_error(client: Client, exc: RPCError, execution_id: str | None = None) -> EngineError:
    """Map a Temporal RPC failure to the error tree: 404, 409, 422 or 503, never a bare 500.

    Args:
        client: The client that made the call (its address goes into the message).
        exc: The failure.
        execution_id: The run the call was about, when there is one.

    Returns:
        The error to raise instead.
    """
    what = f"execution {execution_id!r}" if execution_id else "the request"
    status = exc.status
    if status == RPCStatusCode.NOT_FOUND and execution_id:  # otherwise e.g. a missing namespace: a setup problem
        return NotFoundError(f"{what} not found")
    if status in (RPCStatusCode.ALREADY_EXISTS, RPCStatusCode.FAILED_PRECONDITION):
        return ConflictError(f"{what} conflicts with its current state: {exc.message}")
    if status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.OUT_OF_RANGE):
        return ValidationFailedError(f"Temporal refused {what}: {exc.message}")
    address = client.service_client.config.target_host
    if status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
        return UnavailableError(
            f"Temporal at {address} is unavailable ({exc.message}); is the Temporal server running?"
        )
    return UnavailableError(f"Temporal at {address} could not answer ({status.name}: {exc.message})")
