"""Following Polytomic's events endpoint round after round, reading only what is new, without
I/O: :class:`EventTail` (the shared events poll and the sensor's poke drive it).
"""

from __future__ import annotations

import heapq
import logging
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_polytomic.api import EVENT_VISIBILITY_LAG, EVENTS_PAGE_LIMIT
from airflow_provider_polytomic.client import Call
from airflow_provider_polytomic.event_pager import ONE_MICROSECOND, EventPager, aware
from airflow_provider_polytomic.models import Event
from airflow_provider_polytomic.vocabulary import DEFAULT_EVENT_RECHECK_INTERVAL, SeenEventIds

log = logging.getLogger(__name__)

EVENT_TAIL_OVERLAP = timedelta(seconds=1)
EVENT_TAIL_OVERLAP_EVENTS = 50
MAX_RECHECK_BACKLOG = timedelta(minutes=10)


class EventTail:
    """Follows the events endpoint round after round, reading only what is new.

    Each round (:meth:`begin`, then :meth:`next_call`/:meth:`feed` until None):

    * **incremental read**: the events created since the newest one seen, less a small
      ``overlap`` (at most ``overlap_events`` events) so that events showing up a moment
      late are still caught. A round costs about ``ceil(new events / 100)`` requests.
    * **late-visibility re-read**: events may appear in the API after their ``created_at``
      (Polytomic does not say how late). Every ``recheck_interval`` seconds, the events
      that have become ``lag`` old since the previous re-read are read once more, at most
      ``recheck_pages`` pages per round, so every event that shows up within ``lag`` is
      delivered. ``recheck_interval=None`` turns this off.

    :meth:`feed` returns only events never returned before. :attr:`horizon` is the instant
    before which every event that showed up within ``lag`` has been returned.

    A driver that may only send one request per round (a sensor's poke) stops after one
    :meth:`next_call`; the unfinished read continues next round. With ``max_behind``, a
    read that has fallen further behind than that (more events arrive per round than one
    page holds) is given up for the most recent ``max_behind`` of events, which bounds
    memory and keeps such a driver looking at what just happened. After a failed request
    call :meth:`fail`: the round's unfinished reads start again from what was completed.
    """

    def __init__(
        self,
        *,
        start: datetime,
        lag: timedelta = EVENT_VISIBILITY_LAG,
        recheck_interval: float | None = DEFAULT_EVENT_RECHECK_INTERVAL,
        overlap: timedelta = EVENT_TAIL_OVERLAP,
        overlap_events: int = EVENT_TAIL_OVERLAP_EVENTS,
        recheck_pages: int = 1,
        max_recheck_backlog: timedelta = MAX_RECHECK_BACKLOG,
        max_behind: timedelta | None = None,
        limit: int = EVENTS_PAGE_LIMIT,
    ) -> None:
        if recheck_interval is not None and not recheck_interval > 0:
            raise ValueError(f"recheck_interval must be positive seconds or None, got {recheck_interval!r}")
        self._start = aware(start)
        self._lag = lag
        self._recheck = recheck_interval
        self._overlap = overlap
        self._overlap_events = max(1, overlap_events)
        self._recheck_pages = max(1, recheck_pages)
        self._max_backlog = max_recheck_backlog
        self._max_behind = max_behind
        self._limit = limit
        self._newest: datetime | None = None
        self._seen = SeenEventIds()
        self._now = self._start
        self._inc: EventPager | None = None
        self._inc_lower = self._start
        self._inc_newest: datetime | None = None
        self._sweep: EventPager | None = None
        self._sweep_to = self._start
        self._trail = self._start
        self._last_sweep: datetime | None = None
        self._sweep_asap = False
        self._budget = 0
        self._active: EventPager | None = None
        self._warned_backlog = False
        self.requests = 0

    @property
    def horizon(self) -> datetime:
        """Every event created before this instant that showed up within ``lag`` was returned."""
        return self._trail

    @property
    def newest(self) -> datetime | None:
        """The newest ``created_at`` a completed incremental read has seen."""
        return self._newest

    def begin(self, now: datetime) -> None:
        """Start a round at ``now`` (this process's clock)."""
        self._now = aware(now)
        skip_to = None if self._max_behind is None else self._now - self._max_behind
        frontier = None if self._inc is None else self._inc.frontier
        behind = skip_to is not None and frontier is not None and frontier < skip_to
        if behind:
            log.debug("Polytomic events arrive faster than this reader follows; skipping ahead.")
            self._inc = None
        if self._inc is None:
            self._inc_lower = self._incremental_lower()
            if behind and skip_to is not None:
                self._inc_lower = max(self._inc_lower, skip_to)
            self._inc = EventPager(
                starting_after=self._inc_lower - ONE_MICROSECOND, limit=self._limit, ordered=False
            )
            self._inc_newest = None
        if self._recheck is not None and self._sweep is None:
            if self._last_sweep is None and not self._sweep_asap:
                self._last_sweep = self._now  # the first re-read is one interval away
            due = self._sweep_asap or (
                self._last_sweep is not None
                and (self._now - self._last_sweep).total_seconds() >= self._recheck
            )
            to = self._now - self._lag
            if due and to > self._trail:
                if to - self._trail > self._max_backlog:
                    if not self._warned_backlog:
                        self._warned_backlog = True
                        log.warning(
                            "Polytomic events arrive faster than the late-visibility re-read can "
                            "follow (%d page(s) per poll); it now skips to the last %s. Poll more "
                            "often to keep every event re-read.",
                            self._recheck_pages,
                            self._max_backlog,
                        )
                    self._trail = to - self._max_backlog
                self._sweep = EventPager(
                    starting_after=self._trail - ONE_MICROSECOND,
                    ending_before=to,
                    limit=self._limit,
                    ordered=False,
                )
                self._sweep_to = to
                self._last_sweep = self._now
                self._sweep_asap = False
        self._budget = self._recheck_pages
        self._prune()

    def next_call(self) -> Call[dict[str, Any]] | None:
        """The next request of this round, or None when the round is over."""
        if self._active is not None:
            raise RuntimeError("next_call() called again before feed()")
        if self._inc is not None and (call := self._inc.next_call()) is not None:
            self._active = self._inc
        elif self._sweep is not None and self._budget > 0 and (call := self._sweep.next_call()) is not None:
            self._budget -= 1
            self._active = self._sweep
        else:
            return None
        self.requests += 1
        return call

    def feed(self, body: dict[str, Any]) -> list[Event]:
        """Take the answer to the last :meth:`next_call`; return the events never returned before."""
        pager = self._active
        if pager is None:
            raise RuntimeError("feed() called without next_call()")
        self._active = None
        events = pager.feed(body)
        fresh = [event for event in events if self._seen.add(event.id, event.created_at)]
        if pager is self._inc:
            # An event stamped far ahead of this clock must not move the reads past the present.
            plausible = self._now + self._lag
            for event in events:
                if event.created_at <= plausible and (
                    self._inc_newest is None or event.created_at > self._inc_newest
                ):
                    self._inc_newest = event.created_at
            if pager.done:
                if self._inc_newest is not None and (self._newest is None or self._inc_newest > self._newest):
                    self._newest = self._inc_newest
                self._inc = None
        elif pager is self._sweep and pager.done:
            self._trail = self._sweep_to
            self._sweep = None
        return fresh

    def fail(self) -> None:
        """The last request failed: drop the unfinished read it belonged to."""
        if self._active is self._inc:
            self._inc = None
        elif self._active is self._sweep:
            self._sweep = None
            self._sweep_asap = True
        self._active = None

    def _incremental_lower(self) -> datetime:
        if self._newest is None:
            return self._start
        lower = self._newest - self._overlap
        if len(self._seen) >= self._overlap_events:
            # In a burst, re-read only the last few events, not a whole second of them.
            kth = heapq.nlargest(self._overlap_events, self._seen.times())[-1]
            lower = max(lower, kth)
        return min(lower, self._newest)

    def _prune(self) -> None:
        # Ids only matter while a read can still return their events.
        floor = self._inc_lower
        if self._recheck is not None:
            floor = min(floor, self._trail)
        # Reads never reach below their lower bound, so nothing under the floor comes back.
        self._seen.raise_floor(floor - timedelta(seconds=1) - ONE_MICROSECOND)


__all__ = ["EVENT_TAIL_OVERLAP", "EVENT_TAIL_OVERLAP_EVENTS", "MAX_RECHECK_BACKLOG", "EventTail"]
