"""Task logs of a run for the API: pages of lines, and a Server-Sent Events stream that follows them until it closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from workflow_engine.engine.client.executions import execution_status
from workflow_engine.storage import repository
from workflow_engine.storage.models import TaskLogLine

from .schemas import TaskLogEntry, TaskLogPage

POLL_SECONDS = 0.5
# Workers insert lines every half second: after the run closes, keep reading this long for its last ones.
CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class LogQuery:
    """Which lines of a run to read: one task (and attempt) or all, after a line id, at most `limit` a page."""

    execution_id: str
    task_id: str | None = None
    attempt: int | None = None
    after: int = 0
    limit: int = 1000


async def _lines(session: AsyncSession, query: LogQuery, after: int) -> list[TaskLogLine]:
    return await repository.list_task_log_lines(
        session=session, execution_id=query.execution_id, task_id=query.task_id, attempt=query.attempt,
        after=after, limit=query.limit,
    )  # fmt: skip


def _entry(row: TaskLogLine) -> TaskLogEntry:
    return TaskLogEntry(
        id=row.id, task_id=row.task_id, attempt=row.attempt, stream=row.stream, line=row.line, logged_at=row.logged_at
    )


async def log_page(*, session: AsyncSession, temporal: Client, query: LogQuery) -> TaskLogPage:
    """Return one page of a run's log lines (404 when neither the database nor Temporal knows the run)."""
    rows = await _lines(session, query, query.after)
    if not rows and query.after == 0:
        await check_run(session=session, temporal=temporal, execution_id=query.execution_id)
    next_after = rows[-1].id if len(rows) == query.limit else None
    return TaskLogPage(execution_id=query.execution_id, items=[_entry(row) for row in rows], next_after=next_after)


async def check_run(*, session: AsyncSession, temporal: Client, execution_id: str) -> None:
    """Raise NotFoundError when the run has no log lines and Temporal does not know it."""
    if not await repository.list_task_log_lines(session=session, execution_id=execution_id, limit=1):
        await execution_status(temporal, execution_id)


def _event(row: TaskLogLine) -> str:
    return f"id: {row.id}\nevent: log\ndata: {_entry(row).model_dump_json()}\n\n"


async def follow(
    *, sessions: async_sessionmaker[AsyncSession], temporal: Client, query: LogQuery
) -> AsyncIterator[str]:
    """Yield SSE events of new lines every POLL_SECONDS until the run has closed (and its last lines are read).

    Each line is an `event: log` whose `id` is its cursor (a client reconnects with `after`); the stream
    ends with an `event: end` naming the run's final status.
    """
    after, closed_at = query.after, None
    loop = asyncio.get_running_loop()
    while True:
        async with sessions() as session:
            rows = await _lines(session, query, after)
        for row in rows:
            yield _event(row)
        if rows:
            after = rows[-1].id
        if len(rows) == query.limit:
            continue  # more are waiting: read them before sleeping
        if closed_at is None:
            status = (await execution_status(temporal, query.execution_id)).status
            if status.closed:
                closed_at = loop.time()
        elif loop.time() - closed_at >= CLOSE_GRACE_SECONDS:
            yield f"event: end\ndata: {json.dumps({'status': status.value})}\n\n"
            return
        await asyncio.sleep(POLL_SECONDS)
