"""Registry endpoints: register, validate, revisions, graph, delete, reload and the directory watcher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.polling import eventually

from .conftest import TOKENS

FLOW = "name: api-flow\ntasks:\n  - id: a\n    activity_type: log\n    config: {message: one}\n"
FLOW_V2 = FLOW.replace("one", "two") + "  - id: b\n    type: approval\n    when: '${{ true }}'\n"
YAML = {"content-type": "application/yaml"}


async def test_register_is_201_then_200_when_unchanged_then_a_new_revision(api: httpx.AsyncClient) -> None:
    first = await api.post("/workflows", content=FLOW, headers=YAML)
    assert first.status_code == 201, first.text
    assert first.json() == {"workflow_id": "api-flow", "revision": 1, "created": True, "warnings": []}
    again = await api.post("/workflows", json={"yaml": "# a comment changes nothing\n" + FLOW})
    assert again.status_code == 200
    assert again.json() == {"workflow_id": "api-flow", "revision": 1, "created": False, "warnings": []}
    second = await api.post("/workflows", content=FLOW_V2, headers=YAML)
    assert second.status_code == 201 and second.json()["revision"] == 2
    revisions = (await api.get("/workflows/api-flow/revisions")).json()
    assert [(r["revision"], r["current"]) for r in revisions] == [(2, True), (1, False)]
    assert len({r["content_hash"] for r in revisions}) == 2


async def test_invalid_definitions_are_422_with_every_problem_and_register_nothing(api: httpx.AsyncClient) -> None:
    bad = "name: api-bad\ntasks:\n  - id: a\n    activity_type: nope\n    depends_on: [ghost]\n    colour: red\n"
    response = await api.post("/workflows", json={"yaml": bad, "file": "bad.yaml"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    found = {(e["path"], e["line"]) for e in body["errors"]}
    assert found == {("tasks[0].activity_type", 4), ("tasks[0].depends_on[0]", 5), ("tasks[0].colour", 6)}
    assert all(e["file"] == "bad.yaml" for e in body["errors"])
    assert (await api.get("/workflows/api-bad")).status_code == 404
    for payload, headers in ((b"\xff\xfe", YAML), (b'{"yml": 1}', {"content-type": "application/json"})):
        assert (await api.post("/workflows", content=payload, headers=headers)).status_code == 422


async def test_validate_is_a_dry_run(api: httpx.AsyncClient) -> None:
    ok = await api.post("/workflows/validate", content=FLOW_V2, headers=YAML)
    assert ok.status_code == 200
    assert ok.json()["valid"] is True
    assert [(t["id"], t["depends_on"]) for t in ok.json()["tasks"]] == [("a", []), ("b", ["a"])]
    assert (await api.get("/workflows/api-flow")).status_code == 404
    broken = await api.post("/workflows/validate", content="name: x\ntasks: [\n", headers=YAML)
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["line"] == 2


async def test_graph_is_mermaid(api: httpx.AsyncClient) -> None:
    response = await api.get("/workflows/order_processing_workflow/graph")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert text.startswith("flowchart TD\n")
    assert "    validate_order --> reserve_stock" in text and "    reserve_stock --> charge_payment" in text
    assert "    fraud_check --> manager_approval" in text and "    manager_approval --> charge_payment" in text
    assert 'manager_approval{{"Manager approves a large order (approval)"}}' in text
    assert 'prepare_notification["Prepare the customer notification (set)"]' in text
    assert (await api.get("/workflows/order_processing_workflow/graph", params={"revision": 9})).status_code == 404


async def test_delete_is_refused_while_runs_are_active_unless_forced(api: httpx.AsyncClient) -> None:
    started = await api.post("/executions/workflows/human_approval_workflow/execute",
                             json={"parameters": {"employee": "ada", "amount": 5000}})  # fmt: skip
    assert started.status_code == 202
    refused = await eventually(  # visibility catches up
        lambda: api.delete("/workflows/human_approval_workflow"), until=lambda r: r.status_code == 409, within=10,
        what="the delete being refused while a run is active",
    )  # fmt: skip
    assert "running execution" in refused.json()["detail"]
    assert (await api.delete("/workflows/human_approval_workflow", params={"force": True})).status_code == 204
    assert (await api.get("/workflows/human_approval_workflow")).status_code == 404
    assert (await api.delete("/workflows/human_approval_workflow")).status_code == 404


async def test_reload_and_the_watcher_pick_up_new_files(api: httpx.AsyncClient, workflows_dir: Path) -> None:
    (workflows_dir / "dropped.yaml").write_text(FLOW.replace("api-flow", "dropped"))
    await eventually(  # the watcher polls every 2 s by default
        lambda: api.get("/workflows/dropped"), until=lambda r: r.status_code == 200, within=10,
        what="the watcher registering dropped.yaml",
    )  # fmt: skip
    (workflows_dir / "later.yaml").write_text(FLOW.replace("api-flow", "later"))
    (workflows_dir / "broken-file.yaml").write_text("name: [\n")
    report = await api.post("/workflows/reload")
    assert report.status_code == 200
    body = report.json()
    assert {"workflow_id": "later", "revision": 1, "created": True, "warnings": []} in body["registered"]
    assert any(path.endswith("broken-file.yaml") for path in body["invalid"])


async def test_registry_writes_need_the_admin_role(authed_api: httpx.AsyncClient) -> None:
    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[user]}", **YAML}

    assert (await authed_api.post("/workflows", content=FLOW, headers=YAML)).status_code == 401
    assert (await authed_api.post("/workflows", content=FLOW, headers=auth("operator"))).status_code == 403
    assert (await authed_api.post("/workflows/validate", content=FLOW, headers=auth("viewer"))).status_code == 200
    assert (await authed_api.post("/workflows", content=FLOW, headers=auth("root"))).status_code == 201
    assert (await authed_api.delete("/workflows/api-flow", headers=auth("alice"))).status_code == 403


async def test_listing_pages_beyond_the_database_integer_range_are_refused(api: httpx.AsyncClient) -> None:
    # found by schemathesis: an offset over 64 bits reached SQLite and became a 500
    response = await api.get("/workflows", params={"limit": 1, "offset": 2**63})
    assert response.status_code == 422
    assert "offset" in response.text
    assert (await api.get("/workflows", params={"offset": 2**31 - 1})).json()["items"] == []


async def test_revisions_beyond_the_database_integer_range_are_refused(api: httpx.AsyncClient) -> None:
    graph = await api.get("/workflows/hello/graph", params={"revision": 2**63})
    run = await api.post("/executions/workflows/hello/execute", json={"revision": 2**63})
    assert (graph.status_code, run.status_code) == (422, 422)
    assert "revision" in graph.text and "revision" in run.text


async def _revisions(api: httpx.AsyncClient, workflow_id: str) -> list[tuple[int, bool]]:
    return [(r["revision"], r["current"]) for r in (await api.get(f"/workflows/{workflow_id}/revisions")).json()]


async def test_a_rescan_never_reverts_an_api_registration_but_a_file_edit_is_a_new_change(
    api: httpx.AsyncClient, workflows_dir: Path
) -> None:
    file = workflows_dir / "hello.yaml"
    original = file.read_text()
    assert await _revisions(api, "hello") == [(1, True)]
    through_api = await api.post("/workflows", content=original.replace("Say hello", "Say hi"), headers=YAML)
    assert (through_api.status_code, through_api.json()["revision"]) == (201, 2)
    reload = await api.post("/workflows/reload")
    assert {"workflow_id": "hello", "revision": 1, "created": False, "warnings": []} in reload.json()["registered"]
    file.write_text(original)  # same content, new mtime: the watcher (every 2 s) rescans
    await asyncio.sleep(2.5)
    assert await _revisions(api, "hello") == [(2, True), (1, False)]
    file.write_text(original.replace("Say hello", "Say hey"))
    await eventually(lambda: _revisions(api, "hello"), until=lambda r: len(r) == 3, within=5, what="a third revision")
    assert await _revisions(api, "hello") == [(3, True), (2, False), (1, False)]


async def test_concurrent_registrations_reloads_and_deletes_never_answer_5xx(api: httpx.AsyncClient) -> None:
    contents = [FLOW.replace("one", f"one {index}") for index in range(10)]
    calls = [api.post("/workflows", content=text, headers=YAML) for text in contents]
    calls += [api.post("/workflows/reload") for _ in range(5)] + [api.delete("/workflows/api-flow") for _ in range(5)]
    responses = await asyncio.gather(*calls)
    statuses = [response.status_code for response in responses]
    assert set(statuses[:10]) <= {200, 201} and set(statuses[10:15]) == {200}, statuses
    assert set(statuses[15:]) <= {204, 404}, statuses
    listed = await api.get("/workflows/api-flow/revisions")  # 404 when a delete came last
    if listed.status_code == 200:
        assert len({r["content_hash"] for r in listed.json()}) == len(listed.json())
        assert sorted(r["revision"] for r in listed.json()) == list(range(1, len(listed.json()) + 1))
    else:
        assert listed.status_code == 404
    again = await api.post("/workflows", content=contents[0], headers=YAML)
    assert again.status_code in (200, 201)
    assert (again.json()["revision"], True) in await _revisions(api, "api-flow")
