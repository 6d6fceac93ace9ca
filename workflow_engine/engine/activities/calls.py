"""Calls of user functions from activities (`python` tasks, plugins): a thread for every slot, and heartbeats.

A sync function runs on a pool the worker owns, with one thread per activity slot of the workers that
run such functions, so no call ever waits for a thread while its start-to-close timeout runs (the
default pool has `cpu + 4` threads against 100 slots). While any user function runs, the activity
heartbeats from the event loop, so a dead worker is noticed within the task's heartbeat timeout.

Cancellation: an async function is cancelled like any coroutine. A sync function cannot be
interrupted: the cancelled activity keeps its slot (and its thread) until the function returns, then
reports the cancellation and drops the result; only then may the slot take another task, so threads
in use never outnumber slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio import activity

from .heartbeat import HEARTBEAT_INTERVAL


class FunctionRunner:
    """Runs user functions for activities: sync ones on the worker's own pool, all of them heartbeating."""

    def __init__(self, threads: int, *, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        """Create a pool of up to `threads` threads (started on demand) and remember how often to heartbeat."""
        self.threads = max(1, threads)
        self.heartbeat_interval = heartbeat_interval
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="wfe-user")

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Await an async function, or run a sync one on the pool; heartbeat until it returns."""
        if inspect.iscoroutinefunction(function):
            return await self._heartbeating(asyncio.ensure_future(function(*args, **kwargs)), interruptible=True)
        # the function sees the activity's context (activity.info() works in it), as with asyncio.to_thread
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        return await self._heartbeating(future, interruptible=False)

    async def _heartbeating(self, future: asyncio.Future[Any], *, interruptible: bool) -> Any:
        interval = _interval(self.heartbeat_interval)
        try:
            while not future.done():
                await asyncio.wait((future,), timeout=interval)
                if not future.done():
                    _heartbeat()
        except asyncio.CancelledError:
            if interruptible:
                future.cancel()
            # wait for the function to end: an async one runs its cleanup, a sync one cannot be stopped
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((future,))
            if not future.cancelled():
                future.exception()  # retrieved, so a late failure is not logged as never retrieved
            raise
        return future.result()

    async def close(self) -> None:
        """Stop the pool; functions still running (a sync call cannot be interrupted) finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _interval(default: float) -> float:
    """Heartbeat at least three times per heartbeat timeout, however short the task's is."""
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    return min(default, timeout.total_seconds() / 3) if timeout else default


def _heartbeat() -> None:
    if activity.in_activity():  # a direct call (a test) has no activity to heartbeat for
        activity.heartbeat()
