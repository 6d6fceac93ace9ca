"""Registration of YAML definitions as content-hashed revisions, from text or a directory, and their deletion."""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflow_engine.dsl import BUILTIN_ACTIVITY_TYPES, DslError, Issue
from workflow_engine.dsl.prepared import Prepared, prepare
from workflow_engine.dsl.prepared import content_hash as content_hash  # revisions are hashed there
from workflow_engine.errors import ConflictError
from workflow_engine.lifeline import exit_with_parent
from workflow_engine.storage import repository

logger = logging.getLogger(__name__)

T = TypeVar("T")
# How often a unit of work is run again after a concurrent writer got in its way, before answering 409.
ATTEMPTS = 5
# PostgreSQL: serialization failure, deadlock, lock not available, unique violation.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})


@dataclass(frozen=True)
class Registration:
    """The outcome of registering one definition: the revision its content maps to and what changed."""

    workflow_id: str
    revision: int
    created: bool
    source_path: str | None = None
    # The definition's current revision when it is not `revision` (a later API registration stays current).
    current_revision: int | None = None
    # An existing revision became current again (content registered anew after a different one).
    moved: bool = False
    # What the definition declares that does not run yet (dsl.notices), located in its file.
    warnings: tuple[Issue, ...] = ()


class _RetryError(Exception):
    """A concurrent change (a delete between insert and lock) invalidated this unit of work."""


# One process checks definitions for the API, started on first use (the startup scan of the workflows directory).
_pool: ProcessPoolExecutor | None = None
# Definitions up to this size are checked on the event loop (about 4 ms at most, measured in bench/registration.py).
INLINE_CHECK_BYTES = 8 * 1024


async def off_loop(call: Callable[..., T], text: str, /, **kwargs: object) -> T:
    """Run CPU-bound definition work (`dsl.prepared`) on `text` in a separate process and await its result.

    A text up to INLINE_CHECK_BYTES is checked right here: it takes a few milliseconds, less than the trip to
    the other process.

    A 1,000-task definition takes a few hundred milliseconds of pure-Python CPU: on the event loop it stalls
    every request, and in a thread it still holds the GIL in long stretches (measured in bench/registration.py).
    Errors raised there (`DslError`) are raised here. A pool whose process died is replaced once.
    """
    global _pool
    if len(text) <= INLINE_CHECK_BYTES:
        return call(text, **kwargs)
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )  # fmt: skip
        pool = _pool
        try:
            return await loop.run_in_executor(pool, functools.partial(call, text, **kwargs))
        except BrokenProcessPool:
            if _pool is pool:
                _pool = None
            pool.shutdown(wait=False)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _transient(exc: Exception) -> bool:
    """Tell a concurrent writer getting in the way (worth running again) from a broken request."""
    if isinstance(exc, _RetryError | IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    name = str(getattr(orig, "sqlite_errorname", ""))
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in str(orig)


async def run_transaction(session: AsyncSession, work: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run `work` and commit it as one unit of work, from scratch again when a concurrent writer got in its way.

    Raises:
        ConflictError: still conflicting after `ATTEMPTS` tries (409, the caller may try again).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await work()
            await session.commit()
            return result
        except (DBAPIError, _RetryError) as exc:
            await session.rollback()
            if not _transient(exc):
                raise
            if attempt >= ATTEMPTS:
                logger.warning("%s: still conflicting after %d attempts: %s", what, attempt, exc)
                raise ConflictError(f"{what} conflicted with concurrent changes {attempt} times; try again") from None
            logger.info("%s: attempt %d conflicted (%s); running it again", what, attempt, type(exc).__name__)
            await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))  # jitter, so racing writers spread out


async def register_source(
    *,
    session: AsyncSession,
    text: str,
    file: str = "<string>",
    source_path: str | None = None,
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
    taken: Mapping[str, str] | None = None,
    python_modules: Collection[str] | None = None,
) -> Registration:
    """Parse, validate and store one definition as its own committed unit of work; identical content is a no-op.

    Through the API (no `source_path`) the content always becomes current. From a file (`source_path`), it is a
    change only when it differs from what that definition was last registered with from a file, so an unchanged
    file never reverts a later API registration. `taken` maps names other files of the same scan define to
    those files; such a name is refused. Concurrent registrations of a definition queue on its row lock.

    Raises:
        DslError: the definition is invalid (or its name is `taken`); nothing is stored.
        ConflictError: concurrent changes kept getting in the way (409).
    """
    checked = await off_loop(prepare, text, file=file, activity_types=activity_types, python_modules=python_modules)
    name, digest, notices = checked.name, checked.digest, checked.warnings
    if taken and name in taken:
        raise DslError([Issue("name", f"{name!r} is also defined in {taken[name]}", file)])
    unchanged = await _unchanged(session, name, digest, source_path)
    await session.rollback()  # end the read, so on SQLite the unit of work below starts with its write lock
    if unchanged is not None:
        return replace(unchanged, warnings=notices)
    result = await run_transaction(
        session, lambda: _store(session, checked, text, source_path), what=f"registering {name!r}"
    )
    if result.created or result.moved:
        logger.info("%s %s revision %d (from %s)", "registered" if result.created else "made current",
                    name, result.revision, source_path or "the API")  # fmt: skip
    return replace(result, warnings=notices)


