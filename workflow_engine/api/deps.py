"""FastAPI dependencies: what the app holds in `app.state` (settings, database, Temporal), as routes need it.

Routes read `app.state` only through these. They are coroutines although they do no I/O: FastAPI runs a plain
function dependency in a worker thread, which costs more than the request's own work.
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

from .definitions import DefinitionCache
from .schedules import ScheduleSyncer


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """Return the app's session factory (for work that opens sessions of its own)."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session for one request; routes commit what they change."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


async def get_connection(request: Request) -> TemporalConnection:
    """Return the app's Temporal connection, not connecting (the health check reports a failed connect)."""
    connection: TemporalConnection = request.app.state.temporal
    return connection


async def get_temporal(request: Request) -> Client:
    """Return the Temporal client, connecting on first use (503 when unreachable)."""
    connection: TemporalConnection = request.app.state.temporal
    return await connection.get()


async def get_schedules(request: Request) -> ScheduleSyncer:
    """Return the app's schedule syncer (syncs after a registry change)."""
    syncer: ScheduleSyncer = request.app.state.schedules
    return syncer


async def get_definitions(request: Request) -> DefinitionCache:
    """Return the app's parsed revisions (the start path's cache)."""
    definitions: DefinitionCache = request.app.state.definitions
    return definitions


async def get_activity_types(request: Request) -> tuple[str, ...]:
    """Return the activity types definitions may use (built-in and plugins), found when the app started."""
    activity_types: tuple[str, ...] = request.app.state.activity_types
    return activity_types


async def get_python_modules(request: Request) -> tuple[str, ...]:
    """Return the modules `python` tasks may call, read now so a module just added to WORKFLOWS_DIR counts."""
    return await asyncio.to_thread(allowed_modules, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ConnectionDep = Annotated[TemporalConnection, Depends(get_connection)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ActivityTypesDep = Annotated[tuple[str, ...], Depends(get_activity_types)]
SchedulesDep = Annotated[ScheduleSyncer, Depends(get_schedules)]
DefinitionsDep = Annotated[DefinitionCache, Depends(get_definitions)]
PythonModulesDep = Annotated[tuple[str, ...], Depends(get_python_modules)]
