"""Saturation: 30 runs at once of one 3 s sync `python` task (timeout 5 s) on one default worker each run once.

Sync functions used to share the default thread pool (`cpu + 4` threads, 6 here) while the worker took
100 activities: waiting for a thread counted against the timeout, so attempts timed out and ran again
(24 of 30 runs failed, 53 executions). Each slot now has a thread of the worker's own pool.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.engine.conftest import Outcome
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.activities.modules import allowed_modules
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

RUNS = 30
BOUND_SECONDS = 55
FLOW = """
name: saturate
params:
  log: {type: string, required: true}
  run: {type: string, required: true}
tasks:
  - id: nap
    activity_type: python
    timeout: 5s
    retry_policy: {max_attempts: 3}
    config: {function: "saturate:nap", args: ["${{ params.log }}", "${{ params.run }}", 3]}
"""
MODULE = '''
"""A blocking 3 s call that writes one line per execution (not per completed task)."""
import time


def nap(log, run, seconds):
    with open(log, "a", encoding="utf-8") as file:
        file.write(run + "\\n")
    time.sleep(seconds)
    return run
'''


async def test_thirty_blocking_tasks_at_once_each_run_exactly_once(
    client: Client, settings: Settings, workflows_dir: Path, tmp_path: Path
) -> None:
    (workflows_dir / "saturate.py").write_text(MODULE)
    log = tmp_path / "executions.log"
    definition = parse_definition(FLOW, file="saturate.yaml", python_modules=allowed_modules(settings))
    runs = [f"saturate-{i}-{uuid.uuid4().hex[:8]}" for i in range(RUNS)]
    async with asyncio.timeout(BOUND_SECONDS), build_worker(client, settings):  # default limits: 100 activities
        began = time.monotonic()
        await asyncio.gather(*(
            start_execution(
                client, workflow_name=definition.name, execution_id=run, task_queue=settings.temporal_task_queue,
                run_input=RunInput(definition=definition.model_dump(mode="json"), revision=1,
                                   params=resolve_params(definition, {"log": str(log), "run": run})),
            )
            for run in runs
        ))  # fmt: skip
        outcomes = await asyncio.gather(*(Outcome.of(client, client.get_workflow_handle(run)) for run in runs))
        seconds = time.monotonic() - began
    executions = log.read_text(encoding="utf-8").splitlines()
    completed = [o for o in outcomes if o.failure is None and o.state["status"] == "completed"]
    attempts = [o.task("nap")["attempts"] for o in outcomes]
    print(f"saturation: {len(completed)}/{RUNS} completed, {len(executions)} executions, "
          f"{sum(attempts) - RUNS} retries, {seconds:.1f} s")  # fmt: skip
    assert len(completed) == RUNS, [o.state["error"] for o in outcomes if o not in completed]
    assert sorted(executions) == sorted(runs)  # each function ran exactly once
    assert attempts == [1] * RUNS  # no attempt timed out waiting for a thread
    assert seconds < 20  # all 30 ran side by side: about one 3 s call, not 30 / 6 batches of them
