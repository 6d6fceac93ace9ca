"""One bounded way for tests to wait for something: `eventually` (in async tests) and `eventually_sync`."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")
Errors = tuple[type[BaseException], ...]


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    until: Callable[[T], object] | None = None,
    interval: float = 0.1,
    ignore: Errors = (),
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None],
    *,
    within: float,
    what: str,
    until: Callable[[T], object] | None = None,
    interval: float = 0.1,
    ignore: Errors = (),
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    *,
    within: float,
    what: str,
    until: Callable[[Any], object] | None = None,
    interval: float = 0.1,
    ignore: Errors = (),
) -> Any:
    """Call (and await) `probe` every `interval` s until its answer passes `until` (or is truthy); else fail."""
    # The probe runs at least once and once more at the deadline. None is never an answer. An exception in `ignore`
    # counts as "not yet"; any other one (an assertion that a process is still alive, say) ends the wait at once.
    deadline, last = time.monotonic() + within, object()
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            last = value
        except ignore as exc:
            value, last = None, exc
        if _passes(value, until):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, within, last))
        await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def eventually_sync(
    probe: Callable[[], T | None],
    *,
    within: float,
    what: str,
    until: Callable[[T], object] | None = None,
    interval: float = 0.1,
    ignore: Errors = (),
) -> T:
    """The blocking twin of `eventually`, for tests that drive subprocesses without an event loop."""
    deadline, last = time.monotonic() + within, object()
    while True:
        try:
            value = probe()
            last = value
        except ignore as exc:
            value, last = None, exc
        if value is not None and _passes(value, until):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, within, last))
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def _passes(value: Any, until: Callable[[Any], object] | None) -> bool:
    """Whether an answer ends the wait: never None; else `until(value)` when given, the value's truth when not."""
    return value is not None and bool(until(value) if until is not None else value)


def _timed_out(what: str, within: float, last: object) -> str:
    """The failure message: what never happened, how long we waited, and what the probe answered last."""
    text = repr(last)
    if len(text) > 3000:
        text = text[:1500] + " ... " + text[-1500:]
    return f"{what} did not happen within {within:g}s; the last probe answered {text}"
