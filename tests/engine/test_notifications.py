"""Notifications on a real Temporal server: a local webhook and SMTP server (aiosmtpd) hear of approvals and failures.

Each carries its console link; secrets are resolved only inside the activity; a notification that fails is
retried and recorded, and never blocks nor fails the run.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from tests.polling import eventually
from workflow_engine.dsl import parse_definition, resolve_params
from workflow_engine.engine.client.executions import start_execution
from workflow_engine.engine.types import RunInput
from workflow_engine.settings import Settings
from workflow_engine.worker import build_worker

CONSOLE = "https://console.example.com/base"
SECRET = "hook-token-5f1c9a"  # noqa: S105 - a test value

Handle = WorkflowHandle[Any, Any]
Starter = Callable[..., Awaitable[Handle]]


@dataclass
class Hook:
    """What the local webhook received, and how it answers: `/flaky` fails `failures` times, `/down` always."""

    base_url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 2

    def to(self, path: str) -> list[dict[str, Any]]:
        """Return the requests received on `path`."""
        return [request for request in self.received if request["path"] == path]


@pytest.fixture
def hook() -> Iterator[Hook]:
    """Serve a webhook on 127.0.0.1 (loopback is in the default HTTP_ALLOWLIST) that records every request."""
    state = Hook(base_url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state.received.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                     "json": json.loads(body or b"null")}
                )  # fmt: skip
                seen = len(state.to(self.path))
            failing = self.path == "/down" or (self.path == "/flaky" and seen <= state.failures)
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd
        content = envelope.original_content or b""
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    """Run an aiosmtpd SMTP server on 127.0.0.1; yield what it received and its port."""
    box, port = _Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest_asyncio.fixture
async def start(
    client: Client, settings: Settings, mailbox: tuple[_Mailbox, int], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Starter]:
    """Yield a function that starts YAML text on a worker with CONSOLE_URL, the local SMTP server and HOOK_TOKEN."""
    monkeypatch.setenv("WFE_SECRET_HOOK_TOKEN", SECRET)
    own = settings.model_copy(update={"console_url": CONSOLE + "/", "smtp_host": "127.0.0.1", "smtp_port": mailbox[1]})

    async def run(text: str, params: dict[str, Any] | None = None, *, queue: str | None = None) -> Handle:
        definition = parse_definition(text, file="test.yaml")
        execution_id = f"{definition.name}-{uuid.uuid4().hex}"
        await start_execution(
            client,
            workflow_name=definition.name,
            execution_id=execution_id,
            task_queue=queue or settings.temporal_task_queue,
            run_input=RunInput(
                definition=definition.model_dump(mode="json"), revision=1,
                params=resolve_params(definition, params or {}), started_by="dana",
            ),
        )  # fmt: skip
        return client.get_workflow_handle(execution_id)

    async with build_worker(client, own):
        yield run


async def _task(handle: Handle, task_id: str) -> dict[str, Any]:
    state = await handle.query("status")
    return next(t for t in state["tasks"] if t["id"] == task_id)


async def _until(handle: Handle, task_id: str, check: Callable[[dict[str, Any]], object], what: str) -> dict[str, Any]:
    return await eventually(lambda: _task(handle, task_id), until=check, within=20, interval=0.1, what=what)


async def _approve(handle: Handle, task_id: str = "manager") -> None:
    await _until(handle, task_id, lambda t: t["status"] == "waiting_approval", f"{task_id} waiting")
    await handle.signal("approval", {"task_id": task_id, "decision": "approve", "approver": "alice"})


def _approval_yaml(notify: str, task_notify: str = "") -> str:
    return f"""
name: notified
params:
  amount: {{type: integer, default: 120}}
  manager_email: {{type: string, default: boss@example.com}}
notify:
{notify}
tasks:
  - id: manager
    type: approval
    config:
      message: "Approve ${{{{ params.amount }}}} EUR?"
      approvers: [alice, bob]
      allow_unverified: true
      timeout: 2h
{task_notify}
  - id: after
    type: set
    config: {{decision: "${{{{ tasks.manager.output.decision }}}}"}}
