"""The Polytomic webhook receiver: signed deliveries in, Airflow asset events out.

``create_app()`` returns a FastAPI app with one endpoint, ``POST /events``. For each
delivery it:

1. refuses bodies over ``max_body_bytes`` with **413** - from ``Content-Length`` before
   reading, and again while streaming (the header can lie or be absent);
2. verifies ``Polytomic-Signature`` (HMAC of the raw body with the ``webhook_secret``
   extra of the ``polytomic`` connection) - **401** when missing or wrong;
3. parses the JSON - **400** when malformed or not an event object;
4. ignores (**200**) event types it is not asked to forward and events without a sync id;
5. de-duplicates by event id (Polytomic retries a delivery up to 5 times) - **200**;
6. records an asset event on the sync's asset (``polytomic://<sync_id>`` or
   ``polytomic://bulk/<sync_id>``) through an
   :class:`~airflow_provider_polytomic.webhook.recorder.AssetEventRecorder`, and answers
   **200 only once that is done**; when recording fails it answers **503** so Polytomic
   retries.

Recording goes through Airflow's public REST API
(:class:`~airflow_provider_polytomic.webhook.recorder.AirflowApiRecorder`:
``POST /api/v2/assets/events``), so the receiver works the same mounted on the API server
(plugin) or deployed as its own service behind an ingress. The asset event's ``extra`` is
``{"payload": <event>, "polytomic_event_id": ..., "source": "webhook"}`` (Airflow adds
``"from_rest_api": true``), the same ``payload`` shape the polling trigger produces.

Secrets (the webhook secret, signatures, Airflow credentials and tokens) are never
logged nor echoed in responses.

Needs Airflow 3.0+ (assets and the ``/api/v2`` REST API). On Airflow 2 this module imports
(even without FastAPI, which Airflow 2 does not ship), and :func:`create_app` raises
:class:`~airflow_provider_polytomic.exceptions.PolytomicAirflowVersionError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_polytomic._compat import AIRFLOW_V_3, BaseHook, require_airflow

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError:  # Airflow 2 does not ship FastAPI; create_app() raises a version error there.
    if AIRFLOW_V_3:
        raise
    FastAPI = Request = JSONResponse = None  # type: ignore[assignment,misc,unused-ignore]
from airflow_provider_polytomic.api import EVENT_RETENTION
from airflow_provider_polytomic.asset_events import event_payload
from airflow_provider_polytomic.assets import sync_uri
from airflow_provider_polytomic.models import Event, parse_event
from airflow_provider_polytomic.signature import SIGNATURE_HEADER, Encoding, verify_signature
from airflow_provider_polytomic.vocabulary import TERMINAL_EVENT_TYPES, ConnectionExtras, sync_kind_of_event
from airflow_provider_polytomic.webhook.recorder import (
    AirflowApiRecorder,
    AssetEventRecorder,
    ReceivedEvent,
    RecordResult,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""1 MiB. A ``sync.completed`` event carries lists of record-log URLs, so allow room."""
SECRET_CACHE_SECONDS = 60.0
_RECENT_MAX = 10_000


# ----------------------------------------------------------------------------- secrets


def webhook_secret_for(polytomic_conn_id: str) -> str | None:
    """The ``webhook_secret`` extra of a ``polytomic`` connection (None when unset)."""
    return ConnectionExtras.of(BaseHook.get_connection(polytomic_conn_id)).webhook_secret


class _SecretCache:
    """Reads the secret from the connection at most every ``ttl`` seconds (rotation is picked up)."""

    def __init__(self, loader: Callable[[], str | None], ttl: float) -> None:
        self._loader = loader
        self._ttl = ttl
        self._value: str | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl or self._value is None:
                try:
                    self._value = await asyncio.to_thread(self._loader)
                except Exception as exc:
                    # Never let a connection error (which could quote the connection) escape verbatim.
                    log.error("Could not read the Polytomic webhook secret: %s", type(exc).__name__)
                    self._value = None
                self._at = time.monotonic()
            return self._value


# --------------------------------------------------------------------------------- app


