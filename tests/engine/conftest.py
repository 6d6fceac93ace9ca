"""Engine fixtures: run a YAML definition on a real worker and collect its result and state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine import RunInput, describe_execution, start_execution
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

    def task(self, task_id: str) -> dict[str, Any]:
        """Return the final state of one task."""
        return next(t for t in self.state["tasks"] if t["id"] == task_id)


Runner = Callable[..., Awaitable[Outcome]]


@pytest_asyncio.fixture
async def run_yaml(client: Client, settings: Settings) -> AsyncIterator[Runner]:
    """Yield a function that runs YAML text to completion on a worker for this test's queue.

    The client resolves payloads stored by reference, as the API's does.
    """
    store = DatabasePayloadStore(settings.database_url)
    client = with_payload_store(client, settings, store)

    async def run(text: str, params: dict[str, Any] | None = None, *, fan_out_batch: int | None = None) -> Outcome:
        definition = parse_definition(text, file="test.yaml")
        execution_id = f"{definition.name}-{uuid.uuid4().hex}"
        await start_execution(
            client,
            workflow_name=definition.name,
            execution_id=execution_id,
            task_queue=settings.temporal_task_queue,
            run_input=RunInput(
                definition=definition.model_dump(mode="json"),
                revision=1,
                params=resolve_params(definition, params or {}),
                fan_out_batch=fan_out_batch or settings.fan_out_batch_size,
            ),
            execution_timeout=definition.timeout,
        )
        handle = client.get_workflow_handle(execution_id)
        result: Any = None
        failure = None
        try:
            result = await handle.result()
        except WorkflowFailureError as exc:
            failure = exc
        return Outcome(handle, result, failure, await describe_execution(client, execution_id))

    async with build_worker(client, settings):
        yield run
    await store.close()
