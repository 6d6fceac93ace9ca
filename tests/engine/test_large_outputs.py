"""Task outputs over OUTPUT_INLINE_LIMIT_BYTES: stored by reference, read whole by expressions and status."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from workflow_engine.dsl import parse_definition
from workflow_engine.engine import RunInput, describe_execution, start_execution
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.settings import Settings
from workflow_engine.storage import StoredPayload, create_engine, session_factory
from workflow_engine.worker import build_worker

from .conftest import Runner

BIG = 400 * 1024  # over the default OUTPUT_INLINE_LIMIT_BYTES (256 KiB)

MODULE = """
def text(n):
    return "x" * n


def rows(n):
    return [{"id": i, "label": f"row {i:06d}"} for i in range(n)]
"""


async def _stored(database_url: str) -> list[StoredPayload]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(StoredPayload).order_by(StoredPayload.size)))
    finally:
        await engine.dispose()


async def test_a_large_output_is_stored_by_reference_and_read_by_expressions(
    run_yaml: Runner, workflows_dir: Path, settings: Settings
) -> None:
    (workflows_dir / "sizes.py").write_text(MODULE)
    outcome = await run_yaml(
        f"""
name: big-output
tasks:
  - id: big
    activity_type: python
    config: {{function: "sizes:text", args: [{BIG}]}}
  - id: small
    activity_type: python
    config: {{function: "sizes:text", args: [10]}}
  - id: table
    activity_type: python
    config: {{function: "sizes:rows", args: [8000]}}
  - id: measure
    type: set
    depends_on: [big, small, table]
    config:
      length: "${{{{ size(tasks.big.output) }}}}"
      last: "${{{{ tasks.table.output[7999].label }}}}"
output: "${{{{ tasks.measure.output }}}}"
"""
    )
    assert outcome.failure is None, outcome.failure
    assert outcome.result == {"length": BIG, "last": "row 007999"}
    # the status answer (through a client with the store, as the API has) carries the whole outputs
    assert outcome.task("big")["output"] == "x" * BIG
    assert len(outcome.task("table")["output"]) == 8000
    history = await outcome.handle.fetch_history()
    results = [
        e.activity_task_completed_event_attributes.result.payloads[0]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    sizes = sorted(p.ByteSize() for p in results)
    assert len(results) == 3 and max(sizes) < 2048  # history holds references, not the 400 KiB
    assert [p.data for p in results if b"xxxxxxxxxx" in p.data]  # the small output stays inline
    stored = await _stored(settings.database_url)
    assert len(stored) >= 2 and all(row.size >= settings.output_inline_limit_bytes for row in stored)
    assert {row.workflow_id for row in stored} == {outcome.handle.id}


async def test_the_limit_is_a_setting(client: Client, workflows_dir: Path, settings: Settings) -> None:
    (workflows_dir / "sizes.py").write_text(MODULE)
    limited = settings.model_copy(
        update={"output_inline_limit_bytes": 1024, "temporal_task_queue": f"{settings.temporal_task_queue}-1k"}
    )
    definition = parse_definition(
        "name: small-limit\ntasks:\n  - id: t\n    activity_type: python\n"
        "    config: {function: 'sizes:text', args: [3000]}\n",
        file="small-limit.yaml",
    )
    execution_id = f"small-limit-{uuid.uuid4().hex}"
    store = DatabasePayloadStore(limited.database_url)
    reader = with_payload_store(client, limited, store)
    async with build_worker(client, limited):
        await start_execution(
            reader,
            workflow_name=definition.name,
            execution_id=execution_id,
            task_queue=limited.temporal_task_queue,
            run_input=RunInput(definition=definition.model_dump(mode="json"), revision=1),
        )
        await reader.get_workflow_handle(execution_id).result()
        state = await describe_execution(reader, execution_id)
        history = await reader.get_workflow_handle(execution_id).fetch_history()
    await store.close()
    assert state["tasks"][0]["output"] == "x" * 3000
    completed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
    assert completed[0].activity_task_completed_event_attributes.result.payloads[0].ByteSize() < 1024
    stored = await _stored(settings.database_url)  # the output, and the status answer that carries it
    assert stored and all(row.size > 3000 for row in stored)
