"""The console in local mode (no API_TOKENS): decide from the inbox, the run page, the run form and CSRF."""

from __future__ import annotations

import re

import httpx
from temporalio.client import Client

from tests.polling import eventually

from .pages import csrf, flash, in_inbox, post_form, start, stop, until

EXPENSE = {"employee": "ada", "amount": 1200, "description": "laptop"}


async def test_approving_from_the_inbox_completes_the_run_and_is_audited_like_the_api(
    api: httpx.AsyncClient, client: Client
) -> None:
    execution_id = await start(api, "human_approval_workflow", EXPENSE)
    try:
        inbox = await in_inbox(api, execution_id, "manager_approval")
        item = inbox.text.split(f'data-testid="approval-{execution_id}-manager_approval"', 1)[1].split("</article>")[0]
        assert "Approve 1200.0 for ada: laptop?" in item
        assert "0 of 1 approval" in item
        assert re.search(r"(\d+d \d+h|\d+h \d+m) left, then it is rejected", item), item
        assert '<textarea name="comment"' in item and 'data-testid="approve"' in item and 'data-testid="reject"' in item
        assert "laptop" in item and "employee" in item  # the run's parameters

        decided = await api.post(f"/ui/approvals/{execution_id}/manager_approval",
                                 data={"decision": "approve", "comment": "fine by me", "csrf_token": csrf(inbox),
                                       "next": "/ui"})  # fmt: skip
        assert decided.status_code == 303, decided.text
        assert decided.headers["location"] == "/ui"
        landed = await api.get("/ui")
        assert flash(landed) == f"approved manager_approval of {execution_id}"

        body = await until(api, execution_id, ("completed", "failed"))
        assert body["status"] == "completed"
        assert body["output"]["booking"]["approved_by"] == ["local"]
        assert [(a["approver"], a["decision"], a["comment"], a["via"]) for a in body["audit"]] == [
            ("local", "approve", "fine by me", "api")
        ]
        task = next(t for t in body["tasks"] if t["id"] == "manager_approval")
        assert [(a["approver"], a["comment"]) for a in task["approvals"]] == [("local", "fine by me")]

        # the task no longer waits: the console shows the API's 409 as a message, not a 500
        again = await api.post(
            f"/ui/approvals/{execution_id}/manager_approval", data={"decision": "reject", "csrf_token": csrf(inbox)}
        )  # the inbox's form, resent
        assert again.status_code == 409, again.text
        assert "approvals are only taken while it runs" in flash(again)
        assert 'data-testid="approval-closed"' in again.text
    finally:
        await stop(client, execution_id)


async def test_run_page_shows_status_dag_tasks_and_the_temporal_link(api: httpx.AsyncClient) -> None:
    execution_id = await start(api, "human_approval_workflow", {"employee": "ada", "amount": 10})
    await until(api, execution_id, ("completed", "failed"))
    page = await api.get(f"/ui/runs/{execution_id}")
    assert page.status_code == 200, page.text
    assert re.search(r'data-testid="run-status"[^>]*>completed<', page.text)
    for task_id, status in (("check", "completed"), ("manager_approval", "skipped"), ("book", "completed")):
        assert f'data-testid="task-{task_id}" data-status="{status}"' in page.text
        assert f'data-task="{task_id}" data-status="{status}"' in page.text  # the SVG node, coloured by status
    dag = page.text.split('data-testid="dag"', 1)[1].split("</figure>", 1)[0]
    assert "<svg" in dag and dag.count("marker-end=") == 2  # check -> manager_approval -> book
    link = re.search(r'<a data-testid="temporal-link" href="([^"]+)"', page.text)
    assert link and link.group(1) == f"http://localhost:8080/namespaces/default/workflows/{execution_id}"
    assert 'http-equiv="refresh"' not in page.text  # a closed run's page does not reload itself
    assert "X-Frame-Options" in page.headers and page.headers["x-frame-options"] == "DENY"

    row = f'data-testid="run-{execution_id}"'
    listed = await eventually(lambda: api.get("/ui/runs", params={"workflow": "human_approval_workflow",
                                                                  "status": "completed"}),
                              until=lambda page: row in page.text, within=10, what="the run in the list")  # fmt: skip
    assert "completed" in listed.text.split(row, 1)[1].split("</tr>", 1)[0]
    other = await api.get("/ui/runs", params={"workflow": "human_approval_workflow", "status": "failed"})
    assert other.status_code == 200 and row not in other.text
    assert (await api.get("/ui/runs", params={"status": "bogus"})).status_code == 422
    missing = await api.get("/ui/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in flash(missing)


async def test_run_form_shows_errors_beside_each_field_and_a_valid_run_opens_its_page(api: httpx.AsyncClient) -> None:
    url = "/ui/workflows/human_approval_workflow"
    page = await api.get(url)
    assert page.status_code == 200
    for name in ("employee", "amount", "threshold", "description"):
        assert f'name="param.{name}"' in page.text
    assert 'value="500"' in page.text  # the default of threshold
    assert "name: human_approval_workflow" in page.text and 'data-testid="revisions"' in page.text

    refused = await post_form(api, url, f"{url}/run",
                              {"param.employee": "", "param.amount": "-5", "param.threshold": "lots"})  # fmt: skip
    assert refused.status_code == 422, refused.text
    errors = dict(re.findall(r'data-testid="error-(\w+)">([^<]*)<', refused.text))
    assert errors == {
        "employee": "required parameter is missing",
        "amount": "-5.0 is less than the minimum 0",
        "threshold": "could not convert string to float: &#39;lots&#39;",
    }
    assert 'value="lots"' in refused.text  # what was typed stays in the form

    started = await post_form(api, url, f"{url}/run", {"param.employee": "ada", "param.amount": "12.5"})
    assert started.status_code == 303, started.text
    run_url = started.headers["location"]
    assert run_url.startswith("/ui/runs/human_approval_workflow-")
    body = await until(api, run_url.rsplit("/", 1)[1], ("completed", "failed"))
    assert body["status"] == "completed" and body["parameters"]["amount"] == 12.5 and body["started_by"] == "local"


async def test_every_post_needs_the_csrf_token_and_the_same_origin(api: httpx.AsyncClient) -> None:
    url = "/ui/workflows/hello/run"
    no_token = await api.post(url, data={})
    assert no_token.status_code == 403 and "security token" in flash(no_token)
    page = await api.get("/ui/workflows/hello")
    token = csrf(page)
    assert (await api.post(url, data={"csrf_token": "0" * 64})).status_code == 403
    foreign = await api.post(url, data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "another site" in flash(foreign)
    # another browser (no session cookie) cannot use this session's token
    async with httpx.AsyncClient(transport=api._transport, base_url="http://api") as stranger:
        assert (await stranger.post(url, data={"csrf_token": token})).status_code == 403
    same = await api.post(url, data={"csrf_token": token}, headers={"Origin": "http://api"})
    assert same.status_code == 303, same.text


async def test_local_mode_serves_only_this_machine(api: httpx.AsyncClient) -> None:
    remote = httpx.ASGITransport(app=api._transport.app, client=("192.0.2.7", 40000))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=remote, base_url="http://api") as outsider:
        page = await outsider.get("/ui")
        assert page.status_code == 403 and "serves only this machine" in flash(page)
    invalid = await api.get("/ui/runs", params={"page_token": "x" * 5000})
    assert invalid.status_code == 422 and invalid.headers["content-type"].startswith("text/html")  # a page, not JSON
