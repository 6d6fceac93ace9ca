"""Schemathesis over the OpenAPI spec, in-process (ASGI): no input gives a 5xx or breaks the documented schema."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from workflow_engine.api import create_app
from workflow_engine.devserver import temporal_binary
from workflow_engine.engine.types import SEARCH_ATTRIBUTES
from workflow_engine.settings import Settings
from workflow_engine.storage import upgrade_database


def _app() -> object:
    """Build the API against a dedicated dev server and a migrated SQLite file (both live for the module)."""
    loop = asyncio.new_event_loop()
    env = loop.run_until_complete(
        WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(), search_attributes=SEARCH_ATTRIBUTES,
                                        dev_server_log_level="error")
    )  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="wfe-fuzz-"))
    (tmp / "workflows").mkdir()
    for name in ("hello.yaml", "greetings.py", "human_approval_workflow.yaml", "expenses.py"):
        shutil.copy(REPO_ROOT / "workflows" / name, tmp / "workflows" / name)
    url = f"sqlite+aiosqlite:///{tmp / 'engine.db'}"
    loop.run_until_complete(upgrade_database(url))
    _RESOURCES.extend([loop, env, tmp])
    return create_app(
        Settings(_env_file=None, temporal_address=env.client.service_client.config.target_host,
                 temporal_task_queue="fuzz", workflows_dir=tmp / "workflows", database_url=url,
                 workflows_poll_seconds=0)
    )  # fmt: skip


_RESOURCES: list[object] = []
schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@pytest.fixture(scope="module", autouse=True)
def _shutdown() -> Iterator[None]:
    yield
    loop, env, tmp = _RESOURCES
    assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(env, WorkflowEnvironment)
    loop.run_until_complete(env.shutdown())
    loop.close()
    shutil.rmtree(str(tmp), ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case: Case[Any]) -> None:
    # Every check but "a schema-valid request must be accepted": the DSL and page tokens have rules
    # beyond the schema (an empty YAML document is a string, yet not a workflow), answered with 422.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
