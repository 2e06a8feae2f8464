"""Polytomic events as Airflow asset events, and what the provider keeps about them in the
asset state store.

The polling trigger (:class:`~airflow_provider_polytomic.triggers.events.PolytomicEventTrigger`),
the webhook receiver (:mod:`airflow_provider_polytomic.webhook.receiver`) and
:func:`~airflow_provider_polytomic.assets.events_for_run` share three things:

* :func:`event_payload`, the asset event's ``payload``, the same whichever path recorded it;
* the **webhook ledger**: one asset-state-store entry per recorded event
  (:func:`ledger_key`), so the webhook and the poll record each event once;
* :class:`CursorState`, how far a reader of the events API has read, stored as JSON.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from airflow_provider_polytomic.models import Event
from airflow_provider_polytomic.sync_wait import parse_time
from airflow_provider_polytomic.vocabulary import SeenEventIds, classify, sync_kind_of_event

log = logging.getLogger(__name__)

LEDGER_KEY_PREFIX = "polytomic.event."
# Bound on ids kept next to the cursor; they only cover the visibility-lag window.
MAX_STATE_IDS = 2000


def ledger_key(event_id: str) -> str:
    """Asset-state-store key under which the webhook receiver and the trigger mark a recorded event."""
    return f"{LEDGER_KEY_PREFIX}{event_id}"


def ledger_pending(value: Any) -> bool:
    """Whether a ledger entry only says the webhook receiver *started* recording the event.

    The receiver writes ``{"pending": true, ...}`` before it creates the asset event and
    replaces it once the event exists; an entry left pending (the receiver's process died in
    between) does not prove the event was recorded.
    """
    return isinstance(value, dict) and bool(value.get("pending"))


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON-able dict both the trigger and the webhook receiver put in asset events.

    Keys: ``id``, ``type``, ``created_at`` (ISO 8601), ``organization_id``, ``sync_id``,
    ``execution_id``, ``sync_kind`` (``model``/``bulk``), ``outcome`` (see
    :class:`~airflow_provider_polytomic.models.Outcome`) and ``payload`` (Polytomic's own
    ``event`` object, unchanged).
    """
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "organization_id": event.organization_id,
        "sync_id": event.sync_id,
        "execution_id": event.execution_id,
        "sync_kind": sync_kind_of_event(event.type),
        "outcome": classify(event.type).value,
        "payload": json.loads(json.dumps(event.event or {}, default=str)),
    }


class CursorState(SeenEventIds):
    """How far a reader has read: every matching event created at or before :attr:`cursor` is
    handled, and so are the newer events whose ids it keeps. Stored as JSON in the asset
    state store (:meth:`to_json`)."""

    @property
    def cursor(self) -> datetime:
        """Every matching event created at or before this instant has been handled."""
        return self.floor

    def to_json(self) -> dict[str, Any]:
        """The JSON value stored in the asset state store."""
        newest = sorted(self.ids.items(), key=lambda kv: kv[1])[-MAX_STATE_IDS:]
        return {"v": 1, "cursor": self.cursor.isoformat(), "ids": {k: v.isoformat() for k, v in newest}}

    @classmethod
    def from_json(cls, value: Any) -> CursorState | None:
        """Parse a stored value; None (with a warning) when it is not one of ours."""
        try:
            cursor = parse_time(value["cursor"], "cursor")
            ids = {str(k): parse_time(v, "ids") for k, v in (value.get("ids") or {}).items()}
        except (TypeError, KeyError, ValueError, AttributeError):
            log.warning("Ignoring an unreadable Polytomic event cursor in the asset state store.")
            return None
        return cls(cursor, ids)

    def copy(self) -> CursorState:
        return CursorState(self.cursor, self.ids)

    def handled(self, event: Event) -> bool:
        return self.seen(event.id, event.created_at)


__all__ = [
    "LEDGER_KEY_PREFIX",
    "CursorState",
    "event_payload",
    "ledger_key",
    "ledger_pending",
]
