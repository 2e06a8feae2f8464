"""Polytomic's endpoints as :class:`~airflow_provider_polytomic.client.Call` objects, without I/O.

The synchronous hook and the asynchronous path (triggers) both build their requests here,
so they agree on paths, parameters and models. Reading the events endpoint page after page
is :mod:`airflow_provider_polytomic.event_pager` (one window) and
:mod:`airflow_provider_polytomic.event_tail` (following it round after round).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

from airflow_provider_polytomic.client import Call, data_of
from airflow_provider_polytomic.models import (
    BulkExecution,
    BulkSync,
    BulkSyncSchema,
    Execution,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    Identity,
    Model,
    ModelSync,
    PolytomicConnection,
    StartedExecution,
    SyncKind,
    SyncStatus,
    Webhook,
    WebhookDeliveriesPage,
    WebhookDelivery,
)
from airflow_provider_polytomic.vocabulary import (
    WEBHOOK_SECRET_MAX_LENGTH,
    WEBHOOK_SECRET_MIN_LENGTH,
    is_valid_webhook_secret,
    sync_api_root,
)

log = logging.getLogger(__name__)

EVENTS_PAGE_LIMIT = 100
EVENT_RETENTION = timedelta(hours=48)
EVENT_VISIBILITY_LAG = timedelta(seconds=60)
"""How long after its ``created_at`` an event may still show up in the events API (an
assumption: Polytomic does not say). Readers that follow the endpoint re-read this far back."""
MODEL_LOG_TYPES = ("records", "errors", "warnings", "inserts", "updates", "deletes")


def _seg(value: str, name: str) -> str:
    """Quote a path segment, refusing empty values with a clear error."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value.strip(), safe="")


def _sync_base(kind: str, sync_id: str) -> str:
    return f"{sync_api_root(kind)}/{_seg(sync_id, 'sync_id')}"


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
    if not is_valid_webhook_secret(secret):
        # Never echo the secret itself.
        raise ValueError(
            f"secret must be a string of {WEBHOOK_SECRET_MIN_LENGTH} to {WEBHOOK_SECRET_MAX_LENGTH} "
            "characters (Polytomic's limit)"
        )
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
    base = _sync_base(kind, sync_id)
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
        f"{base}/executions",
        lambda b: StartedExecution.model_validate(data_of(b)),
        json=body,
        conflict_is_running=True,
        idempotency_key=idempotency_key,
    )


def get_sync_status(sync_id: str, *, kind: SyncKind = "model") -> Call[SyncStatus]:
    return Call(
        "GET", f"{_sync_base(kind, sync_id)}/status", lambda b: SyncStatus.model_validate(data_of(b) or {})
    )


def get_execution(
    sync_id: str, execution_id: str, *, kind: SyncKind = "model"
) -> Call[Execution | BulkExecution]:
    return Call(
        "GET",
        f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}",
        lambda b: parse_execution(kind, data_of(b)),
    )


class _TokenPage(Protocol):
    @property
    def next_page_token(self) -> str | None: ...


_PageT = TypeVar("_PageT", bound=_TokenPage)


def follow_page_tokens(read_page: Callable[[str | None], _PageT]) -> Iterator[_PageT]:
    """Every page of a listing paginated by ``next_page_token``: ``read_page(token)`` reads one
    (None: the first). Stops when a page has no token, or repeats the one it was read with."""
    token: str | None = None
    while True:
        page = read_page(token)
        yield page
        if not page.next_page_token or page.next_page_token == token:
            return
        token = page.next_page_token


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
    base = _sync_base(kind, sync_id)
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

    return Call("GET", f"{base}/executions", parse, params=params)


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


# --------------------------------------------------- sync definitions, models, connections


def get_sync(sync_id: str, *, kind: SyncKind = "model") -> Call[ModelSync | BulkSync]:
    """A sync's definition: ``GET /api/syncs/{id}`` (a :class:`ModelSync`: models and target)
    or ``GET /api/bulk/syncs/{id}`` (a :class:`BulkSync`: source and destination)."""
    base = _sync_base(kind, sync_id)
    model: type[ModelSync] | type[BulkSync] = ModelSync if kind == "model" else BulkSync
    return Call("GET", base, lambda b: model.model_validate(data_of(b)))


def list_bulk_sync_schemas(sync_id: str) -> Call[list[BulkSyncSchema]]:
    """``GET /api/bulk/syncs/{id}/schemas``: the objects a bulk sync copies (one page: the
    endpoint has no pagination)."""

    def parse(body: Any) -> list[BulkSyncSchema]:
        items = data_of(body) or []
        if not isinstance(items, list):
            raise ValueError(f"expected a list of schemas, got {type(items).__name__}")
        return [BulkSyncSchema.model_validate(item) for item in items if isinstance(item, dict)]

    return Call("GET", f"{_sync_base('bulk', sync_id)}/schemas", parse)


def get_model(model_id: str) -> Call[Model]:
    """``GET /api/models/{id}``: a model's source connection, configuration and fields."""
    return Call(
        "GET", f"/api/models/{_seg(model_id, 'model_id')}", lambda b: Model.model_validate(data_of(b))
    )


def get_connection(connection_id: str) -> Call[PolytomicConnection]:
    """``GET /api/connections/{id}``: a Polytomic connection's type and configuration."""
    return Call(
        "GET",
        f"/api/connections/{_seg(connection_id, 'connection_id')}",
        lambda b: PolytomicConnection.model_validate(data_of(b)),
    )
