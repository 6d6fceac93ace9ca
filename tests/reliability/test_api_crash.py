"""The API process SIGKILLed mid-start, large parameters on SQLite, huge and deep bodies: nothing lost, nothing stuck.

A real `python -m workflow_engine api` on the session's Temporal dev server: keyed starts in flight when it is
killed make no duplicate run and leave no run without its execution-index row once every key is repeated;
a start with ~400 KiB of parameters (stored by reference in the same SQLite file) never waits for a lock; a
50 MB body is refused without the API holding it; 10k-deep JSON is a 422.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from tests.polling import eventually
from workflow_engine.settings import Settings
from workflow_engine.storage import Execution, StoredPayload, create_engine, session_factory
from workflow_engine.worker import build_worker

from .stack import Stack

BOUND_SECONDS = 55
KEYS = 100
KILL_AFTER = 25  # answered starts before the SIGKILL: the rest are in flight or not yet sent


@pytest.fixture
def api_stack(tmp_path: Path, temporal_env: WorkflowEnvironment, task_queue: str) -> Iterator[Stack]:
    """An API process (not started) on the session's Temporal, a fresh queue and a SQLite file under tmp_path."""
    stack = Stack(
        tmp_path / "stack",
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=task_queue,
    )
    for name in ("hello.yaml", "greetings.py"):
        shutil.copy(REPO_ROOT / "workflows" / name, stack.root / "workflows" / name)
    try:
        yield stack
    finally:
        stack.stop()


async def _start_api(stack: Stack) -> None:
    await asyncio.to_thread(stack.start_api)


