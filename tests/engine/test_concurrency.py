"""Keyed concurrency on a real Temporal server: runs and tasks with the same key never overlap past `limit`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Replayer

from tests.engine.conftest import max_overlap, start_yaml
from tests.engine.record_histories import HISTORIES, SCENARIOS, TASK_QUEUE
from tests.engine.test_replay import _patches
from tests.polling import eventually
from workflow_engine.dsl.concurrency import lock_id
from workflow_engine.engine.concurrency import CONCURRENCY_PATCH, LOCK_RELEASE_SIGNAL, LOCK_STATE_QUERY
from workflow_engine.engine.workflow.lock import KeyLock
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker, workflow_runner

Handle = WorkflowHandle[Any, Any]
Start = Callable[..., Awaitable[Handle]]

CLOCK = "import time\n\n\ndef now():\n    return time.time()\n"


def _timed(name: str, concurrency: str, seconds: str = "2s") -> str:
    """A run that records when it started and ended its sleep, under a workflow-level `concurrency`."""
    return f"""
name: {name}
params:
  env: {{type: string, required: true}}
concurrency: {concurrency}
tasks:
  - id: start
    activity_type: python
    config: {{function: "clock:now"}}
  - id: nap
    type: sleep
    config: {{duration: {seconds}}}
  - id: end
    activity_type: python
    config: {{function: "clock:now"}}
output: {{start: "${{{{ tasks.start.output }}}}", end: "${{{{ tasks.end.output }}}}"}}
"""


@pytest_asyncio.fixture
async def start(client: Client, settings: Settings, workflows_dir: Path) -> AsyncIterator[Start]:
    """Yield a function that starts a YAML definition (without waiting for it) on a worker for this test's queue."""
    (workflows_dir / "clock.py").write_text(CLOCK)

    async def go(text: str, params: dict[str, Any] | None = None) -> Handle:
        return await start_yaml(client, settings, text, params)

    async with build_worker(client, settings):
        yield go


def _key() -> str:
    return f"env-{uuid.uuid4().hex[:8]}"


async def _lock_state(client: Client, settings: Settings, key: str) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = await client.get_workflow_handle(lock_id(key, settings.temporal_task_queue)).query(
            LOCK_STATE_QUERY
        )
    except Exception:  # noqa: BLE001 - not started yet, or no worker answered in time: "not yet"
        return None
    return state


async def _requested(client: Client, settings: Settings, key: str, count: int) -> None:
    """Wait until the lock of `key` has `count` requests (holders and queued)."""
    await eventually(
        lambda: _lock_state(client, settings, key), within=30, interval=0.1, what=f"{count} requests for {key}",
        until=lambda state: len(state["holders"]) + len(state["queue"]) == count,
    )  # fmt: skip


def _interval(result: dict[str, float]) -> tuple[float, float]:
    return result["start"], result["end"]


async def test_five_runs_with_one_key_run_one_at_a_time_in_arrival_order(
    start: Start, client: Client, settings: Settings
) -> None:
    key = _key()
    text = _timed("conc-serial", '{key: "${{ params.env }}", limit: 1}')
    handles = []
    for n in range(5):  # each request reaches the lock before the next run starts: that is the arrival order
        handles.append(await start(text, {"env": key}))
        await _requested(client, settings, key, n + 1)
    status = await handles[1].query("status")
    assert status["concurrency"]["waiting_for"] == {"run": key}
    assert all(task["status"] == "pending" for task in status["tasks"])
    results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=90)
    intervals = [_interval(r) for r in results]
    assert max_overlap(intervals) == 1, intervals
    assert [s for s, _ in intervals] == sorted(s for s, _ in intervals)  # FIFO: started in arrival order
    assert all(end - begin >= 2 for begin, end in intervals)
    gaps = [intervals[i + 1][0] - intervals[i][1] for i in range(len(intervals) - 1)]
    print(f"\nhand-over from one holder's last task to the next one's first: max {max(gaps):.3f}s")
    # the lock's own history replays, in the sandbox too (what WORKER_WORKFLOW_SANDBOX=true runs)
    history = await client.get_workflow_handle(lock_id(key, settings.temporal_task_queue)).fetch_history()
    for sandboxed in (False, True):
        replayed = await Replayer(workflows=[KeyLock], workflow_runner=workflow_runner(sandboxed)).replay_workflow(
            history, raise_on_replay_failure=False
        )
        assert replayed.replay_failure is None, replayed.replay_failure
    # the lock ends once idle (LOCK_IDLE_LINGER later); by then it holds nothing
    assert await _lock_state(client, settings, key) in (None, {"key": key, "holders": [], "queue": []})


