"""Heartbeats while an activity waits on I/O, so a dead worker's task is retried after the heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

# Often enough for the default 10 s heartbeat timeout (options.py); the SDK throttles what it sends (to 80% of
# the heartbeat timeout), so a short interval costs little. User functions (calls.py) beat at the same pace.
HEARTBEAT_INTERVAL = 1.0


@contextlib.asynccontextmanager
async def heartbeating(interval: float = HEARTBEAT_INTERVAL) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds while the block runs inside an activity."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
