"""In-memory state and behaviour of the fake Polytomic organization (no HTTP here)."""

from __future__ import annotations

import base64
import bisect
import gzip
import hashlib
import hmac
import itertools
import json
import random
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

from .clock import FakeClock
from .faults import Faults
from .records import (
    TERMINAL_STATUSES,
    Delivery,
    FakeApiError,
    Outcome,
    RecordedRequest,
    SyncKind,
    format_time,
)
from .webhooks import WebhookDispatcher

__all__ = [
    "EVENT_RETENTION",
    "EXECUTIONS_PAGE_SIZE",
    "IDEMPOTENCY_RETENTION",
    "FileResponse",
    "PolytomicState",
]

EVENT_RETENTION = timedelta(hours=48)
"""Events older than this are no longer returned."""
IDEMPOTENCY_RETENTION = timedelta(hours=24)
"""How long an ``Idempotency-Key`` replays its first response."""
EXECUTIONS_PAGE_SIZE = 50
"""Page size of the executions lists (bulk: default of ``limit``)."""

_LOG_TYPE_ALIASES = {
    "records": "records",
    "total": "records",
    "total_records": "records",
    "inserts": "inserts",
    "inserted": "inserts",
    "inserted_records": "inserts",
    "updates": "updates",
    "updated": "updates",
    "updated_records": "updates",
    "deletes": "deletes",
    "deleted": "deletes",
    "deleted_records": "deletes",
    "errors": "errors",
    "errored": "errors",
    "errored_records": "errors",
    "warnings": "warnings",
}
_PAYLOAD_LIST_FIELDS = (
    ("total_records", "records"),
    ("inserted_records", "inserts"),
    ("updated_records", "updates"),
    ("deleted_records", "deletes"),
    ("errored_records", "errors"),
)


@dataclass
class _Sync:
    id: str
    name: str
    kind: SyncKind
    active: bool = True
    target_connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source_connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    destination_connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Execution:
    id: str
    sync_id: str
    kind: SyncKind
    seq: int
    created_at: datetime
    status: str = "created"
    type: str = "manual"
    trigger: str = "manual"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "total": 0,
            "insert": 0,
            "update": 0,
            "delete": 0,
            "upserts": 0,
            "error": 0,
            "warnings": 0,
        }
    )
    errors: list[str] = field(default_factory=list)
    status_message: str | None = None
    is_test: bool = False
    is_resync: bool = False
    fetch_mode: str = "none"
    logs: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _LogFile:
    token: str
    filename: str
    record_type: str
    index: int
    records: list[dict[str, Any]]
    sync_id: str
    execution_id: str


@dataclass
class _StoredEvent:
    created_at: datetime
    seq: int
    event: dict[str, Any]


def _event_order(event: _StoredEvent) -> tuple[datetime, int]:
    return (event.created_at, event.seq)


def _created_at(event: _StoredEvent) -> datetime:
    return event.created_at


@dataclass
class _IdempotencyEntry:
    created_at: datetime
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @property
    def in_flight(self) -> bool:
        return self.status is None


