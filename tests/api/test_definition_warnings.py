"""A likely mistake (an unbounded schedule overlap) is warned about by `validate`, the registry routes and scans."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from typer.testing import CliRunner

from tests.dsl.test_dsl_notices import SCHEDULED
from workflow_engine.api import create_app
from workflow_engine.api.registration import register_directory
from workflow_engine.cli import app as cli
from workflow_engine.settings import Settings, get_settings
from workflow_engine.storage import create_engine, session_factory

WARNING = {
    "path": "schedules[0].overlap",
    "message": "overlap: buffer_all starts every fire even while earlier runs still go, so slow runs pile up without "
    "bound; skip, buffer_one, cancel_other or terminate_other keep at most one waiting",
    "line": 8,
    "column": 5,
}


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Let the CLI read this test's environment, and forget it afterwards."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_validate_warns_with_file_and_line_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(SCHEDULED, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}:8:5: warning: schedules[0].overlap: overlap: buffer_all starts every fire" in result.output
    assert "1 file(s) valid" in result.output
    as_json = CliRunner().invoke(cli, ["validate", "--format", "json", str(path)])
    assert as_json.exit_code == 0
    assert '"valid": true' in as_json.output and '"line": 8' in as_json.output and "pile up" in as_json.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(SCHEDULED.replace("0 9 * * 1-5", "every day"), encoding="utf-8")
    failed = CliRunner().invoke(cli, ["validate", str(broken)])
    assert failed.exit_code == 1 and "invalid cron expression" in failed.output
    assert "pile up" not in failed.output  # only valid files get warnings


@pytest_asyncio.fixture
async def http(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Yield a client of the API (local mode) with an empty workflows directory."""
    app = create_app(settings, temporal_client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http


async def test_registering_and_validating_answer_with_the_warning(http: httpx.AsyncClient) -> None:
    body = {"yaml": SCHEDULED, "file": "nightly.yaml"}
    checked = await http.post("/workflows/validate", json=body)
    assert checked.status_code == 200, checked.text
    assert checked.json()["warnings"] == [{**WARNING, "file": "nightly.yaml"}]
    created = await http.post("/workflows", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["warnings"] == [{**WARNING, "file": "nightly.yaml"}]
    again = await http.post("/workflows", content=SCHEDULED, headers={"content-type": "application/yaml"})
    assert again.status_code == 200  # known content: still warned
    assert again.json()["warnings"] == [{**WARNING, "file": "<request>"}]
    plain = SCHEDULED.replace("name: nightly", "name: plain").replace("overlap: buffer_all", "overlap: skip")
    answer = await http.post("/workflows", content=plain, headers={"content-type": "application/yaml"})
    assert answer.status_code == 201 and answer.json()["warnings"] == []


async def test_directory_scans_log_the_warning(
    settings: Settings, workflows_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workflows_dir / "nightly.yaml").write_text(SCHEDULED, encoding="utf-8")
    engine = create_engine(settings.database_url)
    try:
        with caplog.at_level(logging.WARNING, logger="workflow_engine.api.registration"):
            report = await register_directory(sessions=session_factory(engine), directory=workflows_dir)
    finally:
        await engine.dispose()
    assert [r.workflow_id for r in report.registered] == ["nightly"]
    logged = [r for r in caplog.records if r.levelno == logging.WARNING and "pile up" in r.getMessage()]
    assert len(logged) == 1, caplog.text
    assert logged[0].getMessage().startswith(f"{workflows_dir / 'nightly.yaml'}: schedules[0].overlap: overlap: buffer")
    assert "(nightly.yaml:8:5)" in logged[0].getMessage()
