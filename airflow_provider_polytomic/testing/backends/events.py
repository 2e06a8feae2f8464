"""The events store behind ``GET /api/events``: recording, retention and the listing's order."""

from __future__ import annotations

import bisect
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..records import format_time
from .context import Org

__all__ = ["EVENT_RETENTION", "EventsBackend", "StoredEvent"]

EVENT_RETENTION = timedelta(hours=48)
"""Events older than this are no longer returned (Polytomic documents 48 hours)."""


@dataclass
class StoredEvent:
    created_at: datetime
    seq: int
    event: dict[str, Any]


def _event_order(event: StoredEvent) -> tuple[datetime, int]:
    return (event.created_at, event.seq)


def _created_at(event: StoredEvent) -> datetime:
    return event.created_at


class EventsBackend:
    """Events of the organization, kept ordered by creation time, each handed to ``publish``
    (the webhook) as it is recorded."""

    def __init__(self, org: Org, publish: Callable[[dict[str, Any]], None]) -> None:
        """No events yet; ``publish`` receives every recorded event (even one the events API drops)."""
        self._org = org
        self._publish = publish
        self._events: list[StoredEvent] = []
        self._last_time: datetime | None = None

    def record(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        created_at: datetime | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Store an event (subject to the event fault knobs), publish it and return a copy."""
        org = self._org
        with org.lock:
            when = self._event_time(created_at)
            event: dict[str, Any] = {
                "id": event_id or str(uuid.uuid4()),
                "organization_id": org.organization_id,
                "type": event_type,
                "created_at": format_time(when),
                "event": payload,
            }
            if not org.faults.take_drop_event(event_type):
                for _ in range(2 if org.faults.duplicate_events else 1):
                    # Kept ordered by (created_at, seq) so a window is found by bisection: a linear
                    # scan per page made a 100,000-event window take minutes.
                    bisect.insort(self._events, StoredEvent(when, org.next_seq(), event), key=_event_order)
            self._publish(event)
            return json.loads(json.dumps(event))

    def _event_time(self, created_at: datetime | None) -> datetime:
        if created_at is not None:
            return created_at if created_at.tzinfo else created_at.replace(tzinfo=self._org.now().tzinfo)
        now = self._org.now()
        last = self._last_time
        # Two events of one instant would make a strict `starting_after` window skip the second.
        if last is not None and now <= last and last - now < timedelta(seconds=1):
            now = last + timedelta(microseconds=1)
        self._last_time = now
        return now

    def all(self) -> list[dict[str, Any]]:
        """Unexpired events, oldest first, duplicates included."""
        cutoff = self._org.now() - EVENT_RETENTION
        with self._org.lock:
            return [dict(e.event) for e in self._events if e.created_at >= cutoff]

    def rows(
        self, type_: str | None, starting_after: datetime | None, ending_before: datetime | None
    ) -> list[StoredEvent]:
        """Unexpired events matching the filters (strict bounds), oldest first."""
        cutoff = self._org.now() - EVENT_RETENTION
        with self._org.lock:
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

    def page(
        self,
        *,
        type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """One ``GET /api/events`` answer for validated parameters.

        Polytomic does not document the order of a page: the ``events_order`` setting gives
        the variants a consumer must survive (see :class:`~.context.FakeSettings`).
        """
        order = self._org.settings.events_order
        rows = self.rows(type, starting_after, ending_before)
        if order == "newest_first":
            rows.reverse()
        rows = rows[:limit]
        if order == "shuffled":
            with self._org.lock:
                self._org.random.shuffle(rows)
        return [dict(r.event) for r in rows]

    def count(self) -> int:
        """How many unexpired events are stored."""
        return len(self.all())
