"""`python -m workflow_engine.worker` runs the worker, exactly like `python -m workflow_engine worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from tests.polling import eventually
from workflow_engine.storage import upgrade_database


async def _pollers(temporal_env: WorkflowEnvironment, queue: str) -> int:
    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    return len((await temporal_env.client.workflow_service.describe_task_queue(request)).pollers)


async def test_the_worker_module_polls_and_stops_on_sigterm(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """The reference quick start's command starts polling the task queue and exits 0 on SIGTERM."""
    queue = f"worker-main-{uuid.uuid4().hex}"
    database = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    await upgrade_database(database)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": queue,
        "DATABASE_URL": database,
        "WORKFLOWS_DIR": str(tmp_path),
        "APPROVAL_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(REPO_ROOT),
    }
    log_path = tmp_path / "worker.log"

    def logged() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workflow_engine.worker",
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:

        async def polling() -> bool:
            if await _pollers(temporal_env, queue):
                return True
            assert process.returncode is None, f"the worker exited on its own:\n{logged()}"
            return False

        await eventually(polling, within=60, interval=0.2, what=f"a poller on {queue}")
        assert f"worker polling {queue}" in logged()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        async with asyncio.timeout(45):
            code = await process.wait()
    assert code == 0, logged()


def test_invalid_settings_stop_the_worker_module_with_one_line(tmp_path: Path) -> None:
    """Settings errors: one line naming the variable, exit status 2, as the CLI's `worker` command."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WORKER_MAX_CONCURRENT_ACTIVITIES": "lots"}
    result = subprocess.run(
        [sys.executable, "-m", "workflow_engine.worker"], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines == ["setting WORKER_MAX_CONCURRENT_ACTIVITIES: Input should be a valid integer, unable to parse "
                     "string as an integer"], result.stdout + result.stderr  # fmt: skip
    assert "Traceback" not in result.stderr
