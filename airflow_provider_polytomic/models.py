"""Pydantic models for what comes off Polytomic's wire.

Every model tolerates missing and unknown fields, and every status is kept as the raw
string Polytomic sent: Polytomic adds fields and enum values over time, and a new value
must never crash a DAG. What decides success or failure is :func:`classify`, which treats
anything it does not know as *still running* (fail closed: never a success by accident).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError

# Polytomic's vocabulary, importable from here too: the models' outcomes are read with it.
from airflow_provider_polytomic.vocabulary import (
    SYNC_KINDS,
    EventType,
    Outcome,
    SyncKind,
    classify,
    event_type_for_outcome,
    event_types_for,
)

log = logging.getLogger(__name__)


class _Wire(BaseModel):
    """Base for wire models: unknown fields kept, nothing required beyond what identifies an object."""

    # defer_build: each schema is built on first validation, not at import. A DAG file imports
    # the provider without validating anything, and building every schema up front was most of
    # what importing this module cost.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


# ----------------------------------------------------------------------------- events


class SyncEventPayload(_Wire):
    """Fields common to every ``sync.*`` / ``bulk_sync.*`` payload."""

    execution_id: str | None = None
    organization_id: str | None = None
    sync_id: str | None = None
    # Polytomic's 2024-02-08 guide shows `name` where the SDKs say `sync_name`.
    sync_name: str | None = Field(default=None, validation_alias=AliasChoices("sync_name", "name"))
    target_connection_id: str | None = None
    source_connection_id: str | None = None
    destination_connection_id: str | None = None
    status: str | None = None
    trigger: str | None = None
    trigger_source: str | None = None
    error: str | None = None


class SyncCompletedPayload(SyncEventPayload):
    """``sync.completed``: counts, and links to JSON files listing the affected records."""

    record_count: int | None = None
    inserted_count: int | None = None
    updated_count: int | None = None
    upserted_count: int | None = None
    error_count: int | None = None
    warning_count: int | None = None
    warnings: list[str] | None = None
    total_records: list[str] | None = None
    inserted_records: list[str] | None = None
    updated_records: list[str] | None = None
    deleted_records: list[str] | None = None
    errored_records: list[str] | None = None
    logs_url: str | None = None
    """Where the execution's logs index is (:class:`ExecutionLogsIndex`); the SDK documents it
    as an endpoint, not whether it is absolute or a path."""


class SyncCompletedWithErrorsPayload(SyncEventPayload):
    """``sync.completed_with_errors``."""

    number_of_errors: int | None = None
    number_of_warnings: int | None = None


PAYLOAD_MODELS: dict[str, type[SyncEventPayload]] = {
    EventType.SYNC_COMPLETED: SyncCompletedPayload,
    EventType.SYNC_COMPLETED_WITH_ERRORS: SyncCompletedWithErrorsPayload,
}


class Event(_Wire):
    """One item of ``GET /api/events`` (and, as far as we know, one webhook delivery)."""

    id: str
    type: str
    created_at: datetime
    organization_id: str | None = None
    event: dict[str, Any] | None = None

    @cached_property
    def payload(self) -> SyncEventPayload:
        """The payload parsed with the model for this event type (never raises).

        Cached: a shared poll hands the same events to every waiting trigger, and parsing
        them again for each one made a tick of 1,000 events cost seconds with 1,000 triggers.
        """
        model = PAYLOAD_MODELS.get(self.type, SyncEventPayload)
        try:
            return model.model_validate(self.event or {})
        except ValidationError:
            # A payload whose fields have the wrong types identifies nothing.
            return SyncEventPayload()

    @property
    def outcome(self) -> Outcome:
        return classify(self.type)

    @property
    def sync_id(self) -> str | None:
        return self.payload.sync_id

    @property
    def execution_id(self) -> str | None:
        return self.payload.execution_id


def parse_events(items: Iterable[Any]) -> list[Event]:
    """Parse raw event dicts, skipping (and logging) any that are malformed."""
    events: list[Event] = []
    for item in items:
        event = parse_event(item)
        if event is not None:
            events.append(event)
    return events


def parse_event(item: Any) -> Event | None:
    """Parse one raw event; None (with a warning) when it is malformed."""
    if not isinstance(item, dict):
        log.warning("Ignoring a malformed Polytomic event of type %s", type(item).__name__)
        return None
    try:
        return Event.model_validate(item)
    except ValidationError as exc:
        log.warning(
            "Ignoring a malformed Polytomic event (id=%r): %s",
            item.get("id"),
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
        )
        return None


# ------------------------------------------------------------------------- executions


class ExecutionCounts(_Wire):
    total: int | None = None
    insert: int | None = None
    update: int | None = None
    delete: int | None = None
    upserts: int | None = None
    error: int | None = None
    warnings: int | None = None


class Execution(_Wire):
    """A model-sync execution (``GetExecutionResponseSchema``)."""

    id: str
    status: str | None = None
    type: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    counts: ExecutionCounts | None = None
    errors: list[str] | None = None

    @property
    def outcome(self) -> Outcome:
        outcome = classify(self.status)
        if outcome is Outcome.SUCCEEDED and self.counts and (self.counts.error or 0) > 0:
            return Outcome.SUCCEEDED_WITH_ERRORS
        return outcome

    @property
    def error_message(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None

    def summary_counts(self) -> dict[str, int | None]:
        c = self.counts or ExecutionCounts()
        return {
            "record": c.total,
            "inserted": c.insert,
            "updated": c.update,
            "deleted": c.delete,
            "error": c.error,
            "warning": c.warnings,
        }


class BulkExecution(_Wire):
    """A bulk-sync execution (``BulkSyncExecution``)."""

    id: str
    status: str | None = None
    status_message: str | None = None
    type: str | None = None
    is_partial: bool | None = None
    is_resync: bool | None = None
    is_test: bool | None = None
    record_count: int | None = None
    error_count: int | None = None
    warning_count: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    schemas: list[dict[str, Any]] | None = None

    @property
    def outcome(self) -> Outcome:
        return classify(self.status)

    def schema_runs(self) -> list[BulkSchemaExecution]:
        """The schemas this execution ran, with their counts (malformed entries skipped)."""
        runs: list[BulkSchemaExecution] = []
        for item in self.schemas or []:
            if isinstance(item, dict):
                try:
                    runs.append(BulkSchemaExecution.model_validate(item))
                except ValidationError:
                    continue
        return runs

    @property
    def error_message(self) -> str | None:
        return self.status_message

    def summary_counts(self) -> dict[str, int | None]:
        return {
            "record": self.record_count,
            "inserted": None,
            "updated": None,
            "deleted": None,
            "error": self.error_count,
            "warning": self.warning_count,
        }


class SyncStatus(_Wire):
    """``GET /api/syncs/{id}/status`` (model) with the execution type of the kind."""

    current_execution: dict[str, Any] | None = None
    last_execution: dict[str, Any] | None = None
    next_execution_time: datetime | None = None


class StartedExecution(_Wire):
    """What starting a sync returns: at least the new execution's id."""

    id: str
    status: str | None = None
    created_at: datetime | None = None


