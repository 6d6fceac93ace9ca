"""FastAPI dependencies: settings, a database session and the Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from workflow_engine.engine.client.connection import TemporalConnection
from workflow_engine.settings import Settings


def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session for one request; routes commit what they change."""
    async with request.app.state.sessions() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    """Return the Temporal client, connecting on first use (503 when unreachable)."""
    connection: TemporalConnection = request.app.state.temporal
    return await connection.get()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