class _Recent:
    """Event ids recorded by this process, with their expiry (bounded LRU)."""

    def __init__(self, ttl: float, maxsize: int = _RECENT_MAX) -> None:
        self._ttl = ttl
        self._max = maxsize
        self._items: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        expiry = self._items.get(key)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._items[key]
            return False
        return True

    def add(self, key: str) -> None:
        self._items[key] = time.monotonic() + self._ttl
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class _Answer(Exception):
    """The reply to a delivery, decided before its event is recorded (refused or ignored)."""

    def __init__(self, status: int, result: str, detail: str | None = None, **more: Any) -> None:
        super().__init__(detail or result)
        self.status, self.result, self.detail, self.more = status, result, detail, more

    def reply(self) -> JSONResponse:
        return _reply(self.status, self.result, self.detail, **self.more)


def _reply(status: int, result: str, detail: str | None = None, **more: Any) -> JSONResponse:
    body: dict[str, Any] = {"result": result}
    if detail:
        body["detail"] = detail
    body.update(more)
    return JSONResponse(body, status_code=status)


class _Receiver:
    """One receiver's state and its steps: read, verify, parse, route, record."""

    def __init__(
        self,
        *,
        polytomic_conn_id: str,
        sink: AssetEventRecorder,
        types: frozenset[str],
        max_body_bytes: int,
        secrets: _SecretCache,
        signature_algorithm: str,
        signature_encoding: Encoding,
    ) -> None:
        self.polytomic_conn_id = polytomic_conn_id
        self.sink = sink
        self.types = types
        self.max_body_bytes = max_body_bytes
        self.secrets = secrets
        self.signature_algorithm = signature_algorithm
        self.signature_encoding = signature_encoding
        self.recent = _Recent(EVENT_RETENTION.total_seconds())
        self.inflight: dict[str, list[Any]] = {}  # event id -> [lock, number of requests using it]
        self.stats = {"received": 0, "recorded": 0, "duplicates": 0, "rejected": 0}

    async def receive(self, request: Request) -> JSONResponse:
        """Verify, de-duplicate and record one Polytomic event delivery."""
        self.stats["received"] += 1
        try:
            body = await self._read_body(request)
            await self._verify(request, body)
            event = self._parse(body)
            uri = self._asset_uri(event)
        except _Answer as answer:
            if answer.result == "rejected":
                self.stats["rejected"] += 1
            return answer.reply()
        return await self._record_once(event, uri)

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) past ``max_body_bytes`` before or while reading it."""
        too_large = _Answer(413, "rejected", f"body larger than {self.max_body_bytes} bytes")
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _Answer(400, "rejected", "invalid Content-Length")
            if int(length) > self.max_body_bytes:
                raise too_large
        chunks: list[bytes] = []
        size = 0
        # The header can lie or be absent: count while streaming too.
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _verify(self, request: Request, body: bytes) -> None:
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise _Answer(401, "rejected", f"missing {SIGNATURE_HEADER} header")
        secret = await self.secrets.get()
        if not secret:
            log.error(
                "Polytomic webhook delivery refused: connection %r has no 'webhook_secret' extra.",
                self.polytomic_conn_id,
            )
            raise _Answer(503, "error", "receiver not configured")
        if not verify_signature(
            body, signature, secret, algorithm=self.signature_algorithm, encoding=self.signature_encoding
        ):
            log.warning("Polytomic webhook delivery with an invalid signature refused.")
            raise _Answer(401, "rejected", "invalid signature")

    @staticmethod
    def _parse(body: bytes) -> Event:
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Answer(400, "rejected", "body is not valid JSON") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise _Answer(400, "rejected", "body is not a Polytomic event object")
        # Polytomic documents deliveries as {"type", "event"}; id and created_at may be
        # absent. Retries resend the same bytes, so the body hash is a stable stand-in id.
        raw.setdefault("id", "body-" + hashlib.sha256(body).hexdigest()[:32])
        raw.setdefault("created_at", datetime.now(timezone.utc).isoformat())
        event = parse_event(raw)
        if event is None:
            raise _Answer(400, "rejected", "body is not a Polytomic event object")
        return event

    def _asset_uri(self, event: Event) -> str:
        """The asset the event is recorded on; events not forwarded are acknowledged (200)."""
        if event.type not in self.types:
            raise _Answer(200, "ignored", f"event type {event.type!r} is not forwarded", event_id=event.id)
        if not event.sync_id:
            raise _Answer(200, "ignored", "event has no sync_id", event_id=event.id)
        try:
            return sync_uri(event.sync_id, sync_kind_of_event(event.type))
        except ValueError:
            raise _Answer(200, "ignored", "event sync_id is not a sync id", event_id=event.id) from None

    async def _record_once(self, event: Event, uri: str) -> JSONResponse:
        """Record the event unless this process already did; a retry racing a slow first
        attempt waits for that attempt's outcome."""
        entry = self.inflight.setdefault(event.id, [asyncio.Lock(), 0])
        entry[1] += 1
        lock: asyncio.Lock = entry[0]
        try:
            async with lock:
                if event.id in self.recent:
                    self.stats["duplicates"] += 1
                    return _reply(200, "duplicate", event_id=event.id)
                try:
                    result = await self.sink.record(ReceivedEvent(event, uri, event_payload(event)))
                except Exception as exc:
                    log.warning(
                        "Recording Polytomic event %s failed, Polytomic will retry: %s %s",
                        event.id,
                        type(exc).__name__,
                        exc,
                    )
                    return _reply(503, "error", "could not record the event", event_id=event.id)
                self.recent.add(event.id)
                if result is RecordResult.DUPLICATE:
                    self.stats["duplicates"] += 1
                elif result is RecordResult.RECORDED:
                    self.stats["recorded"] += 1
                    log.info("Recorded Polytomic event %s (%s) on %s", event.id, event.type, uri)
                return _reply(200, result.value, event_id=event.id, asset_uri=uri)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self.inflight[event.id]


