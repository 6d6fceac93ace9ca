"""Builds and runs the Temporal worker that hosts the interpreter and the built-in activities."""

from __future__ import annotations

import asyncio
import logging
import pkgutil
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflow_engine.engine
from workflow_engine.audit import AuditActivities
from workflow_engine.engine import BuiltinActivities, Interpreter, connect
from workflow_engine.engine.client import ensure_search_attributes
from workflow_engine.engine.http import HttpActivities
from workflow_engine.engine.secrets import SecretsInterceptor
from workflow_engine.engine.shell import ShellActivities
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.plugins import as_activity, discover
from workflow_engine.settings import Settings

logger = logging.getLogger(__name__)

_INTERPRETER_MODULE = "workflow_engine.engine.interpreter"


def _passthrough_modules() -> tuple[str, ...]:
    """Every module of ours but the interpreter passes through the sandbox.

    The sandbox re-imports, for each new run it loads, whatever is not passed through. Keeping that to
    the interpreter module alone (the rest is the pure DSL, its helpers and worker-side code the
    interpreter never calls) made a cold run about 2.5x cheaper (docs/benchmarks.md) while the workflow
    code itself stays sandboxed.
    """
    engine_modules = [
        f"workflow_engine.engine.{module.name}"
        for module in pkgutil.iter_modules(workflow_engine.engine.__path__)
        if f"workflow_engine.engine.{module.name}" != _INTERPRETER_MODULE
    ]
    ours = ["workflow_engine.dsl", "workflow_engine.settings", "workflow_engine.errors", "workflow_engine.plugins",
            "workflow_engine.storage", "workflow_engine.audit", "workflow_engine.payloads",
            *engine_modules]  # fmt: skip
    return ("pydantic", "pydantic_core", "annotated_types", "cel", "yaml", "croniter", *ours)


PASSTHROUGH_MODULES = _passthrough_modules()


class EngineWorker(Worker):
    """A Temporal worker that closes the database connections of its activities and payload store when it stops."""

    def __init__(self, *args: Any, closers: Sequence[Callable[[], Awaitable[None]]] = (), **kwargs: Any) -> None:
        """Take the Worker arguments, and what to close once it has shut down."""
        super().__init__(*args, **kwargs)
        self._closers = closers

    async def run(self) -> None:
        """Run until shut down, then close."""
        try:
            await super().run()
        finally:
            for close in self._closers:
                await close()


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    """Return a worker for the interpreter workflow and every built-in activity.

    The worker's client stores payloads over OUTPUT_INLINE_LIMIT_BYTES in the database (`payloads.py`).
    """
    audit, payloads = AuditActivities(settings), DatabasePayloadStore(settings.database_url)
    activities = [
        *BuiltinActivities(settings.workflows_dir).all(),
        *HttpActivities(settings).all(),
        *ShellActivities(settings).all(),
        audit.record_approval,
        *(as_activity(item) for item in discover(settings)),
    ]
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return EngineWorker(
        with_payload_store(client, settings, payloads),
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[Interpreter],
        activities=activities,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        interceptors=[SecretsInterceptor(settings)],
        graceful_shutdown_timeout=timedelta(seconds=30),
        closers=(audit.close, payloads.close),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and poll until cancelled or `stop` is set."""
    client = await connect(settings)
    try:
        await ensure_search_attributes(client, settings.temporal_namespace)
    except RPCError as exc:  # e.g. Temporal Cloud, where an operator registers them
        logger.warning("could not register search attributes (%s); register them on the namespace", exc.message)
    worker = build_worker(client, settings)
    logger.info("worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address)
    async with worker:
        await (stop or asyncio.Event()).wait()
