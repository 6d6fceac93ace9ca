"""Engine fixtures: run a YAML definition on a real worker and collect its result and state."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from tests.polling import eventually
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.client.executions import describe_execution, start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker


@dataclass
class Outcome:
    """What a finished run left behind."""

    handle: WorkflowHandle[Any, Any]
    result: Any
    failure: WorkflowFailureError | None
    state: dict[str, Any]

    @classmethod
    async def of(cls, client: Client, handle: WorkflowHandle[Any, Any]) -> Outcome:
        """Wait for a run to close and collect its result (or failure) and its final state."""
        result: Any = None
        failure = None
        try:
            result = await handle.result()
        except WorkflowFailureError as exc:
            failure = exc
        # the status query gives up after 2 s; on a loaded machine a worker may answer only on a later try
        state = await eventually(
            lambda: describe_execution(client, handle.id),
            within=60,
            what=f"a worker answering the status query of {handle.id}",
            until=lambda described: described["tasks_source"] == "worker",
            interval=0.5,
        )
        return cls(handle, result, failure, state)

    def task(self, task_id: str) -> dict[str, Any]:
        """Return the final state of one task."""
        return next(t for t in self.state["tasks"] if t["id"] == task_id)


Runner = Callable[..., Awaitable[Outcome]]


async def start_yaml(
    client: Client, settings: Settings, text: str, params: dict[str, Any] | None = None, *,
    started_by: str | None = None,
) -> WorkflowHandle[Any, Any]:  # fmt: skip
    """Start YAML text on this test's queue (revision 1, its params resolved) without waiting for it."""
    definition = parse_definition(text, file="test.yaml")
    execution_id = f"{definition.name}-{uuid.uuid4().hex}"
    run_input = RunInput(definition=definition.model_dump(mode="json"), revision=1,
                         params=resolve_params(definition, params or {}), started_by=started_by)  # fmt: skip
    await start_execution(client, workflow_name=definition.name, execution_id=execution_id,
                          task_queue=settings.temporal_task_queue, run_input=run_input)  # fmt: skip
    return client.get_workflow_handle(execution_id)


@pytest_asyncio.fixture
async def run_yaml(client: Client, settings: Settings) -> AsyncIterator[Runner]:
    """Yield a function that runs YAML text to completion on a worker for this test's queue.

    The client resolves payloads stored by reference, as the API's does. `settings_update` runs that one
    definition on a worker of its own, built with those settings on a queue of its own.
    """
    store = DatabasePayloadStore(settings.database_url)
    reader = with_payload_store(client, settings, store)  # workers get the plain client and add their own store

    async def run(
        text: str,
        params: dict[str, Any] | None = None,
        *,
        fan_out_batch: int | None = None,
        settings_update: dict[str, Any] | None = None,
        on_start: Callable[[WorkflowHandle[Any, Any]], object] | None = None,
    ) -> Outcome:
        definition = parse_definition(text, file="test.yaml")
        execution_id = f"{definition.name}-{uuid.uuid4().hex}"
        own = settings
        if settings_update:
            queue = f"{settings.temporal_task_queue}-{uuid.uuid4().hex[:8]}"
            own = settings.model_copy(update={**settings_update, "temporal_task_queue": queue})
        async with contextlib.AsyncExitStack() as stack:
            if own is not settings:
                await stack.enter_async_context(build_worker(client, own))
            await start_execution(
                reader,
                workflow_name=definition.name,
                execution_id=execution_id,
                task_queue=own.temporal_task_queue,
                run_input=RunInput(
                    definition=definition.model_dump(mode="json"),
                    revision=1,
                    params=resolve_params(definition, params or {}),
                    fan_out_batch=fan_out_batch or settings.fan_out_batch_size,
                    kind_queues=sorted(own.activity_concurrency),
                ),
                execution_timeout=definition.timeout,
            )
            handle = reader.get_workflow_handle(execution_id)
            if on_start is not None:  # e.g. to query the run while it goes
                on_start(handle)
            return await Outcome.of(reader, handle)

    async with build_worker(client, settings):
        yield run
    await store.close()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Return how many intervals overlapped at most (an end at the same instant as a start does not overlap)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
