"""Retry resumes a failed run without repeating completed work, counting side effects on the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.polling import eventually

Json = dict[str, Any]
YAML = {"content-type": "application/yaml"}
# What is resumed does not depend on the registry's database: one is enough here.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SIDE_EFFECTS = '''
"""Functions that append a line to a log file per call, so tests count how often each task ran."""

from pathlib import Path


def step(log, name, value, fail_flag=None):
    """Record the call; fail while `fail_flag` exists (the first time), then remove it."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(name + "\\n")
    if fail_flag and Path(fail_flag).exists():
        Path(fail_flag).unlink()
        raise RuntimeError(f"{name} failed on purpose")
    return value


def item(log, value, fail_dir):
    """A fan-out item: fails once for the values that have a flag file in `fail_dir`."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"item-{value}\\n")
    flag = Path(fail_dir) / str(value)
    if flag.exists():
        flag.unlink()
        raise RuntimeError(f"item {value} failed on purpose")
    return value * 10
'''

FIVE = """\
name: NAME
params:
  log: {type: string, required: true}
  flag: {type: string, required: true}
defaults:
  retry_policy: {max_attempts: 1}
tasks:
  - id: one
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "one", 1]}
  - id: two
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "two", 2]}
  - id: three
    activity_type: python
    config:
      function: "effects_NAME:step"
      args: ["${{ params.log }}", "three", "${{ tasks.one.output + tasks.two.output }}", "${{ params.flag }}"]
  - id: four
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "four", "${{ tasks.three.output * 10 }}"]}
  - id: five
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "five", "${{ tasks.four.output + 1 }}"]}
output: {five: "${{ tasks.five.output }}"}
"""


@pytest.fixture
def effects(workflows_dir: Path, tmp_path: Path) -> tuple[str, Path]:
    """A fresh workflow name, its side-effect module in the workflows directory, and the log it writes."""
    name = f"resume-{uuid.uuid4().hex[:8]}"
    (workflows_dir / f"effects_{name.replace('-', '_')}.py").write_text(SIDE_EFFECTS, encoding="utf-8")
    return name, tmp_path / "calls.log"


def _yaml(template: str, name: str) -> str:
    return template.replace("effects_NAME", f"effects_{name.replace('-', '_')}").replace("NAME", name)


async def _register(api: httpx.AsyncClient, text: str) -> None:
    answer = await api.post("/workflows", content=text, headers=YAML)
    assert answer.status_code in (200, 201), answer.text


async def _run(api: httpx.AsyncClient, name: str, parameters: Json) -> Json:
    started = await api.post(f"/executions/workflows/{name}/execute", json={"parameters": parameters},
                             params={"wait": "true", "timeout": 30})  # fmt: skip
    assert started.status_code == 200, started.text
    return await _closed(api, started.json()["execution_id"])


async def _closed(api: httpx.AsyncClient, execution_id: str) -> Json:
    async def detail() -> Json:
        shown = await api.get(f"/executions/{execution_id}")
        assert shown.status_code == 200, shown.text
        return dict(shown.json())

    return await eventually(detail, within=30, what=f"{execution_id} closed",
                            until=lambda b: b["status"] not in ("running", "waiting_approval"))  # fmt: skip


async def _retry(api: httpx.AsyncClient, execution_id: str, body: Json | None = None, expect: int = 202) -> Json:
    answer = await api.post(f"/executions/{execution_id}/retry", json=body)
    assert answer.status_code == expect, answer.text
    return dict(answer.json())


def _calls(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def _task(body: Json, task_id: str) -> Json:
    return dict(next(t for t in body["tasks"] if t["id"] == task_id))


@SQLITE_ONLY
async def test_a_resumed_run_runs_only_what_did_not_complete(
    api: httpx.AsyncClient, effects: tuple[str, Path], tmp_path: Path
) -> None:
    name, log = effects
    flag = tmp_path / "fail-three"
    flag.touch()
    await _register(api, _yaml(FIVE, name))
    failed = await _run(api, name, {"log": str(log), "flag": str(flag)})
    assert failed["status"] == "failed" and _task(failed, "three")["status"] == "failed"
    assert _calls(log) == ["one", "two", "three"]

    resumed = await _closed(api, (await _retry(api, failed["execution_id"]))["execution_id"])
    assert resumed["status"] == "completed", resumed
    assert resumed["retry_of"] == failed["execution_id"]
    assert sorted(_calls(log)) == sorted(["one", "two", "three", "three", "four", "five"])  # 1-2 ran once in total
    assert resumed["output"] == {"five": 31}  # three used one's and two's outputs: (1 + 2) * 10 + 1
    for kept in ("one", "two"):
        task = _task(resumed, kept)
        assert (task["status"], task["reused_from"]) == ("completed", failed["execution_id"])
    for ran in ("three", "four", "five"):
        assert _task(resumed, ran)["reused_from"] is None and _task(resumed, ran)["status"] == "completed"

    again = await _closed(api, (await _retry(api, resumed["execution_id"]))["execution_id"])  # nothing failed
    assert again["status"] == "completed" and again["output"] == {"five": 31}
    assert len(_calls(log)) == 6  # a resume of a completed run re-executes nothing
    assert _task(again, "one")["reused_from"] == failed["execution_id"]  # the run that actually ran it
    assert _task(again, "five")["reused_from"] == resumed["execution_id"]


@SQLITE_ONLY
async def test_from_task_reruns_exactly_the_task_and_its_descendants(
    api: httpx.AsyncClient, effects: tuple[str, Path], tmp_path: Path
) -> None:
    name, log = effects
    await _register(api, _yaml(FIVE, name))
    done = await _run(api, name, {"log": str(log), "flag": str(tmp_path / "no-flag")})
    assert done["status"] == "completed" and len(_calls(log)) == 5
    rerun = await _closed(api, (await _retry(api, done["execution_id"], {"mode": "from_task", "task_id": "four"}))[
        "execution_id"])  # fmt: skip
    assert rerun["status"] == "completed" and rerun["output"] == {"five": 31}
    assert _calls(log)[5:] == ["four", "five"]
    assert [t["id"] for t in rerun["tasks"] if t["reused_from"]] == ["one", "two", "three"]
    restarted = await _closed(api, (await _retry(api, done["execution_id"], {"mode": "restart"}))["execution_id"])
    assert restarted["status"] == "completed" and _calls(log)[7:] == ["one", "two", "three", "four", "five"]
    problem = await _retry(api, done["execution_id"], {"mode": "from_task", "task_id": "nope"}, expect=422)
    assert "'nope' is not a task" in problem["detail"]
    assert "needs a task_id" in (await _retry(api, done["execution_id"], {"mode": "from_task"}, expect=422))["detail"]


FAN_OUT = """\
name: NAME
params:
  log: {type: string, required: true}
  fail_dir: {type: string, required: true}