async def test_different_keys_run_in_parallel_and_a_limit_of_two_lets_two_run(start: Start) -> None:
    text = _timed("conc-keys", '{key: "${{ params.env }}"}')
    first, second = await asyncio.gather(start(text, {"env": _key()}), start(text, {"env": _key()}))
    pair = _timed("conc-pair", '{key: "${{ params.env }}", limit: 2}')
    shared = _key()
    three = [await start(pair, {"env": shared}) for _ in range(3)]
    keys = await asyncio.wait_for(asyncio.gather(first.result(), second.result()), timeout=60)
    assert max_overlap([_interval(r) for r in keys]) == 2
    limited = [_interval(r) for r in await asyncio.wait_for(asyncio.gather(*(h.result() for h in three)), 60)]
    assert max_overlap(limited) == 2, limited


async def test_skip_completes_at_once_and_fail_fails_with_concurrency_conflict(
    start: Start, client: Client, settings: Settings
) -> None:
    key = _key()
    holder = await start(_timed("conc-holder", '{key: "${{ params.env }}"}', "4s"), {"env": key})
    await _requested(client, settings, key, 1)
    skipped = await start(_timed("conc-skip", '{key: "${{ params.env }}", on_conflict: skip}'), {"env": key})
    assert await asyncio.wait_for(skipped.result(), 30) == {"skipped": "concurrency", "key": key}
    assert {t["status"] for t in (await skipped.query("status"))["tasks"]} == {"skipped"}
    failed = await start(_timed("conc-fail", '{key: "${{ params.env }}", on_conflict: fail}'), {"env": key})
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(failed.result(), 30)
    assert caught.value.cause.type == "ConcurrencyConflict"  # type: ignore[attr-defined]
    assert holder.id in str(caught.value.cause)
    timed = await start(_timed("conc-wait", '{key: "${{ params.env }}", timeout: 500ms}'), {"env": key})
    with pytest.raises(WorkflowFailureError) as waited:
        await asyncio.wait_for(timed.result(), 30)
    assert waited.value.cause.type == "ConcurrencyConflict"  # type: ignore[attr-defined]
    await asyncio.wait_for(holder.result(), 30)
    state = await _lock_state(client, settings, key)
    assert state is not None and state["queue"] == [] and state["holders"] == []  # the timed-out one left


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_proceeds(
    start: Start, client: Client, settings: Settings
) -> None:
    key = _key()
    text = _timed("conc-cancel", '{key: "${{ params.env }}"}', "3s")
    first = await start(text, {"env": key})
    await _requested(client, settings, key, 1)
    waiter = await start(text, {"env": key})
    await _requested(client, settings, key, 2)
    third = await start(text, {"env": key})
    await _requested(client, settings, key, 3)
    await waiter.cancel()
    await _requested(client, settings, key, 2)  # gone from the queue while the first still holds the key
    state = await _lock_state(client, settings, key)
    assert state is not None and [r["workflow_id"] for r in state["queue"]] == [third.id]
    results = await asyncio.wait_for(asyncio.gather(first.result(), third.result()), timeout=60)
    assert max_overlap([_interval(r) for r in results]) == 1
    with pytest.raises(WorkflowFailureError):
        await waiter.result()


