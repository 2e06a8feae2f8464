"""ASGI applications of the fake: the API origin (FastAPI + fault/auth layer) and the storage origin."""

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
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .records import EVENT_TYPES, MODEL_LOG_TYPES, FakeApiError, RecordedRequest, SyncKind
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
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 date-time (offset required); ValueError otherwise.

    A ``+`` turned into a space by form decoding (``...00 00:00``) is accepted.
    """
    text = value.strip()
    if re.search(r"\d \d{2}:\d{2}$", text):
        text = text[:-6] + "+" + text[-5:]
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    frac = (match.group(7) or "")[1:]
    offset = match.group(8)
    norm = (
        f"{match.group(1)}-{match.group(2)}-{match.group(3)}T{match.group(4)}:{match.group(5)}:{match.group(6)}"
        f"{'.' + (frac + '000000')[:6] if frac else ''}{'+00:00' if offset in ('Z', 'z') else offset}"
    )
    return datetime.fromisoformat(norm).astimezone(timezone.utc)


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
    answer = state.file_response(parts[2], parts[3], request.query)
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
        path = request.path
        if path.startswith("/files/"):
            await _serve_file(state, scope, send, request)
            return
        version = request.headers.get("x-polytomic-version") or state.api_version

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
        entry = state.idempotency_begin(key)
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
                state.idempotency_abort(key)
            else:
                body = b"".join(captured["body"])
                state.idempotency_finish(key, captured["status"], captured["headers"], body)


# ---------------------------------------------------------------------------------------- routes


def _q_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise FakeApiError(422, f"{name} must be a boolean")


def _q_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FakeApiError(422, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise FakeApiError(422, f"{name} must be between {low} and {high}")
    return value


def _q_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise FakeApiError(422, f"{name} must be an RFC 3339 date-time") from None


async def _json_body(request: Request, status: int) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise FakeApiError(status, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise FakeApiError(status, "request body must be a JSON object")
    return body


def _check_start_body(kind: SyncKind, body: dict[str, Any]) -> None:
    for name in ("test", "resync"):
        if body.get(name) is not None and not isinstance(body.get(name), bool):
            raise FakeApiError(400, f"{name} must be a boolean")
    if kind == "model":
        identities = body.get("identities")
        if identities is not None and not (
            isinstance(identities, list) and all(isinstance(i, str) for i in identities)
        ):
            raise FakeApiError(400, "identities must be a list of strings or null")
        return
    if body.get("resync"):
        raise FakeApiError(400, "resync is deprecated in this API version; use resync_mode")
    resync_mode = body.get("resync_mode")
    if resync_mode is not None and resync_mode not in ("refetch", "resync", "rebuild"):
        raise FakeApiError(400, "resync_mode must be one of refetch, resync, rebuild")
    if body.get("test") and resync_mode is not None:
        raise FakeApiError(400, "test and resync_mode are mutually exclusive")
    fetch_mode = body.get("fetch_mode")
    if fetch_mode is not None and fetch_mode not in ("none", "incremental", "full"):
        raise FakeApiError(400, "fetch_mode must be one of none, incremental, full")
    schemas = body.get("schemas")
    if schemas is not None and not (isinstance(schemas, list) and all(isinstance(s, str) for s in schemas)):
        raise FakeApiError(400, "schemas must be a list of strings or null")


def build_api(state: PolytomicState) -> FastAPI:
    """Build the FastAPI application with every Polytomic route and the ``/_fake`` control routes."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Fake Polytomic")

    def error(status: int, message: str, key: str | None = None) -> JSONResponse:
        return JSONResponse(state.error_body(status, message, key), status_code=status)

    @app.exception_handler(FakeApiError)
    async def _api_error(_request: Request, exc: FakeApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.key)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, str(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_fake/"):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return error(exc.status_code, message)

    def ok(data: Any) -> JSONResponse:
        return JSONResponse({"data": data})

    # -- identity & events ----------------------------------------------------------------------

    @app.get("/api/me")
    async def me() -> JSONResponse:
        return ok(state.identity())

    @app.get("/api/events")
    async def list_events(request: Request) -> JSONResponse:
        limit = _q_int(request, "limit", 10, 1, 100)
        starting_after = _q_time(request, "starting_after")
        ending_before = _q_time(request, "ending_before")
        event_type = request.query_params.get("type") or None
        return ok(
            state.list_events(
                type=event_type, starting_after=starting_after, ending_before=ending_before, limit=limit
            )
        )

    @app.get("/api/events_types")
    async def events_types() -> JSONResponse:
        return ok(list(EVENT_TYPES))

    # -- webhooks -------------------------------------------------------------------------------

    @app.get("/api/webhooks")
    async def list_webhooks() -> JSONResponse:
        return ok(state.webhooks())

    @app.post("/api/webhooks")
    async def create_webhook(request: Request) -> JSONResponse:
        return ok(state.create_webhook(await _json_body(request, 422)))

    @app.get("/api/webhooks/{webhook_id}")
    async def get_webhook(webhook_id: str) -> JSONResponse:
        return ok(state.get_webhook(webhook_id))

    @app.put("/api/webhooks/{webhook_id}")
    async def update_webhook(webhook_id: str, request: Request) -> JSONResponse:
        return ok(state.update_webhook(webhook_id, await _json_body(request, 422)))

    @app.delete("/api/webhooks/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> Response:
        state.delete_webhook(webhook_id)
        return Response(status_code=200)

    @app.post("/api/webhooks/{webhook_id}/disable")
    async def disable_webhook(webhook_id: str) -> JSONResponse:
        return ok(state.set_webhook_disabled(webhook_id, True))

    @app.post("/api/webhooks/{webhook_id}/enable")
    async def enable_webhook(webhook_id: str) -> JSONResponse:
        return ok(state.set_webhook_disabled(webhook_id, False))

    # -- bulk syncs (declared first: /api/bulk/syncs/status is not a sync id) --------------------

    @app.get("/api/bulk/syncs/status")
    async def bulk_statuses(request: Request) -> JSONResponse:
        sync_ids = [v for v in request.query_params.getlist("sync_id") if v]
        return ok(state.api_bulk_statuses(sync_ids, _q_bool(request, "active")))

    @app.get("/api/bulk/syncs/{sync_id}")
    async def get_bulk_sync(sync_id: str) -> JSONResponse:
        return ok(state.sync_json(sync_id, "bulk"))

    @app.post("/api/bulk/syncs/{sync_id}/executions")
    async def start_bulk(sync_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        _check_start_body("bulk", body)
        return ok(state.api_start(sync_id, "bulk", body))

    @app.get("/api/bulk/syncs/{sync_id}/status")
    async def bulk_status(sync_id: str) -> JSONResponse:
        return ok(state.api_status(sync_id, "bulk"))

    @app.get("/api/bulk/syncs/{sync_id}/executions")
    async def list_bulk_executions(sync_id: str, request: Request) -> JSONResponse:
        limit = _q_int(request, "limit", 50, 1, 10_000)
        return JSONResponse(
            state.api_list_executions(
                sync_id,
                "bulk",
                page_token=request.query_params.get("page_token"),
                ascending=_q_bool(request, "ascending"),
                only_terminal=_q_bool(request, "only_terminal"),
                limit=min(limit, 100),
            )
        )

    @app.get("/api/bulk/syncs/{sync_id}/executions/{execution_id}")
    async def get_bulk_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return ok(state.api_execution(sync_id, execution_id, "bulk"))

    @app.post("/api/bulk/syncs/{sync_id}/executions/{execution_id}/cancel")
    async def cancel_bulk_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return ok(state.api_cancel_execution(sync_id, execution_id, "bulk"))

    @app.post("/api/bulk/syncs/{sync_id}/cancel")
    async def cancel_bulk_sync(sync_id: str) -> JSONResponse:
        return ok(state.api_cancel_sync(sync_id, "bulk"))

    @app.get("/api/bulk/syncs/{sync_id}/executions/{execution_id}/logs")
    async def bulk_logs(sync_id: str, execution_id: str) -> JSONResponse:
        data = state.api_log_urls(sync_id, execution_id, "bulk", "records")
        return ok({"URLs": data["urls"], "Expires": data["expires"]})

    # -- model syncs ----------------------------------------------------------------------------

    @app.get("/api/syncs/{sync_id}")
    async def get_sync(sync_id: str) -> JSONResponse:
        return ok(state.sync_json(sync_id, "model"))

    @app.post("/api/syncs/{sync_id}/executions")
    async def start_model(sync_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        _check_start_body("model", body)
        return ok(state.api_start(sync_id, "model", body))

    @app.get("/api/syncs/{sync_id}/status")
    async def model_status(sync_id: str) -> JSONResponse:
        return ok(state.api_status(sync_id, "model"))

    @app.get("/api/syncs/{sync_id}/executions")
    async def list_model_executions(sync_id: str, request: Request) -> JSONResponse:
        return JSONResponse(
            state.api_list_executions(
                sync_id,
                "model",
                page_token=request.query_params.get("page_token"),
                ascending=_q_bool(request, "ascending"),
                only_terminal=_q_bool(request, "only_completed"),
            )
        )

    @app.get("/api/syncs/{sync_id}/executions/{execution_id}")
    async def get_model_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return ok(state.api_execution(sync_id, execution_id, "model"))

    @app.post("/api/syncs/{sync_id}/executions/{execution_id}/cancel")
    async def cancel_model_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return ok(state.api_cancel_execution(sync_id, execution_id, "model"))

    @app.post("/api/syncs/{sync_id}/cancel")
    async def cancel_model_sync(sync_id: str) -> JSONResponse:
        return ok(state.api_cancel_sync(sync_id, "model"))

    # Registered before the {log_type} route, which would otherwise answer these paths.
    @app.get("/api/syncs/{sync_id}/executions/{execution_id}/logs")
    async def model_logs_index(sync_id: str, execution_id: str) -> JSONResponse:
        return ok(state.api_logs_index(sync_id, execution_id))

    @app.get("/api/syncs/{sync_id}/executions/{execution_id}/{log_type}")
    async def model_log_urls(sync_id: str, execution_id: str, log_type: str) -> JSONResponse:
        if log_type not in MODEL_LOG_TYPES:
            raise FakeApiError(400, f"log type must be one of {', '.join(MODEL_LOG_TYPES)}")
        return ok(state.api_log_urls(sync_id, execution_id, "model", log_type))

    @app.get("/api/syncs/{sync_id}/executions/{execution_id}/{log_type}/{filename}")
    async def model_log_file(sync_id: str, execution_id: str, log_type: str, filename: str) -> Response:
        if log_type not in MODEL_LOG_TYPES:
            raise FakeApiError(400, f"log type must be one of {', '.join(MODEL_LOG_TYPES)}")
        url = state.api_log_file_url(sync_id, execution_id, log_type, filename)
        return RedirectResponse(url, status_code=302)

    # -- /_fake control surface (no auth, no faults) --------------------------------------------

    def control(fn: Callable[[], Any]) -> JSONResponse:
        try:
            return JSONResponse(fn())
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0] if exc.args else exc)}, status_code=404)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/_fake/state")
    async def fake_state() -> JSONResponse:
        return JSONResponse(state.summary())

    @app.get("/_fake/requests")
    async def fake_requests(path_prefix: str = "/api/") -> JSONResponse:
        """How many API requests arrived, in all and under ``path_prefix`` (for benchmarks)."""
        matching = [r for r in list(state.requests) if r.path.startswith(path_prefix)]
        return JSONResponse({"total": len(state.requests), "matching": len(matching)})

    @app.get("/_fake/events")
    async def fake_events() -> JSONResponse:
        return JSONResponse({"data": state.events()})

    @app.post("/_fake/events")
    async def fake_add_event(request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        return control(lambda: state.add_event(str(body.get("type")), dict(body.get("event") or {})))

    @app.post("/_fake/syncs")
    async def fake_add_sync(request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        return control(
            lambda: {
                "id": state.add_sync(
                    body.get("name", "sync"), kind=body.get("kind", "model"), sync_id=body.get("sync_id")
                )
            }
        )

    @app.post("/_fake/syncs/{sync_id}/executions")
    async def fake_start(sync_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        return control(lambda: {"id": state.start_execution(sync_id, **body)})

    @app.post("/_fake/syncs/{sync_id}/run")
    async def fake_run(sync_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        return control(lambda: {"id": state.run_execution(sync_id, **body)})

    @app.post("/_fake/syncs/{sync_id}/auto_outcome")
    async def fake_auto(sync_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        target = None if sync_id == "*" else sync_id

        def apply() -> dict[str, Any]:
            state.set_auto_outcome(target, **body)
            return {"ok": True}

        return control(apply)

    @app.post("/_fake/syncs/{sync_id}/executions/{execution_id}/{action}")
    async def fake_action(sync_id: str, execution_id: str, action: str, request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        actions: dict[str, Callable[..., Any]] = {
            "complete": state.complete_execution,
            "fail": state.fail_execution,
            "cancel": state.cancel_execution,
            "status": state.set_execution_status,
        }
        if action not in actions:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        fn = actions[action]
        return control(lambda: fn(sync_id, execution_id, **body) or {"ok": True})

    @app.post("/_fake/clock/advance")
    async def fake_advance(request: Request) -> JSONResponse:
        body = await _json_body(request, 400)
        return control(lambda: {"now": state.clock.advance(float(body.get("seconds", 0))).isoformat()})

    return app
