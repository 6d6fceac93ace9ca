"""Registration of YAML definitions as content-hashed revisions, from text or a directory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflow_engine.dsl import BUILTIN_ACTIVITY_TYPES, DslError, Issue, WorkflowDefinition, parse_definition
from workflow_engine.dsl.model import WorkflowTask
from workflow_engine.engine.types import ChildDefinition
from workflow_engine.storage import repository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """The outcome of registering one file: the revision it maps to and whether it is new."""

    workflow_id: str
    revision: int
    created: bool
    source_path: str | None = None


def content_hash(definition: WorkflowDefinition) -> str:
    """Hash the canonical JSON of a definition, so comments and layout do not make revisions."""
    canonical = json.dumps(definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def register_source(
    *,
    session: AsyncSession,
    text: str,
    file: str = "<string>",
    source_path: str | None = None,
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
) -> Registration:
    """Parse, validate and store one definition; identical content is a no-op."""
    definition = parse_definition(text, file=file, activity_types=activity_types)
    digest = content_hash(definition)
    existing = await repository.find_revision_by_hash(session=session, workflow_id=definition.name, content_hash=digest)
    if existing is not None:
        record = await repository.get_definition(session=session, workflow_id=definition.name)
        if record is not None:
            await repository.set_current_revision(session=session, definition=record, number=existing.number)
        return Registration(definition.name, existing.number, created=False, source_path=source_path)
    revision = await repository.add_revision(
        session=session,
        workflow_id=definition.name,
        content_hash=digest,
        source_yaml=text,
        source_path=source_path,
        definition=definition.model_dump(mode="json"),
    )
    return Registration(definition.name, revision.number, created=True, source_path=source_path)


def _read_definitions(directory: Path) -> list[tuple[Path, str | Issue]]:
    """Read every `*.yaml`/`*.yml` file in name order; unreadable files become issues."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []
    result: list[tuple[Path, str | Issue]] = []
    for path in files:
        try:
            result.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            result.append((path, Issue("", f"cannot read file: {exc}", path.name)))
    return result


@dataclass(frozen=True)
class DirectoryReport:
    """What a directory scan registered and which files it refused, with their issues."""

    registered: list[Registration]
    invalid: dict[str, list[Issue]]


async def register_directory(
    *,
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
) -> DirectoryReport:
    """Register every `*.yaml`/`*.yml` file; each file commits on its own so one bad file blocks nothing."""
    registered: list[Registration] = []
    invalid: dict[str, list[Issue]] = {}
    names: dict[str, str] = {}
    for path, text in await asyncio.to_thread(_read_definitions, directory):
        if isinstance(text, Issue):
            invalid[str(path)] = [text]
            continue
        async with sessions() as session:
            try:
                result = await register_source(
                    session=session, text=text, file=path.name, source_path=str(path), activity_types=activity_types
                )
            except DslError as exc:
                invalid[str(path)] = exc.issues
                continue
            if result.workflow_id in names:
                other = names[result.workflow_id]
                invalid[str(path)] = [Issue("name", f"{result.workflow_id!r} is also defined in {other}", path.name)]
                await session.rollback()
                continue
            await session.commit()
        names[result.workflow_id] = path.name
        registered.append(result)
    for path_text, issues in invalid.items():
        for issue in issues:
            logger.error("not registered: %s", issue)
        logger.error("skipped %s", path_text)
    for result in registered:
        verb = "registered" if result.created else "unchanged"
        logger.info("%s %s revision %d", verb, result.workflow_id, result.revision)
    return DirectoryReport(registered, invalid)


async def resolve_children(*, session: AsyncSession, definition: WorkflowDefinition) -> dict[str, ChildDefinition]:
    """Pin every workflow a definition may start as a child (transitively) to its current revision."""
    children: dict[str, ChildDefinition] = {}
    pending = [(definition, task) for task in (*definition.tasks, *definition.on_failure)]
    while pending:
        parent, task = pending.pop(0)
        if not isinstance(task, WorkflowTask) or task.config.workflow in children:
            continue
        name = task.config.workflow
        record = await repository.get_definition(session=session, workflow_id=name)
        revision = record and await repository.get_revision(
            session=session, workflow_id=name, number=record.current_revision
        )
        if not revision:
            raise DslError(
                [Issue(f"{parent.name}.tasks.{task.id}.config.workflow", f"workflow {name!r} is not registered", None)]
            )
        children[name] = ChildDefinition(definition=revision.definition, revision=revision.number)
        child = WorkflowDefinition.model_validate(revision.definition)
        pending.extend((child, t) for t in (*child.tasks, *child.on_failure))
    return children


def directory_snapshot(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Return (name, mtime_ns, size) of every definition file: a cheap change detector."""
    if not directory.is_dir():
        return ()
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    snapshot = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        snapshot.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(snapshot)


async def watch_directory(
    *,
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    interval: float,
    seen: tuple[tuple[str, int, int], ...],
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
) -> None:
    """Register files added to or changed in `directory` since `seen`, checking every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        current = await asyncio.to_thread(directory_snapshot, directory)
        if current != seen:
            seen = current
            try:
                await register_directory(sessions=sessions, directory=directory, activity_types=activity_types)
            except Exception:  # the watcher must survive a database hiccup; the next change retries
                logger.exception("rescanning %s failed", directory)
