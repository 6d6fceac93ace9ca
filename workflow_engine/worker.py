"""Builds and runs the Temporal worker that hosts the interpreter and the built-in activities."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflow_engine.engine
from workflow_engine.audit import AuditActivities
from workflow_engine.engine.activities.builtin import BuiltinActivities
from workflow_engine.engine.activities.calls import FunctionRunner
from workflow_engine.engine.activities.concurrency import acquire_key, closed_workflows
from workflow_engine.engine.activities.http import HttpActivities
from workflow_engine.engine.activities.metrics import TaskMetricsInterceptor
from workflow_engine.engine.activities.modules import configured_modules
from workflow_engine.engine.activities.notify import NotifyActivities
from workflow_engine.engine.activities.secrets import SecretsInterceptor
from workflow_engine.engine.activities.shell import ShellActivities
from workflow_engine.engine.activities.tasklogs import TaskLogInterceptor, TaskLogWriter
from workflow_engine.engine.client.connection import connect, ensure_search_attributes, with_interceptors
from workflow_engine.engine.signing import ApprovalVerifier
from workflow_engine.engine.workflow.interpreter import Interpreter
from workflow_engine.engine.workflow.lock import KeyLock
from workflow_engine.engine.workflow.options import activity_queue
from workflow_engine.metrics import sdk_runtime, serve_worker_metrics
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.plugins import as_activity, discover
from workflow_engine.settings import Settings
from workflow_engine.tracing import temporal_interceptors, tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)

# Code that runs inside the workflow sandbox: re-imported for each run and checked by the sandbox.
WORKFLOW_PACKAGE = "workflow_engine.engine.workflow"


def _passthrough_modules() -> tuple[str, ...]:
    """Every module of ours outside `engine/workflow/` passes through the sandbox; that package stays sandboxed.

    The sandbox re-imports, for each new run it loads, whatever is not passed through. Passing through the
    pure DSL, the wire types and the worker-side code (activities, client helpers, storage) made a cold run
    about 2.5x cheaper (docs/benchmarks.md), while the workflow code itself, the interpreter and its
    helpers, stays sandboxed: the folder is the boundary (tests/engine/test_boundary.py).
    """
    engine = [
        f"workflow_engine.engine.{module.name}"
        for module in pkgutil.iter_modules(workflow_engine.engine.__path__)
        if f"workflow_engine.engine.{module.name}" != WORKFLOW_PACKAGE
    ]
    ours = ["workflow_engine.dsl", "workflow_engine.settings", "workflow_engine.errors", "workflow_engine.plugins",
            "workflow_engine.storage", "workflow_engine.audit", "workflow_engine.payloads", *engine]  # fmt: skip
    return ("pydantic", "pydantic_core", "annotated_types", "cel", "yaml", "croniter", *ours)


PASSTHROUGH_MODULES = _passthrough_modules()


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """Return how the interpreter runs: in the sandbox (pass-through as above) or, by default, without it.

    The interpreter is the only workflow code a worker runs, and it is ours: users' code runs in activities.
    Without the sandbox a `log` step costs about a third less worker CPU (docs/benchmarks.md); what the sandbox
    would refuse at run time (clocks, randomness, I/O in workflow code) is caught in CI instead, where every
    recorded history replays in the sandbox and the folder's imports are checked (tests/engine/test_replay.py,
    test_boundary.py). WORKER_WORKFLOW_SANDBOX=true turns it back on.
    """
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


# Running activities get this long to finish (or heartbeat out) when a worker stops.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


class WorkerConfigError(ValueError):
    """Settings the worker cannot run with (named in the message)."""


class EngineWorker(Worker):
    """The interpreter's worker: runs one worker per activity kind beside it, and closes connections when it stops."""

    def __init__(
        self,
        *args: Any,
        kind_workers: Sequence[Worker] = (),
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        **kwargs: Any,
    ) -> None:
        """Take the Worker arguments, the per-kind workers to run alongside, and what to close at the end."""
        super().__init__(*args, **kwargs)
        self.kind_workers, self._closers = tuple(kind_workers), closers

    async def run(self) -> None:
        """Run with the per-kind workers until shut down; shut them down together, then close."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                for worker in self.kind_workers:
                    await stack.enter_async_context(worker)
                try:
                    await super().run()
                finally:  # graceful shutdowns in parallel: each may wait for its running activities
                    await asyncio.gather(*(worker.shutdown() for worker in self.kind_workers))
        finally:
            for close in self._closers:
                await close()


def user_function_threads(settings: Settings, kinds: Sequence[str]) -> int:
    """Return how many sync user functions (`python`, plugins) one worker process may run at once.

    Each such activity holds a slot of the main worker (WORKER_MAX_CONCURRENT_ACTIVITIES, shared by every
    kind) or of its kind's own worker (its WORKER_ACTIVITY_CONCURRENCY limit), so one thread per slot of
    those workers means no call ever waits for a thread while its timeout runs. Threads start on demand.
    """
    default, limits = settings.worker_max_concurrent_activities, settings.activity_concurrency
    return default + sum(limits.get(kind, default) for kind in kinds)


def build_worker(
    client: Client, settings: Settings, *, task_queue: str | None = None, tracing: TracerProvider | None = None
) -> EngineWorker:
    """Return a worker for the interpreter workflow and every activity, with one worker per remote activity kind.

    The main worker polls `task_queue` (default TEMPORAL_TASK_QUEUE) for workflow tasks, local activities
    (`log`, the approval audit), notifications (`notify`) and every remote activity of kinds without a limit of
    their own (on the workflow's queue, Temporal hands them out eagerly with the workflow task). Each remote kind
    (`python`, `http_request`, `shell`, every plugin) also has a worker on `<queue>/<kind>`, with the kind's limit from
    WORKER_ACTIVITY_CONCURRENCY; runs started while that setting named the kind send its activities there.
    Every kind is polled, so a run routed by an API with other limits still runs. The client stores payloads
    over OUTPUT_INLINE_LIMIT_BYTES in the database (`payloads.py`). With tracing on (OTEL_*, or `tracing`), every
    worker traces its workflow and activity tasks in the trace of the request that started the run (`tracing.py`).

    Raises:
        WorkerConfigError: WORKER_ACTIVITY_CONCURRENCY names an activity type no worker has.
        PluginError: A plugin cannot be loaded.
    """
    queue = task_queue or settings.temporal_task_queue
    audit, payloads = AuditActivities(settings), DatabasePayloadStore(settings.database_url)
    task_logs = TaskLogWriter(settings.database_url)
    plugins = discover(settings)
    runner = FunctionRunner(user_function_threads(settings, ("python", *(item.name for item in plugins))))
    builtin = BuiltinActivities(settings.workflows_dir, runner=runner, python_modules=configured_modules(settings))
    remote: dict[str, Callable[..., Any]] = {
        "python": builtin.python,
        "http_request": HttpActivities(settings).http_request,
        "shell": ShellActivities(settings).shell,
        **{item.name: as_activity(item, runner) for item in plugins},
    }
    limits = settings.activity_concurrency
    unknown = sorted(set(limits) - set(remote))
    if unknown:
        raise WorkerConfigError(
            f"WORKER_ACTIVITY_CONCURRENCY names {', '.join(map(repr, unknown))}, which is not a remote activity type "
            f"(known: {', '.join(remote)})"
        )
    tracing = tracing or tracer_provider(settings, "worker")
    client = with_interceptors(with_payload_store(client, settings, payloads), temporal_interceptors(tracing))
    logs = TaskLogInterceptor(task_logs, settings.task_log_max_bytes)  # before secrets: it masks their values
    interceptors = [TaskMetricsInterceptor(), logs, SecretsInterceptor(settings)]  # first = outermost: times it all
    kind_workers = [
        Worker(
            client,
            task_queue=activity_queue(queue, kind),
            activities=[function],
            max_concurrent_activities=limits.get(kind, settings.worker_max_concurrent_activities),
            interceptors=interceptors,
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        )
        for kind, function in remote.items()
    ]
    return EngineWorker(
        client,
        task_queue=queue,
        workflows=[Interpreter, KeyLock],  # KeyLock: one `wfe.lock` per concurrency key
        activities=[
            builtin.log,
            audit.record_approval,
            ApprovalVerifier(settings).verify_approval,
            NotifyActivities(settings).notify,
            acquire_key,
            closed_workflows,
            *remote.values(),
        ],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=workflow_runner(settings.worker_workflow_sandbox),
        interceptors=interceptors,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        kind_workers=kind_workers,
        closers=(audit.close, payloads.close, runner.close, task_logs.close),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Connect to Temporal and poll until cancelled or `stop` is set, serving metrics when their ports are set."""
    client = await connect(settings, runtime=sdk_runtime(settings))
    try:
        await ensure_search_attributes(client, settings.temporal_namespace)
    except RPCError as exc:  # e.g. Temporal Cloud, where an operator registers them
        logger.warning("could not register search attributes (%s); register them on the namespace", exc.message)
    worker = build_worker(client, settings)
    logger.info(
        "worker polling %s (and %s/<kind> for %s) on %s", settings.temporal_task_queue, settings.temporal_task_queue,
        ", ".join(w.task_queue.rsplit("/", 1)[1] for w in worker.kind_workers), settings.temporal_address,
    )  # fmt: skip
    async with serve_worker_metrics(settings), worker:
        await (stop or asyncio.Event()).wait()


if __name__ == "__main__":  # `python -m workflow_engine.worker`: the same command as `python -m workflow_engine worker`
    import sys

    from workflow_engine.cli import app as _cli

    _cli(["worker", *sys.argv[1:]], prog_name="python -m workflow_engine.worker")
