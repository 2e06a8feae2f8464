"""Record types and small helpers shared by the fake Polytomic server modules."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "BULK_EVENT_TYPES",
    "EVENT_TYPES",
    "MODEL_EVENT_TYPES",
    "MODEL_LOG_TYPES",
    "RESPONSE_BODY_LIMIT",
    "TERMINAL_STATUSES",
    "Delivery",
    "ExecutionEnding",
    "FakeApiError",
    "RecordedRequest",
    "SyncKind",
    "format_time",
]

SyncKind = Literal["model", "bulk"]
"""Kind of sync: a model sync (``/api/syncs``) or a bulk sync (``/api/bulk/syncs``)."""

ExecutionEnding = Literal["completed", "failed", "canceled", "completed_with_errors"]
"""How a scheduled execution ends (see :meth:`FakePolytomic.run_execution`)."""

MODEL_EVENT_TYPES: tuple[str, ...] = (
    "sync.running",
    "sync.completed",
    "sync.completed_with_errors",
    "sync.failed",
    "sync.canceled",
)
BULK_EVENT_TYPES: tuple[str, ...] = (
    "bulk_sync.running",
    "bulk_sync.completed",
    "bulk_sync.completed_with_error",
    "bulk_sync.failed",
    "bulk_sync.canceled",
)
EVENT_TYPES: tuple[str, ...] = MODEL_EVENT_TYPES + BULK_EVENT_TYPES
"""The ten documented event types, as returned by ``GET /api/events_types``."""

MODEL_LOG_TYPES: tuple[str, ...] = ("records", "errors", "warnings", "inserts", "updates", "deletes")
"""Valid ``{type}`` values of ``GET /api/syncs/{sync_id}/executions/{id}/{type}``."""

TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled", "interrupted", "errors"})
"""Execution statuses after which a new execution may be started."""

RESPONSE_BODY_LIMIT = 1024
"""How much of a webhook endpoint's answer a delivery record keeps (Polytomic's limit is not
documented)."""


def format_time(dt: datetime | None) -> str | None:
    """Render ``dt`` as RFC 3339 in UTC with microseconds and a ``Z`` suffix (None stays None)."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request received by an origin of the fake server."""

    method: str
    """HTTP method, upper case."""
    path: str
    """URL path without the query string."""
    query: dict[str, str]
    """Query parameters (last value wins for repeated names; see :attr:`query_list`)."""
    headers: dict[str, str]
    """Request headers with lower-cased names."""
    body: bytes
    """Raw request body."""
    time: datetime
    """When it arrived, per the fake clock."""
    query_list: list[tuple[str, str]] = field(default_factory=list)
    """Every query parameter in order, repeats included."""
    answered: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    """Set once the fake has computed the response and begun sending it: a test that must act
    strictly after a request was served (not merely received) waits on this."""

    @property
    def has_authorization(self) -> bool:
        """Whether the request carried an ``Authorization`` header."""
        return "authorization" in self.headers

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery attempt."""

    url: str
    """Endpoint the event was POSTed to."""
    event_id: str
    """``id`` of the delivered event."""
    event_type: str
    """``type`` of the delivered event."""
    attempt: int
    """1 for the first try, up to 6 (first try + 5 retries)."""
    status_code: int | None
    """HTTP status answered by the endpoint, None on a connection error."""
    error: str | None
    """Connection error text, None when the endpoint answered."""
    body: bytes
    """Exact bytes POSTed."""
    signature: str
    """``Polytomic-Signature`` header value sent."""
    time: datetime
    """When the attempt finished, per the fake clock."""
    webhook_id: str = ""
    """The webhook the attempt was made for."""
    id: str = ""
    """The attempt's id in ``GET /api/webhooks/{id}/deliveries``."""
    attempted_at: datetime | None = None
    """When the attempt started, per the fake clock (``time`` is when it finished)."""
    duration_ms: int = 0
    """How long the endpoint took to answer (or to fail), in milliseconds of real time."""
    response_body: str = ""
    """The start of what the endpoint answered (at most :data:`RESPONSE_BODY_LIMIT` characters)."""
    error_kind: str | None = None
    """Why the attempt failed: ``http_status`` (non-2xx answer), ``timeout`` or ``connection``;
    None on success. Polytomic does not document its own values."""
    seq: int = 0
    """Order of the attempt among all attempts of the fake (breaks ties of equal times)."""

    @property
    def ok(self) -> bool:
        """Whether the endpoint answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


class FakeApiError(Exception):
    """Raised inside the fake to answer an API error (rendered as ``ApiError`` or legacy shape)."""

    def __init__(self, status: int, message: str, key: str | None = None) -> None:
        """Create an error answer with HTTP ``status``, human ``message`` and machine ``key``."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key or _DEFAULT_KEYS.get(status, "error")


_DEFAULT_KEYS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
