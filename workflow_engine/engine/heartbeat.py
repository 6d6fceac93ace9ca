"""Heartbeats while an activity waits on I/O, so a dead worker's task is retried after the heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio import activity

# Often enough for the default 10 s heartbeat timeout (options.py); the SDK throttles what it sends.
HEARTBEAT_INTERVAL = 1.0


@contextlib.asynccontextmanager
async def heartbeating(
    details: Callable[[], Any] | None = None, interval: float = HEARTBEAT_INTERVAL
) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds (with `details()`, if given) while the block runs inside an activity."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat(*(() if details is None else (details(),)))

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
