"""The approvers' console in a real browser: log in, approve from the inbox, watch the run finish, roles and CSRF."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from playwright.async_api import Locator, Page, Route, expect

from tests.api.conftest import TOKENS
from tests.polling import eventually
from tests.reliability.stack import free_port

from .conftest import WAIT_MS, Console, screenshot

ORDER = {
    "order_id": "ORD-1042",
    "customer_id": "CUST-789",
    "order_amount": 2500.0,
    "items": [{"product_id": "PROD-1", "quantity": 2}, {"product_id": "PROD-7", "quantity": 1}],
    "payment_method": {"type": "credit_card", "last4": "1234"},
    "customer_email": "customer@example.com",
    "customer_phone": "+1234567890",
}
EXPENSE = {"employee": "ada", "amount": 1200, "description": "new laptop"}
APPROVAL = "manager_approval"


async def _log_in(page: Page, console: Console, user: str) -> None:
    """Open the console logged out (it sends us to the login page) and log in with the user's token."""
    await page.goto(f"{console.url}/ui")
    await expect(page).to_have_url(re.compile(r"/ui/login"))
    await page.locator('input[name="token"]').fill(TOKENS[user])
    await page.get_by_test_id("login").click()
    await expect(page.get_by_test_id("nav-inbox")).to_be_visible()
    await expect(page).not_to_have_url(re.compile(r"/ui/login"))


async def _open_until_shown(page: Page, url: str, locator: Locator) -> None:
    """Open `url` again until `locator` is on it (the inbox reads Temporal's eventually consistent visibility)."""

    async def shown() -> bool:
        await page.goto(url)
        return await locator.count() > 0

    await eventually(shown, within=20, interval=0.5, what=f"{locator} on {url}")


def _approval(page: Page, execution_id: str) -> Locator:
    return page.get_by_test_id(f"approval-{execution_id}-{APPROVAL}")


