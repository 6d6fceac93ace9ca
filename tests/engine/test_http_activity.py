"""The `http_request` activity against a real local HTTP server: bodies, statuses, redirects, egress, caps."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from workflow_engine.engine.activities.egress import (
    EgressDenied,
    EgressPolicy,
    infrastructure_of,
    non_public_reason,
    parse_endpoint,
)
from workflow_engine.engine.activities.http import HttpActivities, HttpRequestConfig
from workflow_engine.engine.types import ActivityInput
from workflow_engine.settings import Settings


class _Handler(BaseHTTPRequestHandler):
    """Routes: /json, /text, /created, /echo, /status/N, /redirect?to=&code=, /loop, /slow, /large?n=&stream=."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, *, length: bool = True, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else ""
        if parts.path == "/json":
            self._send(200, json.dumps({"ok": True, "n": 1}).encode(), "application/json", X_Custom="Yes")
        elif parts.path == "/problem":
            self._send(200, b'{"title": "x"}', "application/problem+json")
        elif parts.path == "/text":
            self._send(200, "h\u00e9llo".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif parts.path == "/created":
            self._send(201, b"", "text/plain")
        elif parts.path == "/echo":
            echo = {
                "method": self.command,
                "query": parse_qs(parts.query),
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": received,
            }
            self._send(200, json.dumps(echo).encode(), "application/json")
        elif parts.path.startswith("/status/"):
            status = int(parts.path.rsplit("/", 1)[1])
            self._send(status, (f"error {status} " + "x" * 2000).encode(), "text/plain")
        elif parts.path == "/redirect":
            self._send(int(query.get("code", "302")), b"", "text/plain", Location=query["to"])
        elif parts.path == "/loop":
            self._send(302, b"", "text/plain", Location="/loop")
        elif parts.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late", "text/plain")
        elif parts.path == "/large":
            self._send(200, b"a" * int(query["n"]), "text/plain", length="stream" not in query)
        else:
            self._send(404, b"no such route", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _route


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """Serve `_Handler` on 127.0.0.1 in a thread for the module and yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _acts(**overrides: Any) -> HttpActivities:
    return HttpActivities(Settings(_env_file=None, **overrides))


async def _run(config: dict[str, Any], acts: HttpActivities | None = None) -> Any:
    result = await ActivityEnvironment().run((acts or _acts()).http_request, ActivityInput(task_id="t", config=config))
    return result.output


async def _error(config: dict[str, Any], acts: HttpActivities | None = None) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await _run(config, acts)
    return caught.value


async def test_json_body_is_parsed_and_headers_are_lower_case(base_url: str) -> None:
    output = await _run({"url": f"{base_url}/json"})
    assert output["status_code"] == 200
    assert output["body"] == {"ok": True, "n": 1}
    assert output["headers"]["x-custom"] == "Yes"
    assert all(name == name.lower() for name in output["headers"])
    assert (await _run({"url": f"{base_url}/problem"}))["body"] == {"title": "x"}


async def test_text_body_is_decoded_with_its_charset(base_url: str) -> None:
    output = await _run({"url": f"{base_url}/text"})
    assert output["body"] == "h\u00e9llo"
    assert (await _run({"url": f"{base_url}/created"}))["status_code"] == 201


async def test_query_headers_and_json_are_sent(base_url: str) -> None:
    config = {
        "method": "post",
        "url": f"{base_url}/echo?keep=1",
        "query": {"a": "1", "b": [2, 3], "flag": True},
        "headers": {"X-Token": "abc", "X-Num": 5},
        "json": {"order": 42, "items": ["x"]},
    }
    echo = (await _run(config))["body"]
    assert echo["method"] == "POST"
    assert echo["query"] == {"keep": ["1"], "a": ["1"], "b": ["2", "3"], "flag": ["true"]}
    assert echo["headers"]["x-token"] == "abc" and echo["headers"]["x-num"] == "5"
    assert echo["headers"]["host"] == base_url.removeprefix("http://")
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {"order": 42, "items": ["x"]}


async def test_form_and_raw_body_are_sent(base_url: str) -> None:
    form = (await _run({"method": "PUT", "url": f"{base_url}/echo", "form": {"a": "1", "b": ["x", "y"]}}))["body"]
    assert form["method"] == "PUT"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form["body"]) == {"a": ["1"], "b": ["x", "y"]}
    raw = (await _run({"method": "PATCH", "url": f"{base_url}/echo", "body": "plain text", "headers": {}}))["body"]
    assert raw["body"] == "plain text"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/status/404", [404]), ("/status/404", ["4xx"]), ("/status/418", ["400-420", 200]), ("/created", "2xx")],
)
async def test_expected_status_accepts_codes_classes_and_ranges(base_url: str, path: str, expected: Any) -> None:
    output = await _run({"url": f"{base_url}{path}", "expected_status": expected})
    assert output["status_code"] in (201, 404, 418)


async def test_unexpected_4xx_is_non_retryable_with_status_and_excerpt(base_url: str) -> None:
    error = await _error({"url": f"{base_url}/status/404?token=secret"})
    assert error.type == "HttpClientError" and error.non_retryable
    details = error.details[0]
    assert details["status_code"] == 404
    assert details["body"].startswith("error 404 x") and len(details["body"]) == 500
    assert "HTTP 404" in error.message and "error 404" in error.message
    assert "secret" not in error.message  # the query string may carry secrets


async def test_unexpected_2xx_and_3xx(base_url: str) -> None:
    error = await _error({"url": f"{base_url}/json", "expected_status": [201]})
    assert error.type == "HttpUnexpectedStatus" and error.non_retryable
    error = await _error({"url": f"{base_url}/redirect?to=/json", "follow_redirects": False})
    assert error.type == "HttpUnexpectedStatus" and error.details[0]["status_code"] == 302


async def test_5xx_is_retryable(base_url: str) -> None:
    error = await _error({"url": f"{base_url}/status/503"})
    assert error.type == "HttpServerError" and not error.non_retryable
    assert error.details[0]["status_code"] == 503


async def test_timeout_is_retryable(base_url: str) -> None:
    started = time.monotonic()
    error = await _error({"url": f"{base_url}/slow", "timeout": "200ms"})
    assert error.type == "HttpTimeout" and not error.non_retryable
    assert time.monotonic() - started < 0.9
    assert (await _error({"url": f"{base_url}/slow", "timeout": 0.2})).type == "HttpTimeout"


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await _error({"url": f"http://127.0.0.1:{port}/"})
    assert error.type == "HttpConnectError" and not error.non_retryable


async def test_redirects_are_followed(base_url: str) -> None:
    assert (await _run({"url": f"{base_url}/redirect?to=/json"}))["body"] == {"ok": True, "n": 1}
    see_other = await _run({"method": "POST", "url": f"{base_url}/redirect?code=303&to=/echo", "json": {"a": 1}})
    assert see_other["body"]["method"] == "GET" and see_other["body"]["body"] == ""
    temporary = await _run({"method": "POST", "url": f"{base_url}/redirect?code=307&to=/echo", "json": {"a": 1}})
    assert temporary["body"]["method"] == "POST" and json.loads(temporary["body"]["body"]) == {"a": 1}
    kept = await _run({"url": f"{base_url}/redirect?to=/json", "follow_redirects": False, "expected_status": [302]})
    assert kept["status_code"] == 302 and kept["headers"]["location"] == "/json"


async def test_cross_origin_redirect_drops_credentials_and_keeps_host(base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    target = f"http://localhost:{port}/echo"
    headers = {"Authorization": "Bearer x", "X-Other": "1", "Host": base_url.removeprefix("http://")}
    echo = (await _run({"url": f"{base_url}/redirect?to={target}", "headers": headers}))["body"]
    assert "authorization" not in echo["headers"] and echo["headers"]["x-other"] == "1"
    assert echo["headers"]["host"] == f"localhost:{port}"


async def test_too_many_redirects(base_url: str) -> None:
    error = await _error({"url": f"{base_url}/loop"})
    assert error.type == "HttpRedirectError" and error.non_retryable


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://10.1.2.3/"]
)
async def test_redirect_to_metadata_or_private_address_is_refused(base_url: str, target: str) -> None:
    error = await _error({"url": f"{base_url}/redirect?to={target}"})
    assert error.type == "EgressDenied" and error.non_retryable
    host = target.split("/")[2].strip("[]")
    assert "redirect to" in error.message and host in error.message


async def test_metadata_address_needs_an_exact_entry(base_url: str) -> None:
    acts = _acts(http_allowlist="127.0.0.0/8,0.0.0.0/0,169.254.0.0/16")
    error = await _error({"url": f"{base_url}/redirect?to=http://169.254.169.254/"}, acts)
    assert error.type == "EgressDenied" and "metadata" in error.message


async def test_loopback_refused_without_allowlist_even_by_name(base_url: str) -> None:
    acts = _acts(http_allowlist="")
    error = await _error({"url": f"{base_url}/json"}, acts)
    assert error.type == "EgressDenied" and "127.0.0.1" in error.message and "loopback" in error.message
    port = base_url.rsplit(":", 1)[1]
    error = await _error({"url": f"http://localhost:{port}/json"}, acts)  # refused after DNS resolution
    assert error.type == "EgressDenied" and "'localhost'" in error.message and "HTTP_ALLOWLIST" in error.message


async def test_allowlisted_host_name_is_reachable(base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    output = await _run({"url": f"http://localhost:{port}/json"}, _acts(http_allowlist="localhost"))
    assert output["body"] == {"ok": True, "n": 1}


async def test_only_http_schemes() -> None:
    assert (await _error({"url": "ftp://example.com/file"})).type == "EgressDenied"
    assert (await _error({"url": "file:///etc/passwd"})).type == "ConfigError"


@pytest.mark.parametrize("stream", [False, True])
async def test_response_size_cap_fails_instead_of_truncating(base_url: str, stream: bool) -> None:
    acts = _acts(http_max_response_bytes=1000)
    suffix = "&stream=1" if stream else ""
    assert (await _run({"url": f"{base_url}/large?n=1000{suffix}"}, acts))["body"] == "a" * 1000
    error = await _error({"url": f"{base_url}/large?n=5000{suffix}"}, acts)
    assert error.type == "HttpResponseTooLarge" and error.non_retryable
    assert "HTTP_MAX_RESPONSE_BYTES" in error.message and "1000" in error.message


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "config.url"),
        ({"url": "/relative"}, "absolute"),
        ({"url": "http://x/", "json": {}, "form": {}}, "only one of"),
        ({"url": "http://x/", "body": {"a": 1}}, "config.body"),
        ({"url": "http://x/", "expected_status": ["abc"]}, "expected_status"),
        ({"url": "http://x/", "expected_status": ["300-200"]}, "expected_status"),
        ({"url": "http://x/", "timeout": "soon"}, "config.timeout"),
        ({"url": "http://x/", "timeout": -1}, "config.timeout"),
        ({"url": "http://x/", "method": "G T"}, "config.method"),
        ({"url": "http://x/", "headers": ["a"]}, "config.headers"),
        ({"url": "http://x/", "headers": {"X-A": "caf\u00e9"}}, "config.headers"),
        ({"url": "http://x/", "headers": {"X-A": "a\r\nX-B: b"}}, "config.headers"),
        ({"url": "http://x/", "headers": {"X A": "a"}}, "config.headers"),
        ({"url": "http://x/", "query": {"a": {"b": 1}}}, "config.query"),
        ({"url": "http://x/", "follow_redirects": "yes"}, "follow_redirects"),
        ({"url": "http://x/", "verify": False}, "unknown config keys"),
    ],
)
async def test_bad_config_is_non_retryable(config: dict[str, Any], fragment: str) -> None:
    error = await _error(config)
    assert error.type == "ConfigError" and error.non_retryable
    assert fragment in error.message


_KEYS = "body, expected_status, follow_redirects, form, headers, json, method, query, timeout, url"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "http://x/", "zz": 1, "aa": 2, "method": 5}, f"unknown config keys ['aa', 'zz']; allowed: {_KEYS}"),
        ({"method": "G T", "url": None}, "config.method must be an HTTP method such as GET or POST"),
        ({"url": "http://[::1"}, "config.url is not a valid URL: Invalid port: ':1'"),
        ({"url": "/rel", "headers": 5}, "config.url must be an absolute http(s) URL"),
        ({"url": "http://x/", "headers": 5, "query": 5}, "config.query must be a mapping of names to scalars or lists"),
        ({"url": "http://x/", "json": 1, "body": 5, "timeout": 0}, "only one of json, body and form; got json, body"),
        ({"url": "http://x/", "headers": {"X A": "1"}, "json": 1, "form": {}}, "config.headers: 'X A' needs a token"),
        ({"url": "http://x/", "body": 5, "timeout": "x"}, "config.body must be a string"),
        ({"url": "http://x/", "follow_redirects": 1, "timeout": "x"}, "config.follow_redirects must be true or false"),
        ({"url": "http://x/", "timeout": "x", "expected_status": "x"}, "config.timeout must be a positive number"),
        ({"url": "http://x/", "expected_status": []}, "config.expected_status must not be empty"),
        ({"url": "http://x/", "expected_status": [200, "abc", "300-200"]}, "('200-299'); got 'abc'"),
        ({"url": "http://x/", "expected_status": " 700 "}, "('200-299'); got 700"),
        ({"url": "http://x/", "expected_status": "\u00b2"}, "('200-299'); got '\u00b2'"),
    ],
)
async def test_config_problems_are_reported_first_key_first(config: dict[str, Any], message: str) -> None:
    error = await _error(config)
    assert error.type == "ConfigError" and error.non_retryable
    assert message in error.message


def test_config_is_taken_as_given() -> None:
    config = {
        "method": "post",
        "url": " http://x/p?k=1 ",
        "query": {"a": [True, 1.0, 2], "b": ""},
        "headers": {"A": True, "N": 1.5},
        "json": None,
        "timeout": "200ms",
        "expected_status": ["2XX", " 404 ", "\u0664\u0661\u0668"],
    }
    parsed = ActivityEnvironment().run(HttpRequestConfig.parse, config)
    assert (parsed.method, str(parsed.url), parsed.headers) == (
        "POST",
        "http://x/p?k=1&a=true&a=1.0&a=2&b=",
        {"A": "true", "N": "1.5"},
    )
    assert parsed.body == {"json": None} and parsed.timeout == 0.2 and parsed.follow_redirects
    assert parsed.expected == [(200, 299), (404, 404), (418, 418)]
    assert ActivityEnvironment().run(HttpRequestConfig.parse, {"url": "http://x/", "form": None}).body == {"data": {}}


def test_egress_policy_classification() -> None:
    assert non_public_reason(ip_address("93.184.216.34")) is None
    assert non_public_reason(ip_address("::ffff:127.0.0.1")) == "a loopback address"
    assert non_public_reason(ip_address("169.254.169.254")) == "the cloud metadata address"
    assert non_public_reason(ip_address("0.0.0.0")) == "an unspecified address"
    assert non_public_reason(ip_address("224.0.0.1")) == "a multicast address"
    assert non_public_reason(ip_address("100.64.0.1")) is not None  # carrier-grade NAT
    policy = EgressPolicy(["10.0.0.0/8", "169.254.169.254", "*.corp.example", "Internal.Example."])
    policy.check_address("a.corp.example", ip_address("192.168.1.1"))
    policy.check_address("internal.example", ip_address("192.168.1.1"))
    policy.check_address("x", ip_address("10.9.9.9"))
    policy.check_address("x", ip_address("169.254.169.254"))
    with pytest.raises(EgressDenied, match="192.168.1.1"):
        policy.check_address("x", ip_address("192.168.1.1"))
    with pytest.raises(EgressDenied, match="fd00:ec2::254"):
        EgressPolicy(["::/0"]).check_address("x", ip_address("fd00:ec2::254"))
    with pytest.raises(ValueError, match="10.0.0.0/33"):
        EgressPolicy(["10.0.0.0/33"])


async def test_egress_policy_resolves_literals_and_checks_schemes() -> None:
    assert await EgressPolicy([]).check_url("https://93.184.216.34/x") == [ip_address("93.184.216.34")]
    with pytest.raises(EgressDenied, match="scheme"):
        await EgressPolicy([]).check_url("gopher://93.184.216.34/")


async def test_our_own_infrastructure_is_never_reachable_whatever_the_allowlist(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    wide_open = "localhost,127.0.0.0/8,::1/128,0.0.0.0/0,::/0"
    # the test server plays the API: every address of this machine on that port is refused, allowlisted or not
    acts = _acts(http_allowlist=wide_open, api_host="0.0.0.0", api_port=port)
    for url in (f"{base_url}/json", f"http://localhost:{port}/json", f"http://127.0.0.2:{port}/json"):
        error = await _error({"url": url}, acts)
        assert error.type == "EgressDenied" and error.non_retryable, url
        assert "the workflow-engine API of this deployment" in error.message
    # a redirect from an allowed server to our infrastructure is refused too
    bounce = _acts(http_allowlist=wide_open, temporal_address="127.0.0.1:7233")
    error = await _error({"url": f"{base_url}/redirect?to=http://127.0.0.1:7233/"}, bounce)
    assert error.type == "EgressDenied" and "the Temporal frontend" in error.message
    assert (await _run({"url": f"{base_url}/json"}, bounce))["status_code"] == 200  # other loopback ports work


async def test_infrastructure_endpoints_come_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        temporal_address="127.0.0.1:7233",
        temporal_ui_port=8080,
        temporal_http_port=7243,
        api_host="127.0.0.1",
        api_port=8000,
        database_url="postgresql+asyncpg://u:p@127.0.0.1/db",
        egress_deny="10.1.2.3:*,[fd00::9]:9000",
    )
    infrastructure = infrastructure_of(settings)
    named = {(e.host, e.port, e.what) for e in infrastructure.endpoints}
    assert {("127.0.0.1", 7233, "the Temporal frontend"), ("127.0.0.1", 8080, "the Temporal UI"),
            ("127.0.0.1", 7243, "the Temporal HTTP API"), ("127.0.0.1", 8000, "the workflow-engine API"),
            ("127.0.0.1", 5432, "the database"), ("10.1.2.3", None, "listed in EGRESS_DENY"),
            ("fd00::9", 9000, "listed in EGRESS_DENY")} <= named  # fmt: skip
    for address, port, ours in (
        ("127.0.0.1", 8080, True), ("127.9.9.9", 5432, True), ("::1", 7243, True), ("10.1.2.3", 1, True),
        ("fd00::9", 9000, True), ("fd00::9", 9001, False), ("127.0.0.1", 8081, False), ("10.1.2.4", 80, False),
    ):  # fmt: skip
        assert (await infrastructure.match(ip_address(address), port) is not None) is ours, (address, port)
    with pytest.raises(ValueError, match="host:port"):
        parse_endpoint("10.0.0.1", "x")
