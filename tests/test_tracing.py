"""OpenTelemetry traces: one trace from `POST .../execute` through the workflow to each activity; off by default."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from tests.conftest import REPO_ROOT
from workflow_engine.api import create_app
from workflow_engine.engine.workflow.interpreter import Interpreter
from workflow_engine.settings import Settings
from workflow_engine.tracing import temporal_interceptors, tracer_provider
from workflow_engine.worker import build_worker, workflow_runner

Json = dict[str, Any]


def _provider(exporter: InMemorySpanExporter, process: str) -> TracerProvider:
    """A provider like `tracer_provider`'s, recording into `exporter` at once."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"test-{process}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def _serve(
    client: Client, settings: Settings, api: TracerProvider | None = None, worker: TracerProvider | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the app and a worker; each has its own provider, as in two processes, so only headers join them."""
    for name in ("hello.yaml", "greetings.py"):
        shutil.copy(REPO_ROOT / "workflows" / name, settings.workflows_dir / name)
    app = create_app(settings, temporal_client=client, tracing=api)
    async with (
        build_worker(client, settings, tracing=worker),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


async def _run_hello(http: httpx.AsyncClient) -> str:
    """Run `hello` to its end through the API and return its execution id."""
    response = await http.post("/executions/workflows/hello/execute", params={"wait": "true", "timeout": 30},
                               json={"parameters": {"who": "Ada", "times": 2}})  # fmt: skip
    assert response.status_code == 200, response.text
    body: Json = response.json()
    assert body["status"] == "completed", body
    return str(body["execution_id"])


def _named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, sorted(span.name for span in spans))
    return found[0]


async def test_a_run_started_through_the_api_is_one_trace_from_the_request_to_each_activity(
    client: Client, settings: Settings
) -> None:
    exporter = InMemorySpanExporter()
    async for http in _serve(client, settings, _provider(exporter, "api"), _provider(exporter, "worker")):
        execution_id = await _run_hello(http)
        assert (await http.get("/health")).status_code in (200, 503)
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("POST /executions/"))
    assert request.name == "POST /executions/workflows/{workflow_id}/execute"
    assert request.resource.attributes[SERVICE_NAME] == "test-api"
    start = _named(spans, "StartWorkflow:hello")
    run = _named(spans, "RunWorkflow:hello")
    activities = [_named(spans, "RunActivity:log"), _named(spans, "RunActivity:python")]
    trace_id = request.context.trace_id
    assert {s.context.trace_id for s in (start, run, *activities)} == {trace_id}
    assert start.parent is not None and start.parent.span_id == request.context.span_id  # under the request
    assert start.attributes is not None and start.attributes["temporalWorkflowID"] == execution_id
    assert {s.resource.attributes[SERVICE_NAME] for s in (run, *activities)} == {"test-worker"}
    assert [s.name for s in spans if s.name.startswith(("POST", "GET"))] == [request.name]  # no probe, no ASGI parts


async def test_tracing_adds_headers_not_commands_so_runs_replay_with_or_without_it(
    client: Client, settings: Settings
) -> None:
    exporter = InMemorySpanExporter()
    async for http in _serve(client, settings, _provider(exporter, "api"), _provider(exporter, "worker")):
        traced = await client.get_workflow_handle(await _run_hello(http)).fetch_history()
    async for http in _serve(client, settings):  # the same run with tracing off everywhere
        plain = await client.get_workflow_handle(await _run_hello(http)).fetch_history()
    started = traced.events[0].workflow_execution_started_event_attributes
    assert "_tracer-data" in started.header.fields
    assert "_tracer-data" not in plain.events[0].workflow_execution_started_event_attributes.header.fields
    assert [e.event_type for e in traced.events] == [e.event_type for e in plain.events]
    runner = workflow_runner(sandboxed=True)
    for interceptors in ([], temporal_interceptors(_provider(InMemorySpanExporter(), "replay"))):
        replayer = Replayer(workflows=[Interpreter], workflow_runner=runner, interceptors=interceptors)
        for history in (traced, plain):
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, result.replay_failure


async def test_with_tracing_off_nothing_is_installed(client: Client, settings: Settings) -> None:
    assert settings.otel_exporter_otlp_endpoint is None and tracer_provider(settings, "api") is None
    worker = build_worker(client, settings)
    for each in (worker, *worker.kind_workers):
        assert not [i for i in each.client.config()["interceptors"] if isinstance(i, TracingInterceptor)]
    app = create_app(settings, temporal_client=client)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    async with app.router.lifespan_context(app):
        api_client = await app.state.temporal.get()
        assert not [i for i in api_client.config()["interceptors"] if isinstance(i, TracingInterceptor)]


def test_with_tracing_off_the_api_loads_no_opentelemetry_code() -> None:
    probe = (
        "import sys\nfrom workflow_engine.api import create_app\nfrom workflow_engine.settings import Settings\n"
        "create_app(Settings(_env_file=None))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('temporalio.contrib.opentelemetry', "
        "'opentelemetry.instrumentation', 'opentelemetry.exporter', 'opentelemetry.sdk'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr[-3000:]


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps the path and body of every POST."""

    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (the handler's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """Serve an OTLP/HTTP receiver on a free port; yield its base URL and what it received."""
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", received
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_the_endpoint_setting_exports_otlp_http_named_after_the_process(
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, received = collector
    settings = Settings(_env_file=None, otel_exporter_otlp_endpoint=url, otel_service_name="wfe")
    provider = tracer_provider(settings, "worker")
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("probe"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert [path for path, _ in received] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(received[0][1])
    (resource,) = request.resource_spans
    names = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert names[SERVICE_NAME] == "wfe-worker"
    assert [span.name for scope in resource.scope_spans for span in scope.spans] == ["probe"]
