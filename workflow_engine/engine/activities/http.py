"""The `http_request` activity: one HTTP call behind the egress policy, with capped, parsed responses."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ...settings import Settings
from ..types import ActivityInput, ActivityResult
from . import tasklogs
from .configs import HTTP_DEFAULT_TIMEOUT, ConfigProblem, HttpRequestSpec
from .egress import EgressDenied, EgressPolicy, HostResolutionError, IPAddress, infrastructure_of
from .heartbeat import heartbeating

MAX_REDIRECTS = 10
EXCERPT_CHARS = 500
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CROSS_ORIGIN_DROPPED = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def _fail(message: str, error_type: str, *, non_retryable: bool = False, **details: Any) -> ApplicationError:
    return ApplicationError(
        message, {"attempt": activity.info().attempt, **details}, type=error_type, non_retryable=non_retryable
    )


@dataclass
class HttpRequestConfig:
    """The validated `config` of an `http_request` task, resolved into what the request needs."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    timeout: float = HTTP_DEFAULT_TIMEOUT
    expected: list[tuple[int, int]] = field(default_factory=lambda: [(200, 299)])
    follow_redirects: bool = True

    @classmethod
    def parse(cls, config: dict[str, Any]) -> HttpRequestConfig:
        """Validate a task config against `HttpRequestSpec`; raise a non-retryable `ConfigError` on any problem."""
        try:
            spec = HttpRequestSpec.check(config)
        except ConfigProblem as exc:
            raise _fail(str(exc), "ConfigError", non_retryable=True) from None
        return cls(
            method=spec.method,
            url=spec.url.copy_merge_params(spec.query),
            headers=spec.headers,
            body=spec.request_body(),
            timeout=spec.timeout,
            expected=spec.expected_status,
            follow_redirects=spec.follow_redirects,
        )

    def expects(self, status: int) -> bool:
        """Return whether `status` is one of the expected statuses."""
        return any(low <= status <= high for low, high in self.expected)