def _task(run: dict[str, Any], task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = next(t for t in run["tasks"] if t["id"] == task_id)
    return task


async def test_an_approver_logs_in_approves_with_a_comment_and_watches_the_run_complete(
    page: Page, console: Console
) -> None:
    order = await console.start("order_processing_workflow", ORDER, user="operator")
    expense = await console.start("human_approval_workflow", EXPENSE, user="operator")
    for execution_id in (order, expense):
        await console.until_waiting(execution_id, user="root")

    await _log_in(page, console, "alice")
    await _open_until_shown(page, f"{console.url}/ui", _approval(page, expense))
    card = _approval(page, order)
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("ORD-1042")  # the approval's message
    await screenshot(page, "console-inbox")

    # A second tab shows the run waiting; it refreshes itself while the run is open.
    run_page = await page.context.new_page()
    await run_page.goto(f"{console.url}/ui/runs/{order}")
    status, task = run_page.get_by_test_id("run-status"), run_page.get_by_test_id(f"task-{APPROVAL}")
    await expect(status).to_have_text("waiting_approval")
    await expect(task).to_have_attribute("data-status", "waiting_approval")

    comment = "Fraud risk is low, ship it"
    await card.locator('textarea[name="comment"]').fill(comment)
    await card.get_by_test_id("approve").click()
    await expect(page.get_by_test_id("flash")).to_be_visible()
    await expect(_approval(page, order)).to_have_count(0)  # decided: gone from alice's inbox
    await expect(_approval(page, expense)).to_be_visible()

    await expect(status).to_have_text("completed", timeout=WAIT_MS)  # no reload of ours: the page's own
    await expect(task).to_have_attribute("data-status", "completed")
    await expect(task).to_contain_text(comment)
    await expect(run_page.get_by_test_id("task-notify_customer")).to_have_attribute("data-status", "completed")
    await expect(run_page.get_by_test_id("dag")).to_be_visible()
    await expect(run_page.get_by_test_id("temporal-link")).to_have_attribute("href", re.compile(re.escape(order)))
    await screenshot(run_page, "console-run")

    # The browser's decision went through the API's path: authenticated as alice, with her comment.
    run = await console.run(order, user="root")
    assert run["status"] == "completed"
    approvals = _task(run, APPROVAL)["output"]["approvals"]
    assert [(a["approver"], a["comment"]) for a in approvals] == [("alice", comment)]
    assert run["output"]["approved_by"] == ["alice"]


async def test_a_viewer_sees_the_approval_but_no_buttons(page: Page, console: Console) -> None:
    expense = await console.start("human_approval_workflow", EXPENSE, user="operator")
    await console.until_waiting(expense, user="root")

    await _log_in(page, console, "viewer")
    await _open_until_shown(page, f"{console.url}/ui", _approval(page, expense))
    await expect(_approval(page, expense)).to_contain_text("new laptop")
    await expect(page.get_by_test_id("approve")).to_have_count(0)
    await expect(page.get_by_test_id("reject")).to_have_count(0)

    await page.goto(f"{console.url}/ui/approvals/{expense}/{APPROVAL}")
    card = _approval(page, expense)
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("new laptop")
    await expect(page.get_by_test_id("approve")).to_have_count(0)
    await expect(page.get_by_test_id("reject")).to_have_count(0)

    await page.goto(f"{console.url}/ui/workflows/human_approval_workflow")
    await expect(page.locator('input[name="param.amount"]')).to_have_count(0)  # no run form for a viewer
    await expect(page.get_by_test_id("run")).to_have_count(0)


async def test_an_operator_runs_a_workflow_from_its_page_and_sees_errors_beside_the_fields(
    page: Page, console: Console
) -> None:
    await _log_in(page, console, "operator")
    await page.get_by_test_id("nav-workflows").click()
    await page.get_by_role("link", name="human_approval_workflow", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/ui/workflows/human_approval_workflow$"))

    await page.locator('input[name="param.employee"]').fill("ada")
    await page.locator('input[name="param.amount"]').fill("-5")
    await page.get_by_test_id("run").click()
    await expect(page.get_by_test_id("error-amount")).to_be_visible()
    await expect(page.get_by_test_id("error-employee")).to_have_count(0)
    await expect(page.locator('input[name="param.employee"]')).to_have_value("ada")  # what was typed stays

    await page.locator('input[name="param.amount"]').fill("1200")
    await page.locator('input[name="param.description"]').fill("new laptop")
    await page.get_by_test_id("run").click()
    await expect(page).to_have_url(re.compile(r"/ui/runs/human_approval_workflow-[0-9a-f]+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    console.started.append(execution_id)
    await expect(page.get_by_test_id("run-status")).to_have_text("waiting_approval", timeout=WAIT_MS)

    run = await console.run(execution_id, user="root")
    assert run["started_by"] == "otto"
    assert run["parameters"] == {"employee": "ada", "amount": 1200.0, "threshold": 500.0, "description": "new laptop"}


async def _approve_form(card: Locator) -> tuple[str, dict[str, str]]:
    """Return the approval form's absolute action URL and the fields its approve button would send."""
    form: dict[str, Any] = await card.evaluate(
        """card => {
            const button = card.querySelector('[data-testid="approve"]');
            const form = button.form;
            const fields = Object.fromEntries(new FormData(form));
            if (button.name) fields[button.name] = button.value;
            return {action: form.action, method: form.method, fields};
        }"""
    )
    assert form["method"] == "post", form
    assert form["fields"].get("csrf_token"), form  # the real form carries its token
    return form["action"], form["fields"]


async def test_a_form_post_without_the_csrf_token_is_refused_and_the_run_still_waits(
    page: Page, console: Console
) -> None:
    expense = await console.start("human_approval_workflow", EXPENSE, user="operator")
    await console.until_waiting(expense, user="root")
    await _log_in(page, console, "alice")
    await _open_until_shown(page, f"{console.url}/ui", _approval(page, expense))
    action, fields = await _approve_form(_approval(page, expense))
    forged: dict[str, str | float | bool] = {k: v for k, v in fields.items() if k != "csrf_token"}
    forged["comment"] = "forged"

    # Posted with alice's session cookie (the browser profile's) but without the token.
    response = await page.request.post(action, form=forged, max_redirects=0)
    assert response.status == 403, await response.text()

    # A page on another origin of the same site (so a SameSite cookie still goes along) submits the form.
    attacker = f"http://127.0.0.1:{free_port()}/"
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">' for k, v in forged.items())
    page_html = f'<form id="f" method="post" action="{escape(action)}">{inputs}</form><script>f.submit()</script>'

    async def serve_attacker(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=page_html)

    await page.route(attacker, serve_attacker)
    async with page.expect_response(lambda r: r.url == action and r.request.method == "POST") as posted:
        await page.goto(attacker)
    refused = await posted.value
    assert refused.status == 403
    assert (await refused.request.header_value("origin")) == attacker.rstrip("/")

    run = await console.run(expense, user="root")
    assert run["status"] == "waiting_approval", json.dumps(run)
    assert _task(run, APPROVAL)["status"] == "waiting_approval"
    assert _task(run, APPROVAL)["approvals"] == []
    await _open_until_shown(page, f"{console.url}/ui", _approval(page, expense))  # still in alice's inbox


async def test_local_mode_opens_the_inbox_without_a_login(page: Page, local_console: Console) -> None:
    expense = await local_console.start("human_approval_workflow", EXPENSE)
    await local_console.until_waiting(expense)
    inbox = f"{local_console.url}/ui"
    await _open_until_shown(page, inbox, _approval(page, expense))
    await expect(page).to_have_url(inbox)
    await expect(_approval(page, expense).get_by_test_id("approve")).to_be_visible()
    await expect(page.get_by_test_id("nav-runs")).to_have_attribute("href", re.compile(r"/ui/runs$"))
