"""The CLI watches runs through a real API (uvicorn, worker, Temporal): `run --watch` exit codes, list, show, graph."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from tests.conftest import REPO_ROOT
from tests.polling import eventually
from workflow_engine.cli_view import FanOut, exit_code, graph_view, items_done, watch_view

FUNCTIONS = '''
"""Functions of the watched DAG."""


def rows(count):
    """Return `count` rows."""
    return list(range(1, count + 1))


def check(fail):
    """Fail on purpose when asked to."""
    if fail:
        raise RuntimeError("check failed on purpose")
    return "checked"


def double(value):
    """A for_each item."""
    return value * 2
'''

# Acceptance-style: one task, three parallel branches (one a for_each), joined by a fourth.
DAG = """\
name: NAME
params:
  fail: {type: boolean, default: false}
defaults:
  retry_policy: {max_attempts: 1}
tasks:
  - id: extract
    activity_type: python
    config: {function: "watch_MOD:rows", args: [3]}
  - id: left
    depends_on: [extract]
    activity_type: log
    config: {message: "left got ${{ size(tasks.extract.output) }} rows"}
  - id: right
    depends_on: [extract]
    activity_type: python
    config: {function: "watch_MOD:check", args: ["${{ params.fail }}"]}
  - id: fan
    depends_on: [extract]
    for_each: "${{ tasks.extract.output }}"
    activity_type: python
    config: {function: "watch_MOD:double", args: ["${{ item }}"]}
  - id: join
    depends_on: [left, right, fan]
    type: set
    config: {doubled: "${{ tasks.fan.output }}"}
output: {doubled: "${{ tasks.join.output.doubled }}"}
"""

NAP = """\
name: NAME
tasks:
  - id: begin
    activity_type: log
    config: {message: begin}
  - id: nap
    depends_on: [begin]
    type: sleep
    config: {duration: 60s}
"""

APPROVAL = """\
name: NAME
tasks:
  - id: ask
    type: approval
    config: {message: "Go ahead?", timeout: 1h}
  - id: after
    depends_on: [ask]
    type: set
    config: {went: true}
output: {went: "${{ tasks.after.output.went }}"}
"""


class Cli:
    """Runs `python -m workflow_engine` as a subprocess (no terminal) against the served API."""

    def __init__(self, served: str, cwd: Path) -> None:
        self.env = {**os.environ, "API_URL": served, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
        self.cwd = cwd

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """Start a command with stdout and stderr piped."""
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workflow_engine", *args, env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        """Run a command to its end: (exit code, stdout, stderr)."""
        process = await self.start(*args)
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


async def _register(served: str, workflows_dir: Path, template: str) -> str:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    module = name.replace("-", "_").removeprefix("watch_")
    (workflows_dir / f"watch_{module}.py").write_text(FUNCTIONS, encoding="utf-8")
    text = template.replace("watch_MOD", f"watch_{module}").replace("NAME", name)
    async with httpx.AsyncClient(base_url=served) as http:
        answer = await http.post("/workflows", content=text, headers={"content-type": "application/yaml"})
    assert answer.status_code in (200, 201), answer.text
    return name


async def _execution_id(process: asyncio.subprocess.Process) -> str:
    """Read the watch's first line (`run ID of WORKFLOW`) from its stderr."""
    assert process.stderr is not None
    line = (await asyncio.wait_for(process.stderr.readline(), timeout=60)).decode()
    assert line.startswith("run "), line
    return line.split()[1]


