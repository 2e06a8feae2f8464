"""The fake Polytomic organization as one object to drive from tests (no HTTP here).

:class:`PolytomicState` is a facade: it owns one backend per resource (:mod:`.backends`)
and offers the methods a test needs to declare connections, models and syncs, drive
executions, inject events and inspect webhook deliveries. :class:`~.server.FakePolytomic`
serves it over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from .backends.catalog import ModelField
from .backends.context import (
    EVENTS_ORDERS,
    EventsOrder,
    FakeSettings,
    Knob,
    LogsIndexUrlStyle,
    Org,
    OrgAttribute,
)
from .backends.events import EVENT_RETENTION
from .backends.executions import EXECUTIONS_PAGE_SIZE
from .backends.idempotency import IDEMPOTENCY_RETENTION
from .backends.record_logs import FileResponse
from .backends.syncs import SyncSpec
from .backends.wiring import Backends, build_backends
from .clock import FakeClock
from .faults import Faults
from .records import Delivery, ExecutionEnding, RecordedRequest, SyncKind, format_time
from .responses import error_body, identity_json
from .responses.executions import execution_json
from .responses.webhooks import webhook_json
from .webhooks import WebhookDispatcher

__all__ = [
    "EVENTS_ORDERS",
    "EVENT_RETENTION",
    "EXECUTIONS_PAGE_SIZE",
    "IDEMPOTENCY_RETENTION",
    "Backends",
    "EventsOrder",
    "FileResponse",
    "PolytomicState",
]


class PolytomicState:
    """The organization: connections, models, syncs, executions, events, webhook, record logs.

    Every method is thread-safe. Behaviour knobs are attributes that can change at any time
    (``fake.cancel_delay = 0.5``); docs/testing.md says what each one stands for.
    """

    organization_id: OrgAttribute[str] = OrgAttribute()
    organization_name: OrgAttribute[str] = OrgAttribute()
    user_id: OrgAttribute[str] = OrgAttribute()
    user_email: OrgAttribute[str] = OrgAttribute()
    url: OrgAttribute[str] = OrgAttribute()
    """API origin, ``http://127.0.0.1:PORT`` once started."""
    storage_url: OrgAttribute[str | None] = OrgAttribute()
    """Storage origin when ``storage_origin=True`` and started."""
    storage_origin: OrgAttribute[bool] = OrgAttribute()
    signed_url_ttl: Knob[float] = Knob()
    gzip_record_logs: Knob[bool] = Knob()
    record_log_format: Knob[Literal["json", "jsonl"]] = Knob()
    error_shape: Knob[Literal["api_error", "legacy"]] = Knob()
    api_version: Knob[str] = Knob()
    cancel_delay: Knob[float] = Knob()
    """Seconds an execution canceled through the API stays ``canceling`` (0: canceled at once)."""
    logs_index_urls: Knob[LogsIndexUrlStyle] = Knob()
    """How the logs index's per-type ``url`` and ``sync.completed``'s ``logs_url`` are written:
    ``absolute``, ``path``, ``omitted`` or ``foreign`` (see :class:`FakeSettings`)."""
    logs_index_available: Knob[bool] = Knob()
    """False: the logs index answers 404, as a deployment without it would."""
    webhook_disable_after: Knob[int | None] = Knob()
    """Disable the webhook after this many consecutive events whose every attempt failed
    (None: never). Polytomic does not document its rule."""
    webhook_deliveries_page_size: Knob[int] = Knob()
    export_job_polls: Knob[int] = Knob()
    console_log_limit: Knob[int] = Knob()
    model_executions_page_size: Knob[int] = Knob()

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
        webhook_disable_after: int | None = None,
        events_order: EventsOrder = "oldest_first",
    ) -> None:
        """Create an empty organization; see :class:`FakePolytomic` for the parameters."""
        if record_log_format not in ("json", "jsonl"):
            raise ValueError("record_log_format must be 'json' or 'jsonl'")
        if error_shape not in ("api_error", "legacy"):
            raise ValueError("error_shape must be 'api_error' or 'legacy'")
        if webhook_disable_after is not None and webhook_disable_after < 1:
            raise ValueError(
                f"webhook_disable_after must be None or at least 1, got {webhook_disable_after!r}"
            )
        self.api_key = api_key
        self.clock = clock or FakeClock()
        self.faults = Faults()
        settings = FakeSettings(
            signed_url_ttl=signed_url_ttl,
            gzip_record_logs=gzip_record_logs,
            record_log_format=record_log_format,
            error_shape=error_shape,
            api_version=api_version,
            webhook_disable_after=webhook_disable_after,
        )
        self.org = Org(
            organization_id=organization_id,
            organization_name=organization_name,
            clock=self.clock,
            settings=settings,
            faults=self.faults,
        )
        self.org.storage_origin = storage_origin
        self.events_order = events_order
        self.backends = build_backends(self.org, retry_base_delay=webhook_retry_base_delay)
        self.requests: list[RecordedRequest] = []
        """Every request the API origin received."""
        self.storage_requests: list[RecordedRequest] = []
        """Every request the storage origin received."""
        self.webhook_deliveries: list[Delivery] = self.backends.webhooks.deliveries
        """Every webhook delivery attempt, oldest first."""
        self.auto_complete = self.backends.lifecycle.auto_complete
        """Outcome of executions started through the API: sync id (or ``"*"``) -> (outcome, after, kwargs)."""

    @property
    def events_order(self) -> EventsOrder:
        """How ``GET /api/events`` orders its pages (see :class:`FakeSettings`); settable at any time."""
        return self.org.settings.events_order

    @events_order.setter
    def events_order(self, value: EventsOrder) -> None:
        if value not in EVENTS_ORDERS:
            raise ValueError(f"events_order must be one of {', '.join(EVENTS_ORDERS)}, got {value!r}")
        self.org.settings.events_order = value

    @property
    def webhook_retry_base_delay(self) -> float:
        """First retry delay of webhook deliveries in seconds (doubles with each retry)."""
        return self.backends.webhooks.dispatcher.base_delay

    @webhook_retry_base_delay.setter
    def webhook_retry_base_delay(self, value: float) -> None:
        self.backends.webhooks.dispatcher.base_delay = value

    @property
    def _dispatcher(self) -> WebhookDispatcher:
        return self.backends.webhooks.dispatcher

    # ------------------------------------------------------------------ connections & models

    def add_connection(
        self,
        type: str,
        *,
        name: str | None = None,
        configuration: Mapping[str, Any] | None = None,
        connection_id: str | None = None,
        status: str = "healthy",
        status_error: str | None = None,
    ) -> str:
        """Create a connection and return its id.

        ``type`` is a connection type id (``snowflake``, ``bigquery``, ``redshift``,
        ``postgresql``, ``databricks``, ``salesforce``, ``hubspot`` come with a realistic
        configuration; any other type needs ``configuration``). Example::

            warehouse = fake.add_connection("snowflake", configuration={
                "account": "acme-xy12345", "dbname": "ANALYTICS", "warehouse": "COMPUTE_WH"})
        """
        return self.backends.catalog.add_connection(
            type,
            name=name,
            configuration=configuration,
            connection_id=connection_id,
            status=status,
            status_error=status_error,
        )

    def add_model(
        self,
        connection: str,
        *,
        name: str | None = None,
        table: str | None = None,
        query: str | None = None,
        object: str | None = None,
        fields: Sequence[str | ModelField] | None = None,
        identifier: str | None = None,
        tracking_columns: Sequence[str] | None = None,
        model_id: str | None = None,
    ) -> str:
        """Create a model reading a ``table``, running a ``query`` or reading an ``object``
        from ``connection`` (a connection id, or a type for that type's default connection);
        return its id. Example::

            users = fake.add_model("bigquery", table="analytics.users", fields=["id", "email"])
        """
        return self.backends.catalog.add_model(
            connection,
            name=name,
            table=table,
            query=query,
            object=object,
            fields=fields,
            identifier=identifier,
            tracking_columns=tracking_columns,
            model_id=model_id,
        )

    # ------------------------------------------------------------------ syncs & executions

    def add_sync(
        self,
        name: str = "sync",
        *,
        kind: SyncKind = "model",
        sync_id: str | None = None,
        source: str | None = None,
        models: Sequence[str] | None = None,
        target: str | None = None,
        target_object: str | None = None,
        schemas: Sequence[str] | None = None,
        schedule: str | Mapping[str, Any] | None = None,
        mode: str | None = None,
        active: bool = True,
    ) -> str:
        """Create a model or bulk sync and return its id (a uuid4 string unless ``sync_id`` is given).

        Where it reads and writes defaults to something realistic: a model sync reads a new
        model on a Snowflake table named after the sync and writes Salesforce ``Contact``; a
        bulk sync copies Salesforce ``Account`` and ``Contact`` into Snowflake.

        :param source: model sync: the connection of a new model (when ``models`` is not
            given); bulk sync: the source connection. A connection id, or a connection type
            (``"bigquery"``) meaning that type's default connection.
        :param models: model sync: ids of existing models (see :meth:`add_model`).
        :param target: where it writes: a connection id or type.
        :param target_object: model sync: the object or table written (default per target type).
        :param schemas: bulk sync: the source objects copied.
        :param schedule: a frequency (``"daily"``) or a schedule object
            (``{"frequency": "daily", "hour": "6", "minute": "0"}``); default manual.
        :param mode: ``updateOrCreate`` (model) / ``replicate`` (bulk) by default.

        Example::

            crm = fake.add_connection("hubspot")
            users = fake.add_model("bigquery", table="analytics.users")
            sync_id = fake.add_sync("users to hubspot", models=[users], target=crm,
                                    target_object="contacts", schedule="hourly")
        """
        spec = SyncSpec(name, kind, source, models, target, target_object, schemas, schedule, mode, active)
        return self.backends.syncs.add(spec, sync_id=sync_id)

    def syncs(self) -> dict[str, str]:
        """Return ``{sync name: sync id}`` for every sync (last one wins on duplicate names)."""
        return {s.name: s.id for s in self.backends.syncs.all()}

    def sync_kind(self, sync_id: str) -> SyncKind:
        """Return the kind of sync ``sync_id``; KeyError when unknown."""
        return self.backends.syncs.get(sync_id).kind

    def start_execution(self, sync_id: str, *, status: str = "running", trigger: str = "manual") -> str:
        """Create an execution (``created``), move it to ``status`` and return its id.

        Becoming ``running`` records ``sync.running`` / ``bulk_sync.running``. Unlike the API
        this does not refuse to start while another execution is active.
        """
        return self.backends.lifecycle.start(sync_id, status=status, trigger=trigger).id

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
        return self.backends.lifecycle.complete(
            sync_id,
            execution_id,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            errored=errored,
            errors=errors,
            warnings=warnings,
            records_per_file=records_per_file,
            error_message=error_message,
        )

    def fail_execution(
        self, sync_id: str, execution_id: str, *, error: str = "sync failed"
    ) -> dict[str, Any]:
        """Mark an execution ``failed``; record and return ``sync.failed`` / ``bulk_sync.failed``."""
        return self.backends.lifecycle.fail(sync_id, execution_id, error=error)

    def cancel_execution(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """Mark an execution ``canceled``; record and return ``sync.canceled`` / ``bulk_sync.canceled``."""
        return self.backends.lifecycle.cancel(sync_id, execution_id)

    def set_execution_status(self, sync_id: str, execution_id: str, status: str) -> None:
        """Set any status string (e.g. ``interrupted`` or ``mystery``) without recording an event."""
        self.backends.lifecycle.set_status(sync_id, execution_id, status)

    def run_execution(
        self,
        sync_id: str,
        *,
        outcome: ExecutionEnding = "completed",
        after: float = 0.0,
        **complete_kwargs: Any,
    ) -> str:
        """Start an execution and reach ``outcome`` ``after`` real seconds later; return its id.

        ``complete_kwargs`` go to :meth:`complete_execution` (or ``error=`` to :meth:`fail_execution`).
        With ``after <= 0`` the outcome is applied before returning. A scheduled outcome is skipped
        if the execution reached a terminal status in the meantime (e.g. canceled through the API).
        """
        return self.backends.lifecycle.run(
            sync_id, outcome=outcome, after=after, kwargs=dict(complete_kwargs)
        )

    def set_auto_outcome(
        self, sync_id: str | None, outcome: ExecutionEnding = "completed", after: float = 0.0, **kwargs: Any
    ) -> None:
        """Executions later started *through the API* for ``sync_id`` (None: every sync) reach ``outcome``.

        Stored in :attr:`auto_complete`; remove with :meth:`clear_auto_outcome`.
        """
        self.backends.lifecycle.set_auto_outcome(sync_id, outcome, after, kwargs)

    def clear_auto_outcome(self, sync_id: str | None = None) -> None:
        """Forget the automatic outcome for ``sync_id`` (None: the every-sync default)."""
        with self.org.lock:
            self.auto_complete.pop(sync_id or "*", None)

    def executions(self, sync_id: str) -> list[dict[str, Any]]:
        """Executions of ``sync_id`` as the API renders them, newest first."""
        b = self.backends
        with self.org.lock:
            sync = b.syncs.get(sync_id)
            return [execution_json(e, sync) for e in b.executions.of_sync(sync_id, ascending=False)]

    def execution(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """One execution as the API renders it."""
        b = self.backends
        with self.org.lock:
            return execution_json(b.executions.get(sync_id, execution_id), b.syncs.get(sync_id))

    def record_log_records(self, sync_id: str, execution_id: str, record_type: str) -> list[dict[str, Any]]:
        """Records served in the log files of ``record_type`` (``inserts``, ``inserted_records``, ...)."""
        execution = self.backends.executions.get(sync_id, execution_id)
        return self.backends.record_logs.records(execution, record_type)

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
        return self.backends.events.record(type, dict(payload), created_at=created_at, event_id=event_id)

    def events(self) -> list[dict[str, Any]]:
        """Stored events not yet expired (48 h), oldest first, duplicates included, as the API shows them."""
        return self.backends.events.all()

    def list_events(
        self,
        *,
        type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """The ``GET /api/events`` answer for already-validated parameters (fault knobs applied)."""
        return self.backends.events.page(
            type=type, starting_after=starting_after, ending_before=ending_before, limit=limit
        )

    # ------------------------------------------------------------------ webhooks

    def webhooks(self) -> list[dict[str, Any]]:
        """The organization's webhooks (zero or one), as the API renders them."""
        return [webhook_json(h) for h in self.backends.webhooks.all()]

    def create_webhook(self, body: Any) -> dict[str, Any]:
        """Validate ``body`` like ``POST /api/webhooks`` and create the webhook."""
        return webhook_json(self.backends.webhooks.create(body))

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Return one webhook; 404 error when unknown."""
        return webhook_json(self.backends.webhooks.get(webhook_id))

    def update_webhook(self, webhook_id: str, body: Any) -> dict[str, Any]:
        """Validate ``body`` like ``PUT /api/webhooks/{id}`` and update endpoint and secret."""
        return webhook_json(self.backends.webhooks.update(webhook_id, body))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; 404 error when unknown."""
        self.backends.webhooks.delete(webhook_id)

    def set_webhook_disabled(
        self, webhook_id: str, disabled: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """Disable (``reason``: what Polytomic would say, e.g. after failures) or enable a webhook."""
        return webhook_json(self.backends.webhooks.set_disabled(webhook_id, disabled, reason))

    def wait_for_deliveries(self, timeout: float | None = 10.0) -> bool:
        """Block until the webhook queue is drained (retries included); False on timeout."""
        return self.backends.webhooks.wait(timeout)

    # ------------------------------------------------------------------ misc

    def identity(self) -> dict[str, Any]:
        """The ``GET /api/me`` data."""
        return identity_json(self.org)

    def error_body(self, status: int, message: str, key: str | None = None) -> dict[str, Any]:
        """An error body in the configured shape (``ApiError`` or legacy ``RestErrResponse``)."""
        return error_body(self.org.settings.error_shape, status, message, key)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary of the state (``GET /_fake/state``)."""
        b = self.backends
        with self.org.lock:
            return {
                "url": self.url,
                "storage_url": self.storage_url,
                "organization_id": self.organization_id,
                "connections": [
                    {"id": c.id, "name": c.name, "type": c.type} for c in b.catalog.connections()
                ],
                "models": [
                    {"id": m.id, "name": m.name, "connection_id": m.connection_id} for m in b.catalog.models()
                ],
                "syncs": [
                    {"id": s.id, "name": s.name, "kind": s.kind, "executions": self.executions(s.id)}
                    for s in b.syncs.all()
                ],
                "events": b.events.count(),
                "webhooks": self.webhooks(),
                "requests": len(self.requests),
                "storage_requests": len(self.storage_requests),
                "webhook_deliveries": len(self.webhook_deliveries),
                "now": format_time(self.clock.now()),
            }
