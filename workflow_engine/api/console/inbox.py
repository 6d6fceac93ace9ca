"""Console inbox: the approvals the visitor may decide, one approval's page, and the decision form's POST."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from workflow_engine.engine.client.approvals import execution_approvals, pending_approvals
from workflow_engine.errors import EngineError, ValidationFailedError
from workflow_engine.storage import repository

from ..approvals import decidable, decide
from ..deps import SessionDep, SettingsDep, TemporalDep
from .pages import ConsoleRoute, FormDep, Visitor, VisitorDep, local_path, redirect, render
from .session import Flash
from .views import InboxItem, inbox_item

router = APIRouter(route_class=ConsoleRoute)

_DECISIONS = {"approve": "approved", "reject": "rejected"}
COMMENT_MAX = 4000  # as the API's ApprovalRequest


async def _items(session: AsyncSession, who: Visitor, items: list[dict[str, object]]) -> list[InboxItem]:
    """Each item with its run's parameters (from the execution index, in one short read)."""
    now = datetime.now(UTC)
    shown = []
    for item in items:
        record = await repository.get_execution(session=session, execution_id=str(item["execution_id"]))
        shown.append(inbox_item(who.caller, dict(item), record.parameters if record else None, now))
    await session.commit()  # no transaction stays open while the page renders
    return shown


@router.get("")
async def inbox(request: Request, who: VisitorDep, session: SessionDep, temporal: TemporalDep) -> Response:
    """List what the visitor may decide now; a viewer sees every waiting approval, read-only."""
    pending = await pending_approvals(temporal)
    items = decidable(who.caller, pending) if who.can("approver") else pending
    return render(request, "inbox.html", {"items": await _items(session, who, list(items))}, who=who)


async def _approval_page(
    request: Request, who: Visitor, session: AsyncSession, temporal: TemporalDep, execution_id: str, task_id: str,
    *, status_code: int = 200, flash: Flash | None = None,
) -> Response:  # fmt: skip
    waiting = [item for item in await execution_approvals(temporal, execution_id) if item["task_id"] == task_id]
    items = await _items(session, who, list(waiting))
    context = {"item": items[0] if items else None, "execution_id": execution_id, "task_id": task_id}
    return render(request, "approval.html", context, who=who, status_code=status_code, flash=flash)


@router.get("/approvals/{execution_id}/{task_id}")
async def approval(
    request: Request, execution_id: str, task_id: str, who: VisitorDep, session: SessionDep, temporal: TemporalDep
) -> Response:
    """One approval (the link a notification sends): its request and the decision form, or why it is not open."""
    return await _approval_page(request, who, session, temporal, execution_id, task_id)


@router.post("/approvals/{execution_id}/{task_id}")
async def decide_form(
    request: Request, execution_id: str, task_id: str, who: VisitorDep, form: FormDep, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep,
) -> Response:  # fmt: skip
    """Decide as the visitor through the API's own path; a refusal is shown on the approval's page."""
    who.need("approver")
    decision = str(form.get("decision") or "")
    comment = str(form.get("comment") or "").strip() or None
    try:
        if decision not in _DECISIONS:
            raise ValidationFailedError("choose approve or reject")
        if comment is not None and len(comment) > COMMENT_MAX:
            raise ValidationFailedError(f"the comment is longer than {COMMENT_MAX} characters")
        await decide(temporal, settings, who.caller, execution_id, task_id, decision, comment)
    except EngineError as exc:
        return await _approval_page(request, who, session, temporal, execution_id, task_id, status_code=exc.status_code,
                                    flash=Flash(exc.message, "error"))  # fmt: skip
    done = Flash(f"{_DECISIONS[decision]} {task_id} of {execution_id}")
    return redirect(request, local_path(str(form.get("next") or ""), "/ui"), done)
