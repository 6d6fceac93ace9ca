"""Request limits: a pure ASGI middleware that refuses bodies over API_MAX_BODY_BYTES and JSON nested too deep."""

from __future__ import annotations

import asyncio
import json
import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_engine.errors import BodyTooLargeError, EngineError, NestingTooDeepError

from .errors import error_response

# With escapes removed, a JSON string is `"[^"]*"`: its brackets are text, not nesting.
_TOKEN = re.compile(rb'"[^"]*"|[\[\]{},]')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]")
_RUNS = re.compile(rb"\[+|\]+")
_OPEN = ord("[")
_LEAF_ROUNDS = 4
_KEY_SHOWN = 40
_INLINE_CHECK_BYTES = 256 * 1024
_DRAIN_BYTES = 1024 * 1024 * 1024
_DRAIN_SECONDS = 5.0


def _unescaped(body: bytes) -> bytes:
    """Drop escaped backslashes and quotes (they occur only inside strings), so strings hold no quote."""
    return body.replace(b"\\\\", b"").replace(b'\\"', b"")


def deeper_than(body: bytes, limit: int) -> bool:
    """Tell whether a JSON text nests arrays and objects deeper than `limit`, at C speed (strings skipped).

    Malformed text gets an answer too (its parser refuses it anyway).
    """
    marks = _unescaped(body).translate(None, _NOT_STRUCTURE)
    # Two adjacent quotes enclose no bracket: dropping them leaves every bracket inside or outside as it was.
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    brackets = marks.replace(b"{", b"[").replace(b"}", b"]").translate(None, _NOT_BRACKETS)
    # A round drops every innermost pair (all containers lose one level): cheap, and it leaves few runs to count.
    rounds = 0
    while rounds < min(limit, _LEAF_ROUNDS) and b"[]" in brackets:
        brackets = brackets.replace(b"[]", b"")
        rounds += 1
    depth = 0
    for run in _RUNS.finditer(brackets):
        size = run.end() - run.start()
        depth = depth + size if brackets[run.start()] == _OPEN else max(0, depth - size)
        if depth + rounds > limit:
            return True
    return False


def too_deep_path(body: bytes, limit: int) -> str | None:
    """Return the path (`body.parameters.a[3]`) of the first container nested deeper than `limit`, or None.

    A cheap check decides; only a body over the limit is walked token by token to name the path.
    """
    if not deeper_than(body, limit):
        return None
    # each frame: [is_object, key or index, expecting a key]
    stack: list[list[object]] = []
    for match in _TOKEN.finditer(_unescaped(body)):
        token = match.group()
        if token in (b"{", b"["):
            if len(stack) >= limit:
                return _path(stack)
            stack.append([token == b"{", 0 if token == b"[" else "", token == b"{"])
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif token == b",":
            if stack:
                frame = stack[-1]
                if frame[0]:
                    frame[2] = True
                else:
                    frame[1] = int(frame[1]) + 1  # type: ignore[call-overload]
        elif stack and stack[-1][0] and stack[-1][2]:
            stack[-1][1], stack[-1][2] = _key(token), False
    return _path(stack)


def _key(token: bytes) -> str:
    """Return an object key as shown in a path (escapes dropped, long keys cut short, never decoded whole)."""
    if len(token) > _KEY_SHOWN * 8:
        return "..."
    try:
        key = str(json.loads(token))
    except ValueError:
        return "?"
    return key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "..."


def _path(stack: list[list[object]]) -> str:
    """Name where the innermost open container sits: there the next container is one level too deep."""
    return "body" + "".join(f".{position}" if is_object else f"[{position}]" for is_object, position, _ in stack)


def _is_json(headers: Headers) -> bool:
    """A body FastAPI or our routes would parse as JSON: no content type, `*/json` or `*+json`."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media.endswith(("/json", "+json"))


class RequestLimits:
    """Refuse a body too large (413) or JSON nested too deep (422 naming the path), as problem+json.

    A Content-Length over `max_body_bytes` is refused without keeping anything (the rest is read and dropped
    for up to 5 s, so the client can read the answer); otherwise the body is read (counted, never kept past
    the limit) before the app runs and then replayed to it, so an app never sees a body it could choke on.
    Requests without a body pass straight through.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        """Wrap `app` with these limits."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request's body, then run the app with it (or answer the problem)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        if length is not None and length.strip().isdigit() and int(length) > self.max_body_bytes:
            if headers.get("expect", "").lower() != "100-continue":  # else the client waits for our answer
                if not await _drained(receive, int(length)):
                    return
            await self._refuse(self._too_large(), scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                body = bytearray()
                if more and not await _drained(receive, None):
                    return
                await self._refuse(self._too_large(), scope, receive, send)
                return
            if not more:
                break
        if _is_json(headers) and (path := await self._too_deep(bytes(body))) is not None:
            message_text = f"JSON nested deeper than {self.max_json_depth} levels (API_MAX_JSON_DEPTH) at {path}"
            error = NestingTooDeepError(message_text, details=[{"path": path, "message": message_text}])
            await self._refuse(error, scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_deep(self, body: bytes) -> str | None:
        if len(body) <= _INLINE_CHECK_BYTES:
            return too_deep_path(body, self.max_json_depth)
        # a large hostile body costs up to a second to walk: never in the event loop
        return await asyncio.to_thread(too_deep_path, body, self.max_json_depth)

    def _too_large(self) -> BodyTooLargeError:
        return BodyTooLargeError(f"the request body is larger than {self.max_body_bytes} bytes (API_MAX_BODY_BYTES)")

    @staticmethod
    async def _refuse(error: EngineError, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(error)
        if error.status_code == 413:  # the body may be left unread: the connection cannot be reused
            response.headers["connection"] = "close"
        await response(scope, receive, send)


async def _drained(receive: Receive, length: int | None) -> bool:
    """Read and drop what the client still sends, for at most _DRAIN_SECONDS; False when it disconnected.

    A client still sending when the server closes the connection gets a reset instead of the answer: reading
    the rest without keeping it (as nginx's lingering close does) lets it read the 413. Past _DRAIN_BYTES or
    _DRAIN_SECONDS the answer goes out anyway.
    """
    if length is not None and length > _DRAIN_BYTES:
        return True
    dropped = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while dropped <= _DRAIN_BYTES:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        pass
    return True


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a `receive` that hands the app the body already read, then the client's later messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
