"""Task logs captured in the worker: prints, logging, errors, http summaries, masking, the cap, outages, pruning."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.polling import eventually
from workflow_engine.engine.activities import tasklogs
from workflow_engine.settings import Settings
from workflow_engine.storage import TaskLogLine, create_engine, repository, session_factory
from workflow_engine.storage.models import utcnow

from .conftest import Runner

SECRET = "hunter2-very-secret-0042"

MODULE = """
import logging
import time

logger = logging.getLogger("talker")


def talk(token: str) -> str:
    print("line one")
    print("the token is", token)
    logger.warning("warned about %s", "something")
    time.sleep(0.3)  # the other task prints meanwhile, on another thread
    print("line three")
    logger.error("an error record")
    return "done"


def chatter() -> None:
    for number in range(5):
        print(f"chatter {number}")
        time.sleep(0.1)


def shout() -> None:
    print("x" * (10 * 1024 * 1024))


def boom(key: str) -> None:
    raise ValueError(f"boom with {key}")
"""


async def _lines(settings: Settings, execution_id: str) -> list[TaskLogLine]:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return await repository.list_task_log_lines(session=session, execution_id=execution_id, limit=10000)
    finally:
        await engine.dispose()


async def _lines_of(settings: Settings, execution_id: str, task_id: str, at_least: int) -> list[TaskLogLine]:
    """Wait for the writer's batches: return the task's lines once there are `at_least`."""
    rows = await eventually(
        lambda: _lines(settings, execution_id),
        within=20,
        what=f"{at_least} log lines of {task_id}",
        until=lambda rows: len([row for row in rows if row.task_id == task_id]) >= at_least,
    )
    return [row for row in rows if row.task_id == task_id]


@pytest.fixture
def module(workflows_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the task functions and set the secret `TOKEN`."""
    monkeypatch.setenv("WFE_SECRET_TOKEN", SECRET)
    (workflows_dir / "talkers.py").write_text(MODULE)


@pytest.mark.usefixtures("module")
async def test_prints_and_records_land_under_their_task_masked_and_never_mixed(
    run_yaml: Runner, settings: Settings
) -> None:
    outcome = await run_yaml(
        """
name: talking
tasks:
  - id: talk
    activity_type: python
    config: {function: "talkers:talk", kwargs: {token: "${{ secrets.TOKEN }}"}}
  - id: chatter
    activity_type: python
    config: {function: "talkers:chatter"}
  - id: note
    activity_type: log
    config: {message: "noted ${{ secrets.TOKEN }}"}
"""
    )
    assert outcome.failure is None, outcome.state
    run = outcome.handle.id
    talk = await _lines_of(settings, run, "talk", 5)
    assert [(row.stream, row.line) for row in talk] == [
        ("stdout", "line one"),
        ("stdout", "the token is ***"),
        ("log", "WARNING talker: warned about something"),
        ("stdout", "line three"),
        ("log", "ERROR talker: an error record"),
    ]
    assert {row.attempt for row in talk} == {1}
    chatter = await _lines_of(settings, run, "chatter", 5)
    assert [row.line for row in chatter] == [f"chatter {n}" for n in range(5)]
    note = await _lines_of(settings, run, "note", 1)
    assert [(row.stream, row.line) for row in note] == [("log", "INFO noted ***")]
    assert SECRET not in str([row.line for row in await _lines(settings, run)])


@pytest.mark.usefixtures("module")
async def test_a_10_mb_print_is_capped_with_a_marker(run_yaml: Runner, settings: Settings) -> None:
    outcome = await run_yaml(
        "name: shouting\ntasks:\n  - id: shout\n    activity_type: python\n    config: {function: 'talkers:shout'}\n"
    )
    assert outcome.failure is None, outcome.state
    rows = await _lines_of(settings, outcome.handle.id, "shout", 2)
    assert sum(len(row.line.encode()) for row in rows if row.stream == "stdout") == settings.task_log_max_bytes
    assert rows[-1].stream == "marker"
    assert "log truncated" in rows[-1].line


@pytest.mark.usefixtures("module")
async def test_each_failed_attempt_logs_its_error_with_the_traceback(run_yaml: Runner, settings: Settings) -> None:
    outcome = await run_yaml(
        """
name: failing
tasks:
  - id: boom
    activity_type: python
    config: {function: "talkers:boom", kwargs: {key: "${{ secrets.TOKEN }}"}}
    retry_policy: {max_attempts: 2, initial_interval: 100ms}
"""
    )
    assert outcome.failure is not None
    rows = await _lines_of(settings, outcome.handle.id, "boom", 2)
    assert [(row.attempt, row.stream) for row in rows] == [(1, "error"), (2, "error")]
    for row in rows:
        assert "Traceback (most recent call last)" in row.line
        assert 'in boom\n    raise ValueError(f"boom with {key}")' in row.line
        assert "ValueError: boom with ***" in row.line
        assert SECRET not in row.line


@pytest.mark.usefixtures("module")
async def test_a_dead_database_drops_lines_counted_and_the_run_still_completes(run_yaml: Runner) -> None:
    before = tasklogs.dropped_lines()
    outcome = await run_yaml(
        """
name: no-database
tasks:
  - id: chatter
    activity_type: python
    config: {function: "talkers:chatter"}
""",
        settings_update={"database_url": "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/gone"},
    )
    assert outcome.failure is None, outcome.state
    assert outcome.task("chatter")["status"] == "completed"
    # the worker's last flush (when it stops, at the latest) fails: its five lines are counted
    await eventually(
        tasklogs.dropped_lines, within=20, what="dropped lines counted", until=lambda dropped: dropped >= before + 5
    )


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def ok_port() -> Iterator[int]:
    """Serve 204 No Content on 127.0.0.1 and yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_http_request_logs_one_summary_line_without_credentials(
    run_yaml: Runner, settings: Settings, ok_port: int
) -> None:
    outcome = await run_yaml(
        f"""
name: calling
tasks:
  - id: call
    activity_type: http_request
    config: {{method: GET, url: "http://user:pw-in-url@127.0.0.1:{ok_port}/ping?api_key=k3y"}}
"""
    )
    assert outcome.failure is None, outcome.state
    rows = await _lines_of(settings, outcome.handle.id, "call", 1)
    assert [row.stream for row in rows] == ["http"]
    assert re.fullmatch(rf"GET http://127\.0\.0\.1:{ok_port}/ping -> 204 in \d+ ms", rows[0].line), rows[0].line


async def test_prune_deletes_only_lines_older_than_the_age(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        rows = [
            {"execution_id": "old-run", "task_id": "a", "attempt": 1, "stream": "stdout", "line": f"old {n}",
             "logged_at": utcnow() - timedelta(days=3)} for n in range(3)
        ] + [{"execution_id": "new-run", "task_id": "a", "attempt": 1, "stream": "stdout", "line": "new",
              "logged_at": utcnow()}]  # fmt: skip
        async with sessions() as session:
            await repository.add_task_log_lines(session=session, rows=rows)
            await session.commit()
        assert await tasklogs.prune_task_logs(sessions, older_than=timedelta(days=1), dry_run=True) == 3
        assert await tasklogs.prune_task_logs(sessions, older_than=timedelta(days=1)) == 3
        async with sessions() as session:
            left = await repository.list_task_log_lines(session=session, execution_id="old-run")
            kept = await repository.list_task_log_lines(session=session, execution_id="new-run")
        assert (left, [row.line for row in kept]) == ([], ["new"])
    finally:
        await engine.dispose()
