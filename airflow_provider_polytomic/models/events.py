"""Events: ``GET /api/events`` items (and webhook deliveries) and their payloads."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import AliasChoices, Field, ValidationError

from airflow_provider_polytomic.models.base import WireModel
from airflow_provider_polytomic.vocabulary import EventType, Outcome, classify

log = logging.getLogger(__name__)


class SyncEventPayload(WireModel):
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


class Event(WireModel):
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


__all__ = [
    "PAYLOAD_MODELS",
    "Event",
    "SyncCompletedPayload",
    "SyncCompletedWithErrorsPayload",
    "SyncEventPayload",
    "parse_event",
    "parse_events",
]
