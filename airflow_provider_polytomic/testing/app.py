"""ASGI applications of the fake: the API origin (faults, auth, version header and idempotency
around the FastAPI app of :func:`~.routers.build_api`) and the storage origin (signed files)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .records import RecordedRequest
from .routers import build_api
from .routers._params import parse_rfc3339

if TYPE_CHECKING:
    from .state import PolytomicState

__all__ = ["TRANSPORT_SCOPE_KEY", "ApiOrigin", "StorageOrigin", "build_api", "parse_rfc3339"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRANSPORT_SCOPE_KEY = "fake_polytomic.transport"
"""Scope key under which the server's HTTP protocol exposes the asyncio transport."""

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{8,255}$")
# ---------------------------------------------------------------------------------------- ASGI helpers


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # block until cancelled, like a live connection
        return {"type": "http.disconnect"}

    return receive


async def _send_bytes(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if not any(k == b"content-length" for k, _ in raw):
        raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await _send_bytes(send, status, [("content-type", "application/json"), *(headers or [])], body)


def _record(scope: Scope, body: bytes, now: datetime) -> RecordedRequest:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    qlist = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return RecordedRequest(
        method=scope["method"].upper(),
        path=scope["path"],
        query=dict(qlist),
        headers=headers,
        body=body,
        time=now,
        query_list=qlist,
    )


def _marking_answered(send: Send, request: RecordedRequest) -> Send:
    """``send``, setting ``request.answered`` as the response starts."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            request.answered.set()
        await send(message)

    return marked


async def _close_transport(scope: Scope, *, abort: bool) -> bool:
    """Close (flush first) or abort (RST) the connection of ``scope``; False if unavailable."""
    transport = scope.get(TRANSPORT_SCOPE_KEY)
    if transport is None:
        return False
    if abort:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    for _ in range(3):  # let connection_lost run so the server knows the client is gone
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return True


async def _serve_file(state: PolytomicState, scope: Scope, send: Send, request: RecordedRequest) -> None:
    parts = request.path.split("/")
    if request.method not in ("GET", "HEAD") or len(parts) != 4 or parts[1] != "files":
        await _send_json(send, 404, {"code": "NoSuchKey", "message": "not found"})
        return
    answer = state.backends.record_logs.file_response(parts[2], parts[3], request.query)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    body = b"" if request.method == "HEAD" else answer.body
    gzipped = body[:2] == b"\x1f\x8b" and len(body) > 8
    if answer.status == 200 and gzipped and state.faults.take_corrupt_gzip():
        # Flip the first byte of the gzip trailer's CRC-32: the body is whole but fails its check.
        body = body[:-8] + bytes([body[-8] ^ 0xFF]) + body[-7:]
    if answer.status == 200 and body and state.faults.take_truncate():
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        if await _close_transport(scope, abort=False):
            return
        raise ConnectionAbortedError("truncated record-log response")
    await send({"type": "http.response.start", "status": answer.status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# ---------------------------------------------------------------------------------------- origins


class StorageOrigin:
    """The "object storage" origin: serves signed record-log URLs, no auth, records every request."""

    def __init__(self, state: PolytomicState) -> None:
        """Serve the record-log files of ``state``."""
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        request = _record(scope, body, self.state.clock.now())
        self.state.storage_requests.append(request)
        send = _marking_answered(send, request)
        await _serve_file(self.state, scope, send, request)


class ApiOrigin:
    """The API origin: records requests, applies faults, auth, version header and idempotency."""

    def __init__(self, state: PolytomicState, app: ASGIApp) -> None:
        """Wrap the FastAPI ``app`` serving the routes of ``state``."""
        self.state = state
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        body = await _read_body(receive)
        request = _record(scope, body, state.clock.now())
        state.requests.append(request)
        send = _marking_answered(send, request)
        path = request.path
        if path.startswith("/files/"):
            await _serve_file(state, scope, send, request)
            return
        version = request.headers.get("x-polytomic-version") or state.org.settings.api_version

        async def send_versioned(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-polytomic-version"]
                headers.append((b"x-polytomic-version", version.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        receive = _replay(body)
        if path == "/api" or path.startswith("/api/"):
            delay = state.faults.take_slow()
            if delay > 0:
                await asyncio.sleep(delay)
            route = state.faults.take_route_fault(path)
            if route is not None:
                if route.delay > 0:
                    await asyncio.sleep(route.delay)
                payload = (
                    route.body if route.body is not None else state.error_body(route.status, "injected fault")
                )
                await _send_json(send_versioned, route.status, payload)
                return
            fault = state.faults.take_request_fault()
            if fault is not None:
                if fault.kind == "reset":
                    if await _close_transport(scope, abort=True):
                        return
                    raise ConnectionResetError("fake connection reset")
                extra = []
                if fault.kind == "rate_limit":
                    extra.append(("retry-after", str(fault.retry_after)))
                    message = "rate limit exceeded"
                else:
                    message = "injected server error"
                await _send_json(send_versioned, fault.status, state.error_body(fault.status, message), extra)
                return
            if not self._authorized(request.headers.get("authorization", "")):
                await _send_json(
                    send_versioned,
                    401,
                    state.error_body(401, "invalid or missing API key"),
                    [("www-authenticate", 'Bearer realm="polytomic"')],
                )
                return
            key = request.headers.get("idempotency-key")
            if request.method == "POST" and key is not None:
                await self._idempotent(key, scope, receive, send_versioned)
                return
        await self.app(scope, receive, send_versioned)

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return bool(credentials) and hmac.compare_digest(
                credentials.encode(), self.state.api_key.encode()
            )
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            org, _, key = decoded.partition(":")
            return org == self.state.organization_id and hmac.compare_digest(
                key.encode(), self.state.api_key.encode()
            )
        return False

    async def _idempotent(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if not _IDEMPOTENCY_KEY.match(key):
            await _send_json(
                send,
                400,
                state.error_body(
                    400, "Idempotency-Key must be 8-255 characters of letters, digits, '-' and '_'"
                ),
            )
            return
        store = state.backends.idempotency
        entry = store.begin(key)
        if entry is not None:
            if entry.in_flight:
                await _send_json(
                    send,
                    409,
                    state.error_body(409, "a request with this Idempotency-Key is still in progress"),
                )
                return
            headers = [*entry.headers, (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": entry.status, "headers": headers})
            await send({"type": "http.response.body", "body": entry.body, "more_body": False})
            return
        captured: dict[str, Any] = {"status": None, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if captured["status"] is None:
                store.abort(key)
            else:
                body = b"".join(captured["body"])
                store.finish(key, captured["status"], captured["headers"], body)