async def test_a_terminated_holder_loses_its_key_to_the_next_run(
    start: Start, client: Client, settings: Settings
) -> None:
    key = _key()
    holder = await start(_timed("conc-term", '{key: "${{ params.env }}"}', "1h"), {"env": key})
    await _requested(client, settings, key, 1)
    gone = await start(_timed("conc-term", '{key: "${{ params.env }}"}', "1s"), {"env": key})
    await _requested(client, settings, key, 2)
    waiter = await start(_timed("conc-term", '{key: "${{ params.env }}"}', "1s"), {"env": key})
    await _requested(client, settings, key, 3)
    await gone.terminate("test")  # still queued: dropped when its grant signal finds no run
    await holder.terminate("test")  # no release: the lock's holder check (every 10 s) drops it
    await asyncio.wait_for(waiter.result(), timeout=40)
    state = await _lock_state(client, settings, key)
    assert state is not None and state["holders"] == [] and state["queue"] == []


TASK_LEVEL = """
name: conc-tasks
params:
  env: {type: string, required: true}
tasks:
  - id: prepare
    type: set
    config: {env: "${{ params.env }}"}
  - id: start
    activity_type: python
    config: {function: "clock:now"}
  - id: deploy
    type: sleep
    concurrency: {key: "deploy-${{ tasks.prepare.output.env }}", on_conflict: CONFLICT}
    config: {duration: 2s}
  - id: end
    activity_type: python
    config: {function: "clock:now"}
output: {start: "${{ tasks.start.output }}", end: "${{ tasks.end.output }}"}
"""


async def test_task_level_keys_serialise_one_task_and_skip_or_fail_it(
    start: Start, client: Client, settings: Settings
) -> None:
    key = _key()
    queued = TASK_LEVEL.replace("CONFLICT", "queue")
    handles = [await start(queued, {"env": key}) for _ in range(3)]

    async def states() -> list[dict[str, Any]]:
        return [await handle.query("status") for handle in handles]

    def one_waits(answers: list[dict[str, Any]]) -> bool:
        return any(t["id"] == "deploy" and t.get("waiting_for") == f"deploy-{key}" for s in answers for t in s["tasks"])

    # which run's deploy asks first is up to the worker; while one holds the key (2 s), another one waits
    await eventually(states, within=30, what="a run's deploy waiting for its key", until=one_waits)
    await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=60)
    # each run's deploy task ran alone: its started/finished times do not overlap
    spans = []
    for handle in handles:
        deploy = next(t for t in (await handle.query("status"))["tasks"] if t["id"] == "deploy")
        assert deploy["status"] == "completed"
        spans.append((deploy["started_at"], deploy["finished_at"]))
    spans.sort()
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans

    holder = await start(TASK_LEVEL.replace("CONFLICT", "queue").replace("2s", "4s"), {"env": key})
    await _requested(client, settings, f"deploy-{key}", 1)
    skipping = await start(TASK_LEVEL.replace("CONFLICT", "skip"), {"env": key})
    failing = await start(TASK_LEVEL.replace("CONFLICT", "fail"), {"env": key})
    await asyncio.wait_for(skipping.result(), 30)
    deploy = next(t for t in (await skipping.query("status"))["tasks"] if t["id"] == "deploy")
    assert (deploy["status"], deploy["output"]) == ("skipped", {"skipped": "concurrency", "key": f"deploy-{key}"})
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(failing.result(), 30)
    deploy = next(t for t in (await failing.query("status"))["tasks"] if t["id"] == "deploy")
    assert deploy["status"] == "failed" and deploy["error"].startswith("ConcurrencyConflict:"), deploy
    await asyncio.wait_for(holder.result(), 30)


def test_only_the_concurrency_history_asks_for_keys_and_it_releases_both() -> None:
    for name in sorted(SCENARIOS):
        assert (CONCURRENCY_PATCH in _patches(name)) == (name == "concurrency"), name
    events = json.loads((HISTORIES / "concurrency.json").read_text())["events"]
    signals = [
        e["signalExternalWorkflowExecutionInitiatedEventAttributes"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"
    ]
    assert [(s["signalName"], s["workflowExecution"]["workflowId"]) for s in signals] == [
        (LOCK_RELEASE_SIGNAL, lock_id("replay-deploy-staging", TASK_QUEUE)),  # the task's key, as the task ends
        (LOCK_RELEASE_SIGNAL, lock_id("replay-staging", TASK_QUEUE)),  # the run's, as the run ends
    ]
