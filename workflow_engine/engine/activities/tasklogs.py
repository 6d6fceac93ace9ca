"""Task logs: what each task attempt prints, logs and fails with, captured in the worker and stored in batches.

An activity interceptor gives every attempt of a task a capture (a context variable, so the threads
`calls.py` runs sync functions on see it too, and two concurrent tasks never mix lines). While it is
set, `sys.stdout`/`sys.stderr` writes and `logging` records land in it instead of the worker's
output; `shell`, `http_request` and `log` add their own lines. Lines are masked like outputs, capped
per attempt (TASK_LOG_MAX_BYTES, then one marker line) and queued for a background writer that
inserts them every half second. The writer never blocks a task: when the database fails, or the
queue is full, lines are dropped and counted (`dropped_lines()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from workflow_engine.storage import create_engine, repository, session_factory
from workflow_engine.storage.models import utcnow

from ..types import ActivityInput

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
BATCH_ROWS = 1000
MAX_PENDING = 100_000
# `log` and `http_request` (a summary without the query string) write their own lines; the SDK's are not the task's.
_SKIPPED_LOGGERS = ("workflow_engine.tasks", "temporalio.worker", "httpx", "httpcore", __name__)

MASK = "***"  # what a secret value becomes, in logs and (`secrets.py`) in outputs
_dropped = 0
_dropped_lock = threading.Lock()


def dropped_lines() -> int:
    """Return how many log lines this process dropped (database failures, a full queue) since it started."""
    return _dropped


def _drop(count: int) -> None:
    global _dropped  # noqa: PLW0603 - one process-wide counter, read by the metrics
    with _dropped_lock:
        _dropped += count


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


@dataclass
class _Attempt:
    """The capture of one task attempt: its identity, the secrets to mask, its byte budget and partial lines."""

    execution_id: str
    task_id: str
    attempt: int
    writer: TaskLogWriter
    limit: int
    secrets: list[str] = field(default_factory=list)
    used: int = 0
    full: bool = False
    closed: bool = False
    partial: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, stream: str, text: str) -> None:
        """Add text to a stream, emitting every complete line (a partial line waits for its end or the budget)."""
        with self.lock:
            pending = self.partial.pop(stream, "") + text
            *lines, rest = pending.split("\n")
            for line in lines:
                self._emit(stream, line)
            if rest and len(rest) > self.limit - self.used:  # a huge line without its end yet: cap it now
                self._emit(stream, rest)
            elif rest:
                self.partial[stream] = rest

    def line(self, stream: str, text: str) -> None:
        """Emit one whole line (or a multi-line entry, such as a traceback) on a stream."""
        with self.lock:
            self._emit(stream, text)

    def close(self) -> None:
        """Emit the partial lines left and take no more."""
        with self.lock:
            for stream, rest in list(self.partial.items()):
                self._emit(stream, rest)
            self.partial.clear()
            self.closed = True

    def _emit(self, stream: str, text: str) -> None:
        if self.full or self.closed:
            return
        text = _masked(text, self.secrets).replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
        size = len(text.encode("utf-8", errors="replace"))
        if self.used + size > self.limit:
            room = self.limit - self.used
            if room > 0:
                self._queue(stream, text.encode("utf-8", errors="replace")[:room].decode("utf-8", errors="ignore"))
            self.full = True
            self._queue("marker", f"[log truncated: this attempt logged more than {self.limit} bytes]")
            return
        self.used += size
        self._queue(stream, text)

    def _queue(self, stream: str, text: str) -> None:
        self.writer.put({
            "execution_id": self.execution_id, "task_id": self.task_id, "attempt": self.attempt,
            "stream": stream, "line": text, "logged_at": utcnow(),
        })  # fmt: skip


_current: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("wfe_task_log", default=None)


def write(stream: str, text: str) -> None:
    """Add text (each line ending in a newline) to the running attempt's log; nothing outside a task attempt."""
    attempt = _current.get()
    if attempt is not None:
        attempt.write(stream, text)


def line(stream: str, text: str) -> None:
    """Add one line to the running attempt's log; nothing outside a task attempt."""
    attempt = _current.get()
    if attempt is not None:
        attempt.line(stream, text)


def hide(secrets: list[str]) -> None:
    """Mask these values (a task's resolved secrets) in the running attempt's log."""
    attempt = _current.get()
    if attempt is not None:
        attempt.secrets = sorted({*attempt.secrets, *secrets}, key=len, reverse=True)