class ExecutionLogUrls(_Wire):
    """Signed URLs of an execution's log files. Bulk syncs spell the keys ``URLs``/``Expires``."""

    urls: list[str] = Field(default_factory=list, validation_alias=AliasChoices("urls", "URLs"))
    expires: datetime | None = Field(default=None, validation_alias=AliasChoices("expires", "Expires"))


class LogsIndexEntry(_Wire):
    """One log type in :class:`ExecutionLogsIndex`.

    :ivar count: records Polytomic reports for this log type across all its files.
    :ivar url: the endpoint returning this log type's signed URLs (an
        :class:`ExecutionLogUrls` envelope), per the official SDK. Whether it is absolute or a
        path is not documented.
    """

    count: int | None = None
    url: str | None = None


class ExecutionLogsIndex(_Wire):
    """``GET /api/syncs/{sync_id}/executions/{id}/logs`` (model syncs): per log type, its
    record count and the endpoint of its signed URLs. A type Polytomic leaves out is None;
    unknown types are kept as extra fields.

    Example::

        index = ExecutionLogsIndex.model_validate({"inserts": {"count": 80, "url": "/api/..."}})
        index.entry("inserts").count  # 80
        index.entry("deletes")  # None
    """

    records: LogsIndexEntry | None = None
    errors: LogsIndexEntry | None = None
    warnings: LogsIndexEntry | None = None
    inserts: LogsIndexEntry | None = None
    updates: LogsIndexEntry | None = None
    deletes: LogsIndexEntry | None = None

    def entry(self, log_type: str) -> LogsIndexEntry | None:
        """The entry of ``log_type`` (``records``, ``inserts``, ...), or None when absent."""
        value = getattr(self, log_type, None) if log_type in type(self).model_fields else None
        return value if isinstance(value, LogsIndexEntry) else None


# ------------------------------------------------------- syncs, models and connections
# What a sync reads and writes. Polytomic's SDK types every field optional and keeps
# configurations as free-form objects, whose keys depend on the connection type.


class SyncTarget(_Wire):
    """Where a model sync writes (``ModelSyncV5Target``): a connection and an object in it.

    ``object`` is the target object or table; a sync that creates its target names it in
    ``new_name`` instead.
    """

    connection_id: str | None = None
    object: str | None = None
    new_name: str | None = None
    configuration: dict[str, Any] | None = None


