"""Polytomic's endpoints as :class:`~airflow_provider_polytomic.client.Call` objects, and the
events pager, all without I/O.

The synchronous hook and the asynchronous path (triggers) both build their requests here
and run the same paging logic, so they agree on paths, parameters and models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

from airflow_provider_polytomic.client import Call, data_of
from airflow_provider_polytomic.models import (
    BulkExecution,
    Event,
    Execution,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    Identity,
    StartedExecution,
    SyncKind,
    SyncStatus,
    Webhook,
    WebhookDeliveriesPage,
    WebhookDelivery,
    parse_events,
)

log = logging.getLogger(__name__)

EVENTS_PAGE_LIMIT = 100
EVENT_RETENTION = timedelta(hours=48)
MODEL_LOG_TYPES = ("records", "errors", "warnings", "inserts", "updates", "deletes")
_ONE_US = timedelta(microseconds=1)


def _seg(value: str, name: str) -> str:
    """Quote a path segment, refusing empty values with a clear error."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value.strip(), safe="")


def check_kind(kind: str) -> SyncKind:
    if kind not in ("model", "bulk"):
        raise ValueError(f"sync_kind must be 'model' or 'bulk', got {kind!r}")
    return cast(SyncKind, kind)


def _sync_base(kind: str, sync_id: str) -> str:
    root = "/api/syncs" if check_kind(kind) == "model" else "/api/bulk/syncs"
    return f"{root}/{_seg(sync_id, 'sync_id')}"


def parse_execution(kind: SyncKind, raw: Any) -> Execution | BulkExecution:
    if kind == "model":
        return Execution.model_validate(raw)
    return BulkExecution.model_validate(raw)


# -------------------------------------------------------------------------- endpoints


def get_identity() -> Call[Identity]:
    return Call("GET", "/api/me", lambda b: Identity.model_validate(data_of(b)))


def get_event_types() -> Call[list[str]]:
    return Call("GET", "/api/events_types", lambda b: [str(t) for t in (data_of(b) or [])])


def list_events_page(
    *,
    event_type: str | None = None,
    starting_after: datetime | None = None,
    ending_before: datetime | None = None,
    limit: int = EVENTS_PAGE_LIMIT,
    page_token: str | None = None,
) -> Call[dict[str, Any]]:
    """One page of ``GET /api/events``; the parse keeps the raw body (pager decides)."""
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit!r}")
    params = {
        "type": event_type,
        "starting_after": starting_after,
        "ending_before": ending_before,
        "limit": limit,
        "page_token": page_token,
    }
    return Call("GET", "/api/events", lambda b: b if isinstance(b, dict) else {"data": b}, params=params)


def list_webhooks() -> Call[list[Webhook]]:
    return Call("GET", "/api/webhooks", lambda b: [Webhook.model_validate(w) for w in (data_of(b) or [])])


def _webhook_body(endpoint: str, secret: str) -> dict[str, str]:
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
    if not isinstance(secret, str) or not 6 <= len(secret) <= 32:
        # Never echo the secret itself.
        raise ValueError("secret must be a string of 6 to 32 characters (Polytomic's limit)")
    return {"endpoint": endpoint, "secret": secret}


def create_webhook(endpoint: str, secret: str) -> Call[Webhook]:
    return Call(
        "POST",
        "/api/webhooks",
        lambda b: Webhook.model_validate(data_of(b)),
        json=_webhook_body(endpoint, secret),
    )


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call(
        "GET", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}", lambda b: Webhook.model_validate(data_of(b))
    )


def update_webhook(webhook_id: str, endpoint: str, secret: str) -> Call[Webhook]:
    return Call(
        "PUT",
        f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}",
        lambda b: Webhook.model_validate(data_of(b)),
        json=_webhook_body(endpoint, secret),
    )


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}", lambda b: None)


