"""FastAPI dependencies: what the app holds in `app.state` (settings, database, Temporal), as routes need it.

Routes read `app.state` only through these.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from workflow_engine.engine.activities.modules import allowed_modules
from workflow_engine.engine.client.connection import TemporalConnection
from workflow_engine.settings import Settings

from .schedules import ScheduleSyncer


def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """Return the app's session factory (for work that opens sessions of its own)."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session for one request; routes commit what they change."""
    async with get_sessions(request)() as session:
        yield session


def get_connection(request: Request) -> TemporalConnection:
    """Return the app's Temporal connection, not connecting (the health check reports a failed connect)."""
    connection: TemporalConnection = request.app.state.temporal
    return connection


async def get_temporal(request: Request) -> Client:
    """Return the Temporal client, connecting on first use (503 when unreachable)."""
    return await get_connection(request).get()


def get_schedules(request: Request) -> ScheduleSyncer:
    """Return the app's schedule syncer (syncs after a registry change)."""
    syncer: ScheduleSyncer = request.app.state.schedules
    return syncer


def get_activity_types(request: Request) -> tuple[str, ...]:
    """Return the activity types definitions may use (built-in and plugins), found when the app started."""
    activity_types: tuple[str, ...] = request.app.state.activity_types
    return activity_types


async def get_python_modules(request: Request) -> tuple[str, ...]:
    """Return the modules `python` tasks may call, read now so a module just added to WORKFLOWS_DIR counts."""
    return await asyncio.to_thread(allowed_modules, get_settings(request))


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ConnectionDep = Annotated[TemporalConnection, Depends(get_connection)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ActivityTypesDep = Annotated[tuple[str, ...], Depends(get_activity_types)]
SchedulesDep = Annotated[ScheduleSyncer, Depends(get_schedules)]
PythonModulesDep = Annotated[tuple[str, ...], Depends(get_python_modules)]
