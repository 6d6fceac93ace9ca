"""A worker SIGKILLed while five runs share a concurrency key: they still never overlap, and all complete.

The runs record when they start and end (a python task before and after a 2 s sleep) into their outputs. The
lock workflow of the key, its queue and the runs waiting in it live in Temporal, so a new worker carries on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import max_overlap

from .stack import Stack, request, wait_for

RUNS = 5

CLOCK = "import time\n\n\ndef now():\n    return time.time()\n"

DEFINITION = """
name: keyed-deploy
params:
  environment: {type: string, required: true}
concurrency: {key: "crash-${{ params.environment }}", limit: 1}
tasks:
  - id: start
    activity_type: python
    config: {function: "clock:now"}
  - id: nap
    type: sleep
    config: {duration: 2s}
  - id: end
    activity_type: python
    config: {function: "clock:now"}
output: {start: "${{ tasks.start.output }}", end: "${{ tasks.end.output }}"}
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The whole stack as separate processes, with the clock module and the workflow in its directory."""
    deployment = Stack(tmp_path)
    (tmp_path / "workflows" / "clock.py").write_text(CLOCK)
    (tmp_path / "workflows" / "keyed-deploy.yaml").write_text(DEFINITION)
    deployment.start_all()
    try:
        yield deployment
    finally:
        deployment.stop()


def _runs(stack: Stack, ids: list[str]) -> list[dict[str, Any]] | None:
    answers = [request("GET", f"{stack.api}/executions/{i}") for i in ids]
    if any(answer.status_code == 503 for answer in answers):  # Temporal slow to answer on a loaded machine
        return None
    runs = [answer.json() for answer in answers]
    assert not {run["status"] for run in runs} - {"running", "completed"}, [(r["status"], r["error"]) for r in runs]
    return runs


def test_five_runs_on_one_key_never_overlap_and_complete_across_a_worker_kill(stack: Stack) -> None:
    ids = []
    for _ in range(RUNS):
        started = request("POST", f"{stack.api}/executions/workflows/keyed-deploy/execute",
                          json={"parameters": {"environment": "prod"}})  # fmt: skip
        assert started.status_code == 202, started.text
        ids.append(started.json()["execution_id"])

    def completed(count: int) -> bool:
        runs = _runs(stack, ids)
        return runs is not None and sum(run["status"] == "completed" for run in runs) >= count

    # in the middle: two runs done, the third holds the key and two wait in its queue
    wait_for(lambda: completed(2), 90, "two runs completing", interval=0.5)
    stack.kill("worker")
    killed_at = time.monotonic()
    stack.start_worker("worker-2")
    wait_for(lambda: completed(RUNS), 120, f"all {RUNS} runs completing after the kill", interval=1.0)
    recovery = time.monotonic() - killed_at
    runs = _runs(stack, ids)
    assert runs is not None
    intervals = [(run["output"]["start"], run["output"]["end"]) for run in runs]
    print(f"\nconcurrency under a worker SIGKILL: {RUNS}/{RUNS} runs completed {recovery:.1f}s after the kill, "
          f"at most {max_overlap(intervals)} at once")  # fmt: skip
    assert max_overlap(intervals) == 1, sorted(intervals)
    assert all(end - start >= 2 for start, end in intervals), intervals