defaults:
  retry_policy: {max_attempts: 1}
tasks:
  - id: each
    activity_type: python
    for_each: "${{ [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19] }}"
    config: {function: "effects_NAME:item", args: ["${{ params.log }}", "${{ item }}", "${{ params.fail_dir }}"]}
output: {items: "${{ tasks.each.output }}"}
"""


@SQLITE_ONLY
async def test_a_fan_out_of_twenty_with_three_failures_reruns_exactly_three_items(
    api: httpx.AsyncClient, effects: tuple[str, Path], tmp_path: Path
) -> None:
    name, log = effects
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    for value in (3, 11, 17):
        (fail_dir / str(value)).touch()
    await _register(api, _yaml(FAN_OUT, name))
    failed = await _run(api, name, {"log": str(log), "fail_dir": str(fail_dir)})
    assert failed["status"] == "failed" and len(_calls(log)) == 20  # started items finished; none was cancelled
    resumed = await _closed(api, (await _retry(api, failed["execution_id"]))["execution_id"])
    assert resumed["status"] == "completed", resumed
    assert sorted(_calls(log)[20:]) == ["item-11", "item-17", "item-3"]
    assert resumed["output"] == {"items": [value * 10 for value in range(20)]}


APPROVAL = """\
name: NAME
params:
  log: {type: string, required: true}
  flag: {type: string, required: true}
defaults:
  retry_policy: {max_attempts: 1}
tasks:
  - id: prepare
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "prepare", 1]}
  - id: sign_off
    type: approval
    config: {message: "ship it?"}
  - id: ship
    activity_type: python
    config: {function: "effects_NAME:step", args: ["${{ params.log }}", "ship", 2, "${{ params.flag }}"]}