async def test_watch_shows_every_task_prints_the_output_and_exits_0(
    served: str, workflows_dir: Path, tmp_path: Path
) -> None:
    name = await _register(served, workflows_dir, DAG)
    cli = Cli(served, tmp_path)
    code, out, err = await cli("run", name, "--watch", "--interval", "0.2")
    assert code == 0, out + err
    assert json.loads(out) == {"doubled": [2, 4, 6]}
    for task in ("extract", "left", "right", "fan", "join"):
        assert f"{task}: completed" in err, err
    assert "3/3 items" in err and "Traceback" not in err
    execution_id = err.split()[1]

    code, out, _ = await cli("show", execution_id)
    assert code == 0 and "completed" in out and '"doubled"' in out
    assert all(task in out for task in ("extract", "left", "right", "fan", "join"))
    code, out, _ = await cli("graph", name)
    lines = out.splitlines()
    assert code == 0 and lines[1].split()[:2] == ["1", "extract"], out
    assert [line.split()[:2] for line in lines[2:5]] == [["2", "left"], ["right", "◀──"], ["fan", "◀──"]], out
    assert "for_each" in lines[4] and lines[5].split()[:2] == ["3", "join"] and "◀── left, right, fan" in lines[5]

    async def logged() -> str | None:
        code, out, _ = await cli("logs", execution_id, "--task", "left")
        return out if code == 0 and "left got 3 rows" in out else None

    line = (await eventually(logged, within=30, what="the log task's line in `logs`")).splitlines()[0]
    assert line.split()[1:3] == ["left#1", "log:"], line
    code, out, err = await cli("logs", execution_id, "-f")  # a closed run: its lines, then the end
    assert code == 0 and "left#1 log: " in out and "left got 3 rows" in out and "run completed" in err, out + err
    assert "extract#" not in (await cli("logs", execution_id, "--task", "left"))[1]

    async def listed() -> str | None:
        code, out, _ = await cli("list", "--workflow", name, "--status", "completed")
        return out if code == 0 and execution_id in out else None

    await eventually(listed, within=30, what="the run in `list` (visibility is eventually consistent)")


async def test_watch_in_a_pseudo_terminal_draws_the_live_table(
    served: str, workflows_dir: Path, tmp_path: Path
) -> None:
    name = await _register(served, workflows_dir, DAG)
    primary, secondary = pty.openpty()
    cli = Cli(served, tmp_path)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workflow_engine", "run", name, "--watch", "--interval", "0.2",
            env=cli.env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=secondary,
        )  # fmt: skip
        os.close(secondary)
        drawn = asyncio.create_task(asyncio.to_thread(_read_all, primary))
        out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
        screen = await asyncio.wait_for(drawn, timeout=30)
    finally:
        os.close(primary)
    assert process.returncode == 0, screen
    assert json.loads(out) == {"doubled": [2, 4, 6]}
    assert "┏" in screen and "3/3 items" in screen  # the rich table, not the plain lines
    assert all(f"│ {task} " in screen for task in ("extract", "left", "right", "fan", "join")), screen


