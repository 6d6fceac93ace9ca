"""Approval routes: decide on a waiting task, and the inbox of every pending approval."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from workflow_engine.api.approvals import decide as decide_as
from workflow_engine.api.approvals import inbox_of
from workflow_engine.api.auth import Approver
from workflow_engine.api.deps import SettingsDep, TemporalDep
from workflow_engine.api.errors import PROBLEM_RESPONSES
from workflow_engine.api.schemas import ApprovalInbox, ApprovalRequest, ApprovalResponse
from workflow_engine.engine.client.approvals import pending_approvals

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
    task = await decide_as(temporal, settings, caller, execution_id, task_id, body.decision, body.comment)
    return ApprovalResponse(execution_id=execution_id, task=task)


@router.get("/approvals", response_model=ApprovalInbox, responses=_ERRORS)
async def inbox(
    caller: Approver,
    temporal: TemporalDep,
    status: Literal["pending"] = Query("pending", description="Only pending approvals are listed."),
    mine: bool = Query(False, description="Only the approvals the caller may decide now (the console's inbox)."),
) -> ApprovalInbox:
    """List every approval waiting for a decision, across all running executions (`mine`: the caller's only)."""
    items = await inbox_of(temporal, caller) if mine else await pending_approvals(temporal)
    return ApprovalInbox(items=items)
