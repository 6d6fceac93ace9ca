"""Plain view helpers of the console's pages: durations in words, approval progress, run-state classes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workflow_engine.dsl.instants import parse_instant

from ..approvals import refusal_code
from ..auth import Caller

# Run and task statuses that no longer change: a page showing only these stops refreshing itself.
CLOSED = frozenset({"completed", "failed", "cancelled", "terminated", "timed_out", "skipped", "rejected"})
CLOSED |= {"compensated", "compensation_failed"}  # a failed or cancelled run's undone tasks
_WHY_NOT = {
    "duplicate": "you have already decided on this approval",
    "self_approval": "you started this run and it does not allow self-approval",
    "not_allowed": "you are not one of its approvers",
}
_AT_TIMEOUT = {"reject": "it is rejected", "approve": "it is approved", "fail": "the run fails"}


def in_words(seconds: float) -> str:
    """Return a duration as `2d 3h`, `4h 5m`, `6m 7s` or `8s`."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class InboxItem:
    """An inbox entry as a page shows it."""

    item: dict[str, Any]
    parameters: dict[str, Any] | None
    approved: int
    required: int
    time_left: str | None
    at_timeout: str | None
    why_not: str | None

    @property
    def key(self) -> str:
        """The `data-testid` of the entry."""
        return f"approval-{self.item['execution_id']}-{self.item['task_id']}"

    @property
    def progress(self) -> str:
        """`1 of 2 approvals`."""
        return f"{self.approved} of {self.required} approval{'s' if self.required != 1 else ''}"


def inbox_item(caller: Caller, item: dict[str, Any], parameters: dict[str, Any] | None, now: datetime) -> InboxItem:
    """Describe an inbox item for `caller`: progress, time left before the timeout and what happens then."""
    approvals = item.get("approvals") or []
    policy = item.get("policy") or {}
    time_left = at_timeout = None
    if item.get("deadline"):
        deadline = parse_instant(str(item["deadline"]))
        left = (deadline.replace(tzinfo=deadline.tzinfo or UTC) - now).total_seconds()
        time_left = f"{in_words(left)} left" if left > 0 else "timing out now"
        at_timeout = _AT_TIMEOUT.get(str(policy.get("on_timeout", "reject")))
    code = refusal_code(caller, item)
    return InboxItem(
        item=item,
        parameters=parameters,
        approved=sum(1 for given in approvals if given.get("decision") == "approve"),
        required=int(item.get("required_approvals") or 1),
        time_left=time_left,
        at_timeout=at_timeout,
        why_not=_WHY_NOT.get(code) if code is not None else None,
    )
