"""Data passed between the interpreter workflow, its activities and clients (sandbox-safe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS_QUERY = "status"
TASK_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")


@dataclass
class RunInput:
    """The input of one execution: the pinned definition, its revision and the params."""

    definition: dict[str, Any]
    revision: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActivityInput:
    """What every built-in activity receives: the rendered task config and where it runs."""

    task_id: str
    config: dict[str, Any]
    execution_id: str = ""


@dataclass
class ActivityResult:
    """What every built-in activity returns: the task output and the attempt that produced it."""

    output: Any
    attempt: int = 1
