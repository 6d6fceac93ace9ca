"""The FastAPI app factory: wiring of settings, database, Temporal, routes and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from temporalio.client import Client

from workflow_engine.engine.activities.modules import allowed_modules
from workflow_engine.engine.client.connection import TemporalConnection, with_interceptors
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.plugins import activity_types
from workflow_engine.settings import Settings, get_settings
from workflow_engine.storage import create_engine, session_factory
from workflow_engine.tracing import instrument_app, temporal_interceptors, tracer_provider

from .console import mount as mount_console
from .definitions import DefinitionCache
from .errors import PROBLEM_RESPONSES, install_error_handlers
from .limits import RequestLimits
from .metrics import RequestMetrics
from .registration import directory_snapshot, register_directory, watch_directory
from .routes import approvals, executions, health, schedules, workflows
from .routes.metrics import router as metrics_router
from .schedules import ScheduleSyncer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, temporal_client: Client | None = None, tracing: TracerProvider | None = None
) -> FastAPI:
    """Build the API; at start it registers every YAML file in the workflows directory; `tracing` overrides OTEL_*."""
    settings = settings or get_settings()
    tracing = tracing or tracer_provider(settings, "api")
    interceptors = temporal_interceptors(tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.sessions = session_factory(engine)
        app.state.definitions = DefinitionCache()
        # the API resolves outputs stored by reference (OUTPUT_INLINE_LIMIT_BYTES) with the workers' driver
        payloads = DatabasePayloadStore(settings.database_url)
        app.state.temporal = TemporalConnection(
            settings,
            temporal_client,
            prepare=lambda client: with_interceptors(with_payload_store(client, settings, payloads), interceptors),
        )
        snapshot = await asyncio.to_thread(directory_snapshot, settings.workflows_dir)
        app.state.activity_types = activity_types(settings)
        app.state.registration = await register_directory(
            sessions=app.state.sessions, directory=settings.workflows_dir, activity_types=app.state.activity_types,
            python_modules=await asyncio.to_thread(allowed_modules, settings),
        )  # fmt: skip
        app.state.schedules = syncer = ScheduleSyncer(
            sessions=app.state.sessions, connection=app.state.temporal, settings=settings
        )
        background = [asyncio.create_task(syncer.run())]  # never blocks the start: Temporal may not be up yet
        if settings.workflows_poll_seconds > 0:
            background.append(asyncio.create_task(
                watch_directory(
                    sessions=app.state.sessions,
                    directory=settings.workflows_dir,
                    interval=settings.workflows_poll_seconds,
                    seen=snapshot,
                    activity_types=app.state.activity_types,
                    python_modules=lambda: allowed_modules(settings),
                    on_scan=lambda _report: syncer.everything(),
                )
            ))  # fmt: skip
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await payloads.close()
            await engine.dispose()

    docs = settings.api_docs_enabled
    app = FastAPI(
        title="workflow-engine",
        summary="Durable YAML workflows on Temporal",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    install_error_handlers(app)
    # outermost: a body is checked before any route (or FastAPI's own JSON parsing) sees it
    app.add_middleware(
        RequestLimits, max_body_bytes=settings.api_max_body_bytes, max_json_depth=settings.api_max_json_depth
    )
    app.add_middleware(RequestMetrics)  # outside the limits: refused bodies (413) are counted too
    for router in (health.router, workflows.router, executions.router, approvals.router, schedules.router):
        app.include_router(router, responses=PROBLEM_RESPONSES)
    app.include_router(metrics_router, responses=PROBLEM_RESPONSES)
    mount_console(app)
    instrument_app(app, tracing)
    return app
