"""SQLAlchemy models of the registry: definitions, revisions, the execution index, audit, large payloads, task logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Definition(Base):
    """A workflow known by its YAML `name`, pointing at its current revision."""

    __tablename__ = "definition"

    workflow_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    current_revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The file a directory scan last registered this definition from, and that file's content hash then:
    # a scan registers the file again only when its content differs, so it never reverts an API registration.
    file_path: Mapped[str | None] = mapped_column(String(1024))
    file_hash: Mapped[str | None] = mapped_column(String(64))


class Revision(Base):
    """One immutable, content-hashed version of a definition."""

    __tablename__ = "revision"
    __table_args__ = (UniqueConstraint("workflow_id", "number"), UniqueConstraint("workflow_id", "content_hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("definition.workflow_id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    source_yaml: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str | None] = mapped_column(String(1024))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Execution(Base):
    """An index entry for a run started through the API: who, which revision, which params."""

    __tablename__ = "execution"

    execution_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(63), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # The run this one retries (same revision and parameters), when started by `POST .../retry`.
    retry_of: Mapped[str | None] = mapped_column(String(255), index=True)


class ApprovalRecord(Base):
    """The audit trail: one accepted approval decision (through the API or a Temporal signal)."""

    __tablename__ = "approval_decision"
    __table_args__ = (UniqueConstraint("execution_id", "task_id", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(255), index=True)
    workflow_id: Mapped[str] = mapped_column(String(63))
    task_id: Mapped[str] = mapped_column(String(255))
    approver: Mapped[str] = mapped_column(String(255))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoredPayload(Base):
    """A Temporal payload too large for history (e.g. a task output over OUTPUT_INLINE_LIMIT_BYTES), by content hash."""

    __tablename__ = "stored_payload"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the serialized payload
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[str | None] = mapped_column(String(255), index=True)  # the run it was stored for
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class TaskLogLine(Base):
    """One line a task attempt printed, logged or ran into (its error), in the order the worker captured them."""

    __tablename__ = "task_log"
    __table_args__ = (Index("ix_task_log_execution_id_id", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(255))  # the top-level run (a batch child's lines included)
    task_id: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    stream: Mapped[str] = mapped_column(String(16))  # stdout, stderr, log, http, error, marker
    line: Mapped[str] = mapped_column(Text)
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