"""


async def test_a_waiting_approval_posts_its_console_link_to_the_webhook_with_the_secret_kept_out_of_history(
    start: Starter, hook: Hook
) -> None:
    handle = await start(
        _approval_yaml(f"""  events: [approval]
  webhook:
    url: "{hook.base_url}/hook?run=${{{{ workflow.execution_id }}}}"
    headers: {{Authorization: "Bearer ${{{{ secrets.HOOK_TOKEN }}}}"}}""")
    )
    await eventually(lambda: hook.received, within=20, what="the webhook called")
    request = hook.received[0]
    assert request["path"] == f"/hook?run={handle.id}"
    assert request["headers"]["authorization"] == f"Bearer {SECRET}"
    sent = request["json"]
    assert sent["link"] == f"{CONSOLE}/ui/approvals/{handle.id}/manager"
    assert sent["event"] == "approval.waiting" and sent["workflow"] == "notified" and sent["task_id"] == "manager"
    assert sent["message"] == "Approve 120 EUR?" and sent["approvers"] == ["alice", "bob"]
    assert sent["deadline"] and sent["link"] in sent["text"]
    await _approve(handle)
    assert (await handle.result()) is None
    task = await _until(handle, "manager", lambda t: t.get("notifications"), "the notification recorded")
    assert task["status"] == "completed"
    assert task["notifications"] == [{"event": "approval", "channel": "webhook", "ok": True, "error": None}]
    history = str((await handle.fetch_history()).events)
    assert SECRET not in history
    assert "${{ secrets.HOOK_TOKEN }}" in history  # carried unresolved to the activity
    assert len(hook.received) == 1  # a completed run notifies nobody


async def test_a_task_notify_overrides_the_default_and_emails_the_link_through_smtp(
    start: Starter, hook: Hook, mailbox: tuple[_Mailbox, int]
) -> None:
    box, _ = mailbox
    handle = await start(
        _approval_yaml(
            f"  webhook: {{url: '{hook.base_url}/default'}}",
            '    notify: {email: {to: ["${{ params.manager_email }}", finance@example.com]}}',
        ),
        {"manager_email": "carol@example.com"},
    )
    await eventually(lambda: box.messages, within=20, what="an email delivered")
    recipients, message = box.messages[0]
    assert recipients == ["carol@example.com", "finance@example.com"]
    assert message["Subject"] == "Approval needed: notified / manager"
    assert message["From"] == "workflow-engine@localhost"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert f"{CONSOLE}/ui/approvals/{handle.id}/manager" in body.decode()
    assert "Approve 120 EUR?" in body.decode()
    await _approve(handle)
    assert (await handle.result()) is None
    task = await _until(handle, "manager", lambda t: t.get("notifications"), "the notification recorded")
    assert task["notifications"] == [{"event": "approval", "channel": "email", "ok": True, "error": None}]
    assert hook.received == []  # the task's own notify replaced the workflow's


async def test_a_failing_webhook_is_retried_without_holding_the_approval(start: Starter, hook: Hook) -> None:
    handle = await start(_approval_yaml(f"  webhook: {{url: '{hook.base_url}/flaky'}}"))
    await _until(handle, "manager", lambda t: t["status"] == "waiting_approval", "manager waiting")
    assert len(hook.to("/flaky")) <= 1  # the task waits already, whatever the webhook answers
    await eventually(lambda: len(hook.to("/flaky")) >= 3 or None, within=30, what="the webhook retried twice")
    task = await _until(handle, "manager", lambda t: t.get("notifications"), "the notification recorded")
    assert task["status"] == "waiting_approval"
    assert task["notifications"] == [{"event": "approval", "channel": "webhook", "ok": True, "error": None}]
    await _approve(handle)
    assert (await handle.result()) is None


async def test_an_unreachable_webhook_and_an_email_without_smtp_never_fail_the_run(
    start: Starter, client: Client, settings: Settings
) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/nobody"
    text = _approval_yaml(f"  webhook: {{url: '{closed}'}}\n  email: {{to: [ops@example.com]}}")
    # a worker of its own without SMTP_HOST, on its own queue
    queue = f"{settings.temporal_task_queue}-nosmtp"
    async with build_worker(client, settings.model_copy(update={"temporal_task_queue": queue})):
        handle = await start(text, queue=queue)
        task = await _until(
            handle, "manager", lambda t: any(n["channel"] == "email" for n in t.get("notifications") or ()),
            "the email failure recorded",
        )  # fmt: skip
        assert task["status"] == "waiting_approval"
        email = next(n for n in task["notifications"] if n["channel"] == "email")
        assert email["ok"] is False and "SMTP_HOST" in email["error"]
        await _approve(handle)  # the webhook still retries: the decision goes through all the same
        assert (await handle.result()) is None
        assert (await _task(handle, "after"))["output"] == {"decision": "approve"}


async def test_a_failed_run_notifies_once_with_its_error_and_run_link_before_it_closes(
    start: Starter, hook: Hook, mailbox: tuple[_Mailbox, int]
) -> None:
    box, _ = mailbox
    handle = await start(f"""
name: breaks
notify:
  events: [failure]
  webhook: {{url: "{hook.base_url}/failed", headers: {{X-Token: "${{{{ secrets.HOOK_TOKEN }}}}"}}}}
  email: {{to: [ops@example.com], subject: "broken: ${{{{ workflow.name }}}}"}}
params:
  empty: {{type: array, default: []}}
tasks:
  - id: first
    type: set
    config: {{n: 1}}
  - id: broken
    depends_on: [first]
    type: set
    config: {{value: "${{{{ 1 / size(params.empty) }}}}"}}
""")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    # sent before the run closed: both are there as soon as the result is
    assert len(hook.to("/failed")) == 1 and len(box.messages) == 1
    sent = hook.to("/failed")[0]["json"]
    assert sent["event"] == "run.failed" and sent["task_id"] == "broken"
    assert sent["link"] == f"{CONSOLE}/ui/runs/{handle.id}"
    assert "broken" in sent["error"] and "ExpressionError" in sent["error"]
    assert hook.to("/failed")[0]["headers"]["x-token"] == SECRET
    recipients, message = box.messages[0]
    assert recipients == ["ops@example.com"] and message["Subject"] == "broken: breaks"
    task = await _task(handle, "broken")
    assert task["status"] == "failed"
    assert sorted(n["channel"] for n in task["notifications"]) == ["email", "webhook"]
    assert all(n["ok"] and n["event"] == "failure" for n in task["notifications"])
    assert SECRET not in str((await handle.fetch_history()).events)
