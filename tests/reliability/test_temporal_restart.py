"""The Temporal dev server SIGKILLed with 10 runs paused on approvals and 5 on timers: all finish after its restart.

The worker and the API are not restarted: they reconnect by themselves, the approvals are taken through the API
once Temporal is back, and the durable timers fire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from .stack import Stack, request, wait_for

PAUSED, SLEEPING = 10, 5

APPROVAL = """
name: paused
tasks:
  - id: sign_off
    type: approval
    config: {message: "ship it?"}
  - id: done
    type: set
    config: {shipped: true}
output: "${{ tasks.done.output }}"
"""

SLEEPER = """
name: sleeper
tasks:
  - id: nap
    type: sleep
    config: {duration: 6s}
  - id: done
    type: set
    config: {rested: true}
output: "${{ tasks.done.output }}"
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The whole stack as separate processes, serving the two workflows."""
    deployment = Stack(tmp_path)
    (tmp_path / "workflows" / "paused.yaml").write_text(APPROVAL)
    (tmp_path / "workflows" / "sleeper.yaml").write_text(SLEEPER)
    deployment.start_all()
    try:
        yield deployment
    finally:
        deployment.stop()


def _start(stack: Stack, workflow: str) -> str:
    started = request("POST", f"{stack.api}/executions/workflows/{workflow}/execute", json={"parameters": {}})
    assert started.status_code == 202, started.text
    return str(started.json()["execution_id"])


def _status(stack: Stack, execution_id: str) -> str:
    return str(request("GET", f"{stack.api}/executions/{execution_id}").json()["status"])


def test_paused_and_sleeping_runs_survive_a_killed_temporal(stack: Stack) -> None:
    paused = [_start(stack, "paused") for _ in range(PAUSED)]
    sleeping = [_start(stack, "sleeper") for _ in range(SLEEPING)]
    wait_for(lambda: all(_status(stack, i) == "waiting_approval" for i in paused), 60, "every approval waiting")

    stack.kill("temporal")
    down = request("GET", f"{stack.api}/executions/{paused[0]}")
    assert down.status_code == 503, down.text  # an outage is a clear 503, never a 500
    stack.start_temporal()
    back_at = time.monotonic()

    def approve(execution_id: str) -> bool:
        answer = request("POST", f"{stack.api}/executions/{execution_id}/approvals/sign_off",
                         json={"decision": "approve", "comment": "after the restart"})  # fmt: skip
        assert answer.status_code in (200, 503), answer.text
        return answer.status_code == 200

    for execution_id in paused:
        wait_for(partial(approve, execution_id), 60, f"the approval of {execution_id} being taken", interval=0.5)
    wait_for(lambda: all(_status(stack, i) == "completed" for i in paused + sleeping), 60, "every run completing")
    print(f"\nTemporal SIGKILL: {PAUSED} approvals and {SLEEPING} timers finished "
          f"{time.monotonic() - back_at:.1f}s after the restart, worker and API not restarted")  # fmt: skip
    for execution_id in paused:
        detail = request("GET", f"{stack.api}/executions/{execution_id}").json()
        assert detail["output"] == {"shipped": True}
        assert [(a["approver"], a["via"]) for a in detail["audit"]] == [("local", "api")]
    for execution_id in sleeping:
        assert request("GET", f"{stack.api}/executions/{execution_id}").json()["output"] == {"rested": True}
