"""Pydantic models for what comes off Polytomic's wire.

Every model tolerates missing and unknown fields, and every status is kept as the raw
string Polytomic sent: Polytomic adds fields and enum values over time, and a new value
must never crash a DAG. What decides success or failure is :func:`classify`, which treats
anything it does not know as *still running* (fail closed: never a success by accident).
"""

from __future__ import annotations

import threading

from pydantic import BaseModel

from airflow_provider_polytomic.models import base, definitions, events, executions, webhooks
from airflow_provider_polytomic.models.definitions import (
    BulkSync,
    BulkSyncSchema,
    ConnectionType,
    Identity,
    Model,
    ModelField,
    ModelSync,
    PolytomicConnection,
    SyncFieldMapping,
    SyncFieldSource,
    SyncTarget,
)
from airflow_provider_polytomic.models.events import (
    PAYLOAD_MODELS,
    Event,
    SyncCompletedPayload,
    SyncCompletedWithErrorsPayload,
    SyncEventPayload,
    parse_event,
    parse_events,
)
from airflow_provider_polytomic.models.executions import (
    BulkExecution,
    BulkSchemaExecution,
    Execution,
    ExecutionCounts,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    LogsIndexEntry,
    StartedExecution,
    SyncStatus,
)
from airflow_provider_polytomic.models.webhooks import (
    Webhook,
    WebhookDeliveriesPage,
    WebhookDelivery,
    WebhookOutage,
    WebhookReconciliation,
)

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

_schemas_lock = threading.Lock()
_schemas_built = False


def build_schemas() -> None:
    """Build the validation schema of every model of this package now, once per process.

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
        for module in (base, events, executions, definitions, webhooks):
            for value in list(vars(module).values()):
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseModel)
                    and value.__module__ == module.__name__
                ):
                    value.model_rebuild()
        _schemas_built = True


__all__ = [
    "PAYLOAD_MODELS",
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