def _read_all(fd: int) -> str:
    """Read a pseudo-terminal until its other end closes."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


async def test_a_failing_run_exits_1_with_its_error(served: str, workflows_dir: Path, tmp_path: Path) -> None:
    name = await _register(served, workflows_dir, DAG)
    code, out, err = await Cli(served, tmp_path)("run", name, "-p", "fail=true", "--watch", "--interval", "0.2")
    assert code == 1, out + err
    assert "right: failed" in err and "check failed on purpose" in err
    assert "join: " in err  # the task that never ran is shown too
    assert out.strip() == "null"


async def test_a_run_cancelled_with_the_cli_exits_2(served: str, workflows_dir: Path, tmp_path: Path) -> None:
    name = await _register(served, workflows_dir, NAP)
    cli = Cli(served, tmp_path)
    watching = await cli.start("run", name, "--watch", "--interval", "0.2")
    execution_id = await _execution_id(watching)
    async with httpx.AsyncClient(base_url=served) as http:

        async def napping() -> bool:
            tasks = (await http.get(f"/executions/{execution_id}")).json()["tasks"]
            return any(t["id"] == "nap" and t["status"] == "running" for t in tasks)

        await eventually(napping, within=30, what="the nap running")
    code, out, _ = await cli("cancel", execution_id)
    assert code == 0 and execution_id in out
    _, err = await asyncio.wait_for(watching.communicate(), timeout=60)
    assert watching.returncode == 2, err.decode()
    assert "nap: cancelled" in err.decode()


async def test_watch_shows_the_approval_command_and_the_inbox_lists_it(
    served: str, workflows_dir: Path, tmp_path: Path
) -> None:
    name = await _register(served, workflows_dir, APPROVAL)
    cli = Cli(served, tmp_path)
    watching = await cli.start("run", name, "--watch", "--interval", "0.2")
    execution_id = await _execution_id(watching)
    assert watching.stderr is not None
    command = f"python -m workflow_engine approve {execution_id} ask"
    seen = ""
    while command not in seen:
        seen += (await asyncio.wait_for(watching.stderr.readline(), timeout=60)).decode()

    async def in_inbox() -> str | None:
        code, out, _ = await cli("approvals")
        return out if code == 0 and execution_id in out else None

    assert "Go ahead?" in await eventually(in_inbox, within=30, what="the approval in the inbox")
    assert (await cli("approve", execution_id, "ask"))[0] == 0
    out, err = await asyncio.wait_for(watching.communicate(), timeout=60)
    assert watching.returncode == 0, err.decode()
    assert json.loads(out) == {"went": True}


def _render(renderable: Any) -> str:
    console = Console(record=True, width=160, force_terminal=True)
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_fan_out_progress_durations_and_approvals() -> None:
    detail = {
        "execution_id": "e-1", "workflow_id": "wf", "status": "waiting_approval",
        "tasks": [
            {"id": "extract", "type": "activity", "status": "completed", "attempts": 2,
             "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01.5+00:00"},
            {"id": "fan", "type": "activity", "status": "running", "attempts": 0,
             "started_at": "2026-01-01T00:00:01+00:00"},
            {"id": "done_fan", "type": "activity", "status": "completed", "attempts": 1, "output": [1, 2, 3],
             "started_at": "2026-01-01T00:00:01+00:00", "finished_at": "2026-01-01T00:02:05+00:00"},
            {"id": "ask", "type": "approval", "status": "waiting_approval", "attempts": 0, "message": "Go?",
             "required_approvals": 2, "approvals": [{"approver": "bob"}]},
            {"id": "bad", "type": "activity", "status": "failed", "attempts": 3, "error": "boom"},
        ],
    }  # fmt: skip
    history = [{"type": "ActivityTaskCompleted", "task_id": "fan"}] * 2 + [{"type": "ActivityTaskScheduled"}]
    text = _render(watch_view(detail, items_done(history, ["fan", "done_fan"])))
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    assert "1.5s" in rows["extract"] and " 2 " in rows["extract"]
    assert "2 done/?" in rows["fan"] and "3/3 items" in rows["done_fan"] and "2m04s" in rows["done_fan"]
    assert "boom" in rows["bad"] and "Go?" in rows["ask"]
    assert "ask waits for approval (1/2): python -m workflow_engine approve e-1 ask" in text


def test_the_graph_puts_each_task_one_level_below_its_deepest_parent() -> None:
    tasks = [
        {"id": "a", "type": "activity", "activity_type": "python", "depends_on": []},
        {"id": "b", "type": "activity", "activity_type": "log", "depends_on": ["a"]},
        {"id": "c", "type": "set", "depends_on": ["a", "b"]},
        {"id": "d", "type": "activity", "activity_type": "python", "depends_on": []},
    ]
    lines = _render(graph_view({"workflow_id": "wf", "revision": 3, "tasks": tasks}, {"d"})).splitlines()
    assert lines[0] == "wf revision 3"
    assert [line.split()[:2] for line in lines[1:5]] == [["1", "a"], ["d", "[python"], ["2", "b"], ["3", "c"]]
    assert "◀── a, b" in lines[4] and "for_each" in lines[2]


def test_exit_codes_follow_the_run_status() -> None:
    assert [exit_code(s) for s in ("completed", "failed", "cancelled", "terminated", "timed_out")] == [0, 1, 2, 2, 2]
    assert FanOut().done == 0