async def _unchanged(session: AsyncSession, name: str, digest: str, source_path: str | None) -> Registration | None:
    """Answer a registration that changes nothing from a plain read, without taking the write lock."""
    record = await repository.get_definition(session=session, workflow_id=name)
    if record is None:
        return None
    revision = await repository.find_revision_by_hash(session=session, workflow_id=name, content_hash=digest)
    if revision is None:
        return None
    if source_path is not None and record.file_hash == digest:
        current = None if record.current_revision == revision.number else record.current_revision
        return Registration(name, revision.number, created=False, source_path=source_path, current_revision=current)
    if source_path is None and record.current_revision == revision.number:
        return Registration(name, revision.number, created=False)
    return None


async def _store(session: AsyncSession, checked: Prepared, text: str, source_path: str | None) -> Registration:
    """Apply one registration under the definition's lock (decisions re-read there, never from `_unchanged`)."""
    name, digest = checked.name, checked.digest
    record = await repository.lock_definition(session=session, workflow_id=name)
    if record is None:
        raise _RetryError(f"{name!r} was deleted while registering")
    existing = await repository.find_revision_by_hash(session=session, workflow_id=name, content_hash=digest)
    if source_path is not None:
        if existing is not None and record.file_hash == digest:  # another scan registered this file first
            current = None if record.current_revision == existing.number else record.current_revision
            return Registration(name, existing.number, created=False, source_path=source_path, current_revision=current)
        await repository.set_file_source(session=session, definition=record, path=source_path, content_hash=digest)
    if existing is not None:
        moved = record.current_revision != existing.number
        await repository.set_current_revision(session=session, definition=record, number=existing.number)
        return Registration(name, existing.number, created=False, source_path=source_path, moved=moved)
    revision = await repository.add_revision(
        session=session,
        workflow_id=name,
        content_hash=digest,
        source_yaml=text,
        source_path=source_path,
        definition=checked.stored,
    )
    return Registration(name, revision.number, created=True, source_path=source_path)


async def delete_registered(*, session: AsyncSession, workflow_id: str) -> bool:
    """Delete a definition and its revisions as one committed unit of work; False when it is not registered."""

    async def work() -> bool:
        record = await repository.lock_definition(session=session, workflow_id=workflow_id, create=False)
        if record is None:
            return False
        await repository.delete_definition(session=session, definition=record)
        return True

    return await run_transaction(session, work, what=f"deleting {workflow_id!r}")


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
    """What a directory scan registered, which files it refused (with their issues) and which conflicted."""

    registered: list[Registration]
    invalid: dict[str, list[Issue]]
    # Files not registered because concurrent changes kept getting in the way; a later scan retries them.
    conflicts: dict[str, str] = field(default_factory=dict)


async def register_directory(
    *,
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    activity_types: tuple[str, ...] = BUILTIN_ACTIVITY_TYPES,
    python_modules: Collection[str] | None = None,
) -> DirectoryReport:
    """Register every `*.yaml`/`*.yml` file whose content changed since a scan last registered it.

    Each file is its own unit of work, so one bad or conflicting file blocks nothing; of two files that
    define one name, the first in name order wins.
    """
    registered: list[Registration] = []
    invalid: dict[str, list[Issue]] = {}
    conflicts: dict[str, str] = {}
    names: dict[str, str] = {}
    for path, text in await asyncio.to_thread(_read_definitions, directory):
        if isinstance(text, Issue):
            invalid[str(path)] = [text]
            continue
        try:
            async with sessions() as session:
                result = await register_source(
                    session=session,
                    text=text,
                    file=path.name,
                    source_path=str(path),
                    activity_types=activity_types,
                    taken=names,
                    python_modules=python_modules,
                )
        except DslError as exc:
            invalid[str(path)] = exc.issues
            continue
        except ConflictError as exc:
            conflicts[str(path)] = exc.message
            continue
        names[result.workflow_id] = path.name
        registered.append(result)
    _log_report(registered, invalid, conflicts)
    return DirectoryReport(registered, invalid, conflicts)


def _log_report(registered: list[Registration], invalid: dict[str, list[Issue]], conflicts: dict[str, str]) -> None:
    for path_text, issues in invalid.items():
        for issue in issues:
            logger.error("not registered: %s", issue)
        logger.error("skipped %s", path_text)
    for path_text, message in conflicts.items():
        logger.error("not registered: %s: %s", path_text, message)
    for result in registered:
        for notice in result.warnings:
            logger.warning("%s: %s", result.source_path, notice)
        if result.current_revision is not None:
            logger.info(
                "unchanged %s revision %d from %s; revision %d, registered later through the API, stays current",
                *(result.workflow_id, result.revision, result.source_path, result.current_revision),
            )
        elif not (result.created or result.moved):
            logger.info("unchanged %s revision %d", result.workflow_id, result.revision)


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
    python_modules: Callable[[], Collection[str]] | None = None,
    on_scan: Callable[[DirectoryReport], Awaitable[object]] | None = None,
) -> None:
    """Register files added to or changed in `directory` since `seen`, checking every `interval` seconds.

    `python_modules` returns the modules `python` tasks may call; it is asked before every rescan, so a
    module added to the workflows directory counts without a restart. `on_scan` runs after every rescan (the
    schedules follow the files, removed ones included).
    """
    while True:
        await asyncio.sleep(interval)
        current = await asyncio.to_thread(directory_snapshot, directory)
        if current != seen:
            try:
                allowed = await asyncio.to_thread(python_modules) if python_modules else None
                report = await register_directory(
                    sessions=sessions, directory=directory, activity_types=activity_types, python_modules=allowed
                )
            except Exception:  # the watcher must survive a database hiccup; the next round retries
                logger.exception("rescanning %s failed", directory)
                continue
            if on_scan is not None:
                await on_scan(report)
            if not report.conflicts:  # a conflicting file is retried next round
                seen = current