def create_app(
    *,
    polytomic_conn_id: str = "polytomic_default",
    recorder: AssetEventRecorder | None = None,
    event_types: Iterable[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    secret_loader: Callable[[], str | None] | None = None,
    secret_cache_seconds: float = SECRET_CACHE_SECONDS,
    path: str = "/events",
    signature_algorithm: str = "sha256",
    signature_encoding: Encoding = "hex",
) -> FastAPI:
    """Build the receiver app (see the module docstring for the protocol).

    :param polytomic_conn_id: connection whose ``webhook_secret`` extra verifies signatures.
    :param recorder: where events go; default an
        :class:`~airflow_provider_polytomic.webhook.recorder.AirflowApiRecorder`.
    :param event_types: event types to record (default: completion and failure types);
        other verified events are acknowledged and ignored.
    :param max_body_bytes: larger bodies are refused with 413.
    :param secret_loader: returns the secret (default: read the connection); cached
        ``secret_cache_seconds``.
    :param path: the endpoint path.
    :param signature_algorithm: HMAC hash of ``Polytomic-Signature`` (Polytomic has not
        published it; SHA-256 is assumed).
    :param signature_encoding: ``hex`` (assumed) or ``base64``.
    :raises PolytomicAirflowVersionError: on Airflow 2: events are recorded through the
        Airflow 3 REST API (``/api/v2``).
    """
    require_airflow("The Polytomic webhook receiver", (3, 0))
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    receiver = _Receiver(
        polytomic_conn_id=polytomic_conn_id,
        sink=recorder if recorder is not None else AirflowApiRecorder(),
        types=frozenset(event_types if event_types is not None else TERMINAL_EVENT_TYPES),
        max_body_bytes=max_body_bytes,
        secrets=_SecretCache(
            secret_loader or (lambda: webhook_secret_for(polytomic_conn_id)), secret_cache_seconds
        ),
        signature_algorithm=signature_algorithm,
        signature_encoding=signature_encoding,
    )
    app = FastAPI(
        title="Polytomic webhook receiver",
        description="Verifies Polytomic event deliveries and records them as Airflow asset events.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.recorder = receiver.sink
    app.state.stats = receiver.stats

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, and counters (no secrets)."""
        return {"status": "ok", **receiver.stats}

    @app.post(path)
    async def receive(request: Request) -> JSONResponse:
        """Verify, de-duplicate and record one Polytomic event delivery."""
        return await receiver.receive(request)

    return app


__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "webhook_secret_for"]
