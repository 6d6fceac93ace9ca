"""`GET /executions/{id}/logs`: a run's task logs as pages and, with `follow=true`, as Server-Sent Events."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.polling import eventually
from workflow_engine.settings import Settings

SECRET = "p4ss-w0rd-for-logs-77"

MODULE = """
import logging


def talk(token: str) -> str:
    print("hello")
    print("token:", token)
    logging.getLogger("talker").warning("first record")
    print("bye")
    logging.getLogger("talker").error("second record")
    return "ok"
"""

TALKING = """
name: talking-api
tasks:
  - id: talk
    activity_type: python
    config: {function: "logs_talker:talk", kwargs: {token: "${{ secrets.TOKEN }}"}}
"""

STREAMING = """
name: streaming-shell
tasks:
  - id: sh
    activity_type: shell
    config: {command: ["sh", "-c", "echo first; sleep 3; echo second"]}
"""


@pytest_asyncio.fixture
async def settings(settings: Settings) -> Settings:
    """Return the shared settings with `shell` tasks allowed."""
    return settings.model_copy(update={"shell_enabled": True})


async def _run(http: httpx.AsyncClient, yaml: str, *, wait: bool) -> str:
    registered = await http.post("/workflows", content=yaml, headers={"content-type": "application/yaml"})
    assert registered.status_code in (200, 201), registered.text
    name = registered.json()["workflow_id"]
    started = await http.post(f"/executions/workflows/{name}/execute", params={"wait": wait})
    assert started.status_code in (200, 202), started.text
    execution_id: str = started.json()["execution_id"]
    return execution_id


async def test_a_python_tasks_prints_and_records_are_served_masked(
    api: httpx.AsyncClient, workflows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFE_SECRET_TOKEN", SECRET)
    (workflows_dir / "logs_talker.py").write_text(MODULE)
    execution_id = await _run(api, TALKING, wait=True)

    async def page() -> dict[str, Any]:
        answer = await api.get(f"/executions/{execution_id}/logs", params={"task_id": "talk"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    body = await eventually(page, within=20, what="five log lines", until=lambda body: len(body["items"]) >= 5)
    assert [(item["stream"], item["line"]) for item in body["items"]] == [
        ("stdout", "hello"),
        ("stdout", "token: ***"),
        ("log", "WARNING talker: first record"),
        ("stdout", "bye"),
        ("log", "ERROR talker: second record"),
    ]
    assert {(item["task_id"], item["attempt"]) for item in body["items"]} == {("talk", 1)}
    first, second = body["items"][:2]
    after = await api.get(f"/executions/{execution_id}/logs", params={"after": first["id"], "limit": 1})
    assert [item["id"] for item in after.json()["items"]] == [second["id"]]
    assert after.json()["next_after"] == second["id"]
    none = await api.get(f"/executions/{execution_id}/logs", params={"task_id": "talk", "attempt": 2})
    assert none.json()["items"] == []


async def test_an_unknown_run_is_a_404_problem(api: httpx.AsyncClient) -> None:
    for params in ({}, {"follow": "true"}):
        answer = await api.get(f"/executions/nobody-{uuid.uuid4().hex}/logs", params=params)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_cursors_past_the_database_integers_are_a_422_not_a_500(api: httpx.AsyncClient) -> None:
    for params in ({"after": str(2**63)}, {"attempt": str(2**31)}, {"after": "99999999999999999999999"}):
        answer = await api.get(f"/executions/nobody-{uuid.uuid4().hex}/logs", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/executions/x/logs", params={"after": str(2**63 - 1)})).status_code in (200, 404)


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse complete SSE events (`event:` and `data:` fields) of a stream's text."""
    events = []
    for block in text.split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


async def test_follow_streams_a_running_shell_tasks_lines_before_it_ends(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        execution_id = await _run(http, STREAMING, wait=False)
        text, seen_running = "", False
        async with http.stream("GET", f"/executions/{execution_id}/logs", params={"follow": "true"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for chunk in stream.aiter_text():
                text += chunk
                lines = [data["line"] for event, data in _events(text) if event == "log"]
                if lines == ["first"] and not seen_running:
                    status = (await http.get(f"/executions/{execution_id}")).json()["status"]
                    seen_running = status == "running"
                    assert seen_running, status  # the line came while the command still slept
    events = _events(text)
    assert [(data["stream"], data["line"]) for event, data in events if event == "log"] == [
        ("stdout", "first"),
        ("stdout", "second"),
    ]
    assert events[-1] == ("end", {"status": "completed"})
    assert seen_running
