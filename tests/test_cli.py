"""The command line refuses bad settings and worker configuration with one clear line, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from workflow_engine.cli import app
from workflow_engine.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Read settings from this test's environment, and forget them afterwards."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_invalid_setting_is_named_and_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_ACTIVITY_CONCURRENCY", "shell=many")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "setting WORKER_ACTIVITY_CONCURRENCY" in result.output and "is not `kind=N`" in result.output
    assert "Traceback" not in result.output


def test_a_limit_for_an_unknown_kind_stops_the_worker_with_a_message(
    monkeypatch: pytest.MonkeyPatch, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_env.client.service_client.config.target_host)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("WORKER_ACTIVITY_CONCURRENCY", "sheel=1")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "worker: WORKER_ACTIVITY_CONCURRENCY names 'sheel'" in result.output
    assert "Traceback" not in result.output
