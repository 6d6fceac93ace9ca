"""Request limits: the JSON depth check against a reference, its cost on hostile bodies, and the middleware."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request

from workflow_engine.api.errors import install_error_handlers
from workflow_engine.api.limits import RequestLimits, deeper_than, too_deep_path


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


def _value(rng: random.Random, depth: int) -> Any:
    """A random JSON value whose strings hold brackets, quotes and backslashes, so only a real scanner copes."""
    if depth == 0 or rng.random() < 0.15:
        return rng.choice([1, None, "", "a[", "]}", '"[[', "\\", '\\"]', "x\\\\[{"])
    if rng.random() < 0.5:
        return [_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "[", '"', "\\"]) + str(i): _value(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_the_depth_check_agrees_with_the_parsed_value() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = _value(rng, rng.randint(0, 12))
        body = json.dumps(value).encode()
        depth = _depth(value)
        for limit in (0, 1, 2, 3, 4, 5, 6, 9):
            assert deeper_than(body, limit) == (depth > limit), (body, limit, depth)
            assert (too_deep_path(body, limit) is not None) == (depth > limit), (body, limit)


def test_the_path_names_where_the_nesting_goes_too_deep() -> None:
    body = json.dumps({"parameters": {"items": [1, 2, {"x": [[["deep"]]]}]}}).encode()
    assert too_deep_path(body, 7) is None
    assert too_deep_path(body, 6) == "body.parameters.items[2].x[0][0]"
    assert too_deep_path(body, 3) == "body.parameters.items[2]"
    assert too_deep_path(b'{"k\\"ey": [[[1]]]}', 2) == "body.key[0]"  # keys are shown without escapes
    assert too_deep_path(b'{"' + b"k" * 500 + b'": [[1]]}', 2) == "body....[0]"
    assert too_deep_path(b"[" * 10_000 + b"]" * 10_000, 64) == "body" + "[0]" * 64


def test_hostile_bodies_are_checked_quickly() -> None:
    """Bodies of the largest size allowed by default (4 MiB), shaped to be slow to scan."""
    chain = b"[" * 64 + b"]" * 64
    for body in (
        b"[" + b'"a",' * 1_000_000 + b"1]",  # a million strings
        b"[" + b"[]," * 1_300_000 + b"[]]",  # a million small containers
        chain * 30_000,  # as deep as allowed, many times over
        b'["' + b'\\"' * 2_000_000,  # escaped quotes in an unterminated string
        b"[" * 2_000_000 + b"]" * 2_000_000,  # two million deep
    ):
        started = time.perf_counter()
        too_deep_path(body, 64)
        assert time.perf_counter() - started < 1.5, body[:20]


def _app(max_body_bytes: int = 1000, max_json_depth: int = 4) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/plain")
    async def plain() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth)
    return app


async def test_the_middleware_passes_what_is_within_the_limits_and_refuses_the_rest() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/plain")).json() == {"ok": True}
        assert (await http.post("/echo", content=b"x" * 1000)).json() == {"received": 1000}
        assert (await http.post("/echo", json=[[[["ok"]]]])).json() == {"received": 12}

        too_large = await http.post("/echo", content=b"x" * 1001)
        assert too_large.status_code == 413 and too_large.json()["code"] == "body_too_large"
        assert too_large.headers["connection"] == "close"

        async def chunks() -> Any:
            for _ in range(20):
                yield b"x" * 100

        streamed = await http.post("/echo", content=chunks())
        assert streamed.status_code == 413 and streamed.json()["code"] == "body_too_large"

        deep = await http.post("/echo", json=[[[[["no"]]]]])
        assert deep.status_code == 422 and deep.headers["content-type"] == "application/problem+json"
        assert deep.json()["code"] == "nesting_too_deep"
        assert deep.json()["errors"] == [{"path": "body[0][0][0][0]", "message": deep.json()["detail"]}]
        # only JSON is parsed as JSON: YAML flow brackets are the parser's business
        yaml = await http.post("/echo", content=b"[[[[[x]]]]]", headers={"content-type": "application/yaml"})
        assert yaml.json() == {"received": 11}


async def test_a_client_waiting_for_100_continue_gets_the_413_before_it_sends_the_body() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was asked for (uvicorn would send 100 Continue)")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/echo", "query_string": b"", "root_path": "",
        "headers": [(b"content-length", b"200000000"), (b"expect", b"100-continue")],
    }  # fmt: skip
    await RequestLimits(_app(), max_body_bytes=1000, max_json_depth=4)(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["code"] == "body_too_large"
