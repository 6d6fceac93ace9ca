"""A failed `for_each` keeps the outputs of its completed items, and a resumed run runs only the others (issue 16).

Each item appends `start <index>` and `end <index>` to a log file, so the tests count what really ran.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.polling import eventually
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import FAN_OUT_FINISHES_PATCH, RunInput, TaskState, TaskStatus
from workflow_engine.settings import Settings

from .conftest import Outcome, Runner

HELPERS = '''
"""An item that logs its start and end, may wait, and may fail."""
import asyncio
from pathlib import Path


def _log(path, line):
    with Path(path).open("a") as log:
        log.write(line + "\\n")


async def item(log, index, delay=0.0, fail=""):
    _log(log, f"start {index}")
    await asyncio.sleep(delay)
    if fail:
        _log(log, f"failed {index}")
        raise RuntimeError(fail)
    _log(log, f"end {index}")
    return {"index": index, "doubled": index * 2}
'''

# Six items, three at a time: item 2 fails at once, item 1 a little later, item 0 completes last; items 3-5 wait
# on `max_parallel` when the first failure comes, so they never start.
FAN = """
name: partial-fan
params:
  log: {type: string, required: true}
  plan: {type: array, required: true}
tasks:
  - id: fan
    for_each: "${{ params.plan }}"
    max_parallel: 3
    activity_type: python
    config:
      function: "helpers:item"
      args: ["${{ params.log }}", "${{ index }}", "${{ item.delay }}", "${{ item.fail }}"]
    retry_policy: {max_attempts: 1}
output: "${{ tasks.fan.output }}"
"""

PLAN = [
    {"delay": 1.5, "fail": ""},
    {"delay": 0.7, "fail": "second failure"},
    {"delay": 0.0, "fail": "first failure"},
    {"delay": 0.0, "fail": ""},
    {"delay": 0.0, "fail": ""},
    {"delay": 0.0, "fail": ""},
]


@pytest.fixture(autouse=True)
def helpers(workflows_dir: Path) -> None:
    """Write the helper module every `python` task of this file calls."""
    (workflows_dir / "helpers.py").write_text(HELPERS)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Return the file the items log to."""
    return tmp_path / "items.log"


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _indexes(log: Path, what: str) -> list[int]:
    return sorted(int(line.split()[1]) for line in _lines(log) if line.startswith(what + " "))


async def _resumed(client: Client, settings: Settings, text: str, params: dict[str, Any], resume: Any) -> Outcome:
    """Run `text` on the `run_yaml` worker as a resumed run starting from `resume` (what `plan_resume` builds)."""
    definition = parse_definition(text, file="test.yaml")
    execution_id = f"{definition.name}-resumed-{uuid.uuid4().hex}"
    await start_execution(
        client,
        workflow_name=definition.name,
        execution_id=execution_id,
        task_queue=settings.temporal_task_queue,
        run_input=RunInput(
            definition=definition.model_dump(mode="json"),
            revision=1,
            params=resolve_params(definition, params),
            resume=resume,
        ),
    )
    return await Outcome.of(client, client.get_workflow_handle(execution_id))


async def test_a_failed_item_lets_running_items_finish_and_starts_no_more(run_yaml: Runner, log: Path) -> None:
    outcome = await run_yaml(FAN, {"log": str(log), "plan": PLAN})
    assert outcome.failure is not None
    assert outcome.state["status"] == "failed"
    # the three running items ran to their end (item 0 well after the first failure); items 3-5 never started
    assert _indexes(log, "start") == [0, 1, 2]
    assert _indexes(log, "end") == [0]
    assert _indexes(log, "failed") == [1, 2]
    fan = outcome.task("fan")
    assert fan["status"] == "failed"
    assert "first failure" in fan["error"] and "second failure" not in fan["error"]
    assert fan["items"] == {"0": {"index": 0, "doubled": 0}}
    assert fan["output"] is None
    history = await outcome.handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    cancelled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED]
    assert len(scheduled) == 3 and cancelled == []
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert any(b"wfe-fan-out-finishes-started-items" in e.SerializeToString() for e in markers)


