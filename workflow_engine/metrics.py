"""Prometheus metrics of ours: one registry for the API and one for the worker, and the worker's endpoints.

The API serves `API_REGISTRY` at `GET /metrics`; a worker serves `WORKER_REGISTRY` on WORKER_METRICS_PORT and
the Temporal SDK's own metrics (`temporal_*`, from its Rust core) on WORKER_SDK_METRICS_PORT. Two registries,
so neither endpoint lists the other process's metrics at zero. Labels are bounded: route templates (never raw
paths), workflow names and activity types, which the registry and the worker's plugins bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import choose_encoder
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from workflow_engine.settings import Settings

API_REGISTRY = CollectorRegistry(auto_describe=True)
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
# A request label for paths no route matched (404s, bodies refused before routing): raw paths would be unbounded.
UNMATCHED_ROUTE = "unmatched"
_TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

HTTP_REQUESTS = Counter(
    "wfe_api_requests",
    "API requests answered, by route template, method and status code.",
    ("route", "method", "status"),
    registry=API_REGISTRY,
)
HTTP_LATENCY = Histogram(
    "wfe_api_request_duration_seconds",
    "Time from receiving a request to the end of its answer, by route template and method.",
    ("route", "method"),
    registry=API_REGISTRY,
)
RUNS_STARTED = Counter(
    "wfe_runs_started",
    "Runs the API started (execute and retry; idempotent repeats and schedule runs not counted), by workflow.",
    ("workflow",),
    registry=API_REGISTRY,
)
APPROVALS_WAITING = Gauge(
    "wfe_approvals_waiting",
    "Running executions waiting for an approval (Temporal visibility, counted when scraped, cached a few seconds).",
    registry=API_REGISTRY,
)

TASK_DURATION = Histogram(
    "wfe_task_duration_seconds",
    "Time one activity attempt of a task ran on this worker, by workflow and task type.",
    ("workflow", "task_type"),
    buckets=_TASK_BUCKETS,
    registry=WORKER_REGISTRY,
)
TASK_OUTCOMES = Counter(
    "wfe_task_outcomes",
    "Activity attempts that ended on this worker, by workflow, task type and outcome (completed, failed, cancelled).",
    ("workflow", "task_type", "outcome"),
    registry=WORKER_REGISTRY,
)
FAN_OUT_ITEMS = Counter(
    "wfe_fan_out_items",
    "`for_each` items this worker's workflows started (one per item, retries not counted), by workflow and task type.",
    ("workflow", "task_type"),
    registry=WORKER_REGISTRY,
)


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Return a registry's samples in the text format the `Accept` header asks for, and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


@asynccontextmanager
async def serve_worker_metrics(settings: Settings) -> AsyncIterator[None]:
    """Serve WORKER_REGISTRY at `/metrics` on WORKER_METRICS_HOST:WORKER_METRICS_PORT (nothing when the port is 0)."""
    if not settings.worker_metrics_port:
        yield
        return
    server, thread = start_http_server(
        settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=WORKER_REGISTRY
    )
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)  # waits for its serving loop (up to half a second)
        server.server_close()
        thread.join()


def sdk_runtime(settings: Settings) -> Runtime | None:
    """Return a Temporal runtime exporting the SDK's metrics on WORKER_SDK_METRICS_PORT (None when it is 0)."""
    if not settings.worker_sdk_metrics_port:
        return None
    host, port = settings.worker_metrics_host, settings.worker_sdk_metrics_port
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # seconds, and `_total` on counters, as Prometheus users expect and our own metrics do
    metrics = PrometheusConfig(bind_address=address, counters_total_suffix=True, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))
