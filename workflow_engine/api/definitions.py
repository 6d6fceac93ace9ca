"""Pinned definitions for the start path: a revision parsed once per process, and its children in one query per level.

A revision is immutable, so its parsed definition is cached under (workflow, number, content hash): the hash
tells a revision number reused after a delete and a new registration from the one cached. Which revision is
current is always read from the database (one indexed query, no lock), so a registration made by another API
process counts at once; only the parsing is saved.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from workflow_engine.dsl import DslError, Issue, WorkflowDefinition
from workflow_engine.dsl.model import WorkflowTask
from workflow_engine.engine.types import ChildDefinition
from workflow_engine.errors import NotFoundError
from workflow_engine.storage import repository

# How many parsed revisions a process keeps (least recently used go first); a revision is at most API_MAX_BODY_BYTES.
CACHED_REVISIONS = 128


@dataclass(frozen=True)
class Pinned:
    """One registered revision: what runs carry (`stored`), parsed, and the workflows its tasks start."""

    workflow_id: str
    number: int
    stored: dict[str, Any]
    definition: WorkflowDefinition
    # (path of the `config.workflow` field, child workflow name) of each `workflow` task, in definition order
    children: tuple[tuple[str, str], ...]


def _children(definition: WorkflowDefinition) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"{definition.name}.tasks.{task.id}.config.workflow", task.config.workflow)
        for task in (*definition.tasks, *definition.on_failure)
        if isinstance(task, WorkflowTask)
    )


class DefinitionCache:
    """Parsed revisions by (workflow, number, content hash), at most `size` of them."""

    def __init__(self, size: int = CACHED_REVISIONS) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int, str], Pinned] = OrderedDict()

    def __len__(self) -> int:
        """How many parsed revisions are kept."""
        return len(self._entries)

    async def _load(self, session: AsyncSession, workflow_id: str, number: int, digest: str) -> Pinned | None:
        key = (workflow_id, number, digest)
        if (found := self._entries.get(key)) is not None:
            self._entries.move_to_end(key)
            return found
        revision = await repository.get_revision(session=session, workflow_id=workflow_id, number=number)
        if revision is None or revision.content_hash != digest:  # deleted or replaced since the pin was read
            return None
        definition = WorkflowDefinition.from_stored(revision.definition)
        pinned = Pinned(workflow_id, number, revision.definition, definition, _children(definition))
        self._entries[key] = pinned
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return pinned

    async def revision(self, session: AsyncSession, workflow_id: str, number: int | None = None) -> Pinned:
        """Return a revision of a workflow (its current one when `number` is None).

        Raises:
            NotFoundError: The workflow, or that revision of it, is not registered.
        """
        pin = await repository.revision_pin(session=session, workflow_id=workflow_id, number=number)
        pinned = pin and await self._load(session, workflow_id, *pin)
        if not pinned:
            if number is None or await repository.get_definition(session=session, workflow_id=workflow_id) is None:
                raise NotFoundError(f"workflow {workflow_id!r} is not registered")
            raise NotFoundError(f"workflow {workflow_id!r} has no revision {number}")
        return pinned

    async def children(self, session: AsyncSession, definition: WorkflowDefinition) -> dict[str, ChildDefinition]:
        """Pin every workflow a definition may start as a child (transitively) to its current revision.

        Raises:
            DslError: A child workflow is not registered (the first one in definition order, level by level).
        """
        resolved: dict[str, Pinned] = {}
        level = list(_children(definition))
        while level:
            names = sorted({name for _, name in level if name not in resolved})
            pins = await repository.current_pins(session=session, workflow_ids=names) if names else {}
            following: list[tuple[str, str]] = []
            for path, name in level:
                if name in resolved:
                    continue
                child = name in pins and await self._load(session, name, *pins[name])
                if not child:
                    raise DslError([Issue(path, f"workflow {name!r} is not registered", None)])
                resolved[name] = child
                following.extend(child.children)
            level = following
        return {name: ChildDefinition(definition=c.stored, revision=c.number) for name, c in resolved.items()}
