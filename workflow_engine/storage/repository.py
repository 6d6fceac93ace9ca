"""Repository functions over the registry; they flush but never commit (callers own the unit of work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ApprovalRecord, Base, Definition, Execution, Revision, StoredPayload, TaskLogLine, utcnow


async def get_definition(*, session: AsyncSession, workflow_id: str) -> Definition | None:
    """Return a definition by id, or None."""
    return await session.get(Definition, workflow_id)


async def list_definitions(*, session: AsyncSession, limit: int = 100, offset: int = 0) -> list[Definition]:
    """Return definitions ordered by id."""
    result = await session.scalars(select(Definition).order_by(Definition.workflow_id).limit(limit).offset(offset))
    return list(result)


async def all_definitions(*, session: AsyncSession) -> list[Definition]:
    """Return every definition, ordered by id."""
    return list(await session.scalars(select(Definition).order_by(Definition.workflow_id)))


async def count_definitions(*, session: AsyncSession) -> int:
    """Return how many definitions are registered."""
    return int(await session.scalar(select(func.count()).select_from(Definition)) or 0)


async def get_revision(*, session: AsyncSession, workflow_id: str, number: int) -> Revision | None:
    """Return one revision of a definition, or None."""
    return await session.scalar(select(Revision).where(Revision.workflow_id == workflow_id, Revision.number == number))


# The start path's statements, built once (building a statement costs more than running it on SQLite).
_PIN = select(Revision.number, Revision.content_hash).where(
    Revision.workflow_id == bindparam("workflow_id"), Revision.number == bindparam("number")
)
_CURRENT_PIN = (
    select(Revision.number, Revision.content_hash)
    .join(Definition, Definition.workflow_id == Revision.workflow_id)
    .where(Revision.workflow_id == bindparam("workflow_id"), Revision.number == Definition.current_revision)
)
_CURRENT_PINS = (
    select(Revision.workflow_id, Revision.number, Revision.content_hash)
    .join(Definition, Definition.workflow_id == Revision.workflow_id)
    .where(Revision.workflow_id.in_(bindparam("workflow_ids", expanding=True)))
    .where(Revision.number == Definition.current_revision)
)
_ADD_EXECUTION = insert(Base.metadata.tables["execution"])


async def revision_pin(*, session: AsyncSession, workflow_id: str, number: int | None) -> tuple[int, str] | None:
    """Return (number, content hash) of a revision, the current one when `number` is None; None when unknown."""
    connection = await session.connection()  # Core, not the ORM: this runs on every start
    if number is None:
        row = (await connection.execute(_CURRENT_PIN, {"workflow_id": workflow_id})).first()
    else:
        row = (await connection.execute(_PIN, {"workflow_id": workflow_id, "number": number})).first()
    return (row[0], row[1]) if row is not None else None


async def current_pins(*, session: AsyncSession, workflow_ids: list[str]) -> dict[str, tuple[int, str]]:
    """Return (number, content hash) of the current revision of each registered definition among `workflow_ids`."""
    rows = await (await session.connection()).execute(_CURRENT_PINS, {"workflow_ids": workflow_ids})
    return {workflow_id: (number, digest) for workflow_id, number, digest in rows}


async def find_revision_by_hash(*, session: AsyncSession, workflow_id: str, content_hash: str) -> Revision | None:
    """Return the revision of a definition with this content hash, or None."""
    return await session.scalar(
        select(Revision).where(Revision.workflow_id == workflow_id, Revision.content_hash == content_hash)
    )


async def lock_definition(*, session: AsyncSession, workflow_id: str, create: bool = True) -> Definition | None:
    """Return the definition row locked until the transaction ends, inserting it first when missing (`create`).

    PostgreSQL: insert-if-missing (ON CONFLICT DO NOTHING), then SELECT ... FOR UPDATE, so concurrent writers of
    one definition queue on its row. SQLite has no row locks: the insert is the transaction's first write, so it
    takes the database's single write lock (waiting up to the busy timeout) before anything is read. None: no such
    row (`create=False`), or a concurrent delete removed it between the insert and the lock.
    """
    if create:
        now = utcnow()
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(
            insert(Definition)
            .values(workflow_id=workflow_id, current_revision=0, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[Definition.workflow_id])
        )
    query = select(Definition).where(Definition.workflow_id == workflow_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def add_revision(
    *,
    session: AsyncSession,
    workflow_id: str,
    content_hash: str,
    source_yaml: str,
    source_path: str | None,
    definition: dict[str, Any],
) -> Revision:
    """Append a new revision and make it current, under the definition's lock so numbers never collide."""
    record = await lock_definition(session=session, workflow_id=workflow_id)
    if record is None:
        raise LookupError(f"definition {workflow_id!r} was deleted while registering")
    last = await session.scalar(select(func.max(Revision.number)).where(Revision.workflow_id == workflow_id))
    revision = Revision(
        workflow_id=workflow_id,
        number=(last or 0) + 1,
        content_hash=content_hash,
        source_yaml=source_yaml,
        source_path=source_path,
        definition=definition,
    )
    session.add(revision)
    record.current_revision = revision.number
    record.updated_at = utcnow()
    await session.flush()
    return revision


