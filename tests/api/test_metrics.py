"""Prometheus metrics: the API's `/metrics` and a worker's two endpoints, whose values move when runs happen."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

import workflow_engine.engine.activities.metrics  # noqa: F401 - registers the dropped log lines counter
from tests.api.conftest import TOKENS
from tests.conftest import REPO_ROOT
from tests.polling import eventually
from tests.reliability.stack import free_port
from workflow_engine.api import create_app
from workflow_engine.engine.activities.egress import infrastructure_of
from workflow_engine.metrics import API_REGISTRY, WORKER_REGISTRY, exposition
from workflow_engine.settings import Settings
from workflow_engine.worker import run_worker

EXECUTE_ROUTE = "/executions/workflows/{workflow_id}/execute"
METERED = """
name: metered
tasks:
  - id: items
    activity_type: python
    for_each: "${{ [1, 2, 3] }}"
    config:
      function: metered_funcs:double
      kwargs: {x: "${{ item }}"}
  - id: fails
    depends_on: [items]
    activity_type: python
    continue_on_error: true
    retry_policy: {max_attempts: 1}
    config: {function: metered_funcs:boom}
"""
FUNCS = '''"""Functions of the metered workflow."""


def double(x: int) -> int:
    """Return twice x."""
    return 2 * x


def boom() -> None:
    """Fail."""
    raise ValueError("boom")
'''


def sample(text: str, name: str, **labels: str) -> float:
    """Return the value of one sample in Prometheus text (0 when absent: a labelled series not created yet)."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(key) == value for key, value in labels.items()):
                return float(item.value)
    return 0.0


async def _finished(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def detail() -> dict[str, Any]:
        body: dict[str, Any] = (await api.get(f"/executions/{execution_id}")).json()
        return body

    return await eventually(detail, until=lambda b: b["status"] not in ("running", "waiting_approval"), within=30,
                            what=f"{execution_id} finishing")  # fmt: skip


async def test_api_metrics_count_the_execute_request_and_the_run_started(api: httpx.AsyncClient) -> None:
    before = (await api.get("/metrics")).text
    started = await api.post("/executions/workflows/hello/execute", json={"parameters": {"who": "Ada"}})
    assert started.status_code == 202, started.text
    await _finished(api, started.json()["execution_id"])
    assert (await api.get("/no/such/path/123")).status_code == 404
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    requests = {"route": EXECUTE_ROUTE, "method": "POST", "status": "202"}
    total = "wfe_api_requests_total"
    assert sample(after, total, **requests) == sample(before, total, **requests) + 1
    latency = {"route": EXECUTE_ROUTE, "method": "POST"}
    count = "wfe_api_request_duration_seconds_count"
    assert sample(after, count, **latency) == sample(before, count, **latency) + 1
    runs = "wfe_runs_started_total"
    assert sample(after, runs, workflow="hello") == sample(before, runs, workflow="hello") + 1
    # unmatched paths share one label, so scanners cannot grow the series without bound
    assert sample(after, "wfe_api_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert "/no/such/path/123" not in after
    assert "wfe_approvals_waiting " in after


async def test_approvals_waiting_counts_a_run_waiting_for_a_decision(api: httpx.AsyncClient) -> None:
    started = await api.post(
        "/executions/workflows/human_approval_workflow/execute", json={"parameters": {"employee": "Ada", "amount": 900}}
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def waiting() -> float:
        # the gauge is cached a few seconds and visibility is eventually consistent: poll until it sees the run
        return sample((await api.get("/metrics")).text, "wfe_approvals_waiting")

    await eventually(waiting, until=lambda value: value >= 1, within=30, what="approvals waiting >= 1")
    await api.post(f"/executions/{execution_id}/terminate", json={})


async def test_api_metrics_need_the_viewer_role_when_tokens_are_set(authed_api: httpx.AsyncClient) -> None:
    assert (await authed_api.get("/metrics")).status_code == 401
    viewer = await authed_api.get("/metrics", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
    assert viewer.status_code == 200
    assert "wfe_api_requests_total" in viewer.text


@pytest_asyncio.fixture
async def metered_worker(
    client: Client, settings: Settings, workflows_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """Serve the API (no worker of its own) and run `run_worker` with both metrics ports; yield their URLs."""
    (workflows_dir / "metered.yaml").write_text(METERED)
    (workflows_dir / "metered_funcs.py").write_text(FUNCS)
    ours, sdk = free_port(), free_port()
    worker_settings = settings.model_copy(update={"worker_metrics_port": ours, "worker_sdk_metrics_port": sdk})
    app = create_app(settings, temporal_client=client)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_settings, stop))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
        ):
            yield api, f"http://127.0.0.1:{ours}/metrics", f"http://127.0.0.1:{sdk}/metrics"
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(url, timeout=5)
    response.raise_for_status()
    return response.text


async def test_worker_endpoints_show_task_metrics_moving_and_the_sdk_metrics(
    metered_worker: tuple[httpx.AsyncClient, str, str],
) -> None:
    api, ours, sdk = metered_worker
    before = await eventually(lambda: _scrape(ours), ignore=(httpx.HTTPError,), within=30, what="worker metrics up")
    started = await api.post("/executions/workflows/metered/execute", json={})
    assert started.status_code == 202, started.text
    detail = await _finished(api, started.json()["execution_id"])
    assert detail["status"] == "completed", detail
    after = await _scrape(ours)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    python = {"workflow": "metered", "task_type": "python"}
    assert moved("wfe_task_duration_seconds_count", **python) == 4  # three items and the failing task
    assert moved("wfe_task_outcomes_total", **python, outcome="completed") == 3
    assert moved("wfe_task_outcomes_total", **python, outcome="failed") == 1
    assert moved("wfe_fan_out_items_total", **python) == 3
    assert "wfe_task_log_lines_dropped_total" in after
    sdk_text = await _scrape(sdk)
    assert "temporal_" in sdk_text
    assert sample(sdk_text, "temporal_workflow_completed_total", workflow_type="metered") >= 1


def test_the_grafana_dashboard_queries_only_metrics_we_export() -> None:
    dashboard = json.loads((REPO_ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bwfe_[a-z_]+", target["expr"])
    }
    ours = exposition(API_REGISTRY, None)[0].decode() + exposition(WORKER_REGISTRY, None)[0].decode()
    exported = {line.split()[2] for line in ours.splitlines() if line.startswith("# TYPE")}
    suffixes = ("_bucket", "_count", "_sum")
    assert queried, "the dashboard queries no wfe_ metric"
    for name in queried:
        base = next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name)
        assert name in exported or base in exported, f"{name} is not exported"


async def test_http_request_can_never_reach_a_workers_metrics_ports(settings: Settings) -> None:
    ports = settings.model_copy(update={"worker_metrics_port": 9464, "worker_sdk_metrics_port": 9465})
    infrastructure = infrastructure_of(ports)
    loopback = ipaddress.ip_address("127.0.0.1")
    for port in (9464, 9465):
        assert await infrastructure.match(loopback, port) is not None
    assert await infrastructure_of(settings).match(loopback, 9464) is None  # off: nothing listens there
