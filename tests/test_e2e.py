"""End to end, as the README tells a user: drop a YAML file, start worker and API, curl, poll."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from tests.polling import eventually_sync

USER_YAML = """
name: order-report
description: What a user writes after reading the README.
params:
  customer: {type: string, required: true}
  amounts: {type: array, default: [10, 20]}
tasks:
  - id: hello
    name: Greet the customer
    activity_type: log
    config: {message: "Report for ${{ params.customer }}"}
  - id: total
    name: Add up the amounts
    activity_type: python
    config: {function: "report:total", args: ["${{ params.amounts }}"]}
output:
  customer: "${{ params.customer }}"
  total: "${{ tasks.total.output }}"
"""

USER_MODULE = "def total(amounts):\n    return sum(amounts)\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack_env(temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str) -> dict[str, str]:
    """Return the environment a user would export: a temp workflows dir, SQLite DB and API port."""
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "order-report.yaml").write_text(USER_YAML)
    (workflows / "report.py").write_text(USER_MODULE)
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}",
        "WORKFLOWS_DIR": str(workflows),
        "API_PORT": str(_free_port()),
        "PYTHONPATH": str(REPO_ROOT),
    }


class Stack:
    """The worker and API processes started with `python -m workflow_engine ...`."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.base_url = f"http://127.0.0.1:{env['API_PORT']}"

    def start(self, name: str) -> None:
        """Start one process and wait until the API answers when it is the API."""
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "workflow_engine", name], env=self.env, cwd=self.cwd
        )
        if name == "api":
            process = self.processes[name]

            def healthy() -> bool:
                assert process.poll() is None, "the API exited"
                return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200

            eventually_sync(healthy, within=30, interval=0.2, what="the API healthy", ignore=(httpx.TransportError,))

    def stop(self, name: str) -> int:
        """Stop one process as Ctrl-C would and return its exit code."""
        proc = self.processes.pop(name)
        proc.terminate()
        return proc.wait(timeout=30)

    def stop_all(self) -> None:
        """Stop whatever still runs."""
        for name in list(self.processes):
            self.stop(name)


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    """Run `migrate`, then yield a stack to start processes on; everything is stopped after."""
    subprocess.run([sys.executable, "-m", "workflow_engine", "migrate"], env=stack_env, cwd=tmp_path, check=True)
    running = Stack(stack_env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def _poll(base_url: str, execution_id: str) -> dict[str, Any]:
    def detail() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{base_url}/executions/{execution_id}", timeout=10).json()
        return body

    return eventually_sync(
        detail, until=lambda b: b["status"] not in ("running", "waiting_approval"), within=30, interval=0.2,
        what=f"{execution_id} finishing",
    )  # fmt: skip


def test_readme_walkthrough_runs_a_dropped_in_workflow(stack: Stack) -> None:
    stack.start("worker")
    stack.start("api")
    workflows = httpx.get(f"{stack.base_url}/workflows").json()
    assert [w["workflow_id"] for w in workflows["items"]] == ["order-report"]
    response = httpx.post(
        f"{stack.base_url}/executions/workflows/order-report/execute",
        json={"parameters": {"customer": "ACME", "amounts": [5, 7, 30]}},
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    body = _poll(stack.base_url, execution_id)
    assert body["status"] == "completed", body
    assert body["output"] == {"customer": "ACME", "total": 42}
    assert [t["name"] for t in body["tasks"]] == ["Greet the customer", "Add up the amounts"]

    # A restart loses nothing: the registration is unchanged and the run is still there.
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -SIGTERM is a clean exit too.
    assert stack.stop("api") in (0, -signal.SIGTERM)
    assert stack.stop("worker") == 0
    stack.start("worker")
    stack.start("api")
    detail = httpx.get(f"{stack.base_url}/workflows/order-report").json()
    assert detail["revision"] == 1
    again = _poll(stack.base_url, execution_id)
    assert again["output"] == {"customer": "ACME", "total": 42}


def test_a_run_started_before_the_worker_finishes_once_it_starts(stack: Stack) -> None:
    stack.start("api")
    response = httpx.post(
        f"{stack.base_url}/executions/workflows/order-report/execute", json={"parameters": {"customer": "late"}}
    )
    assert response.status_code == 202
    execution_id = response.json()["execution_id"]
    time.sleep(1)
    waiting = httpx.get(f"{stack.base_url}/executions/{execution_id}", timeout=10).json()
    assert waiting["status"] == "running"
    assert [(t["id"], t["status"]) for t in waiting["tasks"]] == [("hello", "pending"), ("total", "pending")]
    stack.start("worker")
    body = _poll(stack.base_url, execution_id)
    assert body["output"] == {"customer": "late", "total": 30}


def test_cli_validate_reports_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntasks:\n  - id: a\n    activity_type: log\n    retry_policy: {max_attempts: 0}\n")
    good = REPO_ROOT / "workflows" / "hello.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "workflow_engine", "validate", str(good), str(bad)],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        f"{bad}:5:20: tasks[0].retry_policy.max_attempts: Input should be greater than or equal to 1" in result.stdout
    )
    ok = subprocess.run(
        [sys.executable, "-m", "workflow_engine", "validate", str(good)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert ok.returncode == 0


def test_temporal_binary_is_installed_not_downloaded() -> None:
    from workflow_engine.devserver import temporal_binary

    path = Path(temporal_binary())
    assert path.is_file() and os.access(path, os.X_OK)
    assert shutil.which("temporal") is None or Path(shutil.which("temporal") or "").is_file()


def test_cli_run_status_and_approve_through_the_api(stack: Stack, stack_env: dict[str, str]) -> None:
    workflows = Path(stack_env["WORKFLOWS_DIR"])
    for name in ("human_approval_workflow.yaml", "expenses.py"):
        shutil.copy(REPO_ROOT / "workflows" / name, workflows / name)
    stack.start("worker")
    stack.start("api")
    env = {**stack.env, "API_URL": stack.base_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workflow_engine", *args], env=env, cwd=stack.cwd,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    started = cli("run", "human_approval_workflow", "-p", "employee=ada", "-p", "amount=2500")
    assert started.returncode == 0, started.stderr
    execution_id = json.loads(started.stdout)["execution_id"]
    eventually_sync(lambda: json.loads(cli("status", execution_id).stdout)["status"] == "waiting_approval",
                    within=30, interval=0.3, what="`status` showing the run waiting for approval")  # fmt: skip
    approved = cli("approve", execution_id, "manager_approval", "--comment", "ok from the CLI")
    assert approved.returncode == 0, approved.stderr + approved.stdout
    assert "manager_approval: completed" in approved.stdout
    body = _poll(stack.base_url, execution_id)
    assert body["status"] == "completed"
    assert body["audit"][0]["comment"] == "ok from the CLI"
    refused = cli("approve", execution_id, "manager_approval")
    assert refused.returncode == 1
    assert "HTTP 409" in refused.stdout
    bad = cli("run", "human_approval_workflow", "-p", "amount=-5")
    assert bad.returncode == 1 and "HTTP 422" in bad.stdout and "parameters.employee" in bad.stdout
