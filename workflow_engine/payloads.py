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
)

from workflow_engine.errors import GoneError
from workflow_engine.settings import Settings
from workflow_engine.storage import create_engine, repository, session_factory

logger = logging.getLogger(__name__)

DRIVER_NAME = "wfe-database"


class PayloadMissingError(GoneError):
    """A reference points at a payload the database does not hold (another DATABASE_URL, or deleted)."""


class DatabasePayloadStore(StorageDriver):
    """Stores payloads in the `stored_payload` table, keyed by the sha256 of the serialized payload."""

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
        """Store each payload once (same content, same key) and return claims naming their keys."""
        blobs = {}
        keys = []
        for payload in payloads:
            data = payload.SerializeToString(deterministic=True)
            key = hashlib.sha256(data).hexdigest()
            blobs[key] = data
            keys.append(key)
        workflow_id = getattr(context.target, "id", None) if context.target is not None else None
        async with self._factory()() as session:
            try:
                await repository.add_payloads(session=session, payloads=blobs, workflow_id=workflow_id)
                await session.commit()
            except IntegrityError:  # a concurrent store of the same content won the race: it is stored
                await session.rollback()
        logger.info("stored %d large payload(s) by reference (%d bytes)", len(blobs), sum(map(len, blobs.values())))
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
