"""Many paused runs: 1,000 runs waiting on approvals, a worker with a bounded cache, approvals after a restart.

Measures the worker process's resident memory with the runs paused (the cache bounds what stays in
memory), then restarts the worker and approves every run through the `approve` update.

Run: `.venv/bin/python -m bench.approvals [--runs 1000] [--cache 100]`. Results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from workflow_engine.devserver import temporal_binary
from workflow_engine.dsl import parse_definition
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import SA_WAITING_APPROVAL, SEARCH_ATTRIBUTES, RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

FLOW = """
name: paused-bench
tasks:
  - id: ask
    type: approval
    config: {message: "approve ${{ workflow.execution_id }}?"}
  - id: after
    activity_type: log
    config: {message: done}
"""


def rss_mib() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


async def _bounded(limit: int, coroutines: Sequence[Awaitable[object]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Awaitable[object]) -> None:
        async with semaphore:
            await coroutine

    await asyncio.gather(*(one(c) for c in coroutines))


async def _count_waiting(client: Client) -> int:
    query = f"{SA_WAITING_APPROVAL.name} = true AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def main(runs: int, cache: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), dev_server_database_filename=f"{tmp}/temporal.db",
            dev_server_extra_args=["--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL"],
            search_attributes=SEARCH_ATTRIBUTES,
        )  # fmt: skip
        client = env.client
        settings = Settings(
            temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}", workflows_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/engine.db", worker_max_cached_workflows=cache,
        )  # fmt: skip
        from workflow_engine.storage import upgrade_database

        await upgrade_database(settings.database_url)
        definition = parse_definition(FLOW).model_dump(mode="json")
        ids = [f"paused-bench-{n}-{uuid.uuid4().hex[:8]}" for n in range(runs)]
        baseline = rss_mib()
        async with build_worker(client, settings):
            started = time.perf_counter()
            await _bounded(50, [
                start_execution(client, workflow_name="paused-bench", execution_id=i,
                                task_queue=settings.temporal_task_queue, run_input=RunInput(definition, 1))
                for i in ids
            ])  # fmt: skip
            for _ in range(3600):  # visibility is eventually consistent: poll, at most 30 minutes
                if await _count_waiting(client) >= runs:
                    break
                await asyncio.sleep(0.5)
            paused_after = time.perf_counter() - started
            paused_rss = rss_mib()
        restarted = time.perf_counter()
        async with build_worker(client, settings):
            await _bounded(50, [
                client.get_workflow_handle(i).execute_update(
                    "approve", {"task_id": "ask", "decision": "approve", "approver": "bench"})
                for i in ids
            ])  # fmt: skip
            await _bounded(50, [client.get_workflow_handle(i).result() for i in ids])
            approved_after = time.perf_counter() - restarted
            final_rss = rss_mib()
        await env.shutdown()
    print(f"runs={runs} cache={cache}")
    print(f"  all paused (waiting_approval) after {paused_after:.1f} s")
    print(f"  process RSS: before {baseline:.0f} MiB, with {runs} paused runs {paused_rss:.0f} MiB")
    print(f"  after a worker restart, {runs} approvals + completions in {approved_after:.1f} s "
          f"({runs / approved_after:.0f}/s); RSS {final_rss:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cache", type=int, default=100)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.cache))