async def test_a_resumed_fan_out_runs_only_the_missing_items_and_merges_in_item_order(
    run_yaml: Runner, client: Client, settings: Settings, log: Path
) -> None:
    kept = {"0": {"index": 0, "doubled": 0}, "3": {"index": 3, "doubled": 6}, "5": {"kept": "as recorded"}}
    state = TaskState(id="fan", name="fan", type="activity", items=kept)
    plan = [{"delay": 0.0, "fail": ""}] * 6
    outcome = await _resumed(
        client, settings, FAN, {"log": str(log), "plan": plan}, {"tasks": {"fan": state.as_json()}, "context": {}}
    )
    assert outcome.failure is None, outcome.failure
    assert _indexes(log, "start") == [1, 2, 4]
    expected = [{"index": i, "doubled": 2 * i} for i in range(5)] + [{"kept": "as recorded"}]
    assert outcome.result == expected
    fan = outcome.task("fan")
    assert fan["status"] == "completed" and fan["output"] == expected
    assert "items" not in fan


async def test_a_resumed_fan_out_that_fails_again_keeps_the_kept_and_the_new_outputs(
    run_yaml: Runner, client: Client, settings: Settings, log: Path
) -> None:
    state = TaskState(id="fan", name="fan", type="activity", items={"1": {"kept": 1}})
    plan = [{"delay": 0.0, "fail": ""}, {"delay": 0.0, "fail": "not again"}, {"delay": 0.0, "fail": "still broken"}]
    outcome = await _resumed(
        client, settings, FAN, {"log": str(log), "plan": plan}, {"tasks": {"fan": state.as_json()}, "context": {}}
    )
    assert outcome.failure is not None
    assert _indexes(log, "start") == [0, 2]  # item 1 was kept: its failing plan never runs
    fan = outcome.task("fan")
    assert fan["status"] == "failed" and "still broken" in fan["error"]
    assert fan["items"] == {"0": {"index": 0, "doubled": 0}, "1": {"kept": 1}}


async def test_a_fan_out_without_failures_is_unchanged(run_yaml: Runner, log: Path) -> None:
    plan = [{"delay": 0.3 - 0.05 * i, "fail": ""} for i in range(6)]
    outcome = await run_yaml(FAN, {"log": str(log), "plan": plan})
    assert outcome.failure is None
    expected = [{"index": i, "doubled": 2 * i} for i in range(6)]
    assert outcome.result == expected
    fan = outcome.task("fan")
    assert fan["status"] == "completed" and fan["output"] == expected
    assert _indexes(log, "start") == list(range(6))
    # an ordinary task's state has neither of the resume keys, and the run records no fan-out patch marker
    assert "items" not in fan and "reused_from" not in fan
    assert (fan["items_total"], fan["items_done"]) == (6, 6)  # what `run --watch` draws its progress bar from
    history = await outcome.handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert not [e for e in markers if FAN_OUT_FINISHES_PATCH.encode() in e.SerializeToString()]
    assert markers  # the run does record a patch marker: the final states memo's


def test_the_status_shape_of_an_ordinary_task_has_no_resume_keys() -> None:
    keys = {"id", "name", "type", "status", "attempts", "started_at", "finished_at", "output", "error"}
    assert set(TaskState(id="t", name="t", type="activity").as_json()) == keys
    assert set(TaskState(id="t", name="t", type="activity", status=TaskStatus.FAILED, error="x").as_json()) == keys
    reused = TaskState(id="t", name="t", type="activity", reused_from="run-1", items={"0": 1}).as_json()
    assert reused["reused_from"] == "run-1" and reused["items"] == {"0": 1}
    assert TaskState.from_json(reused) == TaskState(id="t", name="t", type="activity", reused_from="run-1",
                                                    items={"0": 1})  # fmt: skip


async def test_a_running_fan_out_reports_how_many_items_ended(run_yaml: Runner, log: Path) -> None:
    plan = [{"delay": 0.1 if i < 2 else 3.0, "fail": ""} for i in range(4)]
    handle_box: list[Any] = []

    async def watch() -> tuple[int, int]:
        await eventually(lambda: handle_box, within=20, what="the run starting")
        state = await eventually(
            lambda: handle_box[0].query("status"), within=20, what="two of four items ended",
            until=lambda s: next(t for t in s["tasks"] if t["id"] == "fan").get("items_done") == 2,
        )  # fmt: skip
        fan = next(t for t in state["tasks"] if t["id"] == "fan")
        return fan["items_done"], fan["items_total"]

    watcher = asyncio.create_task(watch())
    outcome = await run_yaml(FAN, {"log": str(log), "plan": plan}, on_start=handle_box.append)
    assert await watcher == (2, 4)
    assert (outcome.task("fan")["items_done"], outcome.task("fan")["items_total"]) == (4, 4)
