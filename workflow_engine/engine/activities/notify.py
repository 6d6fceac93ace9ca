"""The `notify` activity: tells a webhook or a mailbox that an approval waits or a run failed.

Secrets in a channel's config are resolved here, never in the run; the notification itself (message, error)
is plain data that is never rendered, and every secret value is masked out of what goes back to Temporal.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...settings import Settings
from ..types import NOTIFY_ACTIVITY, ActivityInput, NotifyInput
from .http import HttpActivities
from .secrets import mask, resolve

SMTP_TIMEOUT = 30.0
_EVENT_NAMES = {"approval": "approval.waiting", "failure": "run.failed"}


def console_link(base_url: str, notice: NotifyInput) -> str:
    """Return the console page of the waiting approval, or of the failed run."""
    run = quote(notice.execution_id, safe="")
    if notice.event == "approval" and notice.task_id:
        return f"{base_url}/ui/approvals/{run}/{quote(notice.task_id, safe='')}"
    return f"{base_url}/ui/runs/{run}"


def summary(notice: NotifyInput, link: str) -> str:
    """Return the one-paragraph text of a notification (the email body's first lines, a chat message's text)."""
    details = notice.details
    if notice.event == "approval":
        text = f"Approval needed in {notice.workflow_name} (run {notice.execution_id}, task {notice.task_id}): "
        text += str(details.get("message") or "Approval required")
        if details.get("approvers"):
            text += f"\nApprovers: {', '.join(map(str, details['approvers']))}"
        if details.get("required_approvals", 1) != 1:
            text += f"\nApprovals required: {details['required_approvals']}"
        if details.get("deadline"):
            text += f"\nDecide before: {details['deadline']}"
    else:
        text = f"Run {notice.execution_id} of {notice.workflow_name} failed"
        text += f" at task {notice.task_id}" if notice.task_id else ""
        text += f": {details.get('error') or 'unknown error'}"
    return f"{text}\n{link}"


def payload(notice: NotifyInput, link: str) -> dict[str, Any]:
    """Return the JSON a webhook receives (`text` suits chat webhooks such as Slack's as it is)."""
    return {
        "event": _EVENT_NAMES.get(notice.event, notice.event),
        "workflow": notice.workflow_name,
        "execution_id": notice.execution_id,
        "task_id": notice.task_id,
        **notice.details,
        "link": link,
        "text": summary(notice, link),
    }


def _subject(notice: NotifyInput) -> str:
    if notice.event == "approval":
        return f"Approval needed: {notice.workflow_name} / {notice.task_id}"
    return f"Run failed: {notice.workflow_name} ({notice.execution_id})"


class NotifyActivities:
    """Holds the settings notifications need (console URL, SMTP, egress policy); its bound method is the activity."""

    def __init__(self, settings: Settings) -> None:
        """Share the egress policy of `http_request` (the same HTTP_ALLOWLIST and infrastructure denials)."""
        self.settings = settings
        self.http = HttpActivities(settings)

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def notify(self, notice: NotifyInput) -> dict[str, Any]:
        """Send one notification on one channel; return `{channel, ok, error}` (it raises to be retried)."""
        config, hidden = resolve(notice.config, self.settings, notice.deferred)
        link = console_link(self.settings.console_base_url, notice)
        try:
            if notice.channel == "webhook":
                await self._webhook(config, notice, link)
            elif notice.channel == "email":
                await self._email(config, notice, link)
            else:
                raise ApplicationError(f"unknown channel {notice.channel!r}", type="ConfigError", non_retryable=True)
        except ApplicationError as exc:
            raise ApplicationError(
                mask(exc.message, hidden), type=exc.type, non_retryable=exc.non_retryable
            ) from None  # details may carry a response body: not worth a secret
        except Exception as exc:  # noqa: BLE001 - whatever breaks is retried, its message masked
            raise ApplicationError(mask(f"{type(exc).__name__}: {exc}", hidden), type=type(exc).__name__) from None
        return {"channel": notice.channel, "ok": True, "error": None}

    async def _webhook(self, config: dict[str, Any], notice: NotifyInput, link: str) -> None:
        request = {
            "method": config.get("method", "POST"),
            "url": config.get("url"),
            "headers": config.get("headers") or {},
            "timeout": config.get("timeout", 10),
            "json": payload(notice, link),
        }
        await self.http.http_request(ActivityInput(task_id=notice.task_id or "", config=request))

    async def _email(self, config: dict[str, Any], notice: NotifyInput, link: str) -> None:
        settings = self.settings
        if not settings.smtp_host:
            raise ApplicationError(
                "email notifications need an SMTP server: set SMTP_HOST (and SMTP_PORT, SMTP_FROM...) on the worker",
                type="SmtpNotConfigured",
                non_retryable=True,
            )
        recipients = [str(address).strip() for address in config.get("to") or []]
        if not recipients or any(not address or "\n" in address or "\r" in address for address in recipients):
            raise ApplicationError(f"invalid recipients {recipients!r}", type="ConfigError", non_retryable=True)
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(recipients)
        message["Subject"] = " ".join(str(config.get("subject") or _subject(notice)).split())
        message.set_content(summary(notice, link) + "\n")
        await asyncio.to_thread(_send_mail, settings, message, recipients)


def _send_mail(settings: Settings, message: EmailMessage, recipients: list[str]) -> None:
    """Deliver one message over SMTP (blocking: run in a thread)."""
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message, to_addrs=recipients)