def _safe_url(url: httpx.URL) -> str:
    """Return the URL without user info, query or fragment (they may carry secrets) for messages."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class HttpActivities:
    """Holds the settings the `http_request` activity needs; its bound methods are the activities."""

    def __init__(self, settings: Settings) -> None:
        """Build the egress policy from `settings.http_allowlist_entries`."""
        self.settings = settings
        self.policy = EgressPolicy(settings.http_allowlist_entries, infrastructure_of(settings))
        self.max_response_bytes = settings.http_max_response_bytes

    @activity.defn(name="http_request")
    async def http_request(self, task: ActivityInput) -> ActivityResult:
        """Send one HTTP request and return `{status_code, headers, body}`; see the DSL for the error types."""
        config = HttpRequestConfig.parse(task.config)
        where = f"{config.method} {_safe_url(config.url)}"
        try:
            async with asyncio.timeout(config.timeout), heartbeating():
                async with httpx.AsyncClient(
                    follow_redirects=False, trust_env=False, timeout=httpx.Timeout(config.timeout)
                ) as client:
                    started = asyncio.get_running_loop().time()
                    response = await self._exchange(client, config)
                    elapsed = asyncio.get_running_loop().time() - started
                    tasklogs.line("http", f"{where} -> {response.status_code} in {elapsed * 1000:.0f} ms")
                    try:
                        return await self._result(config, response, where)
                    finally:
                        await response.aclose()
        except ApplicationError:
            raise
        except EgressDenied as exc:
            raise _fail(f"{where}: {exc}", "EgressDenied", non_retryable=True, host=exc.host) from None
        except HostResolutionError as exc:
            raise _fail(f"{where}: {exc}", "HttpConnectError") from None
        except (TimeoutError, httpx.TimeoutException):
            raise _fail(f"{where}: no complete response within {config.timeout:g}s", "HttpTimeout") from None
        except httpx.TransportError as exc:
            raise _fail(f"{where}: {type(exc).__name__}: {exc}", "HttpConnectError") from None
        except httpx.DecodingError as exc:
            message = f"{where}: cannot decode the response: {exc}"
            raise _fail(message, "HttpDecodingError", non_retryable=True) from None

    async def _exchange(self, client: httpx.AsyncClient, config: HttpRequestConfig) -> httpx.Response:
        """Send the request, following redirects ourselves so the policy sees every destination."""
        method, url, headers, body = config.method, config.url, dict(config.headers), config.body
        for hop in range(MAX_REDIRECTS + 1):
            try:
                addresses = await self.policy.check_url(url)
            except EgressDenied as exc:
                if hop:
                    raise EgressDenied(f"redirect to {_safe_url(url)} refused: {exc}", host=exc.host) from None
                raise
            response = await _send(client, method, url, headers, body, addresses)
            if not (config.follow_redirects and response.status_code in _REDIRECT_CODES):
                return response
            location = response.headers.get("location")
            if not location:
                return response
            await response.aclose()
            try:
                target = url.join(location)
            except httpx.InvalidURL as exc:
                message = f"redirect from {_safe_url(url)} has an invalid Location: {exc}"
                raise _fail(message, "HttpRedirectError", non_retryable=True) from None
            if _drops_body(response.status_code, method):
                method, body = "GET", {}
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
            if (target.scheme, target.raw_host, target.port) != (url.scheme, url.raw_host, url.port):
                headers = {k: v for k, v in headers.items() if k.lower() not in _CROSS_ORIGIN_DROPPED}
            url = target
        raise _fail(
            f"{config.method} {_safe_url(config.url)}: more than {MAX_REDIRECTS} redirects",
            "HttpRedirectError",
            non_retryable=True,
        )

    async def _result(self, config: HttpRequestConfig, response: httpx.Response, where: str) -> ActivityResult:
        status = response.status_code
        if not config.expects(status):
            raw, _ = await _read(response, min(self.max_response_bytes, 4 * EXCERPT_CHARS))
            excerpt = _text(response, raw)[:EXCERPT_CHARS]
            message = f"{where}: HTTP {status} {response.reason_phrase}, expected {_describe(config.expected)}"
            message += f": {excerpt}" if excerpt else ""
            if 400 <= status < 500:
                error_type, non_retryable = "HttpClientError", True
            elif status >= 500:
                error_type, non_retryable = "HttpServerError", False
            else:
                error_type, non_retryable = "HttpUnexpectedStatus", True
            raise _fail(message, error_type, non_retryable=non_retryable, status_code=status, body=excerpt)
        declared = response.headers.get("content-length", "")
        identity = not response.headers.get("content-encoding")
        if identity and declared.isdigit() and int(declared) > self.max_response_bytes:
            raw, too_large = b"", True  # refuse without reading
        else:
            raw, too_large = await _read(response, self.max_response_bytes)
        if too_large:
            raise _fail(
                f"{where}: the response body is larger than HTTP_MAX_RESPONSE_BYTES ({self.max_response_bytes} bytes)",
                "HttpResponseTooLarge",
                non_retryable=True,
                status_code=status,
            )
        body: Any = _text(response, raw)
        if _is_json(response.headers.get("content-type", "")) and raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                pass  # a server that mislabels its body: keep the text
        headers = {name.lower(): value for name, value in response.headers.items()}
        output = {"status_code": status, "headers": headers, "body": body}
        return ActivityResult(output=output, attempt=activity.info().attempt)


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: dict[str, Any],
    addresses: list[IPAddress],
) -> httpx.Response:
    """Connect to the checked addresses themselves (no second DNS lookup), trying each until one connects."""
    pinned_headers = dict(headers)
    if not any(name.lower() == "host" for name in pinned_headers):
        pinned_headers["Host"] = url.netloc.decode("ascii")
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    error: httpx.ConnectError | None = None
    for address in addresses:
        request = client.build_request(
            method, url.copy_with(host=str(address)), headers=pinned_headers, extensions=extensions, **body
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            error = exc
    assert error is not None  # the policy never returns an empty address list
    raise error


async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Return up to `limit` bytes of the (decoded) body and whether the body was longer."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _text(response: httpx.Response, raw: bytes) -> str:
    try:
        return raw.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _drops_body(status: int, method: str) -> bool:
    """Return whether a redirect turns the request into a body-less GET (as browsers and httpx do)."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _describe(expected: list[tuple[int, int]]) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in expected)
