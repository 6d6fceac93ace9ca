"""The large-payload driver on SQLite and PostgreSQL (whole runs: tests/engine/test_large_outputs.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext, StorageDriverStoreContext
from temporalio.converter import StorageDriverWorkflowInfo as Target
from typer.testing import CliRunner

from tests.conftest import stored_payloads
from workflow_engine.cli import app
from workflow_engine.engine.types import RunInput
from workflow_engine.payloads import DatabasePayloadStore, PayloadMissingError, prune_payloads
from workflow_engine.storage import StoredPayload, create_engine, session_factory, upgrade_database
from workflow_engine.storage.models import utcnow


def _payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_the_store_keeps_each_content_once_per_run_and_gives_it_back(database_url: str) -> None:
    await upgrade_database(database_url)
    store = DatabasePayloadStore(database_url)
    big, other = _payload(b'"' + b"a" * 300_000 + b'"'), _payload(b'"' + b"b" * 5 + b'"')
    context = StorageDriverStoreContext(target=Target(namespace="default", id="run-1"))
    try:
        claims = await store.store(context, [big, other, big])
        again = await store.store(context, [big])  # a retried completion stores nothing new
        elsewhere = await store.store(StorageDriverStoreContext(target=Target(namespace="default", id="run-2")), [big])
        assert claims[0] == claims[2] == again[0] != claims[1]
        assert elsewhere[0] != claims[0]  # another run's copy is its own row (pruned with that run)
        back = await store.retrieve(StorageDriverRetrieveContext(), [claims[1], claims[0], elsewhere[0]])
        assert back == [other, big, big]
        rows = await stored_payloads(database_url)
        assert sorted((row.size, row.workflow_id) for row in rows) == [
            (len(other.SerializeToString()), "run-1"),
            (len(big.SerializeToString()), "run-1"),
            (len(big.SerializeToString()), "run-2"),
        ]
        with pytest.raises(PayloadMissingError, match="not found in the database"):
            await store.retrieve(StorageDriverRetrieveContext(), [StorageDriverClaim(claim_data={"key": "0" * 64})])
    finally:
        await store.close()


async def test_pruning_deletes_only_payloads_of_runs_temporal_no_longer_has(
    database_url: str, client: Client, task_queue: str
) -> None:
    await upgrade_database(database_url)
    alive = f"alive-{uuid.uuid4().hex}"  # a run Temporal has (nobody polls its queue; it just exists)
    await client.start_workflow("hello", RunInput(definition={}, revision=1), id=alive, task_queue=f"{task_queue}-idle")
    gone, recent = f"gone-{uuid.uuid4().hex}", f"recent-{uuid.uuid4().hex}"
    same = _payload(b'"' + b"s" * 1000 + b'"')
    store = DatabasePayloadStore(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        kept = (await store.store(StorageDriverStoreContext(target=Target(namespace="default", id=alive)), [same]))[0]
        await store.store(StorageDriverStoreContext(target=Target(namespace="default", id=gone)), [same])
        await store.store(StorageDriverStoreContext(), [_payload(b'"nobody"')])
        async with sessions() as session:  # all three were stored two days ago
            await session.execute(update(StoredPayload).values(created_at=utcnow() - timedelta(days=2)))
            await session.commit()
        await store.store(StorageDriverStoreContext(target=Target(namespace="default", id=recent)), [same])

        dry = await prune_payloads(client, sessions, older_than=timedelta(days=1), dry_run=True)
        assert (dry.runs_checked, sorted(dry.runs_gone, key=str), dry.deleted) == (3, sorted([gone, None], key=str), 2)
        assert len(await stored_payloads(database_url)) == 4  # a dry run deletes nothing

        report = await prune_payloads(client, sessions, older_than=timedelta(days=1))
        assert report.deleted == 2
        assert sorted(str(row.workflow_id) for row in await stored_payloads(database_url)) == sorted([alive, recent])
        # the same bytes stored by another run are that run's own row: the alive run still reads its payload
        assert await store.retrieve(StorageDriverRetrieveContext(), [kept]) == [same]
    finally:
        await client.get_workflow_handle(alive).terminate("test over")
        await store.close()
        await engine.dispose()


def test_the_prune_command_refuses_a_bad_age() -> None:
    result = CliRunner().invoke(app, ["prune-payloads", "--older-than", "soon"])
    assert result.exit_code == 2
    assert "--older-than" in result.output and "invalid duration 'soon'" in result.output
