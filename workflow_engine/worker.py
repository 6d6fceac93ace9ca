"""Builds and runs the Temporal worker that hosts the interpreter and the built-in activities."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflow_engine.audit import AuditActivities
from workflow_engine.engine import BuiltinActivities, Interpreter, connect
from workflow_engine.engine.client import ensure_search_attributes
from workflow_engine.engine.http import HttpActivities
from workflow_engine.engine.secrets import SecretsInterceptor
from workflow_engine.engine.shell import ShellActivities
from workflow_engine.plugins import as_activity, discover
from workflow_engine.settings import Settings

logger = logging.getLogger(__name__)

PASSTHROUGH_MODULES = ("workflow_engine.dsl", "pydantic", "pydantic_core", "cel", "yaml", "annotated_types")


def build_worker(client: Client, settings: Settings, *, task_queue: str | None = None) -> Worker:
    """Return a worker for the interpreter workflow and every built-in activity."""
    activities = [
        *BuiltinActivities(settings.workflows_dir).all(),
        *HttpActivities(settings).all(),
        *ShellActivities(settings).all(),
        AuditActivities(settings).record_approval,
        *(as_activity(item) for item in discover(settings)),
    ]
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[Interpreter],
        activities=activities,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        interceptors=[SecretsInterceptor(settings)],
        graceful_shutdown_timeout=timedelta(seconds=30),
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