def set_webhook_enabled(webhook_id: str, enabled: bool) -> Call[Webhook]:
    action = "enable" if enabled else "disable"
    return Call(
        "POST",
        f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}/{action}",
        lambda b: Webhook.model_validate(data_of(b)),
    )


def list_webhook_deliveries_page(
    webhook_id: str,
    *,
    success: bool | None = None,
    event_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    page_token: str | None = None,
) -> Call[WebhookDeliveriesPage]:
    """One page of ``GET /api/webhooks/{id}/deliveries``: attempts newest first.

    ``start`` includes attempts at or after it, ``end`` those before it; ``success`` keeps
    only delivered (True) or failed (False) attempts.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")

    def parse(body: Any) -> WebhookDeliveriesPage:
        items = data_of(body) or []
        token = None
        if isinstance(body, dict) and isinstance(body.get("pagination"), dict):
            token = body["pagination"].get("next_page_token") or None
        return WebhookDeliveriesPage(
            deliveries=[WebhookDelivery.model_validate(d) for d in items if isinstance(d, dict)],
            next_page_token=token,
        )

    params = {"success": success, "event_id": event_id, "start": start, "end": end, "page_token": page_token}
    return Call("GET", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}/deliveries", parse, params=params)


def start_sync(
    sync_id: str,
    *,
    kind: SyncKind = "model",
    resync: bool = False,
    test: bool = False,
    identities: Sequence[str] | None = None,
    resync_mode: str | None = None,
    fetch_mode: str | None = None,
    schemas: Sequence[str] | None = None,
    idempotency_key: str | None = None,
) -> Call[StartedExecution]:
    """Start an execution. A 409 answer raises ``PolytomicSyncAlreadyRunningError``."""
    body: dict[str, Any]
    if kind == "model":
        body = {"resync": bool(resync), "test": bool(test)}
        if identities:
            body["identities"] = list(identities)
    else:
        if resync and not resync_mode:
            # The bulk API rejects the legacy `resync` flag; its documented equivalent is rebuild.
            resync_mode = "rebuild"
        if resync_mode and test:
            raise ValueError("a bulk sync cannot be both a test and a resync (Polytomic forbids it)")
        if resync_mode not in (None, "refetch", "resync", "rebuild"):
            raise ValueError(f"resync_mode must be refetch, resync or rebuild, got {resync_mode!r}")
        if fetch_mode not in (None, "none", "incremental", "full"):
            raise ValueError(f"fetch_mode must be none, incremental or full, got {fetch_mode!r}")
        body = {"test": bool(test)}
        if resync_mode:
            body["resync_mode"] = resync_mode
        if fetch_mode:
            body["fetch_mode"] = fetch_mode
        if schemas:
            body["schemas"] = list(schemas)
    return Call(
        "POST",
        f"{_sync_base(kind, sync_id)}/executions",
        lambda b: StartedExecution.model_validate(data_of(b)),
        json=body,
        conflict_is_running=True,
        idempotency_key=idempotency_key,
    )


def _parse_status(kind: SyncKind, body: Any) -> SyncStatus:
    return SyncStatus.model_validate(data_of(body) or {})


def get_sync_status(sync_id: str, *, kind: SyncKind = "model") -> Call[SyncStatus]:
    return Call("GET", f"{_sync_base(kind, sync_id)}/status", lambda b: _parse_status(kind, b))


def get_execution(
    sync_id: str, execution_id: str, *, kind: SyncKind = "model"
) -> Call[Execution | BulkExecution]:
    return Call(
        "GET",
        f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}",
        lambda b: parse_execution(kind, data_of(b)),
    )


@dataclass(frozen=True)
class ExecutionsPage:
    executions: list[Execution | BulkExecution]
    next_page_token: str | None


def list_executions_page(
    sync_id: str,
    *,
    kind: SyncKind = "model",
    page_token: str | None = None,
    only_completed: bool | None = None,
    ascending: bool | None = None,
    limit: int | None = None,
) -> Call[ExecutionsPage]:
    """One page of an execution list (newest first unless ``ascending``)."""
    params: dict[str, Any] = {"page_token": page_token, "ascending": ascending}
    if kind == "model":
        params["only_completed"] = only_completed
    else:
        params["only_terminal"] = only_completed
        params["limit"] = limit

    def parse(body: Any) -> ExecutionsPage:
        items = data_of(body) or []
        token = None
        if isinstance(body, dict) and isinstance(body.get("pagination"), dict):
            token = body["pagination"].get("next_page_token") or None
        return ExecutionsPage([parse_execution(kind, item) for item in items], token)

    return Call("GET", f"{_sync_base(kind, sync_id)}/executions", parse, params=params)


def cancel_execution(sync_id: str, execution_id: str, *, kind: SyncKind = "model") -> Call[str | None]:
    """Ask Polytomic to cancel one execution (asynchronous on Polytomic's side)."""
    return Call(
        "POST",
        f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}/cancel",
        lambda b: (data_of(b) or {}).get("message") if isinstance(data_of(b), dict) else None,
    )


