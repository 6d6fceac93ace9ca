"""A 1,000-task definition registers and validates off the event loop; bigger ones are refused clearly."""

from __future__ import annotations

import asyncio

import httpx

from bench.registration import big_definition

YAML = {"content-type": "application/yaml"}


async def test_health_answers_while_a_big_registration_is_in_flight(api: httpx.AsyncClient) -> None:
    for route, name in (("/workflows", "big-register"), ("/workflows/validate", "big-validate")):
        text = big_definition(1000, name=name)
        work = asyncio.create_task(api.post(route, content=text, headers=YAML))
        for _ in range(20):  # let the request reach the route, whose parsing then runs in another process
            await asyncio.sleep(0)
        health = await api.get("/health")
        assert health.status_code == 200, health.text
        assert not work.done(), f"{route} answered before /health: it held the event loop"
        answer = await work
        assert answer.status_code in (200, 201), answer.text
        assert answer.json()["workflow_id"] == name
    tasks = (await api.get("/workflows/big-register")).json()["tasks"]
    assert len(tasks) == 1000 and tasks[600]["depends_on"] == ["c200", "w50"]


async def test_more_than_1000_tasks_are_a_422_naming_the_cap(api: httpx.AsyncClient) -> None:
    text = big_definition(1001, name="too-big")
    for route in ("/workflows", "/workflows/validate"):
        answer = await api.post(route, content=text, headers=YAML)
        assert answer.status_code == 422, answer.text
        errors = answer.json()["errors"]
        assert [(e["path"], e["line"]) for e in errors] == [("tasks", 11)]
        assert "at most 1000" in errors[0]["message"]
    assert (await api.get("/workflows/too-big")).status_code == 404


async def test_errors_found_in_the_checking_process_keep_their_file_and_line(api: httpx.AsyncClient) -> None:
    # 60 tasks are over INLINE_CHECK_BYTES: checked in the other process
    text = big_definition(60, name="broken-big").replace("depends_on: [c0]", "depends_on: [ghost]")
    answer = await api.post("/workflows", json={"yaml": text, "file": "broken.yaml"})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    line = text.splitlines().index("    depends_on: [ghost]") + 1
    assert [(e["path"], e["file"], e["line"], e["message"]) for e in errors] == [
        ("tasks[30].depends_on[0]", "broken.yaml", line, "unknown task 'ghost'")
    ]
