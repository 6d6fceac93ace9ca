"""The API's request metrics (an ASGI middleware) and the approvals-waiting gauge, refreshed when scraped."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_engine.engine.client.connection import TemporalConnection
from workflow_engine.engine.types import SA_WAITING_APPROVAL
from workflow_engine.metrics import APPROVALS_WAITING, HTTP_LATENCY, HTTP_REQUESTS, UNMATCHED_ROUTE

logger = logging.getLogger(__name__)
# Scrapes closer together than this reuse the last count (one visibility query per interval, whatever scrapes).
APPROVALS_CACHE_SECONDS = 5.0
# Well inside Prometheus's default 10 s scrape timeout: a slow Temporal leaves the last count, not a failed scrape.
COUNT_TIMEOUT = timedelta(seconds=3)
WAITING_QUERY = f"{SA_WAITING_APPROVAL.name} = true AND ExecutionStatus = 'Running'"


class RequestMetrics:
    """Counts every HTTP request by route template, method and status, and observes its latency."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap the app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, noting the status it answered and how long it took."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, started = 500, time.perf_counter()  # an exception that escapes the app is answered 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            # the router stores the matched route in the (shared) scope: its template, never the raw path
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            HTTP_LATENCY.labels(route, scope["method"]).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()


class ApprovalsGauge:
    """Sets `wfe_approvals_waiting` from Temporal visibility, at most once per APPROVALS_CACHE_SECONDS."""

    def __init__(self) -> None:
        """Start with no count taken."""
        self._taken = -APPROVALS_CACHE_SECONDS
        self._lock = asyncio.Lock()

    async def refresh(self, connection: TemporalConnection) -> None:
        """Count running executions waiting for an approval; on failure the gauge keeps its last value."""
        async with self._lock:
            if time.monotonic() - self._taken < APPROVALS_CACHE_SECONDS:
                return
            try:
                client = await connection.get()
                counted = await client.count_workflows(WAITING_QUERY, rpc_timeout=COUNT_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a scrape never fails for this gauge
                logger.warning("approvals waiting not counted: %s", exc)
                return
            APPROVALS_WAITING.set(counted.count)
            self._taken = time.monotonic()