async def set_current_revision(*, session: AsyncSession, definition: Definition, number: int) -> None:
    """Point a (locked) definition at an existing revision, e.g. content registered again after a newer one."""
    if definition.current_revision != number:
        definition.current_revision = number
        definition.updated_at = utcnow()
        await session.flush()


async def set_file_source(*, session: AsyncSession, definition: Definition, path: str, content_hash: str) -> None:
    """Record the file a scan registered a (locked) definition from and the content hash it had."""
    if (definition.file_path, definition.file_hash) != (path, content_hash):
        definition.file_path, definition.file_hash = path, content_hash
        await session.flush()


async def add_execution(
    *,
    session: AsyncSession,
    execution_id: str,
    workflow_id: str,
    revision: int,
    parameters: dict[str, Any],
    started_by: str | None,
    retry_of: str | None = None,
) -> None:
    """Record a run started through the API (`retry_of`: the run it retries); one INSERT, no ORM unit of work.

    Raises:
        IntegrityError: The run already has an entry.
    """
    row = {
        "execution_id": execution_id, "workflow_id": workflow_id, "revision": revision, "parameters": parameters,
        "started_by": started_by, "retry_of": retry_of, "created_at": utcnow(),
    }  # fmt: skip
    await (await session.connection()).execute(_ADD_EXECUTION, row)


async def get_execution(*, session: AsyncSession, execution_id: str) -> Execution | None:
    """Return the index entry of a run, or None."""
    return await session.get(Execution, execution_id)


async def add_approval_record(
    *,
    session: AsyncSession,
    execution_id: str,
    workflow_id: str,
    task_id: str,
    approver: str,
    decision: str,
    comment: str | None,
    via: str,
    decided_at: datetime,
) -> bool:
    """Store one decision unless it is already stored (retries are harmless); return whether it was new."""
    existing = await session.scalar(
        select(ApprovalRecord).where(
            ApprovalRecord.execution_id == execution_id,
            ApprovalRecord.task_id == task_id,
            ApprovalRecord.approver == approver,
        )
    )
    if existing is not None:
        return False
    session.add(
        ApprovalRecord(
            execution_id=execution_id, workflow_id=workflow_id, task_id=task_id, approver=approver,
            decision=decision, comment=comment, via=via, decided_at=decided_at,
        )
    )  # fmt: skip
    await session.flush()
    return True


async def list_approval_records(*, session: AsyncSession, execution_id: str) -> list[ApprovalRecord]:
    """Return the decisions of one run, oldest first."""
    result = await session.scalars(
        select(ApprovalRecord).where(ApprovalRecord.execution_id == execution_id).order_by(ApprovalRecord.id)
    )
    return list(result)


