"""Approval policy: who may decide, whether a decision is acceptable, and when a task is decided."""

from __future__ import annotations

from typing import Any

from workflow_engine.dsl.model import ApprovalConfig

from .types import TaskState, TaskStatus

DECISIONS = ("approve", "reject")


def check(
    state: TaskState | None, config: ApprovalConfig | None, decision: Any, started_by: str | None
) -> tuple[str, str] | None:
    """Return (code, reason) when `decision` cannot be accepted for this task state, else None.

    Codes: unknown_task, not_waiting, invalid_decision, unverified, not_allowed, duplicate, self_approval.
    An unverified decision (a signal or an update the API did not sign) names an approver nobody proved, so a
    task with an `approvers` list refuses it unless it sets `allow_unverified: true`.
    """
    task_id = getattr(decision, "task_id", None)
    if state is None or config is None:
        return "unknown_task", f"unknown approval task {task_id!r}"
    if state.status != TaskStatus.WAITING_APPROVAL:
        return "not_waiting", f"task {task_id!r} is not waiting for approval (it is {state.status.value})"
    if getattr(decision, "decision", None) not in DECISIONS:
        return "invalid_decision", f"decision must be one of {', '.join(DECISIONS)}"
    approver = getattr(decision, "approver", None)
    if not isinstance(approver, str) or not approver:
        return "invalid_decision", "approver is required"
    if getattr(decision, "verified", None) is False and config.approvers is not None and not config.allow_unverified:
        return "unverified", (
            f"task {task_id!r} lists its approvers, so a decision must come through the API, which proves who sends "
            "it; a signal or an unsigned update is not accepted (the task can set allow_unverified: true)"
        )
    if not allowed(config, approver, list(getattr(decision, "roles", []) or [])):
        return "not_allowed", f"{approver!r} is not an approver of task {task_id!r}"
    if any(given["approver"] == approver for given in state.approvals or ()):
        return "duplicate", f"{approver!r} has already decided on task {task_id!r}"
    if not config.allow_self_approval and started_by is not None and approver == started_by:
        return "self_approval", f"{approver!r} started this run and cannot approve it (allow_self_approval is false)"
    return None


def refusal(
    state: TaskState | None, config: ApprovalConfig | None, decision: Any, started_by: str | None
) -> str | None:
    """Return why `decision` cannot be accepted for this task state, or None when it can."""
    found = check(state, config, decision, started_by)
    return None if found is None else found[1]


def allowed(config: ApprovalConfig, approver: str, roles: list[str]) -> bool:
    """Listed users and `role:NAME` entries may decide; an unlisted task lets anyone decide."""
    if config.approvers is None:
        return True
    return approver in config.approvers or any(f"role:{role}" in config.approvers for role in roles)


def outcome(config: ApprovalConfig, state: TaskState) -> str | None:
    """Return `approve` once N approved, `reject` at the first rejection, else None (still waiting)."""
    approvals = state.approvals or []
    if any(given["decision"] == "reject" for given in approvals):
        return "reject"
    if sum(1 for given in approvals if given["decision"] == "approve") >= config.required_approvals:
        return "approve"
    return None
