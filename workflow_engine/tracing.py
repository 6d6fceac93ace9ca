"""OpenTelemetry traces: the tracer provider of a process and the pieces that record spans with it.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (then nothing of OpenTelemetry is even imported). When on, the
FastAPI instrumentation opens a span per API request, and the Temporal `TracingInterceptor` on the API's client
and on the worker carries its context through StartWorkflow into the workflow (RunWorkflow, StartActivity) and
each activity (RunActivity): one trace per request. The interceptor adds a header to what it starts, never a
command, so recorded histories replay the same with it or without (tests/test_tracing.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workflow_engine.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.contrib.opentelemetry import TracingInterceptor

# Probes and scrapes would be most of the spans and say nothing about runs.
UNTRACED_URLS = "/health$,/metrics$"


def tracer_provider(settings: Settings, process: str) -> TracerProvider | None:
    """Return a provider exporting to OTEL_EXPORTER_OTLP_ENDPOINT as `<OTEL_SERVICE_NAME>-<process>`, or None if unset.

    The endpoint is an OTLP/HTTP base URL (e.g. http://collector:4318); spans go to its `/v1/traces` in batches.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"{settings.otel_service_name}-{process}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[TracingInterceptor]:
    """Return the Temporal interceptors that trace with `provider`: none when tracing is off."""
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer(__name__))]


def instrument_app(app: FastAPI, provider: TracerProvider | None) -> None:
    """Open a span for every request of the app (but probes and scrapes) when tracing is on."""
    if provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(  # one span per request, without one per ASGI message
            app, tracer_provider=provider, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"]
        )
