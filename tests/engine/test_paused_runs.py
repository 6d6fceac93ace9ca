"""Many paused runs are cheap: a small workflow cache still serves every approval, also after a worker restart."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from tests.polling import eventually
from workflow_engine.dsl import parse_definition
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

FLOW = """
name: paused
tasks:
  - id: ask
    type: approval
    config: {message: "run ${{ workflow.execution_id }}?"}
  - id: after
    activity_type: log
    config: {message: "approved by ${{ tasks.ask.output.approvals[0].approver }}"}
output: "${{ tasks.after.output }}"
"""
RUNS = 30
CACHE = 4


async def test_more_paused_runs_than_the_cache_all_approve_after_a_restart(client: Client, settings: Settings) -> None:
    small = settings.model_copy(update={"worker_max_cached_workflows": CACHE})
    definition = parse_definition(FLOW).model_dump(mode="json")
    ids = [f"paused-{uuid.uuid4().hex}" for _ in range(RUNS)]

    async def waiting(execution_id: str) -> bool:
        state = await client.get_workflow_handle(execution_id).query("status")
        return bool(state["tasks"][0]["status"] == "waiting_approval")

    async with build_worker(client, small):
        await asyncio.gather(*(
            start_execution(client, workflow_name="paused", execution_id=execution_id,
                            task_queue=small.temporal_task_queue,
                            run_input=RunInput(definition=definition, revision=1))
            for execution_id in ids
        ))  # fmt: skip

        async def all_waiting() -> bool:
            return all(await asyncio.gather(*(waiting(i) for i in ids)))

        await eventually(all_waiting, within=20, what=f"all {RUNS} runs waiting for approval")
    # A new worker (a restart): nothing is cached, every decision replays its run from history.
    async with build_worker(client, small):
        answers = await asyncio.gather(*(
            client.get_workflow_handle(execution_id).execute_update(
                "approve", {"task_id": "ask", "decision": "approve", "approver": f"user{n}"}
            )
            for n, execution_id in enumerate(ids)
        ))  # fmt: skip
        results = await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))
    assert [answer["status"] for answer in answers] == ["completed"] * RUNS
    assert results == [f"approved by user{n}" for n in range(RUNS)]