class TaskLogWriter:
    """Queues log lines from any thread and inserts them in batches from a background task of the worker's loop."""

    def __init__(self, database_url: str, *, interval: float = FLUSH_INTERVAL, max_pending: int = MAX_PENDING) -> None:
        """Remember the database; connect on the first flush."""
        self.database_url = database_url
        self.interval = interval
        self.max_pending = max_pending
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._failing = False

    def put(self, row: dict[str, Any]) -> None:
        """Queue one row; drop it (counted) when the queue is full."""
        with self._lock:
            if len(self._pending) < self.max_pending:
                self._pending.append(row)
                return
        _drop(1)

    def start(self) -> None:
        """Start the background flusher on the running loop, once (in a context of its own, so it logs nowhere)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Insert what is queued; on any failure drop those lines and count them."""
        with self._lock:
            rows, self._pending = self._pending, []
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start : start + BATCH_ROWS]
            try:
                async with asyncio.timeout(10), self._factory()() as session:
                    await repository.add_task_log_lines(session=session, rows=batch)
                    await session.commit()
            except Exception as exc:  # noqa: BLE001 - logging never fails a task, whatever the database does
                _drop(len(batch))
                if not self._failing:
                    logger.warning("task log lines dropped: the database refused them (%s: %s)", type(exc).__name__,
                                   exc)  # fmt: skip
                self._failing = True
            else:
                self._failing = False

    def _factory(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._engine = create_engine(self.database_url)
            self._sessions = session_factory(self._engine)
        return self._sessions

    async def close(self) -> None:
        """Stop the flusher, insert what is left and dispose of the engine."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessions = None


class _RoutedStream:
    """Stands in for `sys.stdout`/`sys.stderr`: a task attempt's writes go to its log, all others pass through."""

    def __init__(self, original: Any, name: str) -> None:
        self._original = original
        self._name = name

    def write(self, text: str) -> int:
        attempt = _current.get()
        if attempt is None:
            return int(self._original.write(text))
        attempt.write(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _RecordHandler(logging.Handler):
    """A root handler that adds the records emitted during a task attempt to its log."""

    def emit(self, record: logging.LogRecord) -> None:
        attempt = _current.get()
        if attempt is None or record.name.startswith(_SKIPPED_LOGGERS):
            return
        try:
            text = f"{record.levelname} {record.name}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        except Exception:  # noqa: BLE001 - a bad format string in user code must not fail the task
            text = f"{record.levelname} {record.name}: {record.msg!r}"
        attempt.line("log", text)


def install_capture() -> None:
    """Route stdout, stderr and logging of task attempts to their logs (again if something replaced the streams)."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout, "stdout")
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr, "stderr")
    root = logging.getLogger()
    if not any(isinstance(handler, _RecordHandler) for handler in root.handlers):
        root.addHandler(_RecordHandler())


def _error_text(exc: BaseException) -> str:
    """Return an attempt's error with its traceback (the original one when it was re-raised `from None`)."""
    origin = exc.__context__ if exc.__suppress_context__ and exc.__context__ is not None else exc
    return "".join(traceback.format_exception(origin)).rstrip()


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next_interceptor: ActivityInboundInterceptor, writer: TaskLogWriter, limit: int) -> None:
        super().__init__(next_interceptor)
        self.writer, self.limit = writer, limit

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:  # noqa: A002 - SDK signature
        arg = input.args[0] if input.args else None
        if not isinstance(arg, ActivityInput):
            return await super().execute_activity(input)
        info = activity.info()
        # a batch child's id is `<run>/<task>/batch-<n>`: its lines belong to the run
        run = (info.workflow_id or "").split("/", 1)[0]
        attempt = _Attempt(run, arg.task_id, info.attempt, self.writer, self.limit)
        self.writer.start()
        install_capture()
        token = _current.set(attempt)
        try:
            return await super().execute_activity(input)
        except asyncio.CancelledError:
            attempt.line("error", "attempt cancelled")
            raise
        except Exception as exc:
            attempt.line("error", _error_text(exc))
            raise
        finally:
            attempt.close()
            _current.reset(token)


class TaskLogInterceptor(Interceptor):
    """Worker interceptor giving every task attempt a log; put it before `SecretsInterceptor` so secrets are masked."""

    def __init__(self, writer: TaskLogWriter, max_bytes: int) -> None:
        """Keep the writer lines go to and the byte budget of one attempt."""
        self.writer, self.max_bytes = writer, max_bytes

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:  # noqa: A002
        """Wrap every activity."""
        return _Inbound(next, self.writer, self.max_bytes)


async def prune_task_logs(
    sessions: async_sessionmaker[AsyncSession], *, older_than: timedelta, dry_run: bool = False
) -> int:
    """Delete log lines captured longer ago than `older_than`; return how many (or would be)."""
    async with sessions() as session:
        deleted = await repository.delete_task_log_lines(session=session, logged_before=utcnow() - older_than)
        await (session.rollback() if dry_run else session.commit())
    return deleted
