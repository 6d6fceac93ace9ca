"""The `notify` blocks of the DSL: who hears, by webhook or email, that an approval waits or a run failed."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .durations import Duration

NotifyEvent = Literal["approval", "failure"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("approval", "failure")
MAX_RECIPIENTS = 20
MAX_HEADERS = 20
MAX_URL_CHARS = 2048
MAX_HEADER_CHARS = 4096
MAX_ADDRESS_CHARS = 320
MAX_SUBJECT_CHARS = 200
MAX_WEBHOOK_TIMEOUT = timedelta(seconds=60)
DEFAULT_WEBHOOK_TIMEOUT = timedelta(seconds=10)
_TEMPLATE = "${{"
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
# scheme, a non-empty authority, then anything without blanks (the worker parses it fully, after rendering)
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+(?:[/?#]\S*)?$", re.IGNORECASE)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _url(value: str) -> str:
    """An absolute http(s) URL, or a template the run renders (the worker checks the result)."""
    if _TEMPLATE in value:
        return value
    if not _HTTP_URL.match(value.strip()):
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value


def _address(value: str) -> str:
    """One email address (`name@host`), or a template the run renders."""
    if _TEMPLATE not in value and not _ADDRESS.match(value.strip()):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _TOKEN.match(name) or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} needs a token name and a single-line value")
    return headers


Address = Annotated[str, Field(min_length=3, max_length=MAX_ADDRESS_CHARS), AfterValidator(_address)]
HeaderValue = Annotated[str, Field(max_length=MAX_HEADER_CHARS)]


class Webhook(_Closed):
    """An HTTP call (like an `http_request` config) that receives the notification as JSON."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS), AfterValidator(_url)]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: Annotated[dict[str, HeaderValue], Field(max_length=MAX_HEADERS), AfterValidator(_headers)] = Field(
        default_factory=dict, description="`${{ secrets.NAME }}` is resolved by the worker, never in the run."
    )
    timeout: Duration = Field(DEFAULT_WEBHOOK_TIMEOUT, description="Per attempt, at most 60s.")

    @model_validator(mode="after")
    def _bounded(self) -> Webhook:
        if self.timeout > MAX_WEBHOOK_TIMEOUT:
            raise ValueError("a webhook timeout must be at most 60s")
        return self


class Email(_Closed):
    """A plain-text email sent through the worker's SMTP server (settings SMTP_*)."""

    to: list[Address] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    subject: str | None = Field(None, min_length=1, max_length=MAX_SUBJECT_CHARS)


class TaskNotify(_Closed):
    """The channels an approval task notifies when it starts waiting (instead of the workflow's)."""

    webhook: Webhook | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> TaskNotify:
        if self.webhook is None and self.email is None:
            raise ValueError("notify needs a webhook, an email, or both")
        return self


class WorkflowNotify(TaskNotify):
    """The workflow's default channels, and the events they hear of."""

    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        min_length=1,
        description="approval: an approval task starts waiting (tasks without notify of their own); "
        "failure: the run fails.",
    )
