"""One mapping of Temporal failures to the error tree of `workflow_engine.errors`, one RPC timeout, one way to call.

Every call the client helpers make to Temporal runs inside `temporal_call`, so that callers (the API routes,
the CLI) never see a raw `RPCError`, an SDK timeout or a hung call: they see a 404, 409, 422 or 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from workflow_engine.errors import ConflictError, EngineError, NotFoundError, UnavailableError, ValidationFailedError

# Every other call: long enough for a busy server, short enough that a hung one becomes a 503.
RPC_TIMEOUT = timedelta(seconds=10)
# What a block of calls gets on top of its RPC timeout before it counts as hung: the RPC's own deadline (and
# the SDK's retries of an unreachable server) answer first, with their more precise message.
_GRACE = timedelta(seconds=5)


def temporal_error(
    client: Client, exc: RPCError, execution_id: str | None = None, *, subject: str | None = None
) -> EngineError:
    """Map a Temporal RPC failure to the error tree: 404, 409, 422 or 503, never a bare 500.

    Args:
        client: The client that made the call (its address goes into the message).
        exc: The failure.
        execution_id: The run the call was about, when there is one.
        subject: What else the call was about (`schedule 'x'`), for the message; a NOT_FOUND is then a 404.

    Returns:
        The error to raise instead.
    """
    what = subject or (f"execution {execution_id!r}" if execution_id else "the request")
    status = exc.status
    if status == RPCStatusCode.NOT_FOUND and (
        execution_id or subject
    ):  # otherwise e.g. a missing namespace: a setup problem
        return NotFoundError(f"{what} not found")
    if status in (RPCStatusCode.ALREADY_EXISTS, RPCStatusCode.FAILED_PRECONDITION):
        return ConflictError(f"{what} conflicts with its current state: {exc.message}")
    if status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.OUT_OF_RANGE):
        return ValidationFailedError(f"Temporal refused {what}: {exc.message}")
    address = _address(client)
    if status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
        return UnavailableError(
            f"Temporal at {address} is unavailable ({exc.message}); is the Temporal server running?"
        )
    return UnavailableError(f"Temporal at {address} could not answer ({status.name}: {exc.message})")


def _address(client: Client) -> str:
    return client.service_client.config.target_host


@asynccontextmanager
async def temporal_call(
    client: Client,
    execution_id: str | None = None,
    *,
    subject: str | None = None,
    rpc_timeout: timedelta | None = RPC_TIMEOUT,
) -> AsyncIterator[None]:
    """Make Temporal calls in this block: every failure leaves it as an error of the tree (`temporal_error`).

    An exception the block catches first stays the block's; an `RPCError` it re-raises is mapped here.

    Args:
        client: The client the block calls.
        execution_id: The run the calls are about, when there is one (a NOT_FOUND is then a 404).
        subject: What else the calls are about (`schedule 'x'`), named in messages instead (a NOT_FOUND is a 404).
        rpc_timeout: The RPC timeout the block's calls carry; the block as a whole may take that and a grace,
            then it counts as hung (503). None: no limit of the block's own (a wait with a limit of its own, or
            a paged listing whose every page carries RPC_TIMEOUT).

    Raises:
        NotFoundError, ConflictError, ValidationFailedError, UnavailableError: What the failure maps to.
    """
    seconds = (rpc_timeout + _GRACE).total_seconds() if rpc_timeout is not None else None
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except RPCError as exc:
        raise temporal_error(client, exc, execution_id, subject=subject) from None
    except RPCTimeoutOrCancelledError:
        raise UnavailableError(f"Temporal at {_address(client)} did not answer in time") from None
    except TimeoutError:
        if not deadline.expired():
            raise
        raise UnavailableError(
            f"Temporal at {_address(client)} did not answer within {seconds:g} s; is the Temporal server running?"
        ) from None