@dataclass(frozen=True)
class FileResponse:
    """What the file route should answer (computed by :meth:`PolytomicState.file_response`)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class PolytomicState:
    """The organization, its syncs, executions, events, webhook and record-log files.

    This is the behaviour of the fake without any HTTP; :class:`FakePolytomic` adds the servers.
    Every method is thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-api-key-0123456789",
        organization_id: str | None = None,
        organization_name: str = "Fake Org",
        clock: FakeClock | None = None,
        storage_origin: bool = False,
        signed_url_ttl: float = 3600.0,
        gzip_record_logs: bool = False,
        record_log_format: Literal["json", "jsonl"] = "json",
        webhook_retry_base_delay: float = 0.05,
        error_shape: Literal["api_error", "legacy"] = "api_error",
        api_version: str = "2025-09-18",
    ) -> None:
        """Create an empty organization; see :class:`FakePolytomic` for the parameters."""
        if record_log_format not in ("json", "jsonl"):
            raise ValueError("record_log_format must be 'json' or 'jsonl'")
        if error_shape not in ("api_error", "legacy"):
            raise ValueError("error_shape must be 'api_error' or 'legacy'")
        self.api_key = api_key
        self.organization_id = organization_id or str(uuid.uuid4())
        self.organization_name = organization_name
        self.user_id = str(uuid.uuid4())
        self.user_email = "fake-user@example.com"
        self.clock = clock or FakeClock()
        self.storage_origin = storage_origin
        self.signed_url_ttl = signed_url_ttl
        self.gzip_record_logs = gzip_record_logs
        self.record_log_format: Literal["json", "jsonl"] = record_log_format
        self.error_shape: Literal["api_error", "legacy"] = error_shape
        self.api_version = api_version
        self.faults = Faults()
        self.cancel_delay = 0.0
        """Seconds an execution canceled through the API stays ``canceling`` (0: canceled at once)."""
        self.logs_index_urls: Literal["absolute", "path", "omitted", "foreign"] = "absolute"
        """How the logs index's per-type ``url`` and ``sync.completed``'s ``logs_url`` are written.
        The official SDK only says they name endpoints: ``absolute`` (on the API origin),
        ``path`` (``/api/...``), ``omitted`` (no url at all) or ``foreign`` (another host, which
        must never receive the API key)."""
        self.logs_index_available = True
        """False: ``GET /api/syncs/{id}/executions/{id}/logs`` answers 404, as a deployment
        without the logs index would."""
        self.url = ""
        """API origin, ``http://127.0.0.1:PORT`` once started."""
        self.storage_url: str | None = None
        """Storage origin when ``storage_origin=True`` and started."""
        self.requests: list[RecordedRequest] = []
        self.storage_requests: list[RecordedRequest] = []
        self.webhook_deliveries: list[Delivery] = []
        self.auto_complete: dict[str, tuple[str, float, dict[str, Any]]] = {}
        """Outcome of executions started through the API: sync id (or ``"*"``) -> (outcome, after, kwargs)."""
        self._lock = threading.RLock()
        self._syncs: dict[str, _Sync] = {}
        self._executions: dict[str, _Execution] = {}
        self._events: list[_StoredEvent] = []
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._files: dict[str, _LogFile] = {}
        self._idempotency: dict[str, _IdempotencyEntry] = {}
        self._timers: set[threading.Timer] = set()
        self._signing_key = secrets.token_bytes(32)
        self._random = random.Random(0)
        self._seq = itertools.count(1)
        self._last_event_time: datetime | None = None
        self._dispatcher = WebhookDispatcher(
            self.webhook_deliveries, self.clock.now, base_delay=webhook_retry_base_delay
        )

    # ------------------------------------------------------------------ syncs & executions

    def add_sync(self, name: str = "sync", *, kind: SyncKind = "model", sync_id: str | None = None) -> str:
        """Create a model or bulk sync and return its id (a uuid4 string unless ``sync_id`` is given)."""
        if kind not in ("model", "bulk"):
            raise ValueError("kind must be 'model' or 'bulk'")
        sid = sync_id or str(uuid.uuid4())
        with self._lock:
            self._syncs[sid] = _Sync(sid, name, kind)
        return sid

    def syncs(self) -> dict[str, str]:
        """Return ``{sync name: sync id}`` for every sync (last one wins on duplicate names)."""
        with self._lock:
            return {s.name: s.id for s in self._syncs.values()}

    def sync_kind(self, sync_id: str) -> SyncKind:
        """Return the kind of sync ``sync_id``; KeyError when unknown."""
        return self._sync(sync_id).kind

    def start_execution(self, sync_id: str, *, status: str = "running", trigger: str = "manual") -> str:
        """Create an execution (``created``), move it to ``status`` and return its id.

        Becoming ``running`` records ``sync.running`` / ``bulk_sync.running``. Unlike the API
        this does not refuse to start while another execution is active.
        """
        with self._lock:
            sync = self._sync(sync_id)
            now = self.clock.now()
            execution = _Execution(
                id=str(uuid.uuid4()),
                sync_id=sync.id,
                kind=sync.kind,
                seq=next(self._seq),
                created_at=now,
                updated_at=now,
                trigger=trigger,
            )
            self._executions[execution.id] = execution
            if status != "created":
                self._transition(execution, status)
            return execution.id

    def complete_execution(
        self,
        sync_id: str,
        execution_id: str,
        *,
        inserted: list[dict[str, Any]] | None = None,
        updated: list[dict[str, Any]] | None = None,
        deleted: list[dict[str, Any]] | None = None,
        errored: list[dict[str, Any]] | None = None,
        errors: int | None = None,
        warnings: int = 0,
        records_per_file: int = 1000,
        error_message: str | None = None,
    ) -> dict[str, Any]:
        """Finish an execution successfully (or with record errors) and return the event recorded.

        Model syncs end ``completed``. Without errors this records ``sync.completed`` with counts and
        record-log URL lists (files of ``records_per_file`` records; an empty list gives ``null``).
        With ``errored`` records or ``errors > 0`` it records ``sync.completed_with_errors`` and the
        execution's ``counts.error`` is set. Bulk syncs end ``completed`` (``bulk_sync.completed``) or,
        with errors, ``errors`` (``bulk_sync.completed_with_error``).

        The event is returned even when a fault knob keeps it out of the events API.
        """
        if records_per_file < 1:
            raise ValueError("records_per_file must be >= 1")
        ins, upd = list(inserted or []), list(updated or [])
        dele, err = list(deleted or []), list(errored or [])
        n_errors = errors if errors is not None else len(err)
        with self._lock:
            sync = self._sync(sync_id)
            execution = self._execution(sync_id, execution_id)
            self._ensure_started(execution)
            total = len(ins) + len(upd) + len(dele) + len(err)
            by_type = {
                "records": ins + upd + dele + err,
                "inserts": ins,
                "updates": upd,
                "deletes": dele,
                "errors": err,
                "warnings": [],
            }
            for record_type, records in by_type.items():
                execution.logs[record_type] = self._write_files(
                    execution, record_type, records, records_per_file
                )
            message = error_message or (f"{n_errors} records failed" if n_errors else None)
            if sync.kind == "model":
                execution.counts = {
                    "total": total,
                    "insert": len(ins),
                    "update": len(upd),
                    "delete": len(dele),
                    "upserts": 0,
                    "error": n_errors,
                    "warnings": warnings,
                }
                execution.errors = [message] if (n_errors and message) else []
                self._set_status(execution, "completed")
                if n_errors > 0:
                    payload = self._model_payload(sync, execution)
                    payload.update(error=message, number_of_errors=n_errors, number_of_warnings=warnings)
                    return self._record_event("sync.completed_with_errors", payload)
                payload = self._model_payload(sync, execution)
                payload.update(
                    status="completed",
                    trigger=execution.trigger,
                    record_count=total,
                    inserted_count=len(ins),
                    updated_count=len(upd),
                    upserted_count=0,
                    error_count=0,
                    warning_count=warnings,
                    warnings=[f"warning {i + 1}" for i in range(warnings)],
                )
                logs_url = self._logs_endpoint(sync.id, execution.id, "logs")
                if logs_url is not None:
                    payload["logs_url"] = logs_url
                expired = self.faults.expire_record_links
                for field_name, record_type in _PAYLOAD_LIST_FIELDS:
                    tokens = execution.logs.get(record_type) or []
                    payload[field_name] = [self._signed_url(t, expired=expired) for t in tokens] or None
                return self._record_event("sync.completed", payload)
            execution.counts.update(total=total, error=n_errors, warnings=warnings)
            execution.status_message = message if n_errors else None
            self._set_status(execution, "errors" if n_errors else "completed")
            payload = self._bulk_payload(sync, execution)
            payload["trigger_source"] = execution.trigger
            return self._record_event(
                "bulk_sync.completed_with_error" if n_errors else "bulk_sync.completed", payload
            )

    def fail_execution(
        self, sync_id: str, execution_id: str, *, error: str = "sync failed"
    ) -> dict[str, Any]:
        """Mark an execution ``failed``; record and return ``sync.failed`` / ``bulk_sync.failed``."""
        with self._lock:
            sync = self._sync(sync_id)
            execution = self._execution(sync_id, execution_id)
            self._ensure_started(execution)
            if sync.kind == "model":
                execution.errors = [error]
                self._set_status(execution, "failed")
                payload = self._model_payload(sync, execution)
                payload["error"] = error
                return self._record_event("sync.failed", payload)
            execution.status_message = error
            self._set_status(execution, "failed")
            payload = self._bulk_payload(sync, execution)
            payload.update(trigger_source=execution.trigger, error=error)
            return self._record_event("bulk_sync.failed", payload)

    def cancel_execution(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """Mark an execution ``canceled``; record and return ``sync.canceled`` / ``bulk_sync.canceled``."""
        with self._lock:
            sync = self._sync(sync_id)
            execution = self._execution(sync_id, execution_id)
            self._set_status(execution, "canceled")
            if sync.kind == "model":
                payload = self._model_payload(sync, execution)
                payload["status"] = "canceled"
                return self._record_event("sync.canceled", payload)
            return self._record_event("bulk_sync.canceled", self._bulk_payload(sync, execution))

    def set_execution_status(self, sync_id: str, execution_id: str, status: str) -> None:
        """Set any status string (e.g. ``interrupted`` or ``mystery``) without recording an event."""
        with self._lock:
            self._set_status(self._execution(sync_id, execution_id), status)

    def run_execution(
        self,
        sync_id: str,
        *,
        outcome: Outcome = "completed",
        after: float = 0.0,
        **complete_kwargs: Any,
    ) -> str:
        """Start an execution and reach ``outcome`` ``after`` real seconds later; return its id.

        ``complete_kwargs`` go to :meth:`complete_execution` (or ``error=`` to :meth:`fail_execution`).
        With ``after <= 0`` the outcome is applied before returning. A scheduled outcome is skipped
        if the execution reached a terminal status in the meantime (e.g. canceled through the API).
        """
        execution_id = self.start_execution(sync_id)
        self._schedule_outcome(sync_id, execution_id, outcome, after, dict(complete_kwargs))
        return execution_id

    def set_auto_outcome(
        self, sync_id: str | None, outcome: Outcome = "completed", after: float = 0.0, **kwargs: Any
    ) -> None:
        """Executions later started *through the API* for ``sync_id`` (None: every sync) reach ``outcome``.

        Stored in :attr:`auto_complete`; remove with :meth:`clear_auto_outcome`.
        """
        if outcome not in ("completed", "failed", "canceled", "completed_with_errors"):
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            self.auto_complete[sync_id or "*"] = (outcome, after, dict(kwargs))

    def clear_auto_outcome(self, sync_id: str | None = None) -> None:
        """Forget the automatic outcome for ``sync_id`` (None: the every-sync default)."""
        with self._lock:
            self.auto_complete.pop(sync_id or "*", None)

    def executions(self, sync_id: str) -> list[dict[str, Any]]:
        """Executions of ``sync_id`` as the API renders them, newest first."""
        with self._lock:
            self._sync(sync_id)
            return [self.execution_json(e) for e in self._sync_executions(sync_id, ascending=False)]

    def execution(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """One execution as the API renders it."""
        with self._lock:
            return self.execution_json(self._execution(sync_id, execution_id))

    def record_log_records(self, sync_id: str, execution_id: str, record_type: str) -> list[dict[str, Any]]:
        """Records served in the log files of ``record_type`` (``inserts``, ``inserted_records``, ...)."""
        kind = _LOG_TYPE_ALIASES.get(record_type)
        if kind is None:
            raise ValueError(f"unknown record type {record_type!r}")
        with self._lock:
            execution = self._execution(sync_id, execution_id)
            out: list[dict[str, Any]] = []
            for token in execution.logs.get(kind, []):
                out.extend(self._files[token].records)
            return out

    # ------------------------------------------------------------------ events

    def add_event(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        created_at: datetime | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a raw event (subject to the event fault knobs, also delivered to the webhook)."""
        with self._lock:
            return self._record_event(type, dict(payload), created_at=created_at, event_id=event_id)

    def events(self) -> list[dict[str, Any]]:
        """Stored events not yet expired (48 h), oldest first, duplicates included, as the API shows them."""
        cutoff = self.clock.now() - EVENT_RETENTION
        with self._lock:
            return [dict(e.event) for e in self._events if e.created_at >= cutoff]

    def list_events(
        self,
        *,
        type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """The ``GET /api/events`` answer for already-validated parameters (fault knobs applied)."""
        rows = self.events_rows(type, starting_after, ending_before)
        if self.faults.newest_first:
            rows.reverse()
        rows = rows[:limit]
        if self.faults.reorder_events:
            with self._lock:
                self._random.shuffle(rows)
        return [dict(r.event) for r in rows]

    def events_rows(
        self, type_: str | None, starting_after: datetime | None, ending_before: datetime | None
    ) -> list[_StoredEvent]:
        """Unexpired stored events matching the filters, ascending."""
        cutoff = self.clock.now() - EVENT_RETENTION
        with self._lock:
            events = self._events
            lo = bisect.bisect_left(events, cutoff, key=_created_at)
            if starting_after is not None:
                lo = max(lo, bisect.bisect_right(events, starting_after, key=_created_at))
            hi = (
                len(events)
                if ending_before is None
                else bisect.bisect_left(events, ending_before, key=_created_at)
            )
            return [e for e in events[lo:hi] if type_ is None or e.event["type"] == type_]

    def wait_for_deliveries(self, timeout: float | None = 10.0) -> bool:
        """Block until the webhook queue is drained (retries included); False on timeout."""
        return self._dispatcher.wait(timeout)

    # ------------------------------------------------------------------ webhooks

    def webhooks(self) -> list[dict[str, Any]]:
        """The organization's webhooks (zero or one)."""
        with self._lock:
            return [dict(w) for w in self._webhooks.values()]

    def create_webhook(self, body: Any) -> dict[str, Any]:
        """Validate ``body`` like ``POST /api/webhooks`` and create the webhook."""
        endpoint, secret = self._validate_webhook_body(body)
        with self._lock:
            if self._webhooks:
                existing = next(iter(self._webhooks))
                raise FakeApiError(
                    422,
                    f"only one webhook per organization is allowed; update or delete webhook {existing}",
                    "webhook_exists",
                )
            hook: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "organization_id": self.organization_id,
                "endpoint": endpoint,
                "secret": secret,
                "disabled": False,
                "created_at": format_time(self.clock.now()),
            }
            self._webhooks[hook["id"]] = hook
            return dict(hook)

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Return one webhook; 404 error when unknown."""
        with self._lock:
            return dict(self._webhook(webhook_id))

    def update_webhook(self, webhook_id: str, body: Any) -> dict[str, Any]:
        """Validate ``body`` like ``PUT /api/webhooks/{id}`` and update endpoint and secret."""
        with self._lock:
            hook = self._webhook(webhook_id)
            endpoint, secret = self._validate_webhook_body(body)
            hook.update(endpoint=endpoint, secret=secret)
            return dict(hook)

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; 404 error when unknown."""
        with self._lock:
            self._webhook(webhook_id)
            del self._webhooks[webhook_id]

    def set_webhook_disabled(self, webhook_id: str, disabled: bool) -> dict[str, Any]:
        """Disable or enable a webhook."""
        with self._lock:
            hook = self._webhook(webhook_id)
            hook["disabled"] = disabled
            return dict(hook)

    def _validate_webhook_body(self, body: Any) -> tuple[str, str]:
        if not isinstance(body, dict):
            raise FakeApiError(422, "request body must be a JSON object")
        endpoint, secret = body.get("endpoint"), body.get("secret")
        org = body.get("organization_id")
        if org not in (None, "", self.organization_id):
            raise FakeApiError(403, "organization_id does not match the caller's organization")
        if not isinstance(endpoint, str) or not endpoint:
            raise FakeApiError(422, "endpoint is required")
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FakeApiError(422, "endpoint must be an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise FakeApiError(422, "secret is required")
        if not 6 <= len(secret) <= 32:
            raise FakeApiError(422, "secret must be between 6 and 32 characters")
        return endpoint, secret

    def _webhook(self, webhook_id: str) -> dict[str, Any]:
        hook = self._webhooks.get(webhook_id)
        if hook is None:
            raise FakeApiError(404, f"webhook {webhook_id} not found")
        return hook

    # ------------------------------------------------------------------ API operations

    def identity(self) -> dict[str, Any]:
        """The ``GET /api/me`` data."""
        return {
            "id": self.user_id,
            "email": self.user_email,
            "organization_id": self.organization_id,
            "organization_name": self.organization_name,
            "is_user": True,
            "is_organization": False,
            "is_partner": False,
            "is_system": False,
            "role": "admin",
        }

    def sync_json(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """Minimal sync object ``{id, name, active}``; 404 when unknown or of the other kind."""
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            return {"id": sync.id, "name": sync.name, "active": sync.active}

    def api_start(self, sync_id: str, kind: SyncKind, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/syncs/{id}/executions`` and the bulk equivalent: the response ``data``."""
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            active = [e for e in self._sync_executions(sync.id) if e.status not in TERMINAL_STATUSES]
            if active:
                raise FakeApiError(
                    409,
                    f"sync {sync.id} is already running (execution {active[0].id})",
                    "sync_already_running",
                )
            execution_id = self.start_execution(sync.id, status="created", trigger="api")
            execution = self._executions[execution_id]
            if kind == "model":
                execution.is_test = bool(body.get("test"))
                execution.is_resync = bool(body.get("resync"))
                data: dict[str, Any] = {
                    "id": execution.id,
                    "status": "created",
                    "created_at": format_time(execution.created_at),
                }
            else:
                execution.is_test = bool(body.get("test"))
                execution.is_resync = body.get("resync_mode") is not None
                execution.fetch_mode = body.get("fetch_mode") or "none"
                data = self.execution_json(execution)
            self._transition(execution, "running")
            auto = self.auto_complete.get(sync.id) or self.auto_complete.get("*")
        if auto is not None:
            outcome, after, kwargs = auto
            self._schedule_outcome(sync.id, execution_id, outcome, after, dict(kwargs))
        return data

    def api_cancel_execution(self, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST .../executions/{id}/cancel``: the response ``data``."""
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            execution = self._api_execution(sync.id, execution_id)
            if execution.status in TERMINAL_STATUSES:
                raise FakeApiError(400, f"execution {execution_id} is not active (status {execution.status})")
            self._request_cancel(execution)
            return {"message": f"cancellation of execution {execution_id} requested"}

    def api_cancel_sync(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST /api/syncs/{id}/cancel``: cancel whatever execution is active."""
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            active = [e for e in self._sync_executions(sync.id) if e.status not in TERMINAL_STATUSES]
            for execution in active:
                self._request_cancel(execution)
            if not active:
                return {"message": f"sync {sync_id} has no active execution"}
            return {"message": f"cancellation of sync {sync_id} requested"}

    def api_execution(self, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
        """``GET .../executions/{id}``: the response ``data``."""
        with self._lock:
            self._api_sync(sync_id, kind)
            return self.execution_json(self._api_execution(sync_id, execution_id))

    def api_status(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``GET /api/syncs/{id}/status`` (and bulk): current, last and next execution."""
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            newest = self._sync_executions(sync.id, ascending=False)
            current = next((e for e in newest if e.status not in TERMINAL_STATUSES), None)
            last = next((e for e in newest if e.status in TERMINAL_STATUSES), None)
            data: dict[str, Any] = {
                "current_execution": self.execution_json(current) if current else None,
                "last_execution": self.execution_json(last) if last else None,
                "next_execution_time": None,
            }
            if kind == "bulk":
                data["ingestion_status"] = {
                    "enabled": False,
                    "is_running": False,
                    "status": "ok",
                    "status_message": "",
                    "position": "",
                    "position_time": None,
                    "highwater_mark": "",
                    "updated_at": None,
                }
            return data

    def api_bulk_statuses(self, sync_ids: list[str], active_only: bool) -> list[dict[str, Any]]:
        """``GET /api/bulk/syncs/status``: one summary per bulk sync (all when ``sync_ids`` is empty)."""
        with self._lock:
            if sync_ids:
                syncs = [self._api_sync(s, "bulk") for s in sync_ids]
            else:
                syncs = [s for s in self._syncs.values() if s.kind == "bulk"]
            out: list[dict[str, Any]] = []
            for sync in syncs:
                newest = self._sync_executions(sync.id, ascending=False)
                if active_only and not sync.active:
                    continue
                out.append(
                    {
                        "sync_id": sync.id,
                        "status": newest[0].status if newest else None,
                        "nextExecutionTime": None,
                        "schemas": [],
                    }
                )
            return out

    def api_list_executions(
        self,
        sync_id: str,
        kind: SyncKind,
        *,
        page_token: str | None,
        ascending: bool,
        only_terminal: bool,
        limit: int = EXECUTIONS_PAGE_SIZE,
    ) -> dict[str, Any]:
        """Executions list envelope ``{"data": [...], "pagination": {...}}`` (pagination only if more)."""
        offset = 0
        if page_token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
                offset = int(decoded["o"])
                if offset < 0 or decoded.get("s") != sync_id:
                    raise ValueError(page_token)
            except (ValueError, KeyError, TypeError):
                raise FakeApiError(400, "invalid page_token") from None
        with self._lock:
            sync = self._api_sync(sync_id, kind)
            rows = self._sync_executions(sync.id, ascending=ascending)
            if only_terminal:
                rows = [e for e in rows if e.status in TERMINAL_STATUSES]
                if kind == "bulk":
                    rows.sort(key=lambda e: (e.updated_at or e.created_at, e.seq), reverse=not ascending)
            page = rows[offset : offset + limit]
            envelope: dict[str, Any] = {"data": [self.execution_json(e) for e in page]}
            if offset + limit < len(rows):
                token = json.dumps({"o": offset + limit, "s": sync_id}).encode()
                next_token = base64.urlsafe_b64encode(token).decode().rstrip("=")
                envelope["pagination"] = {"next_page_token": next_token}
            return envelope

    def api_log_urls(self, sync_id: str, execution_id: str, kind: SyncKind, log_type: str) -> dict[str, Any]:
        """Fresh signed URLs of one execution's log files: ``{"urls": [...], "expires": ...}``."""
        with self._lock:
            self._api_sync(sync_id, kind)
            execution = self._api_execution(sync_id, execution_id)
            tokens = execution.logs.get(log_type, [])
            return {"urls": [self._signed_url(t) for t in tokens], "expires": format_time(self._expires_at())}

    def api_logs_index(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """A model execution's logs index: per log type ``{"count", "url"}`` (see
        :attr:`logs_index_urls` for the url)."""
        if not self.logs_index_available:
            raise FakeApiError(404, "not found")
        with self._lock:
            self._api_sync(sync_id, "model")
            execution = self._api_execution(sync_id, execution_id)
            index: dict[str, Any] = {}
            for log_type in ("records", "errors", "warnings", "inserts", "updates", "deletes"):
                count = sum(len(self._files[t].records) for t in execution.logs.get(log_type, []))
                entry: dict[str, Any] = {"count": count}
                url = self._logs_endpoint(sync_id, execution_id, log_type)
                if url is not None:
                    entry["url"] = url
                index[log_type] = entry
            return index

    def _logs_endpoint(self, sync_id: str, execution_id: str, tail: str) -> str | None:
        path = f"/api/syncs/{sync_id}/executions/{execution_id}/{tail}"
        style = self.logs_index_urls
        if style == "omitted":
            return None
        if style == "path":
            return path
        if style == "foreign":
            return f"http://logs.invalid{path}"
        return f"{self.url}{path}"

    def api_log_file_url(self, sync_id: str, execution_id: str, log_type: str, filename: str) -> str:
        """Fresh signed URL of one log file by name (with or without extension); 404 when unknown."""
        with self._lock:
            self._api_sync(sync_id, "model")
            execution = self._api_execution(sync_id, execution_id)
            for token in execution.logs.get(log_type, []):
                name = self._files[token].filename
                if filename in (name, name.split(".", 1)[0]):
                    return self._signed_url(token)
            raise FakeApiError(404, f"log file {filename} not found")

    def file_response(self, token: str, filename: str, query: dict[str, str]) -> FileResponse:
        """Serve a signed record-log file URL (403 when expired or badly signed, 404 when unknown)."""
        with self._lock:
            log = self._files.get(token)
        if log is None or log.filename != filename:
            return _error_file(404, "NoSuchKey", "the specified key does not exist")
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            return _error_file(403, "AccessDenied", "missing or malformed expires")
        expected = self._signature(token, filename, expires)
        if not hmac.compare_digest(expected, query.get("sig", "")):
            return _error_file(403, "SignatureDoesNotMatch", "the request signature does not match")
        if self.clock.timestamp() > expires:
            return _error_file(403, "AccessDenied", "request has expired")
        if self.record_log_format == "jsonl":
            raw = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in log.records).encode()
            content_type = "application/x-ndjson"
        else:
            raw = json.dumps(log.records, separators=(",", ":")).encode()
            content_type = "application/json"
        headers = [("content-type", content_type)]
        if self.gzip_record_logs:
            raw = gzip.compress(raw, mtime=0)
            if log.index % 2 == 1:
                headers.append(("content-encoding", "gzip"))
            else:
                headers = [("content-type", "application/gzip")]
        headers.append(("content-length", str(len(raw))))
        return FileResponse(200, headers, raw)

    def idempotency_begin(self, key: str) -> _IdempotencyEntry | None:
        """Return the stored entry for ``key`` (replay or in flight) or reserve it and return None."""
        now = self.clock.now()
        with self._lock:
            stale_keys = [
                k for k, v in self._idempotency.items() if now - v.created_at > IDEMPOTENCY_RETENTION
            ]
            for stale in stale_keys:
                del self._idempotency[stale]
            entry = self._idempotency.get(key)
            if entry is not None:
                return entry
            self._idempotency[key] = _IdempotencyEntry(created_at=now)
            return None

    def idempotency_finish(
        self, key: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Store the first response for ``key``."""
        with self._lock:
            entry = self._idempotency.get(key)
            if entry is not None:
                entry.status, entry.headers, entry.body = status, headers, body

    def idempotency_abort(self, key: str) -> None:
        """Forget a reservation whose request never produced a response."""
        with self._lock:
            entry = self._idempotency.get(key)
            if entry is not None and entry.in_flight:
                del self._idempotency[key]

    def error_body(self, status: int, message: str, key: str | None = None) -> dict[str, Any]:
        """An error body in the configured shape (``ApiError`` or legacy ``RestErrResponse``)."""
        err = FakeApiError(status, message, key)
        if self.error_shape == "legacy":
            from http import HTTPStatus

            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            return {"code": status, "error": message, "status": phrase, "context": {}}
        return {"status": status, "key": err.key, "message": message, "metadata": {}}

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary of the state (``GET /_fake/state``)."""
        with self._lock:
            return {
                "url": self.url,
                "storage_url": self.storage_url,
                "organization_id": self.organization_id,
                "syncs": [
                    {"id": s.id, "name": s.name, "kind": s.kind, "executions": self.executions(s.id)}
                    for s in self._syncs.values()
                ],
                "events": len(self.events()),
                "webhooks": self.webhooks(),
                "requests": len(self.requests),
                "storage_requests": len(self.storage_requests),
                "webhook_deliveries": len(self.webhook_deliveries),
                "now": format_time(self.clock.now()),
            }

    # ------------------------------------------------------------------ rendering

    def execution_json(self, execution: _Execution) -> dict[str, Any]:
        """Render an execution as the API does (model: §6.2 object, bulk: ``BulkSyncExecution``)."""
        if execution.kind == "model":
            return {
                "id": execution.id,
                "status": execution.status,
                "type": execution.type,
                "created_at": format_time(execution.created_at),
                "started_at": format_time(execution.started_at),
                "completed_at": format_time(execution.completed_at),
                "counts": dict(execution.counts),
                "errors": list(execution.errors),
            }
        return {
            "id": execution.id,
            "status": execution.status,
            "status_message": execution.status_message,
            "type": execution.type,
            "fetch_mode": execution.fetch_mode,
            "output_disposition": "retain",
            "is_partial": False,
            "is_resync": execution.is_resync,
            "is_test": execution.is_test,
            "record_count": execution.counts["total"],
            "error_count": execution.counts["error"],
            "warning_count": execution.counts["warnings"],
            "created_at": format_time(execution.created_at),
            "started_at": format_time(execution.started_at),
            "updated_at": format_time(execution.updated_at),
            "completed_at": format_time(execution.completed_at),
            "schemas": [],
        }

    # ------------------------------------------------------------------ internals

    def _sync(self, sync_id: str) -> _Sync:
        sync = self._syncs.get(sync_id)
        if sync is None:
            raise KeyError(f"unknown sync {sync_id!r}")
        return sync

    def _execution(self, sync_id: str, execution_id: str) -> _Execution:
        execution = self._executions.get(execution_id)
        if execution is None or execution.sync_id != sync_id:
            raise KeyError(f"unknown execution {execution_id!r} of sync {sync_id!r}")
        return execution

    def _api_sync(self, sync_id: str, kind: SyncKind) -> _Sync:
        sync = self._syncs.get(sync_id)
        if sync is None or sync.kind != kind:
            raise FakeApiError(404, f"{'bulk ' if kind == 'bulk' else ''}sync {sync_id} not found")
        return sync

    def _api_execution(self, sync_id: str, execution_id: str) -> _Execution:
        execution = self._executions.get(execution_id)
        if execution is None or execution.sync_id != sync_id:
            raise FakeApiError(404, f"execution {execution_id} not found")
        return execution

    def _sync_executions(self, sync_id: str, *, ascending: bool = True) -> list[_Execution]:
        rows = [e for e in self._executions.values() if e.sync_id == sync_id]
        rows.sort(key=lambda e: (e.created_at, e.seq), reverse=not ascending)
        return rows

    def _set_status(self, execution: _Execution, status: str) -> None:
        now = self.clock.now()
        execution.status = status
        execution.updated_at = now
        if status in TERMINAL_STATUSES and execution.completed_at is None:
            execution.completed_at = now

    def _ensure_started(self, execution: _Execution) -> None:
        if execution.started_at is None:
            execution.started_at = self.clock.now()

    def _transition(self, execution: _Execution, status: str) -> None:
        self._set_status(execution, status)
        if status == "running":
            self._ensure_started(execution)
            sync = self._syncs[execution.sync_id]
            if sync.kind == "model":
                self._record_event("sync.running", self._model_payload(sync, execution))
            else:
                self._record_event("bulk_sync.running", self._bulk_payload(sync, execution))

    def _request_cancel(self, execution: _Execution) -> None:
        if self.cancel_delay > 0:
            self._set_status(execution, "canceling")
            self._later(self.cancel_delay, self._finish_cancel, execution.sync_id, execution.id)
        else:
            self.cancel_execution(execution.sync_id, execution.id)

    def _finish_cancel(self, sync_id: str, execution_id: str) -> None:
        with self._lock:
            if self._executions[execution_id].status == "canceling":
                self.cancel_execution(sync_id, execution_id)

    def _schedule_outcome(
        self, sync_id: str, execution_id: str, outcome: str, after: float, kwargs: dict[str, Any]
    ) -> None:
        if after <= 0:
            self._apply_outcome(sync_id, execution_id, outcome, kwargs)
        else:
            self._later(after, self._apply_outcome, sync_id, execution_id, outcome, kwargs)

    def _apply_outcome(self, sync_id: str, execution_id: str, outcome: str, kwargs: dict[str, Any]) -> None:
        with self._lock:
            if self._execution(sync_id, execution_id).status in TERMINAL_STATUSES | {"canceling"}:
                return
            if outcome == "completed":
                self.complete_execution(sync_id, execution_id, **kwargs)
            elif outcome == "completed_with_errors":
                if not kwargs.get("errors"):
                    kwargs["errors"] = max(1, len(kwargs.get("errored") or []))
                self.complete_execution(sync_id, execution_id, **kwargs)
            elif outcome == "failed":
                self.fail_execution(sync_id, execution_id, error=kwargs.get("error", "sync failed"))
            elif outcome == "canceled":
                self.cancel_execution(sync_id, execution_id)
            else:
                raise ValueError(f"unknown outcome {outcome!r}")

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
            fn(*args)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _cancel_timers(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

    def _model_payload(self, sync: _Sync, execution: _Execution) -> dict[str, Any]:
        return {
            "execution_id": execution.id,
            "organization_id": self.organization_id,
            "sync_id": sync.id,
            "sync_name": sync.name,
            "target_connection_id": sync.target_connection_id,
        }

    def _bulk_payload(self, sync: _Sync, execution: _Execution) -> dict[str, Any]:
        return {
            "execution_id": execution.id,
            "organization_id": self.organization_id,
            "sync_id": sync.id,
            "sync_name": sync.name,
            "source_connection_id": sync.source_connection_id,
            "destination_connection_id": sync.destination_connection_id,
        }

    def _event_time(self, created_at: datetime | None) -> datetime:
        if created_at is not None:
            return created_at if created_at.tzinfo else created_at.replace(tzinfo=self.clock.now().tzinfo)
        now = self.clock.now()
        last = self._last_event_time
        if last is not None and now <= last and last - now < timedelta(seconds=1):
            now = last + timedelta(microseconds=1)
        self._last_event_time = now
        return now

    def _record_event(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        created_at: datetime | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        when = self._event_time(created_at)
        event: dict[str, Any] = {
            "id": event_id or str(uuid.uuid4()),
            "organization_id": self.organization_id,
            "type": event_type,
            "created_at": format_time(when),
            "event": payload,
        }
        if not self.faults.take_drop_event(event_type):
            copies = 2 if self.faults.duplicate_events else 1
            for _ in range(copies):
                # Kept ordered by (created_at, seq) so the events endpoint can bisect a window:
                # a linear scan per page made a 100,000-event window take minutes.
                bisect.insort(self._events, _StoredEvent(when, next(self._seq), event), key=_event_order)
        hook = next((h for h in self._webhooks.values() if not h["disabled"]), None)
        if hook is not None and not self.faults.take_drop_webhook():
            body = json.dumps(event, separators=(",", ":")).encode()
            self._dispatcher.submit(hook["endpoint"], hook["secret"], body, event["id"], event_type)
        return json.loads(json.dumps(event))

    def _write_files(
        self, execution: _Execution, record_type: str, records: list[dict[str, Any]], per_file: int
    ) -> list[str]:
        ext = ".jsonl" if self.record_log_format == "jsonl" else ".json"
        if self.gzip_record_logs:
            ext += ".gz"
        tokens = []
        for index, start in enumerate(range(0, len(records), per_file), start=1):
            token = uuid.uuid4().hex
            self._files[token] = _LogFile(
                token,
                f"{record_type}-{index:04d}{ext}",
                record_type,
                index,
                records[start : start + per_file],
                execution.sync_id,
                execution.id,
            )
            tokens.append(token)
        return tokens

    def _expires_at(self, *, expired: bool = False) -> datetime:
        when = self.clock.now() + timedelta(seconds=-60 if expired else self.signed_url_ttl)
        return when.replace(microsecond=0)

    def _signature(self, token: str, filename: str, expires: int) -> str:
        msg = f"{token}/{filename}:{expires}".encode()
        return hmac.new(self._signing_key, msg, hashlib.sha256).hexdigest()[:40]

    def _signed_url(self, token: str, *, expired: bool = False) -> str:
        log = self._files[token]
        expires = int(self._expires_at(expired=expired).timestamp())
        base = self.storage_url if (self.storage_origin and self.storage_url) else self.url
        sig = self._signature(token, log.filename, expires)
        return f"{base}/files/{token}/{log.filename}?expires={expires}&sig={sig}"


def _error_file(status: int, code: str, message: str) -> FileResponse:
    body = json.dumps({"code": code, "message": message}).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    return FileResponse(status, headers, body)
