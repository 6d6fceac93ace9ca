"""Connecting to Temporal: the client, created on first use, and the search attributes runs need."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from temporalio.client import Client, Interceptor
from temporalio.runtime import Runtime

from workflow_engine.errors import UnavailableError
from workflow_engine.settings import Settings

from ..types import SEARCH_ATTRIBUTES
from .errors import RPC_TIMEOUT


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """Connect to the Temporal frontend named by the settings (on `runtime`, e.g. one exporting SDK metrics)."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=settings.temporal_tls,
            api_key=settings.temporal_api_key,
            runtime=runtime,
        )
    except RuntimeError as exc:
        raise UnavailableError(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from None


def with_interceptors(client: Client, interceptors: Sequence[Interceptor]) -> Client:
    """Return a client on the same connection with `interceptors` added (workers built on it run them too)."""
    if not interceptors:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], *interceptors]
    return Client(**config)


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on the namespace if missing (dev server and self-hosted clusters).

    Unlike the other helpers this one leaves its `RPCError` raw, to the worker: it starts without registering
    them (e.g. on Temporal Cloud, where an operator registers them).
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    kinds = {
        "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        "BOOL": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), timeout=RPC_TIMEOUT
    )
    missing = {
        key.name: kinds[key.indexed_value_type.name]
        for key in SEARCH_ATTRIBUTES
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing), timeout=RPC_TIMEOUT
        )


class TemporalConnection:
    """Connects on first use and keeps the client, so a process can start before Temporal is up."""

    def __init__(
        self, settings: Settings, client: Client | None = None, *, prepare: Callable[[Client], Client] | None = None
    ) -> None:
        """Remember the settings; `client` shares an existing connection, `prepare` adapts the client once."""
        self._settings = settings
        self._prepare = prepare or (lambda client: client)
        self._client = self._prepare(client) if client is not None else None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        """Return the connected client, connecting now if needed."""
        if self._client is not None:  # connected: no lock to take on every request
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = self._prepare(await connect(self._settings))
            return self._client