async def list_revisions(*, session: AsyncSession, workflow_id: str) -> list[Revision]:
    """Return every revision of a definition, newest first."""
    result = await session.scalars(
        select(Revision).where(Revision.workflow_id == workflow_id).order_by(Revision.number.desc())
    )
    return list(result)


async def delete_definition(*, session: AsyncSession, definition: Definition) -> None:
    """Delete a definition and all its revisions (past runs stay in Temporal and the execution index)."""
    await session.execute(delete(Revision).where(Revision.workflow_id == definition.workflow_id))
    await session.execute(delete(Definition).where(Definition.workflow_id == definition.workflow_id))
    session.expunge(definition)


async def recent_execution_ids(*, session: AsyncSession, workflow_id: str, since: datetime) -> list[str]:
    """Return ids of runs of a workflow started through the API since a moment."""
    result = await session.scalars(
        select(Execution.execution_id).where(Execution.workflow_id == workflow_id, Execution.created_at >= since)
    )
    return list(result)


async def add_payloads(*, session: AsyncSession, payloads: dict[str, bytes], workflow_id: str | None) -> int:
    """Store payloads by content key, skipping keys already stored (content-addressed); return how many were new."""
    stored = set(await session.scalars(select(StoredPayload.key).where(StoredPayload.key.in_(list(payloads)))))
    new = [StoredPayload(key=key, data=data, size=len(data), workflow_id=workflow_id)
           for key, data in payloads.items() if key not in stored]  # fmt: skip
    session.add_all(new)
    await session.flush()
    return len(new)


async def get_payloads(*, session: AsyncSession, keys: list[str]) -> dict[str, bytes]:
    """Return the stored payloads among `keys`, by key (missing keys are absent)."""
    rows = await session.execute(select(StoredPayload.key, StoredPayload.data).where(StoredPayload.key.in_(keys)))
    return {row.key: row.data for row in rows}


async def payload_owners(*, session: AsyncSession, created_before: datetime) -> list[str | None]:
    """Return the runs (None: no run recorded) that stored payloads before a moment."""
    query = select(StoredPayload.workflow_id).where(StoredPayload.created_at < created_before).distinct()
    return sorted(await session.scalars(query), key=lambda owner: owner or "")


async def delete_payloads(*, session: AsyncSession, owners: list[str | None], created_before: datetime) -> int:
    """Delete the payloads these runs (None: no run recorded) stored before a moment; return how many."""
    named = [owner for owner in owners if owner is not None]
    condition: ColumnElement[bool] = StoredPayload.workflow_id.in_(named)
    if None in owners:
        condition = or_(condition, StoredPayload.workflow_id.is_(None))
    result = await session.execute(delete(StoredPayload).where(StoredPayload.created_at < created_before, condition))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def add_task_log_lines(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert task log lines (dicts of `TaskLogLine` columns) in one statement."""
    if rows:
        await session.execute(insert(TaskLogLine), rows)


async def list_task_log_lines(
    *,
    session: AsyncSession,
    execution_id: str,
    task_id: str | None = None,
    attempt: int | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[TaskLogLine]:
    """Return a run's log lines with an id over `after`, oldest first, optionally of one task (and attempt)."""
    query = select(TaskLogLine).where(TaskLogLine.execution_id == execution_id, TaskLogLine.id > after)
    if task_id is not None:
        query = query.where(TaskLogLine.task_id == task_id)
    if attempt is not None:
        query = query.where(TaskLogLine.attempt == attempt)
    return list(await session.scalars(query.order_by(TaskLogLine.id).limit(limit)))


async def delete_task_log_lines(*, session: AsyncSession, logged_before: datetime) -> int:
    """Delete log lines captured before a moment; return how many."""
    result = await session.execute(delete(TaskLogLine).where(TaskLogLine.logged_at < logged_before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
