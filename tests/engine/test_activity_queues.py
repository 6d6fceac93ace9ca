"""Activity routing: a task queue per remote activity kind with its own limit, and a task's own `task_queue`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from workflow_engine.settings import Settings
from workflow_engine.worker import WorkerConfigError, build_worker

from .conftest import Runner, max_overlap

HELPERS = """
import asyncio
import time


async def stamp(value, delay):
    start = time.time()
    await asyncio.sleep(delay)
    return {"value": value, "start": start, "end": time.time()}
"""

STAMP = "import sys, time; s = time.time(); time.sleep(float(sys.argv[1])); print(s, time.time())"


async def test_each_kind_has_its_own_limit(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "helpers.py").write_text(HELPERS)
    outcome = await run_yaml(
        f"""
name: kinds
tasks:
  - id: calls
    for_each: "${{{{ [1, 2, 3] }}}}"
    activity_type: python
    config: {{function: "helpers:stamp", args: ["${{{{ item }}}}", 0.3]}}
  - id: commands
    depends_on: []
    for_each: "${{{{ [1, 2, 3] }}}}"
    activity_type: shell
    config: {{command: ["python3", "-c", "{STAMP}", "0.3"]}}
""",
        settings_update={"worker_activity_concurrency": "python=1,shell=3", "shell_enabled": True},
    )
    assert outcome.failure is None, outcome.failure
    calls = [(s["start"], s["end"]) for s in outcome.task("calls")["output"]]
    commands = [
        (float(start), float(end)) for start, end in (o["stdout"].split() for o in outcome.task("commands")["output"])
    ]
    assert max_overlap(calls) == 1  # python=1: one call at a time, although the fan-out has no max_parallel
    assert max_overlap(commands) == 3  # shell=3, in the same run and at the same time
    history = await outcome.handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    queues = {a.activity_type.name: a.task_queue.name for a in scheduled}
    base = (await outcome.handle.describe()).task_queue
    assert queues == {"python": f"{base}/python", "shell": f"{base}/shell"}


async def test_a_task_queue_of_the_task_routes_it_to_the_workers_polling_that_queue(
    run_yaml: Runner, client: Client, workflows_dir: Path, settings: Settings
) -> None:
    (workflows_dir / "helpers.py").write_text(HELPERS)
    gpu = f"gpu-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, settings, task_queue=gpu):
        outcome = await run_yaml(
            f"""
name: routed
tasks:
  - id: train
    activity_type: python
    task_queue: {gpu}
    config: {{function: "helpers:stamp", args: [1, 0]}}
"""
        )
    assert outcome.failure is None, outcome.failure
    assert outcome.task("train")["output"]["value"] == 1
    history = await outcome.handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert [e.activity_task_scheduled_event_attributes.task_queue.name for e in scheduled] == [gpu]


def test_a_limit_for_an_unknown_kind_is_refused_at_worker_start(client: Client, settings: Settings) -> None:
    wrong = settings.model_copy(update={"worker_activity_concurrency": "python=2,sheel=1"})
    with pytest.raises(WorkerConfigError, match="'sheel', which is not a remote activity type"):
        build_worker(client, wrong)


@pytest.mark.parametrize("value", ["shell", "shell=0", "shell=two", "=3", "shell=2,http_request"])
def test_malformed_limits_are_a_settings_error(value: str) -> None:
    with pytest.raises(ValidationError, match="is not `kind=N`"):
        Settings(_env_file=None, worker_activity_concurrency=value)


def test_limits_are_parsed_per_kind() -> None:
    settings = Settings(_env_file=None, worker_activity_concurrency=" shell=2, http_request=50 ,")
    assert settings.activity_concurrency == {"shell": 2, "http_request": 50}


async def test_kinds_without_a_limit_stay_on_the_runs_queue(run_yaml: Runner, workflows_dir: Path) -> None:
    (workflows_dir / "helpers.py").write_text(HELPERS)
    outcome = await run_yaml(
        "name: plain\ntasks:\n  - id: t\n    activity_type: python\n"
        "    config: {function: 'helpers:stamp', args: [1, 0]}\n",
        settings_update={"worker_activity_concurrency": "shell=2"},
    )
    assert outcome.failure is None, outcome.failure
    history = await outcome.handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    base = (await outcome.handle.describe()).task_queue
    assert [e.activity_task_scheduled_event_attributes.task_queue.name for e in scheduled] == [base]