def cancel_sync(sync_id: str, *, kind: SyncKind = "model") -> Call[str | None]:
    return Call(
        "POST",
        f"{_sync_base(kind, sync_id)}/cancel",
        lambda b: (data_of(b) or {}).get("message") if isinstance(data_of(b), dict) else None,
    )


def get_execution_log_urls(
    sync_id: str, execution_id: str, log_type: str = "records", *, kind: SyncKind = "model"
) -> Call[ExecutionLogUrls]:
    """Fresh signed URLs of an execution's log files.

    Model syncs: ``log_type`` is one of records, errors, warnings, inserts, updates,
    deletes. Bulk syncs have one log set (``.../logs``) and ignore ``log_type``.
    """
    base = f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}"
    if kind == "model":
        if log_type not in MODEL_LOG_TYPES:
            raise ValueError(f"log_type must be one of {', '.join(MODEL_LOG_TYPES)}, got {log_type!r}")
        path = f"{base}/{log_type}"
    else:
        path = f"{base}/logs"
    return Call("GET", path, lambda b: ExecutionLogUrls.model_validate(data_of(b) or {}))


def get_execution_logs_index(sync_id: str, execution_id: str) -> Call[ExecutionLogsIndex]:
    """A model sync execution's logs index: per log type, a record count and the endpoint of
    its signed URLs (``GET /api/syncs/{sync_id}/executions/{id}/logs``; bulk syncs have none,
    their ``.../logs`` is :func:`get_execution_log_urls`)."""
    return Call(
        "GET",
        f"{_sync_base('model', sync_id)}/executions/{_seg(execution_id, 'execution_id')}/logs",
        lambda b: ExecutionLogsIndex.model_validate(data_of(b) or {}),
    )


