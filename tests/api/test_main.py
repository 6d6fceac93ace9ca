"""`uvicorn workflow_engine.api.main:app` serves the API, and local mode answers loopback callers only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from tests.reliability.stack import free_port, wait_for
from workflow_engine.api import create_app
from workflow_engine.api.auth import authenticate, is_loopback
from workflow_engine.errors import TokensRequiredError
from workflow_engine.settings import Settings

DEFINITION = """\
name: entry-point
tasks:
  - id: say
    activity_type: log
    config: {message: hi}
"""


def _environment(temporal_env: WorkflowEnvironment, root: Path, **extra: str) -> dict[str, str]:
    (root / "workflows").mkdir(exist_ok=True)
    (root / "workflows" / "entry-point.yaml").write_text(DEFINITION, encoding="utf-8")
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": "entry-point",
        "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'engine.db'}",
        "WORKFLOWS_DIR": str(root / "workflows"),
        "APPROVAL_SIGNING_KEY_FILE": str(root / "signing.key"),
        "API_TOKENS": "",
        "PYTHONPATH": str(REPO_ROOT),
        **extra,
    }


def _stop(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise


def test_uvicorn_serves_the_api_built_from_the_settings(temporal_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """The reference quick start's `uvicorn workflow_engine.api.main:app --reload` answers like `... api` does."""
    env = _environment(temporal_env, tmp_path)
    migrated = subprocess.run([sys.executable, "-m", "workflow_engine", "migrate"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    with (tmp_path / "uvicorn.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "workflow_engine.api.main:app", "--reload", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(
            lambda: (r := httpx.get(f"{base}/health", timeout=2)).status_code == 200 and r.json(), 60, "the API healthy"
        )
        assert health == {"status": "ok", "database": "ok", "temporal": "ok"}
        listing = httpx.get(f"{base}/workflows", timeout=5).json()
        assert [item["workflow_id"] for item in listing["items"]] == ["entry-point"]  # registered from WORKFLOWS_DIR
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
    finally:
        code = _stop(process)
    output = (tmp_path / "uvicorn.log").read_text(encoding="utf-8", errors="replace")
    assert code == 0, output
    assert "registered entry-point revision 1" in output  # our loggers are configured too, as with `... api`


def test_invalid_settings_stop_uvicorn_with_one_line_per_setting(tmp_path: Path) -> None:
    """A bad variable is named, exit status 2, no traceback: the same as `python -m workflow_engine api`."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WORKER_MAX_CACHED_WORKFLOWS": "many", "API_TOKENS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "workflow_engine.api.main:app", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "setting WORKER_MAX_CACHED_WORKFLOWS: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr
    env.update(WORKER_MAX_CACHED_WORKFLOWS="500", API_TOKENS="alice:boss:secret")
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "workflow_engine.api.main:app", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "setting API_TOKENS: API_TOKENS entry for 'alice'" in result.stderr and "Traceback" not in result.stderr


@pytest_asyncio.fixture
async def local_app(client: Client, settings: Settings) -> AsyncIterator[object]:
    """Yield the app in local mode (no API_TOKENS), lifespan running."""
    (settings.workflows_dir / "entry-point.yaml").write_text(DEFINITION, encoding="utf-8")
    app = create_app(settings, temporal_client=client)
    async with app.router.lifespan_context(app):
        yield app


def _http(app: object, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 51234))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_local_mode_refuses_callers_from_other_hosts(local_app: object) -> None:
    """Served by uvicorn on 0.0.0.0 without tokens, a request from another machine gets 403 `tokens_required`."""
    async with _http(local_app, "203.0.113.9") as http:
        for method, path in (("GET", "/workflows"), ("POST", "/executions/workflows/entry-point/execute")):
            answer = await http.request(method, path, json={"parameters": {}} if method == "POST" else None)
            assert answer.status_code == 403, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            body = answer.json()
            assert body["code"] == "tokens_required"
            assert "API_TOKENS" in body["detail"] and "203.0.113.9" in body["detail"]
        assert (await http.get("/health")).status_code == 200  # open to load balancers, as with tokens
    for host in ("127.0.0.1", "::1"):
        async with _http(local_app, host) as http:
            answer = await http.get("/workflows")
            assert answer.status_code == 200, answer.text
            assert [item["workflow_id"] for item in answer.json()["items"]] == ["entry-point"]


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        (None, True),  # a Unix socket
        ("testclient", True),  # Starlette's in-process TestClient
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("2001:db8::1", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


def test_tokens_serve_every_host_and_local_mode_only_loopback() -> None:
    """With API_TOKENS a valid token counts wherever it comes from; without, the address decides."""
    with_tokens = Settings(_env_file=None, api_tokens="alice:viewer:tok-a")
    assert authenticate(with_tokens, "Bearer tok-a", "203.0.113.9").user == "alice"
    local = Settings(_env_file=None, api_tokens="")
    assert authenticate(local, None, "127.0.0.1").user == "local"
    with pytest.raises(TokensRequiredError) as refused:
        authenticate(local, "Bearer tok-a", "203.0.113.9")
    assert refused.value.status_code == 403 and refused.value.code == "tokens_required"
