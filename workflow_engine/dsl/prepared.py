"""What the API computes from a definition's text, as plain picklable data: it runs in another process.

Parsing, validating and hashing a 1,000-task definition is CPU work that would stall the API's event loop
(and, in a thread, its GIL); `api/registration.py` runs these functions in a process pool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from .errors import Issue
from .graph import dependencies
from .model import WorkflowDefinition
from .notices import definition_warnings
from .parser import parse_definition


def content_hash(definition: WorkflowDefinition) -> str:
    """Hash the canonical JSON of a definition, so comments and layout do not make revisions.

    Values left at their defaults are not hashed, so a DSL release that adds an optional key does not turn
    every registered file into a new revision.
    """
    canonical = json.dumps(
        definition.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """A valid definition ready to be stored as a revision."""

    name: str
    digest: str  # `content_hash`
    stored: dict[str, Any]  # what a revision stores: the full `model_dump`
    warnings: tuple[Issue, ...]


@dataclass(frozen=True)
class Outline:
    """A valid definition as a dry run describes it: its tasks with their resolved dependencies."""

    name: str
    tasks: tuple[dict[str, Any], ...]  # id, name, type, activity_type, depends_on
    warnings: tuple[Issue, ...]


def prepare(
    text: str, *, file: str, activity_types: tuple[str, ...], python_modules: Collection[str] | None
) -> Prepared:
    """Parse and validate a definition, find its warnings and hash it.

    Raises:
        DslError: the definition is invalid.
    """
    definition = parse_definition(text, file=file, activity_types=activity_types, python_modules=python_modules)
    warnings = tuple(definition_warnings(definition, text, file=file))
    return Prepared(definition.name, content_hash(definition), definition.model_dump(mode="json"), warnings)


def outline(
    text: str, *, file: str, activity_types: tuple[str, ...], python_modules: Collection[str] | None
) -> Outline:
    """Parse and validate a definition, and describe its tasks and warnings (`POST /workflows/validate`).

    Raises:
        DslError: the definition is invalid.
    """
    definition = parse_definition(text, file=file, activity_types=activity_types, python_modules=python_modules)
    graph = dependencies(definition)
    tasks = tuple(
        {"id": t.id, "name": t.display_name, "type": t.type, "activity_type": getattr(t, "activity_type", None),
         "depends_on": list(graph[t.id])}
        for t in definition.tasks
    )  # fmt: skip
    return Outline(definition.name, tasks, tuple(definition_warnings(definition, text, file=file)))
