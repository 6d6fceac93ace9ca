"""Real processes for reliability tests: a Temporal dev server, workers and an API, each killable on its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import REPO_ROOT
from tests.polling import eventually_sync
from workflow_engine.devserver import temporal_command
from workflow_engine.settings import Settings

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """`eventually_sync` for probes of a deployment that may be down a moment: HTTP and OS errors mean "not yet"."""
    return eventually_sync(check, within=timeout, what=what, interval=interval, ignore=(httpx.HTTPError, OSError))


class Stack:
    """One deployment on free ports under `root`: `start(...)` a process by name, `kill(name)` it with SIGKILL."""

    def __init__(self, root: Path, **env: str) -> None:
        """Choose ports and paths; `env` adds or overrides settings of every process."""
        self.root = root
        (root / "workflows").mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "TEMPORAL_UI_PORT": str(free_port()),
            "TEMPORAL_HTTP_PORT": str(free_port()),
            "TEMPORAL_DB_FILE": str(root / "data" / "temporal.db"),
            "TEMPORAL_TASK_QUEUE": "reliability",
            "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'data' / 'engine.db'}",
            "API_PORT": str(free_port()),
            "WORKFLOWS_DIR": str(root / "workflows"),
            "WORKFLOWS_POLL_SECONDS": "0",
            "APPROVAL_SIGNING_KEY_FILE": str(root / "data" / "signing.key"),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO_ROOT),
            **env,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api = f"http://127.0.0.1:{self.env['API_PORT']}"

    def settings(self) -> Settings:
        """Return the settings the processes read from their environment."""
        keys = {name.upper() for name in Settings.model_fields}
        return Settings(_env_file=None, **{k.lower(): v for k, v in self.env.items() if k in keys})  # type: ignore[arg-type]

    def port(self, name: str) -> int:
        """Return the port of TEMPORAL_ADDRESS (`temporal`), or of another `*_PORT` setting by name."""
        if name == "temporal":
            return int(self.env["TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
        return int(self.env[f"{name.upper()}_PORT"])

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start_temporal(self) -> None:
        """Start the dev server (persistent SQLite under `root`) and wait for its frontend."""
        self._spawn("temporal", temporal_command(self.settings()))
        wait_for(lambda: _port_open(self.port("temporal")), 60, "the Temporal dev server listening")

    def migrate(self) -> None:
        """Apply the database migrations, as `make run` does before the worker and API start."""
        done = subprocess.run(
            [sys.executable, "-m", "workflow_engine", "migrate"], env=self.env, cwd=self.root, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()

    def start_worker(self, name: str = "worker") -> None:
        """Start a worker process (`python -m workflow_engine worker`)."""
        self._spawn(name, [sys.executable, "-m", "workflow_engine", "worker"])

    def start_api(self) -> None:
        """Start the API process and wait until /health answers ok."""
        self._spawn("api", [sys.executable, "-m", "workflow_engine", "api"])
        wait_for(lambda: httpx.get(f"{self.api}/health", timeout=2).status_code == 200, 60, "the API healthy")

    def start_all(self) -> None:
        """Temporal, migrations, a worker and the API: what `make run` supervises."""
        self.start_temporal()
        self.migrate()
        self.start_worker()
        self.start_api()

    def kill(self, name: str) -> None:
        """SIGKILL a process and its group, as a crash or the OOM killer would."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """Stop every process still running (SIGTERM, then SIGKILL)."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def log(self, name: str) -> str:
        """Return what a process printed so far (for assertion messages)."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One HTTP call with a generous timeout (the machine is busy during these tests)."""
    return httpx.request(method, url, timeout=30, **kwargs)
