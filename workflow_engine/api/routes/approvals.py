"""Approval routes: decide on a waiting task, and the inbox of every pending approval."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from workflow_engine.api.auth import Approver
from workflow_engine.api.deps import SettingsDep, TemporalDep
from workflow_engine.api.errors import PROBLEM_RESPONSES
from workflow_engine.api.schemas import ApprovalInbox, ApprovalRequest, ApprovalResponse
from workflow_engine.engine.client.approvals import pending_approvals, send_decision, signing_key
from workflow_engine.errors import UnavailableError

router = APIRouter(tags=["approvals"])

_ERRORS = PROBLEM_RESPONSES


@router.post("/executions/{execution_id}/approvals/{task_id}", response_model=ApprovalResponse, responses=_ERRORS)
async def decide(
    execution_id: str, task_id: str, body: ApprovalRequest, caller: Approver, temporal: TemporalDep,
    settings: SettingsDep,
) -> ApprovalResponse:  # fmt: skip
    """Approve or reject a waiting task as the authenticated caller (never as a name from the body).

    The decision is signed with the key the workers share, so the run counts it as proven (`via: api`).
    """
    payload = {
        "task_id": task_id,
        "decision": body.decision,
        "approver": caller.user,
        "comment": body.comment,
        "roles": sorted(caller.roles),
    }
    try:
        key = signing_key(settings)
    except (OSError, ValueError) as exc:  # an unreadable key file is a setup problem, said plainly
        raise UnavailableError(f"cannot read the approval signing key: {exc}") from None
    task = await send_decision(temporal, execution_id, payload, key=key)
    return ApprovalResponse(execution_id=execution_id, task=task)


@router.get("/approvals", response_model=ApprovalInbox, responses=_ERRORS)
async def inbox(
    _caller: Approver,
    temporal: TemporalDep,
    status: Literal["pending"] = Query("pending", description="Only pending approvals are listed."),
) -> ApprovalInbox:
    """List every approval waiting for a decision, across all running executions."""
    return ApprovalInbox(items=await pending_approvals(temporal))