"""


@SQLITE_ONLY
async def test_an_approved_upstream_approval_is_not_asked_again(
    api: httpx.AsyncClient, effects: tuple[str, Path], tmp_path: Path
) -> None:
    name, log = effects
    flag = tmp_path / "fail-ship"
    flag.touch()
    await _register(api, _yaml(APPROVAL, name))
    started = await api.post(f"/executions/workflows/{name}/execute",
                             json={"parameters": {"log": str(log), "flag": str(flag)}})  # fmt: skip
    execution_id = started.json()["execution_id"]
    await eventually(lambda: api.get(f"/executions/{execution_id}"), within=20, what="waiting for approval",
                     until=lambda r: r.json()["status"] == "waiting_approval")  # fmt: skip
    decided = await api.post(f"/executions/{execution_id}/approvals/sign_off", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    failed = await _closed(api, execution_id)
    assert failed["status"] == "failed" and _task(failed, "ship")["status"] == "failed"
    resumed = await _closed(api, (await _retry(api, execution_id))["execution_id"])  # never waits again
    assert resumed["status"] == "completed", resumed
    approval = _task(resumed, "sign_off")
    assert (approval["status"], approval["reused_from"]) == ("completed", execution_id)
    assert [a["decision"] for a in approval["approvals"]] == ["approve"]
    assert [(a["task_id"], a["decision"], a["execution_id"]) for a in resumed["audit"]] == [
        ("sign_off", "approve", execution_id)
    ]  # the audit entry of the decision it keeps, from the run that took it
    assert _calls(log) == ["prepare", "ship", "ship"]


@SQLITE_ONLY
async def test_latest_revision_resumes_a_fixed_yaml_and_refuses_a_removed_task(
    api: httpx.AsyncClient, effects: tuple[str, Path], tmp_path: Path
) -> None:
    name, log = effects
    broken = _yaml(FIVE, name).replace('"${{ tasks.four.output + 1 }}"', '"${{ tasks.four.output / 0 }}"')
    await _register(api, broken)
    failed = await _run(api, name, {"log": str(log), "flag": str(tmp_path / "no-flag")})
    assert failed["status"] == "failed" and _task(failed, "five")["status"] == "failed"
    same = await _closed(api, (await _retry(api, failed["execution_id"]))["execution_id"])
    assert same["status"] == "failed"  # the same revision has the same bug
    await _register(api, _yaml(FIVE, name))  # the fix: revision 2
    fixed = await _retry(api, failed["execution_id"], {"revision": "latest"})
    assert fixed["revision"] == 2
    resumed = await _closed(api, fixed["execution_id"])
    assert resumed["status"] == "completed" and resumed["output"] == {"five": 31}
    assert _calls(log).count("four") == 1  # one to four ran once, in the first run

    two = FIVE[FIVE.index("  - id: two") : FIVE.index("  - id: three")]
    without_two = _yaml(FIVE.replace(two, "").replace("tasks.one.output + tasks.two.output", "tasks.one.output + 2"),
                        name)  # fmt: skip
    assert "id: two" not in without_two
    await _register(api, without_two)
    refused = await _retry(api, failed["execution_id"], {"revision": "latest"}, expect=409)
    assert "task 'two' (completed there) no longer exists" in refused["detail"], refused


async def test_a_run_temporal_no_longer_keeps_cannot_be_resumed(api: httpx.AsyncClient, database_url: str) -> None:
    from workflow_engine.storage import create_engine, repository, session_factory

    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            await repository.add_execution(session=session, execution_id="gone-run", workflow_id="hello", revision=1,
                                           parameters={"who": "Ada", "times": 1}, started_by="local")  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()
    gone = await _retry(api, "gone-run", expect=410)
    assert "no longer kept by Temporal" in gone["detail"] and "restart" in gone["detail"]
    restarted = await _retry(api, "gone-run", {"mode": "restart"})
    assert restarted["retry_of"] == "gone-run"


async def test_the_cli_resumes_from_a_task_and_restarts(served: str, workflows_dir: Path, tmp_path: Path) -> None:
    name = f"resume-{uuid.uuid4().hex[:8]}"
    (workflows_dir / f"effects_{name.replace('-', '_')}.py").write_text(SIDE_EFFECTS, encoding="utf-8")
    log = tmp_path / "calls.log"
    env = {**os.environ, "API_URL": served, "PYTHONPATH": str(REPO_ROOT)}
    async with httpx.AsyncClient(base_url=served) as http:
        await _register(http, _yaml(FIVE, name))
        done = await _run(http, name, {"log": str(log), "flag": str(tmp_path / "no-flag")})

        async def cli(*args: str) -> Json:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "workflow_engine", "retry", done["execution_id"], *args, env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, output.decode()
            answer: Json = json.loads(output)
            assert answer["retry_of"] == done["execution_id"]
            return await _closed(http, answer["execution_id"])

        assert (await cli("--from-task", "five"))["status"] == "completed"
        assert _calls(log)[5:] == ["five"]
        assert (await cli("--restart"))["status"] == "completed"
        assert _calls(log)[6:] == ["one", "two", "three", "four", "five"]