def get_log_urls_at(endpoint: str, base_url: str) -> Call[ExecutionLogUrls]:
    """The signed URLs behind an endpoint the logs index names (:attr:`LogsIndexEntry.url`).

    ``endpoint`` may be absolute or a path; it is resolved against ``base_url`` and must stay
    under ``base_url``'s ``/api/``, because the request carries the API key.

    :raises ValueError: the endpoint is anywhere else.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ValueError(f"endpoint must be a non-empty string, got {endpoint!r}")
    resolved = urlsplit(urljoin(base_url.rstrip("/") + "/", endpoint.strip()))
    base = urlsplit(base_url)
    api_root = base.path.rstrip("/") + "/api/"
    if (resolved.scheme, resolved.netloc.lower()) != (base.scheme, base.netloc.lower()) or not (
        resolved.path.startswith(api_root)
    ):
        raise ValueError("endpoint is not on the Polytomic API (the API key is only sent there)")
    params = dict(parse_qsl(resolved.query, keep_blank_values=True))
    path = resolved.path[len(base.path.rstrip("/")) :]
    return Call(
        "GET", path, lambda b: ExecutionLogUrls.model_validate(data_of(b) or {}), params=params or None
    )


# ------------------------------------------------------------------------ events pager


class EventPager:
    """Reads every event of a time window, whatever order the server returns them in.

    Polytomic's events endpoint filters by ``starting_after``/``ending_before`` (strict) and
    caps a page at 100, but does not document its ordering. The pager asks for a window;
    a page that is not full holds the whole window. A full page that came back oldest
    first is continued from its newest timestamp; any other full page (newest first,
    shuffled) makes the pager split the window in two and read each half. Windows are
    read oldest first, so events come out in ``created_at`` order, de-duplicated by id,
    with memory bounded by one page (the de-duplication set only keeps ids near the
    current position).

    Drive it with any transport::

        pager = EventPager(starting_after=t0)
        while (call := pager.next_call()) is not None:
            for event in pager.feed(transport.send(call)):
                ...
    """

    def __init__(
        self,
        *,
        event_type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
        limit: int = EVENTS_PAGE_LIMIT,
        now: datetime | None = None,
    ) -> None:
        now = now or datetime.now(timezone.utc)
        lo = starting_after if starting_after is not None else now - EVENT_RETENTION - timedelta(hours=1)
        self._event_type = event_type
        self._limit = limit
        # Stack of (lo, hi, page_token) windows; the top is the oldest unread window.
        self._stack: list[tuple[datetime, datetime | None, str | None]] = [
            (_aware(lo), _opt_aware(ending_before), None)
        ]
        self._current: tuple[datetime, datetime | None, str | None] | None = None
        self._seen: dict[str, datetime] = {}
        self.requests = 0

    def next_call(self) -> Call[dict[str, Any]] | None:
        if not self._stack:
            return None
        self._current = self._stack.pop()
        lo, hi, token = self._current
        self.requests += 1
        return list_events_page(
            event_type=self._event_type,
            starting_after=lo,
            ending_before=hi,
            limit=self._limit,
            page_token=token,
        )

    def feed(self, body: dict[str, Any]) -> list[Event]:
        assert self._current is not None, "feed() called without next_call()"
        lo, hi, _ = self._current
        raw = data_of(body) or []
        if not isinstance(raw, list):
            raw = []
        events = parse_events(raw)
        token = None
        pagination = body.get("pagination") if isinstance(body, dict) else None
        if isinstance(pagination, dict):
            token = pagination.get("next_page_token") or None
        if token:
            # The endpoint's description mentions tokens although its schema has none: follow one if sent.
            self._stack.append((lo, hi, str(token)))
            return self._emit(events)
        if len(raw) < self._limit:
            return self._emit(events)
        stamps = [e.created_at for e in events]
        if not stamps:
            return []
        oldest, newest = min(stamps), max(stamps)
        if stamps == sorted(stamps) and oldest < newest:
            # Oldest-first page: continue just before its newest timestamp
            # (ties are re-read, then de-duplicated).
            self._stack.append((newest - _ONE_US, hi, None))
            return self._emit(events)
        upper = hi if hi is not None else newest + _ONE_US
        if upper - lo <= 2 * _ONE_US:
            log.warning(
                "More than %d Polytomic events share the instant %s; some may be unreadable", self._limit, lo
            )
            return self._emit(events)
        mid = lo + (upper - lo) / 2
        if hi is None:
            self._stack.append((newest, None, None))
        # Right half pushed first so the left (older) half is read first.
        self._stack.append((mid - _ONE_US, upper, None))
        self._stack.append((lo, mid, None))
        return []

    def _emit(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in sorted(events, key=lambda e: (e.created_at, e.id)):
            if event.id in self._seen:
                continue
            self._seen[event.id] = event.created_at
            out.append(event)
        if self._stack:
            floor = self._stack[-1][0] - timedelta(seconds=1)
            self._seen = {k: v for k, v in self._seen.items() if v >= floor}
        return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _opt_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)
