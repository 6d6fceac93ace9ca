"""Temporal failing under the API: every route answers a 503 problem (never a 500), in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RetryConfig

from workflow_engine.api import create_app
from workflow_engine.engine.client import approvals
from workflow_engine.engine.client.executions import count_running
from workflow_engine.engine.types import RunInput
from workflow_engine.settings import Settings

FLOW = "name: outage-flow\ntasks:\n  - id: a\n    activity_type: log\n    config: {message: one}\n"


class TemporalProxy:
    """A TCP proxy in front of the test's Temporal server that can stage an outage: refuse, or hang."""

    def __init__(self, target: str) -> None:
        """Forward to `target` (host:port) once started."""
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._frozen = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        """Listen on a free local port and return its address."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self._frozen:  # a hung server: it takes every byte and never answers
                writer.write(data)
                await writer.drain()
        writer.close()

    def hang(self) -> None:
        """Keep the connections open but answer nothing from now on."""
        self._frozen = True

    async def stop(self) -> None:
        """Close the listener and every connection: Temporal is gone."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()


@contextlib.asynccontextmanager
async def _api_through_proxy(
    settings: Settings, temporal: Client
) -> AsyncIterator[tuple[httpx.AsyncClient, TemporalProxy]]:
    proxy = TemporalProxy(temporal.service_client.config.target_host)
    address = await proxy.start()
    # hardly any retries of an unreachable server: the outage shows at once, not after ~8 s of the SDK retrying
    retries = RetryConfig(max_retries=1, max_elapsed_time_millis=500, initial_interval_millis=50)
    client = await Client.connect(address, namespace=settings.temporal_namespace, retry_config=retries)
    (settings.workflows_dir / "outage-flow.yaml").write_text(FLOW)
    app = create_app(settings, temporal_client=client)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
        ):
            yield http, proxy
    finally:
        await proxy.stop()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unavailable"


async def test_temporal_going_away_is_a_503_problem_on_every_route(settings: Settings, client: Client) -> None:
    async with _api_through_proxy(settings, client) as (http, proxy):
        assert (await http.get("/health")).status_code == 200  # connected through the proxy
        await proxy.stop()
        responses = {
            "inbox": await http.get("/approvals"),
            "decide": await http.post("/executions/some-run/approvals/a", json={"decision": "approve"}),
            "execute": await http.post("/executions/workflows/outage-flow/execute", json={}),
            "list": await http.get("/executions"),
            "show": await http.get("/executions/some-run"),
            "history": await http.get("/executions/some-run/history"),
            "cancel": await http.post("/executions/some-run/cancel"),
            "terminate": await http.post("/executions/some-run/terminate"),
            "retry": await http.post("/executions/some-run/retry"),
            "delete": await http.delete("/workflows/outage-flow"),
        }
    for name, response in responses.items():
        assert response.status_code == 503, (name, response.text)
        _assert_unavailable(response)


async def test_a_hung_temporal_is_a_503_within_the_rpc_timeout(settings: Settings, client: Client) -> None:
    async with _api_through_proxy(settings, client) as (http, proxy):
        proxy.hang()
        started = time.monotonic()
        response = await http.get("/approvals")  # a listing without an RPC timeout waited 30 s (the SDK's default)
        elapsed = time.monotonic() - started
    _assert_unavailable(response)
    assert elapsed < 20, elapsed


async def test_a_decision_no_worker_answers_is_a_503_problem(
    settings: Settings, client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(approvals, "UPDATE_TIMEOUT", approvals.UPDATE_TIMEOUT / 15)
    run = await client.start_workflow(
        "outage-flow", RunInput(definition={}, revision=1), id=f"no-worker-{uuid.uuid4().hex[:8]}",
        task_queue=f"{task_queue}-nobody-polls",
    )  # fmt: skip
    app = create_app(settings, temporal_client=client)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
        ):
            response = await http.post(f"/executions/{run.id}/approvals/a", json={"decision": "approve"})
    finally:
        await run.terminate("test over")
    _assert_unavailable(response)
    assert response.json()["detail"] == "no worker answered the decision in time; is a worker running?"


async def test_count_running_checks_every_recent_run(client: Client, task_queue: str) -> None:
    # Not in visibility under the name counted (no search attribute), so only the one-by-one check finds it.
    run = await client.start_workflow(
        "outage-flow", RunInput(definition={}, revision=1), id=f"count-{uuid.uuid4().hex[:8]}",
        task_queue=f"{task_queue}-nobody-polls",
    )  # fmt: skip
    try:
        never_started = f"never-started-{uuid.uuid4().hex[:8]}"  # an index row of a start that never happened
        assert await count_running(client, "not-listed", [never_started, run.id]) == 1
    finally:
        await run.terminate("test over")
