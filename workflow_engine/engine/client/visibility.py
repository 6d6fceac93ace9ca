"""Listing executions from Temporal visibility: filters become a visibility query, pages an opaque token.

Only top-level runs are listed (`ParentWorkflowId IS NULL`): fan-out batches and the child runs of
`workflow` tasks are parts of their parent's run, whose `tasks` already show them. Runs that continued
as new are listed once, by their latest run (the closed `ContinuedAsNew` links are left out).
Visibility is eventually consistent: a run started a moment ago may not be listed yet.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution

from workflow_engine.errors import ValidationFailedError

from ..types import SA_REVISION, SA_WAITING_APPROVAL, SA_WORKFLOW_NAME, RunStatus
from .errors import RPC_TIMEOUT, temporal_call
from .executions import run_status

_RUNNING = "ExecutionStatus = 'Running'"
_WAITING = f"{SA_WAITING_APPROVAL.name} = true"
_NOT_WAITING = f"({SA_WAITING_APPROVAL.name} IS NULL OR {SA_WAITING_APPROVAL.name} = false)"
# Our run statuses as visibility conditions.
STATUS_FILTERS = {
    RunStatus.RUNNING: f"({_RUNNING} AND {_NOT_WAITING})",
    RunStatus.WAITING_APPROVAL: f"({_RUNNING} AND {_WAITING})",
    RunStatus.COMPLETED: "ExecutionStatus = 'Completed'",
    RunStatus.FAILED: "ExecutionStatus = 'Failed'",
    RunStatus.CANCELLED: "ExecutionStatus = 'Canceled'",
    RunStatus.TERMINATED: "ExecutionStatus = 'Terminated'",
    RunStatus.TIMED_OUT: "ExecutionStatus = 'TimedOut'",
}
# Page tokens carry a checksum so that a mangled or invented token is a 422, not an error inside Temporal.
_CHECK = 8
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ExecutionPage:
    """One page of executions and the token of the next page (None on the last one)."""

    items: list[dict[str, Any]]
    next_page_token: str | None


def _timestamp(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_query(
    *,
    workflow_id: str | None = None,
    statuses: Sequence[RunStatus] = (),
    started_after: datetime | None = None,
    started_before: datetime | None = None,
) -> str:
    """Build the visibility query for the filters of `GET /executions`.

    Args:
        workflow_id: Only runs of this registered workflow (the `WfeWorkflowName` search attribute).
        statuses: Only runs in one of these statuses (any status when empty).
        started_after: Only runs started at or after this moment (naive means UTC).
        started_before: Only runs started before this moment (naive means UTC).

    Returns:
        A Temporal list filter.
    """
    conditions = ["ParentWorkflowId IS NULL", "ExecutionStatus != 'ContinuedAsNew'"]
    if workflow_id is not None:
        conditions.append(f"{SA_WORKFLOW_NAME.name} = {_quoted(workflow_id)}")
    if statuses:
        conditions.append("(" + " OR ".join(STATUS_FILTERS[s] for s in dict.fromkeys(statuses)) + ")")
    if started_after is not None:
        conditions.append(f"StartTime >= '{_timestamp(started_after)}'")
    if started_before is not None:
        conditions.append(f"StartTime < '{_timestamp(started_before)}'")
    return " AND ".join(conditions)


def encode_token(raw: bytes) -> str:
    """Wrap Temporal's next page token: base64url of a short checksum and the token."""
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:_CHECK] + raw).decode().rstrip("=")


def decode_token(token: str | None) -> bytes | None:
    """Unwrap a page token; anything we did not hand out is refused here, before Temporal sees it.

    Raises:
        ValidationFailedError: The token is not one of ours.
    """
    if not token:
        return None
    data = b""
    if _TOKEN.fullmatch(token):
        with contextlib.suppress(binascii.Error, ValueError):
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    raw = data[_CHECK:]
    if len(data) <= _CHECK or hashlib.sha256(raw).digest()[:_CHECK] != data[:_CHECK]:
        raise ValidationFailedError(
            "page_token is not a token this API handed out",
            details=[{"path": "page_token", "message": "not a valid page token"}],
        )
    return raw


def _item(execution: WorkflowExecution) -> dict[str, Any]:
    attributes = execution.typed_search_attributes
    return {
        "execution_id": execution.id,
        "workflow_id": attributes.get(SA_WORKFLOW_NAME) or execution.workflow_type,
        "revision": attributes.get(SA_REVISION),
        "status": run_status(execution),
        "started_at": execution.start_time.isoformat(),
        "finished_at": execution.close_time.isoformat() if execution.close_time else None,
    }


async def list_executions(client: Client, query: str, *, limit: int, page_token: str | None = None) -> ExecutionPage:
    """Return one page of executions matching a visibility query, newest first.

    Args:
        client: The Temporal client.
        query: A filter from `visibility_query`.
        limit: The page size.
        page_token: The `next_page_token` of the previous page, if any.

    Raises:
        ValidationFailedError: The page token is not one we handed out.
        UnavailableError: Temporal cannot be reached.
    """
    pages = client.list_workflows(
        query, page_size=limit, next_page_token=decode_token(page_token), rpc_timeout=RPC_TIMEOUT
    )
    async with temporal_call(client):
        await pages.fetch_next_page(page_size=limit)
    token = pages.next_page_token
    return ExecutionPage(
        items=[_item(execution) for execution in pages.current_page or []],
        next_page_token=encode_token(token) if token else None,
    )
