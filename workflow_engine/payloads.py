"""Large payloads by reference: a Temporal external-storage driver that keeps them in the registry database.

Any payload over OUTPUT_INLINE_LIMIT_BYTES that a worker or the API hands to Temporal (a task output, a
workflow result, a status answer, a batch child's input) is stored here by its content hash, and history
holds a small reference instead. Every process that reads such a payload (the worker that runs the
interpreter, the API answering a status request) resolves the reference through the same driver, so
expressions and the API see the full value; nothing is truncated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from workflow_engine.engine.client.executions import execution_status
from workflow_engine.errors import GoneError, NotFoundError
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, repository, session_factory
from workflow_engine.storage.models import utcnow

logger = logging.getLogger(__name__)

DRIVER_NAME = "wfe-database"


class PayloadMissingError(GoneError):
    """A reference points at a payload the database does not hold (another DATABASE_URL, or deleted)."""


def payload_key(data: bytes, workflow_id: str | None) -> str:
    """Return the key of a serialized payload stored for a run: the same bytes in two runs make two rows.

    Keys per run (not per content alone) let `prune_payloads` delete one run's rows without breaking
    another run that stored the same bytes; a retried store within a run still finds its row.
    """
    return hashlib.sha256(f"{workflow_id or ''}\0".encode() + data).hexdigest()


class DatabasePayloadStore(StorageDriver):
    """Stores payloads in the `stored_payload` table, keyed per run by the sha256 of the serialized payload."""

    def __init__(self, database_url: str) -> None:
        """Remember the database URL; connect on first use (most processes never store anything)."""
        self.database_url = database_url
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    def name(self) -> str:
        """Return the name references carry, so any process with this driver can resolve them."""
        return DRIVER_NAME

    def type(self) -> str:
        """Return the driver type (stable across processes)."""
        return DRIVER_NAME

    def _factory(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._engine = create_engine(self.database_url)
            self._sessions = session_factory(self._engine)
        return self._sessions

    async def store(self, context: StorageDriverStoreContext, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        """Store each payload once per run (same run and content, same key) and return claims naming their keys."""
        # the run the payload belongs to (for an activity's result, the workflow that scheduled it)
        workflow_id = context.target.id if isinstance(context.target, StorageDriverWorkflowInfo) else None
        blobs = {}
        keys = []
        for payload in payloads:
            data = payload.SerializeToString(deterministic=True)
            key = payload_key(data, workflow_id)
            blobs[key] = data
            keys.append(key)
        async with self._factory()() as session:
            try:
                await repository.add_payloads(session=session, payloads=blobs, workflow_id=workflow_id)
                await session.commit()
            except IntegrityError:  # a concurrent store of the same content won the race: it is stored
                await session.rollback()
        logger.debug("stored %d large payload(s) by reference (%d bytes)", len(blobs), sum(map(len, blobs.values())))
        return [StorageDriverClaim(claim_data={"key": key}) for key in keys]

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        """Load the payloads the claims name, in order."""
        keys = [claim.claim_data.get("key", "") for claim in claims]
        async with self._factory()() as session:
            found = await repository.get_payloads(session=session, keys=list(dict.fromkeys(keys)))
        missing = [key for key in keys if key not in found]
        if missing:
            raise PayloadMissingError(
                f"stored payload(s) {', '.join(missing)} not found in the database: is DATABASE_URL the one the "
                "worker used, and were they deleted?"
            )
        return [Payload.FromString(found[key]) for key in keys]

    async def close(self) -> None:
        """Dispose of the engine."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessions = None


def with_payload_store(client: Client, settings: Settings, store: DatabasePayloadStore | None = None) -> Client:
    """Return a client on the same connection whose payloads over OUTPUT_INLINE_LIMIT_BYTES go to the database.

    A client that already has external storage (configured by whoever built it) is returned as it is. Pass
    `store` to close its connections when done; otherwise one is made for DATABASE_URL.
    """
    converter = client.data_converter
    if converter.external_storage is not None:
        return client
    storage = ExternalStorage(
        drivers=[store or DatabasePayloadStore(settings.database_url)],
        payload_size_threshold=settings.output_inline_limit_bytes,
    )
    config = client.config()
    config["data_converter"] = dataclasses.replace(converter, external_storage=storage)
    return Client(**config)


@dataclass(frozen=True)
class PruneReport:
    """What `prune_payloads` found: runs whose payloads were (or would be) deleted, and how many rows."""

    runs_checked: int
    runs_gone: list[str | None]
    deleted: int


async def prune_payloads(
    client: Client, sessions: async_sessionmaker[AsyncSession], *, older_than: timedelta, dry_run: bool = False
) -> PruneReport:
    """Delete stored payloads older than `older_than` whose run Temporal no longer has (retention removed it).

    A run that still exists keeps every payload, however old: its status and result replay from them.
    Rows with no run recorded are deleted once older than `older_than`.
    """
    cutoff = utcnow() - older_than
    async with sessions() as session:
        owners = await repository.payload_owners(session=session, created_before=cutoff)
    gone: list[str | None] = []
    for owner in owners:
        if owner is None:
            gone.append(owner)
            continue
        try:
            await execution_status(client, owner)
        except NotFoundError:
            gone.append(owner)
    deleted = 0
    async with sessions() as session:
        for start in range(0, len(gone), 500):
            deleted += await repository.delete_payloads(
                session=session, owners=gone[start : start + 500], created_before=cutoff
            )
        await (session.rollback() if dry_run else session.commit())
    return PruneReport(runs_checked=len(owners), runs_gone=gone, deleted=deleted)
