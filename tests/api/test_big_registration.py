"""A 1,000-task definition registers and validates off the event loop; bigger ones are refused clearly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.registration import big_definition
from tests.conftest import REPO_ROOT
from tests.polling import eventually_sync

YAML = {"content-type": "application/yaml"}


async def test_health_answers_while_a_big_registration_is_in_flight(api: httpx.AsyncClient) -> None:
    for route, name in (("/workflows", "big-register"), ("/workflows/validate", "big-validate")):
        text = big_definition(1000, name=name)
        work = asyncio.create_task(api.post(route, content=text, headers=YAML))
        for _ in range(20):  # let the request reach the route, whose parsing then runs in another process
            await asyncio.sleep(0)
        health = await api.get("/health")
        assert health.status_code == 200, health.text
        assert not work.done(), f"{route} answered before /health: it held the event loop"
        answer = await work
        assert answer.status_code in (200, 201), answer.text
        assert answer.json()["workflow_id"] == name
    tasks = (await api.get("/workflows/big-register")).json()["tasks"]
    assert len(tasks) == 1000 and tasks[600]["depends_on"] == ["c200", "w50"]


async def test_more_than_1000_tasks_are_a_422_naming_the_cap(api: httpx.AsyncClient) -> None:
    text = big_definition(1001, name="too-big")
    for route in ("/workflows", "/workflows/validate"):
        answer = await api.post(route, content=text, headers=YAML)
        assert answer.status_code == 422, answer.text
        errors = answer.json()["errors"]
        assert [(e["path"], e["line"]) for e in errors] == [("tasks", 11)]
        assert "at most 1000" in errors[0]["message"]
    assert (await api.get("/workflows/too-big")).status_code == 404


async def test_errors_found_in_the_checking_process_keep_their_file_and_line(api: httpx.AsyncClient) -> None:
    # 60 tasks are over INLINE_CHECK_BYTES: checked in the other process
    text = big_definition(60, name="broken-big").replace("depends_on: [c0]", "depends_on: [ghost]")
    answer = await api.post("/workflows", json={"yaml": text, "file": "broken.yaml"})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    line = text.splitlines().index("    depends_on: [ghost]") + 1
    assert [(e["path"], e["file"], e["line"], e["message"]) for e in errors] == [
        ("tasks[30].depends_on[0]", "broken.yaml", line, "unknown task 'ghost'")
    ]


_KILLED_PARENT = """
import asyncio, sys, time
from bench.registration import big_definition
from workflow_engine.api import registration
from workflow_engine.dsl import BUILTIN_ACTIVITY_TYPES
from workflow_engine.dsl.prepared import prepare

async def main():
    await registration.off_loop(prepare, big_definition(60, name="x"), file="x",
                                activity_types=BUILTIN_ACTIVITY_TYPES, python_modules=None)
    print(*registration._pool._processes, flush=True)
    time.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_checking_process_leaves_when_the_api_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "api_like.py"
    script.write_text(_KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline().split()[0])  # the pool's process, once it has checked a definition
        assert Path(f"/proc/{child}").exists()
        parent.kill()  # SIGKILL: no atexit, no pool shutdown
        parent.wait(timeout=10)
        eventually_sync(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), within=10,
                        what="the orphaned checking process exits")  # fmt: skip
    finally:
        if parent.poll() is None:
            parent.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