class SyncFieldSource(_Wire):
    """The model field a sync field mapping reads."""

    field: str | None = None
    model_id: str | None = None


class SyncFieldMapping(_Wire):
    """One field a model sync writes: a model field (``source``) into a target field."""

    source: SyncFieldSource | None = None
    target: str | None = None


class ModelSync(_Wire):
    """A model sync (``GET /api/syncs/{id}``, ``ModelSyncV5Response``): models in, a target out."""

    id: str
    name: str | None = None
    mode: str | None = None
    active: bool | None = None
    model_ids: list[str] = Field(default_factory=list)
    target: SyncTarget | None = None
    fields: list[SyncFieldMapping] | None = None


class BulkSync(_Wire):
    """A bulk sync (``GET /api/bulk/syncs/{id}``, ``BulkSyncResponse``): the objects
    (schemas) of a source connection copied into a destination connection.

    ``destination_configuration`` holds destination-specific settings such as the output
    ``schema``.
    """

    id: str
    name: str | None = None
    mode: str | None = None
    active: bool | None = None
    source_connection_id: str | None = None
    source_configuration: dict[str, Any] | None = None
    destination_connection_id: str | None = None
    destination_configuration: dict[str, Any] | None = None


class BulkSyncSchema(_Wire):
    """One object a bulk sync copies (``GET /api/bulk/syncs/{id}/schemas``): ``id`` names it
    on the source (an object for SaaS sources, ``schema.table`` for databases), ``output_name``
    is the table it lands in."""

    id: str | None = None
    enabled: bool | None = None
    output_name: str | None = None


class BulkSchemaExecution(_Wire):
    """One schema of a bulk-sync execution (``BulkSyncSchemaExecution``), with its counts."""

    schema_: str | None = Field(default=None, alias="schema")
    output_name: str | None = None
    status: str | None = None
    record_count: int | None = None
    error_count: int | None = None
    warning_count: int | None = None


