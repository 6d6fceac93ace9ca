"""The large-payload driver on SQLite and PostgreSQL (whole runs: tests/engine/test_large_outputs.py)."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext, StorageDriverStoreContext
from temporalio.converter import StorageDriverWorkflowInfo as Target

from tests.conftest import stored_payloads
from workflow_engine.payloads import DatabasePayloadStore, PayloadMissingError
from workflow_engine.storage import upgrade_database


def _payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_the_store_keeps_each_content_once_and_gives_it_back(database_url: str) -> None:
    await upgrade_database(database_url)
    store = DatabasePayloadStore(database_url)
    big, other = _payload(b'"' + b"a" * 300_000 + b'"'), _payload(b'"' + b"b" * 5 + b'"')
    context = StorageDriverStoreContext(target=Target(namespace="default", id="run-1"))
    try:
        claims = await store.store(context, [big, other, big])
        again = await store.store(StorageDriverStoreContext(), [big])  # a retried completion stores nothing new
        assert claims[0] == claims[2] == again[0] != claims[1]
        back = await store.retrieve(StorageDriverRetrieveContext(), [claims[1], claims[0]])
        assert back == [other, big]
        rows = await stored_payloads(database_url)
        assert [(row.size, row.workflow_id) for row in rows] == [
            (len(other.SerializeToString()), "run-1"),
            (len(big.SerializeToString()), "run-1"),
        ]
        with pytest.raises(PayloadMissingError, match="not found in the database"):
            await store.retrieve(StorageDriverRetrieveContext(), [StorageDriverClaim(claim_data={"key": "0" * 64})])
    finally:
        await store.close()
