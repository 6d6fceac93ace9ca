"""Persistence of the registry: models, session factories and repository functions."""

from . import repository
from .db import create_engine, session_factory
from .migrate import upgrade_database
from .models import ApprovalRecord, Base, Definition, Execution, Revision, StoredPayload, TaskLogLine

__all__ = [
    "ApprovalRecord",
    "Base",
    "Definition",
    "Execution",
    "Revision",
    "StoredPayload",
    "TaskLogLine",
    "create_engine",
    "repository",
    "session_factory",
    "upgrade_database",
]