class ModelField(_Wire):
    """One field of a model: its name and Polytomic's (and the source's) type for it."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    remote_type: str | None = None


class Model(_Wire):
    """A model (``GET /api/models/{id}``, ``ModelResponse``): what a model sync reads.

    ``configuration`` depends on the source connection's type: ``{"table": "public.users"}``
    (Polytomic's own example) or ``{"query": "select ..."}`` for databases and warehouses;
    other keys elsewhere. ``type`` is the source connection's type, as far as anyone can tell.
    """

    id: str
    name: str | None = None
    connection_id: str | None = None
    type: str | None = None
    configuration: dict[str, Any] | None = None
    fields: list[ModelField] | None = None


class ConnectionType(_Wire):
    """A connection's type: ``id`` (``snowflake``, ``salesforce``...) and display ``name``."""

    id: str | None = None
    name: str | None = None


class PolytomicConnection(_Wire):
    """A connection in Polytomic (``GET /api/connections/{id}``, ``ConnectionResponseSchema``).

    ``configuration`` holds the type's settings (``account``, ``hostname``, ``database``...),
    with secrets left out by Polytomic. Not to be confused with an Airflow connection.
    """

    id: str
    name: str | None = None
    type: ConnectionType | None = None
    configuration: dict[str, Any] | None = None
    status: str | None = None

    @property
    def type_id(self) -> str | None:
        """The connection type's id, lowercased (``snowflake``...), or None."""
        return self.type.id.strip().lower() if self.type and self.type.id else None


# --------------------------------------------------------------------------- webhooks


class Webhook(_Wire):
    """The organization's event webhook. ``secret`` is a :class:`SecretStr`: it never prints.

    :ivar disabled_at: when it was disabled (by a user, or by Polytomic after repeated
        failed deliveries); None while enabled.
    :ivar disabled_reason: why, when Polytomic says.
    """

    id: str
    organization_id: str | None = None
    endpoint: str | None = None
    secret: SecretStr | None = None
    disabled: bool | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_at: datetime | None = None


class WebhookDelivery(_Wire):
    """One attempt to deliver an event to the webhook (``GET /api/webhooks/{id}/deliveries``).

    :ivar success: whether the endpoint answered 2xx.
    :ivar status_code: what the endpoint answered; None when it could not be reached.
    :ivar error: why the attempt failed; ``error_kind`` classifies it (values undocumented).
    :ivar response_body: the start of what the endpoint answered.
    """

    id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    attempted_at: datetime | None = None
    status_code: int | None = None
    success: bool | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_kind: str | None = None
    response_body: str | None = None

    def describe(self) -> str:
        """One line: when, which event, and how it failed (or that it succeeded)."""
        when = self.attempted_at.isoformat() if self.attempted_at else "unknown time"
        what = f"{self.event_type or 'event'} {self.event_id or '?'}"
        if self.success:
            return f"{when}: {what} delivered"
        if self.status_code is not None:
            detail = f"HTTP {self.status_code}"
        else:
            detail = self.error or self.error_kind or "no answer"
        return f"{when}: {what} failed ({detail})"


class WebhookDeliveriesPage(_Wire):
    """One page of delivery attempts, newest first, and the token of the next page (None: last)."""

    deliveries: list[WebhookDelivery] = Field(default_factory=list)
    next_page_token: str | None = None


class WebhookOutage(_Wire):
    """A disabled webhook: when and why, and the deliveries that failed in the window before.

    Built by :meth:`PolytomicHook.webhook_outage`; ``failed_deliveries`` is None when the
    delivery history could not be read. ``failed_total`` counts every failed attempt found,
    ``failed_deliveries`` keeps the newest of them.
    """

    webhook_id: str
    disabled_at: datetime | None = None
    reason: str | None = None
    window_hours: float = 24.0
    failed_total: int | None = None
    failed_total_capped: bool = False
    """True when there were more failed attempts than were counted."""
    failed_deliveries: list[WebhookDelivery] | None = None

    def summary(self) -> str:
        """A sentence for a log line: why the webhook was off and what failed."""
        since = f" since {self.disabled_at.isoformat()}" if self.disabled_at else ""
        reason = self.reason or "Polytomic gave no reason"
        text = f"Polytomic webhook {self.webhook_id} was disabled{since}: {reason}."
        if self.failed_deliveries is None:
            return text + " Its delivery history could not be read."
        window = f"{self.window_hours:g} hours"
        if not self.failed_total:
            return text + f" No failed deliveries in the last {window}."
        latest = "; ".join(d.describe() for d in self.failed_deliveries[:3])
        count = f"{'at least ' if self.failed_total_capped else ''}{self.failed_total}"
        return text + f" {count} failed deliveries in the last {window}, latest: {latest}."


class WebhookReconciliation(BaseModel):
    """What :meth:`PolytomicHook.reconcile_webhook` did to the organization's webhook.

    ``outage`` is set when the webhook was disabled (by Polytomic or a user) and has been
    re-enabled: when, why, and the deliveries that failed before.
    """

    model_config = ConfigDict(defer_build=True)  # as _Wire's: built on first use

    webhook: Webhook
    created: bool = False
    updated: bool = False
    reenabled: bool = False
    outage: WebhookOutage | None = None


class Identity(_Wire):
    """``GET /api/me``."""

    id: str | None = None
    email: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    is_user: bool | None = None
    is_organization: bool | None = None
    is_partner: bool | None = None
    is_system: bool | None = None


_schemas_lock = threading.Lock()
_schemas_built = False


def build_schemas() -> None:
    """Build the validation schema of every model of this module now, once per process.

    The models defer that work to their first validation so that importing the provider
    stays cheap. The HTTP core calls this before its first request: in several pydantic
    releases two threads building the same deferred model at once race (in some, one of them
    validates with the base class's schema), and the record-log downloader validates answers
    from several threads. Building everything here, under a lock and before any answer is
    parsed, leaves nothing to build concurrently. Later calls return at once.
    """
    global _schemas_built
    if _schemas_built:
        return
    with _schemas_lock:
        if _schemas_built:
            return
        for value in list(globals().values()):
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == __name__:
                value.model_rebuild()
        _schemas_built = True


__all__ = [
    "SYNC_KINDS",
    "BulkExecution",
    "BulkSchemaExecution",
    "BulkSync",
    "BulkSyncSchema",
    "ConnectionType",
    "Event",
    "EventType",
    "Execution",
    "ExecutionCounts",
    "ExecutionLogUrls",
    "ExecutionLogsIndex",
    "Identity",
    "LogsIndexEntry",
    "Model",
    "ModelField",
    "ModelSync",
    "Outcome",
    "PolytomicConnection",
    "StartedExecution",
    "SyncCompletedPayload",
    "SyncCompletedWithErrorsPayload",
    "SyncEventPayload",
    "SyncFieldMapping",
    "SyncFieldSource",
    "SyncKind",
    "SyncStatus",
    "SyncTarget",
    "Webhook",
    "WebhookDeliveriesPage",
    "WebhookDelivery",
    "WebhookOutage",
    "WebhookReconciliation",
    "build_schemas",
    "classify",
    "event_type_for_outcome",
    "event_types_for",
    "parse_event",
    "parse_events",
]