def _crash(stack: Stack) -> None:
    """SIGKILL the API process (nothing flushed, nothing committed), as a crash or the OOM killer would."""
    process = stack.processes.pop("api")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _rss_kib(stack: Stack) -> int:
    status = Path(f"/proc/{stack.processes['api'].pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


async def _index_rows(database_url: str, keys: list[str]) -> dict[str, Execution]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.scalars(select(Execution).where(Execution.execution_id.in_(keys)))
            return {row.execution_id: row for row in rows}
    finally:
        await engine.dispose()


async def _in_temporal(client: Client, keys: list[str]) -> set[str]:
    async def known(key: str) -> str | None:
        try:
            await client.get_workflow_handle(key).describe()
        except Exception:  # noqa: BLE001 - not found: the start never reached Temporal
            return None
        return key

    return {key for key in await asyncio.gather(*(known(key) for key in keys)) if key is not None}


async def _runs_on_queue(client: Client, task_queue: str, expected: int) -> int:
    """How many runs Temporal visibility lists on this queue, once it has caught up to `expected` (within 10 s)."""

    async def count() -> int:
        return (await client.count_workflows(f"TaskQueue = '{task_queue}'")).count

    await eventually(count, until=lambda n: n >= expected, within=10, interval=0.2, what=f"{expected} runs listed")
    await asyncio.sleep(0.5)  # a duplicate would show up a moment later
    return await count()


async def test_keyed_starts_through_an_api_sigkill_lose_nothing_and_duplicate_nothing(
    api_stack: Stack, client: Client, settings: Settings, database_url: str, task_queue: str
) -> None:
    stack = api_stack
    stack.env["DATABASE_URL"] = database_url
    tag = uuid.uuid4().hex[:8]
    keys = [f"crash-{tag}-{n}" for n in range(KEYS)]
    # the runs complete on a worker in this process (reading the API's database and workflows directory)
    runner = settings.model_copy(update={"database_url": database_url, "workflows_dir": stack.root / "workflows"})
    async with asyncio.timeout(BOUND_SECONDS), build_worker(client, runner):
        await asyncio.to_thread(stack.migrate)
        await _start_api(stack)
        answered: Counter[str] = Counter()
        enough = asyncio.Event()
        limits = httpx.Limits(max_connections=KEYS)
        async with httpx.AsyncClient(base_url=stack.api, timeout=20, limits=limits) as http:

            async def start(n: int) -> int | None:
                try:
                    response = await http.post(
                        "/executions/workflows/hello/execute",
                        json={"parameters": {"who": f"p{n}"}},
                        headers={"Idempotency-Key": keys[n]},
                    )
                except httpx.TransportError:
                    answered["lost"] += 1
                    return None
                answered[str(response.status_code)] += 1
                if sum(answered.values()) >= KILL_AFTER:
                    enough.set()
                return response.status_code

            first = [asyncio.create_task(start(n)) for n in range(KEYS)]
            await enough.wait()
            _crash(stack)
            await asyncio.gather(*first)
        started = await _in_temporal(client, keys)
        rows = await _index_rows(database_url, keys)
        unindexed = started - set(rows)
        print(f"\nbefore the kill: {dict(answered)}; in Temporal {len(started)}, rows {len(rows)}, "
              f"run without a row {len(unindexed)}", end=" ")  # fmt: skip
        assert set(rows) <= started, "an index row for a run Temporal never started"

        await _start_api(stack)
        async with httpx.AsyncClient(base_url=stack.api, timeout=20, limits=limits) as http:
            repeats = await asyncio.gather(
                *(
                    http.post("/executions/workflows/hello/execute", json={"parameters": {"who": f"p{n}"}},
                              headers={"Idempotency-Key": key})
                    for n, key in enumerate(keys)
                )
            )  # fmt: skip
            statuses = {key: response.status_code for key, response in zip(keys, repeats, strict=True)}
            assert {k for k, s in statuses.items() if s == 200} == started, [r.text for r in repeats][:3]
            assert {k for k, s in statuses.items() if s == 202} == set(keys) - started
            # every run has its index row now, rebuilt by the repeat where the crash lost it (no GET yet)
            rows = await _index_rows(database_url, keys)
            assert set(rows) == set(keys)
            for n, key in enumerate(keys):
                row = rows[key]
                assert (row.workflow_id, row.revision, row.started_by, row.retry_of) == ("hello", 1, "local", None)
                assert row.parameters == {"who": f"p{n}", "times": 2}, key
            assert await _runs_on_queue(client, task_queue, KEYS) == KEYS, "a key made a second run"

            for key in keys[:10]:
                await client.get_workflow_handle(key).result()
            retries = await asyncio.gather(*(http.post(f"/executions/{key}/retry") for key in keys[:10]))
            assert [r.status_code for r in retries] == [202] * 10, [r.text for r in retries]
            assert [r.json()["retry_of"] for r in retries] == keys[:10]
            for key in [*unindexed, keys[-1]]:
                shown = (await http.get(f"/executions/{key}")).json()
                assert (shown["revision"], shown["started_by"]) == (1, "local") and shown["parameters"], shown
        print(f"after restart and repeats: {Counter(statuses.values())}, rows {len(rows)}/{KEYS}, "
              f"runs {KEYS}, retries 10/10", end=" ")  # fmt: skip


async def test_large_parameters_on_sqlite_start_in_seconds_while_other_writes_succeed(
    api_stack: Stack, client: Client
) -> None:
    stack = api_stack
    who = "x" * (400 * 1024)
    other = (stack.root / "workflows" / "hello.yaml").read_text().replace("name: hello", "name: hello-two")
    async with asyncio.timeout(BOUND_SECONDS):
        await asyncio.to_thread(stack.migrate)
        await _start_api(stack)
        async with httpx.AsyncClient(base_url=stack.api, timeout=40) as http:

            async def timed(request: object) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await request  # type: ignore[misc]
                return response, time.monotonic() - started

            (big, big_s), (write, write_s) = await asyncio.gather(
                timed(http.post("/executions/workflows/hello/execute", json={"parameters": {"who": who}})),
                timed(http.post("/workflows", content=other, headers={"content-type": "application/yaml"})),
            )
            print(f"\n400 KiB parameters: {big.status_code} in {big_s:.2f} s; concurrent registration "
                  f"{write.status_code} in {write_s:.2f} s", end=" ")  # fmt: skip
            assert big.status_code == 202, big.text[:300]
            assert write.status_code == 201, write.text
            assert big_s < 10 and write_s < 10
            execution_id = big.json()["execution_id"]
            shown = (await http.get(f"/executions/{execution_id}")).json()
            assert shown["parameters"] == {"who": who, "times": 2}
            await http.post(f"/executions/{execution_id}/terminate")
    engine = create_engine(stack.env["DATABASE_URL"])
    try:
        async with session_factory(engine)() as session:
            largest = await session.scalar(select(func.max(StoredPayload.size)))
    finally:
        await engine.dispose()
    assert largest is not None and largest > 400 * 1024, "the run input was not stored by reference"


async def test_a_50_mb_body_is_refused_without_the_api_holding_it(api_stack: Stack) -> None:
    stack = api_stack
    body = b'{"parameters": {"who": "' + b"x" * (50 * 1024 * 1024) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024 * 1024):
            yield body[start : start + 1024 * 1024]

    async with asyncio.timeout(BOUND_SECONDS):
        await asyncio.to_thread(stack.migrate)
        await _start_api(stack)
        async with httpx.AsyncClient(base_url=stack.api, timeout=30) as http:
            await http.get("/workflows")  # warm: the first request allocates what every request needs
            before = _rss_kib(stack)
            url = "/executions/workflows/hello/execute"
            started = time.monotonic()
            sized = await http.post(url, content=body, headers={"content-type": "application/json"})
            sized_s = time.monotonic() - started
            started = time.monotonic()
            streamed = await http.post(url, content=chunks(), headers={"content-type": "application/json"})
            streamed_s = time.monotonic() - started
            after = _rss_kib(stack)
            for response in (sized, streamed):
                assert response.status_code == 413, response.text[:300]
                assert response.json()["code"] == "body_too_large"
            assert (await http.get("/health")).status_code == 200
    print(f"\n50 MB body: 413 in {sized_s:.2f} s (Content-Length), {streamed_s:.2f} s (chunked); API RSS "
          f"{before / 1024:.1f} -> {after / 1024:.1f} MiB", end=" ")  # fmt: skip
    assert after - before < 6 * 1024, (before, after)


async def test_json_nested_10k_deep_is_a_422(api_stack: Stack) -> None:
    stack = api_stack
    deep = "[" * 10_000 + "]" * 10_000
    async with asyncio.timeout(BOUND_SECONDS):
        await asyncio.to_thread(stack.migrate)
        await _start_api(stack)
        async with httpx.AsyncClient(base_url=stack.api, timeout=30) as http:
            for url, text in (
                ("/workflows", deep),
                ("/workflows", '{"yaml": ' + deep + "}"),
                ("/executions/workflows/hello/execute", '{"parameters": {"who": ' + deep + "}}"),
            ):
                response = await http.post(url, content=text, headers={"content-type": "application/json"})
                assert response.status_code == 422, (url, response.text[:300])
                assert response.json()["code"] == "nesting_too_deep"
                assert response.json()["errors"][0]["path"].startswith(("body[0]", "body.yaml[0]", "body.parameters"))
            assert (await http.get("/health")).status_code == 200
