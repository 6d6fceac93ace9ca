"""`make run`'s supervisor: the whole stack from one command, Ctrl-C stops it, data survives a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.polling import eventually_sync


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    """Return an environment that puts the dev stack on free ports with its data under tmp_path."""
    (tmp_path / "workflows").mkdir()
    for name in ("hello.yaml", "greetings.py"):
        (tmp_path / "workflows" / name).write_text((REPO_ROOT / "workflows" / name).read_text())
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "TEMPORAL_UI_PORT": str(_free_port()),
        "TEMPORAL_HTTP_PORT": str(_free_port()),
        "TEMPORAL_DB_FILE": str(tmp_path / "data" / "temporal.db"),
        "TEMPORAL_TASK_QUEUE": "dev-test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'engine.db'}",
        "API_PORT": str(_free_port()),
        "WORKFLOWS_DIR": str(tmp_path / "workflows"),
        "PYTHONPATH": str(REPO_ROOT),
    }


class DevStack:
    """One `python -m workflow_engine dev` process."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.api = f"http://127.0.0.1:{env['API_PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the supervisor and wait for a healthy API."""
        self.proc = subprocess.Popen([sys.executable, "-m", "workflow_engine", "dev"], env=self.env, cwd=self.cwd)
        proc = self.proc

        def healthy() -> bool:
            assert proc.poll() is None, "the supervisor exited early"
            return httpx.get(f"{self.api}/health", timeout=2).status_code == 200

        eventually_sync(healthy, within=90, interval=0.3, what="the dev stack healthy", ignore=(httpx.TransportError,))

    def interrupt(self) -> int:
        """Press Ctrl-C and return the supervisor's exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self.proc = None
        return code


@pytest.fixture
def dev(dev_env: dict[str, str], tmp_path: Path) -> Iterator[DevStack]:
    """Yield a dev stack; it is stopped after the test whatever happens."""
    stack = DevStack(dev_env, tmp_path)
    try:
        yield stack
    finally:
        if stack.proc is not None:
            stack.proc.kill()
            stack.proc.wait()


def _finished(api: str, execution_id: str) -> dict[str, Any]:
    def detail() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{api}/executions/{execution_id}", timeout=10).json()
        return body

    return eventually_sync(
        detail, until=lambda b: b["status"] != "running", within=30, interval=0.2, what=f"{execution_id} finishing"
    )


def test_dev_stack_runs_stops_on_ctrl_c_and_keeps_its_data(dev: DevStack, dev_env: dict[str, str]) -> None:
    dev.start()
    ui_port = int(dev_env["TEMPORAL_UI_PORT"])
    assert _port_open(ui_port), "the Temporal UI is not listening"
    started = httpx.post(f"{dev.api}/executions/workflows/hello/execute", json={"parameters": {"who": "dev"}})
    assert started.status_code == 202
    execution_id = started.json()["execution_id"]
    assert _finished(dev.api, execution_id)["output"]["greeting"] == "Hello, dev!"

    assert dev.interrupt() == 0
    temporal_port = int(dev_env["TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    api_port = int(dev_env["API_PORT"])
    assert not any(_port_open(p) for p in (temporal_port, ui_port, api_port)), "a child outlived Ctrl-C"

    dev.start()  # the second start reuses ./data: the run and the registration are still there
    again = _finished(dev.api, execution_id)
    assert again["status"] == "completed" and again["output"]["greeting"] == "Hello, dev!"
    assert httpx.get(f"{dev.api}/workflows/hello").json()["revision"] == 1
    assert dev.interrupt() == 0


def _child(parent: int, command: str) -> int:
    """The pid of `parent`'s child whose command line ends with `command` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and command.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no {command} process under {parent}")


def test_a_killed_worker_is_restarted_and_the_run_it_held_completes(dev: DevStack, dev_env: dict[str, str]) -> None:
    (Path(dev_env["WORKFLOWS_DIR"]) / "nap.yaml").write_text(
        "name: nap\ntasks:\n  - id: nap\n    type: sleep\n    config: {duration: 3s}\n"
        "  - id: done\n    type: set\n    config: {ok: true}\noutput: '${{ tasks.done.output }}'\n"
    )
    dev.start()
    assert dev.proc is not None
    started = httpx.post(f"{dev.api}/executions/workflows/nap/execute", json={"parameters": {}})
    assert started.status_code == 202, started.text
    worker = _child(dev.proc.pid, "worker")
    os.kill(worker, signal.SIGKILL)
    restarted = eventually_sync(
        lambda: _child(dev.proc.pid, "worker") if dev.proc else None, within=30, interval=0.3,
        what="a new worker", ignore=(AssertionError,),
    )  # fmt: skip
    assert restarted != worker
    done = _finished(dev.api, started.json()["execution_id"])
    assert done["status"] == "completed" and done["output"] == {"ok": True}, done
    assert dev.proc.poll() is None  # the supervisor kept going
    assert dev.interrupt() == 0
