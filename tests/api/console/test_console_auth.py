"""The console with API_TOKENS: login and its cookie, roles (viewer, operator, approver) and the filtered inbox."""

from __future__ import annotations

import re

import httpx
from temporalio.client import Client

from .pages import bearer, csrf, flash, in_inbox, login, post_form, start, stop, until

ORDER = {"order_id": "o-7", "order_amount": 5000, "items": [1]}
# approvers by name and by role, and no self-approval: the inbox applies the run's own rules
ALICE_OR_ADMIN = """
name: alice-or-admin
tasks:
  - id: sign
    type: approval
    config: {message: "sign it", approvers: [alice, "role:admin"], allow_self_approval: false, timeout: 1h,
             on_timeout: approve}
"""


def _fresh(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another browser on the same app (its own cookies)."""
    return httpx.AsyncClient(transport=api._transport, base_url="http://api")


async def test_login_sets_a_signed_http_only_cookie_and_logged_out_pages_redirect(
    authed_api: httpx.AsyncClient,
) -> None:
    api = authed_api
    away = await api.get("/ui/runs?status=completed")
    assert away.status_code == 303 and away.headers["location"] == "/ui/login?next=/ui/runs%3Fstatus%3Dcompleted"
    page = await api.get("/ui/login")
    assert '<input name="token"' in page.text and 'data-testid="login"' in page.text
    wrong = await api.post("/ui/login", data={"token": "nope", "csrf_token": csrf(page)})
    assert wrong.status_code == 401 and flash(wrong) == "unknown or revoked token"
    unprotected = await api.post("/ui/login", data={"token": "tok-bob"})  # login CSRF: no token, no session
    assert unprotected.status_code == 403

    page = await api.get("/ui/login?next=/ui/workflows")
    logged = await api.post("/ui/login", data={"token": "tok-bob", "csrf_token": csrf(page), "next": "/ui/workflows"})
    assert logged.status_code == 303 and logged.headers["location"] == "/ui/workflows"
    cookie = next(c for c in logged.headers.get_list("set-cookie") if c.startswith("wfe_console="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "max-age=43200", "path=/ui"} <= flags and "secure" not in flags
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert "tok-bob" not in value
    home = await api.get("/ui")
    assert home.status_code == 200 and '<span data-testid="user">bob</span>' in home.text

    async with _fresh(api) as forger:  # an altered cookie is no session
        forger.cookies.set("wfe_console", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/ui")
        assert (await forger.get("/ui")).status_code == 303
    outside = await api.post("/ui/login?next=x", data={"token": "tok-bob", "csrf_token": csrf(home),
                                                       "next": "https://evil.example/"})  # fmt: skip
    assert outside.headers["location"] == "/ui"  # `next` never leaves the console

    out = await post_form(api, "/ui", "/ui/logout", {})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert (await api.get("/ui")).status_code == 303


async def test_viewer_sees_no_buttons_nor_run_form_and_a_forged_decision_is_refused(
    authed_api: httpx.AsyncClient, client: Client
) -> None:
    api = authed_api
    execution_id = await start(api, "managed-order", ORDER, bearer("alice"))
    try:
        await until(api, execution_id, ("waiting_approval",), bearer("viewer"))
        async with _fresh(api) as vera:
            await login(vera, "viewer")
            inbox = await in_inbox(vera, execution_id, "manager_approval")
            assert 'data-testid="approve"' not in inbox.text and 'data-testid="reject"' not in inbox.text
            workflow = await vera.get("/ui/workflows/managed-order")
            assert workflow.status_code == 200 and 'data-testid="run"' not in workflow.text
            forged = await vera.post(f"/ui/approvals/{execution_id}/manager_approval",
                                     data={"decision": "approve", "csrf_token": csrf(inbox)})  # fmt: skip
            assert forged.status_code == 403 and "needs the approver role" in flash(forged)
            run = await vera.post("/ui/workflows/managed-order/run", data={"csrf_token": csrf(inbox)})
            assert run.status_code == 403 and "needs the operator role" in flash(run)
            page = await vera.get(f"/ui/runs/{execution_id}")
            assert page.status_code == 200 and 'data-status="waiting_approval"' in page.text
            assert 'http-equiv="refresh"' in page.text  # an open run's page reloads itself
        assert (await until(api, execution_id, ("waiting_approval",), bearer("viewer")))["audit"] == []
    finally:
        await stop(client, execution_id)


async def test_inbox_lists_only_what_the_user_may_decide_now(authed_api: httpx.AsyncClient, client: Client) -> None:
    api = authed_api
    registered = await api.post("/workflows", content=ALICE_OR_ADMIN, headers={**bearer("root"),
                                "Content-Type": "application/yaml"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    order = await start(api, "managed-order", ORDER, bearer("alice"))  # alice, bob, carol, role:admin; 2 of them
    signed = await start(api, "alice-or-admin", {}, bearer("alice"))  # alice started it: only admins may sign
    try:
        browsers = {user: _fresh(api) for user in ("alice", "bob", "carol", "root")}
        for user, browser in browsers.items():
            await login(browser, user)
        bob = await in_inbox(browsers["bob"], order, "manager_approval")
        assert "0 of 2 approvals" in bob.text
        assert f"approval-{signed}-sign" not in bob.text  # bob is not listed and not an admin
        root = await in_inbox(browsers["root"], signed, "sign")  # role:admin
        assert re.search(r"left, then it is approved", root.text)
        assert f"approval-{order}-manager_approval" in root.text
        alice = await browsers["alice"].get("/ui")
        assert f"approval-{order}-manager_approval" not in alice.text  # she started it (no self-approval)
        assert f"approval-{signed}-sign" not in alice.text  # listed, but she started it too
        carol = await browsers["carol"].get("/ui")
        assert f"approval-{signed}-sign" not in carol.text  # not listed
        assert f"approval-{order}-manager_approval" in carol.text

        decided = await browsers["bob"].post(f"/ui/approvals/{order}/manager_approval",
                                             data={"decision": "approve", "csrf_token": csrf(bob)})  # fmt: skip
        assert decided.status_code == 303, decided.text
        after = await browsers["bob"].get("/ui")
        assert f"approval-{order}-manager_approval" not in after.text  # already decided
        assert "1 of 2 approvals" in (await browsers["carol"].get("/ui")).text
        single = await browsers["bob"].get(f"/ui/approvals/{order}/manager_approval")
        assert "you have already decided" in single.text and 'data-testid="approve"' not in single.text
        twice = await browsers["bob"].post(f"/ui/approvals/{order}/manager_approval",
                                           data={"decision": "approve", "csrf_token": csrf(bob)})  # fmt: skip
        assert twice.status_code == 409 and "already decided" in flash(twice)
        self_approval = await browsers["alice"].post(
            f"/ui/approvals/{order}/manager_approval", data={"decision": "approve", "csrf_token": csrf(alice)}
        )
        assert self_approval.status_code == 403 and "started this run" in flash(self_approval)

        mine = (await api.get("/approvals", params={"mine": "true"}, headers=bearer("bob"))).json()["items"]
        assert all(item["execution_id"] != order for item in mine)
        everything = (await api.get("/approvals", headers=bearer("bob"))).json()["items"]
        assert any(item["execution_id"] == order and item["started_by"] == "alice" for item in everything)

        page = await post_form(
            browsers["carol"],
            f"/ui/approvals/{order}/manager_approval",
            f"/ui/approvals/{order}/manager_approval",
            {"decision": "approve", "comment": "ok"},
        )
        assert page.status_code == 303 and page.headers["location"] == f"/ui/runs/{order}"
        body = await until(api, order, ("completed", "failed"), bearer("viewer"))
        assert body["status"] == "completed"
        assert [(a["approver"], a["via"]) for a in body["audit"]] == [("bob", "api"), ("carol", "api")]
        for browser in browsers.values():
            await browser.aclose()
    finally:
        await stop(client, order, signed)


async def test_over_https_the_cookie_is_secure_and_a_notification_link_survives_the_login(
    authed_api: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(transport=authed_api._transport, base_url="https://api") as browser:
        link = "/ui/approvals/some-run/manager_approval"
        away = await browser.get(link)
        assert away.status_code == 303 and away.headers["location"] == f"/ui/login?next={link}"
        page = await browser.get(away.headers["location"])
        assert "secure" in page.headers["set-cookie"].lower()
        logged = await browser.post("/ui/login", data={"token": "tok-carol", "csrf_token": csrf(page), "next": link})
        assert logged.status_code == 303 and logged.headers["location"] == link
        assert "secure" in logged.headers["set-cookie"].lower()
        unknown = await browser.get(link)
        assert unknown.status_code == 404 and "some-run" in flash(unknown)
