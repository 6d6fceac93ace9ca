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
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.testing import WorkflowEnvironment

from tests.conftest import REPO_ROOT
from workflow_engine.api import create_app
from workflow_engine.devserver import temporal_binary
from workflow_engine.engine.types import SEARCH_ATTRIBUTES
from workflow_engine.settings import Settings
from workflow_engine.storage import upgrade_database


@pytest.fixture(scope="module")
def api_schema() -> Iterator[BaseSchema]:
    """The spec of an API on its own dev server and a migrated SQLite file, built when the test runs, not collected."""
    loop = asyncio.new_event_loop()
    env = loop.run_until_complete(
        WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(), search_attributes=SEARCH_ATTRIBUTES,
                                        dev_server_log_level="error")
    )  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="wfe-fuzz-"))
    try:
        (tmp / "workflows").mkdir()
        for name in ("hello.yaml", "greetings.py", "human_approval_workflow.yaml", "expenses.py"):
            shutil.copy(REPO_ROOT / "workflows" / name, tmp / "workflows" / name)
        url = f"sqlite+aiosqlite:///{tmp / 'engine.db'}"
        loop.run_until_complete(upgrade_database(url))
        app = create_app(
            Settings(_env_file=None, temporal_address=env.client.service_client.config.target_host,
                     temporal_task_queue="fuzz", workflows_dir=tmp / "workflows", database_url=url,
                     workflows_poll_seconds=0)
        )  # fmt: skip
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        loop.run_until_complete(env.shutdown())
        loop.close()
        shutil.rmtree(str(tmp), ignore_errors=True)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schemas label each operation through `Node._nodeid`, which pytest 9.2 no longer has.
    request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case: Case[Any]) -> None:
    # Every check but "a schema-valid request must be accepted": the DSL and page tokens have rules
    # beyond the schema (an empty YAML document is a string, yet not a workflow), answered with 422.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
