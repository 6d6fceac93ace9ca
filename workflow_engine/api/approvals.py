"""What the approval routes and the console do: decide as the authenticated caller, and its own inbox."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from workflow_engine.dsl.model import ApprovalConfig
from workflow_engine.engine.approval_policy import check
from workflow_engine.engine.client.approvals import pending_approvals, send_decision, signing_key
from workflow_engine.engine.types import ApprovalDecision, TaskState
from workflow_engine.errors import UnavailableError
from workflow_engine.settings import Settings

from .auth import Caller

# Why the inbox leaves an approval out for a caller (the run would refuse their decision for these reasons).
HIDDEN_BECAUSE = frozenset({"not_allowed", "duplicate", "self_approval"})


async def decide(
    temporal: Client, settings: Settings, caller: Caller, execution_id: str, task_id: str, decision: str,
    comment: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Approve or reject a waiting task as `caller`, signed with the key the workers share; return the task's state.

    The JSON route and the console both decide through here, so a decision is checked and audited one way.

    Raises:
        NotFoundError: The run or task is unknown.
        ConflictError: The run is closed, the task is not waiting, or the caller already decided.
        ForbiddenError: The caller may not decide (not an approver, or started the run), or the key differs.
        UnavailableError: Temporal or every worker is unreachable, or the signing key cannot be read.
    """
    payload = {
        "task_id": task_id,
        "decision": decision,
        "approver": caller.user,
        "comment": comment,
        "roles": sorted(caller.roles),
    }
    try:
        key = signing_key(settings)
    except (OSError, ValueError) as exc:  # an unreadable key file is a setup problem, said plainly
        raise UnavailableError(f"cannot read the approval signing key: {exc}") from None
    return await send_decision(temporal, execution_id, payload, key=key)


def refusal_code(caller: Caller, item: dict[str, Any]) -> str | None:
    """Return the code the run would refuse `caller`'s approval of an inbox item with, or None when it would not.

    The run's own `check` decides, over the state and policy the run reported; an item without a policy (a
    worker from before policies were reported) is judged on its approvers list alone.
    """
    policy = item.get("policy") or {"approvers": item.get("approvers"), "required_approvals": 1}
    config = ApprovalConfig.model_validate({**policy, "message": item.get("message") or "Approval required"})
    state = TaskState.from_json(
        {"id": item["task_id"], "name": item.get("name") or item["task_id"], "type": "approval",
         "status": "waiting_approval", "approvals": item.get("approvals") or []}
    )  # fmt: skip
    decision = ApprovalDecision(
        task_id=item["task_id"], decision="approve", approver=caller.user, roles=sorted(caller.roles), verified=True
    )
    found = check(state, config, decision, item.get("started_by"))
    return None if found is None else found[0]


def decidable(caller: Caller, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the inbox items `caller` may decide now: listed (by name or role), not the starter, not decided yet."""
    return [item for item in items if refusal_code(caller, item) not in HIDDEN_BECAUSE]


async def inbox_of(temporal: Client, caller: Caller) -> list[dict[str, Any]]:
    """Return the approvals waiting for a decision that `caller` may give.

    Raises:
        UnavailableError: Temporal cannot be reached.
    """
    return decidable(caller, await pending_approvals(temporal))
