"""The worker's `record_approval` activity: writes each approval decision to the audit table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio import activity

from workflow_engine.engine.types import RECORD_APPROVAL_ACTIVITY, ApprovalAudit
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, repository, session_factory


class AuditActivities:
    """Holds a lazily created database engine shared by every audit write of this worker."""

    def __init__(self, settings: Settings) -> None:
        """Remember the database URL; connect on first use."""
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    def _factory(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._engine = create_engine(self.settings.database_url)
            self._sessions = session_factory(self._engine)
        return self._sessions

    @activity.defn(name=RECORD_APPROVAL_ACTIVITY)
    async def record_approval(self, record: ApprovalAudit) -> bool:
        """Store one decision (idempotent: a retried write stores it once)."""
        async with self._factory()() as session:
            created = await repository.add_approval_record(
                session=session,
                execution_id=record.execution_id,
                workflow_id=record.workflow_name,
                task_id=record.task_id,
                approver=record.approver,
                decision=record.decision,
                comment=record.comment,
                via=record.via,
                decided_at=datetime.fromisoformat(record.at),
            )
            await session.commit()
        return created

    async def close(self) -> None:
        """Dispose of the engine when the worker stops."""
        if self._engine is not None:
            await self._engine.dispose()
