"""Task outputs over OUTPUT_INLINE_LIMIT_BYTES: stored by reference, read whole by expressions and status."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.conftest import stored_payloads
from workflow_engine.engine.client.executions import describe_execution
from workflow_engine.payloads import DatabasePayloadStore, with_payload_store
from workflow_engine.settings import Settings
from workflow_engine.storage import StoredPayload, create_engine

from .conftest import Runner

BIG = 400 * 1024  # over the default OUTPUT_INLINE_LIMIT_BYTES (256 KiB)

MODULE = """
def text(n):
    return "x" * n


def rows(n):
    return [{"id": i, "label": f"row {i:06d}"} for i in range(n)]
"""


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
    stored = await stored_payloads(settings.database_url)
    assert len(stored) >= 2 and all(row.size >= settings.output_inline_limit_bytes for row in stored)
    assert {row.workflow_id for row in stored} == {outcome.handle.id}


async def test_the_limit_is_a_setting(run_yaml: Runner, workflows_dir: Path, settings: Settings) -> None:
    (workflows_dir / "sizes.py").write_text(MODULE)
    outcome = await run_yaml(
        "name: small-limit\ntasks:\n  - id: t\n    activity_type: python\n"
        "    config: {function: 'sizes:text', args: [3000]}\n",
        settings_update={"output_inline_limit_bytes": 1024},
    )
    assert outcome.failure is None
    assert outcome.task("t")["output"] == "x" * 3000
    history = await outcome.handle.fetch_history()
    completed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
    assert completed[0].activity_task_completed_event_attributes.result.payloads[0].ByteSize() < 1024
    stored = await stored_payloads(settings.database_url)  # the output, and the status answer that carries it
    assert stored and all(row.size > 3000 for row in stored)


async def test_a_payload_missing_from_the_database_is_reported_not_a_crash(
    run_yaml: Runner, client: Client, workflows_dir: Path, settings: Settings
) -> None:
    (workflows_dir / "sizes.py").write_text(MODULE)
    outcome = await run_yaml(
        f"name: gone\ntasks:\n  - id: big\n    activity_type: python\n"
        f"    config: {{function: 'sizes:text', args: [{BIG}]}}\noutput: '${{{{ tasks.big.output }}}}'\n"
    )
    assert outcome.failure is None and outcome.result == "x" * BIG
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(delete(StoredPayload))
    await engine.dispose()
    store = DatabasePayloadStore(settings.database_url)
    try:
        state = await describe_execution(with_payload_store(client, settings, store), outcome.handle.id)
    finally:
        await store.close()
    assert state["status"] == "completed" and state["output"] is None
    assert "not found in the database" in state["error"]
