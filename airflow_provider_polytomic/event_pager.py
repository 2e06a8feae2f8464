"""Reading every event of a time window from Polytomic's events endpoint, whatever order the
server returns pages in (Polytomic documents none), without I/O: :class:`EventPager`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from airflow_provider_polytomic.api import EVENT_RETENTION, EVENTS_PAGE_LIMIT, list_events_page
from airflow_provider_polytomic.client import Call, data_of
from airflow_provider_polytomic.models import Event, parse_events

log = logging.getLogger(__name__)

MAX_BUFFERED_EVENTS = 10_000
ONE_MICROSECOND = timedelta(microseconds=1)
"""The resolution of ``created_at``: the step between a window's bounds and the next window."""

#
# Windows are closed intervals of created_at at microsecond resolution, [lo, hi]; the
# endpoint's strict bounds are sent as starting_after = lo - 1 us, ending_before = hi + 1 us.

PageSide = Literal["oldest", "newest", "arbitrary"]
"""Which events of a window a full page holds: the oldest, the newest, or any subset."""


@dataclass
class _Probe:
    """What the reads around one unordered page showed: ``ok`` roles found nothing new.

    ``learnable``: the page was the first of the whole read and its timestamps varied
    enough. Deeper windows can hold barely more than a page, where any server's page may
    look like the oldest (or newest) events by chance.
    """

    ids: frozenset[str]
    learnable: bool
    ok: set[str] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)


@dataclass
class _Window:
    lo: datetime
    hi: datetime | None  # None: no upper bound
    token: str | None = None
    probe: _Probe | None = None
    role: str = ""
    root: bool = False


# A shuffled page looks sorted by chance with probability 2 / (number of distinct orderings
# of its timestamps); below one in a million, a sorted page is taken as the server's order.
_ORDER_EVIDENCE = math.log(1e6)


def _informative(stamps: list[datetime]) -> bool:
    """Whether the page's timestamps are varied enough for its order to mean something."""
    counts = Counter(stamps)
    orderings = math.lgamma(len(stamps) + 1) - sum(math.lgamma(c + 1) for c in counts.values())
    return orderings >= _ORDER_EVIDENCE


def _page_order(stamps: list[datetime]) -> PageSide | None:
    """``oldest`` for a page sorted oldest first, ``newest`` for newest first, else None."""
    if not _informative(stamps):
        return None
    pairs = list(itertools.pairwise(stamps))
    if stamps[0] < stamps[-1] and all(x <= y for x, y in pairs):
        return "oldest"
    if stamps[0] > stamps[-1] and all(x >= y for x, y in pairs):
        return "newest"
    return None


class EventPager:
    """Reads every event of a time window, whatever order the server returns them in.

    Polytomic's events endpoint filters by ``starting_after``/``ending_before`` (strict) and
    caps a page at ``limit`` (1-100), but documents neither its ordering nor which events a
    full page holds. A page with fewer than ``limit`` events is taken to be the rest of its
    window. The order is detected from each full page:

    * **oldest first**: the page holds the window's oldest events; the next read starts at
      the page's newest timestamp. Reading N events costs at most ``ceil(N / limit) + 2``
      requests (for N up to about 10,000: each read re-reads the events at its boundary
      timestamp, so that events sharing it are never lost).
    * **newest first**: the page holds the newest; the next read ends at the page's oldest
      timestamp (same cost). The events are held until the walk reaches the window's start,
      at most ``max_buffered`` of them; beyond that the newest held ones are dropped and read
      again later, which costs about one more request per page past the limit.
    * **neither** (shuffled): the pager reads just below, inside and just above the page
      once, to learn which end the server keeps, then continues as above. If the server
      keeps neither end (an arbitrary subset), windows are halved until a page is not full.
      A page whose timestamps are too few to show an order reliably (a shuffled page of
      fewer than about ten distinct ones is sorted by chance too often) counts as shuffled.
      A server that picks an arbitrary subset which happens to come out sorted by time (say,
      pages ordered by an id that follows ``created_at`` only roughly) cannot be told from
      an oldest-first one by its pages; the pager then takes it for oldest first.
    * a full page whose events all share **one timestamp**: more events than ``limit`` at one
      instant cannot be told apart by time filters; the pager logs a warning and reads on
      around that instant.

    A server that treats the bounds as inclusive is detected (an event at a bound it was
    sent) and then sent the window's own bounds. A ``pagination.next_page_token`` is
    followed if a server ever sends one. Events come out
    de-duplicated by id and, with ``ordered=True``, sorted by ``(created_at, id)``; with
    ``ordered=False`` each page's new events come out at once (for short windows whose
    readers do not need the order).

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
        ordered: bool = True,
        max_buffered: int = MAX_BUFFERED_EVENTS,
    ) -> None:
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValueError(f"limit must be between 1 and 100, got {limit!r}")
        if max_buffered < 2 * limit:
            raise ValueError(f"max_buffered must be at least twice limit, got {max_buffered!r}")
        now = now or datetime.now(timezone.utc)
        after = (
            aware(starting_after)
            if starting_after is not None
            else now - EVENT_RETENTION - timedelta(hours=1)
        )
        self._event_type = event_type
        self._limit = limit
        self._ordered = ordered
        self._max_buffered = max_buffered
        self._top = None if ending_before is None else aware(ending_before) - ONE_MICROSECOND
        self._pending: list[_Window] = []
        self._push(_Window(after + ONE_MICROSECOND, self._top, root=True))
        self._current: _Window | None = None
        self._buffer: dict[str, Event] = {}
        self._returned: set[str] = set()
        self._warned_instants: set[datetime] = set()
        self._inclusive = False
        self.side: PageSide | None = None
        """Which end of a window the server's full pages hold, once known."""
        self.requests = 0

    @property
    def done(self) -> bool:
        """Whether the window has been read completely."""
        return not self._pending and self._current is None

    @property
    def frontier(self) -> datetime | None:
        """The oldest instant still to be read (None when done)."""
        return min((w.lo for w in self._pending), default=None)

    @property
    def held(self) -> int:
        """How many events are read but not emitted yet (they wait for older ones)."""
        return len(self._buffer)

    def next_call(self) -> Call[dict[str, Any]] | None:
        """The next request, or None when the window is read. Answer it with :meth:`feed`."""
        if self._current is not None:
            raise RuntimeError("next_call() called again before feed()")
        if not self._pending:
            return None
        # The oldest window first: its events are the next ones that can be emitted.
        index = min(range(len(self._pending)), key=lambda i: self._pending[i].lo)
        window = self._current = self._pending.pop(index)
        self.requests += 1
        step = timedelta(0) if self._inclusive else ONE_MICROSECOND
        return list_events_page(
            event_type=self._event_type,
            starting_after=window.lo - step,
            ending_before=None if window.hi is None else window.hi + step,
            limit=self._limit,
            page_token=window.token,
        )

    def feed(self, body: dict[str, Any]) -> list[Event]:
        """Take the answer to the last :meth:`next_call`; return the events now ready."""
        window = self._current
        if window is None:
            raise RuntimeError("feed() called without next_call()")
        self._current = None
        raw = data_of(body) or []
        if not isinstance(raw, list):
            raw = []
        parsed = parse_events(raw)
        events = [e for e in parsed if _inside(e.created_at, window)]
        full = len(raw) >= self._limit
        if not self._inclusive and any(_on_bound(e.created_at, window) for e in parsed):
            # The server includes the instants it was given (the documented bounds are strict):
            # send the window's own bounds from now on, and read this one again if it was full.
            self._inclusive = True
            if full:
                self._push(window)
                return self._emit([])
        token = None
        pagination = body.get("pagination") if isinstance(body, dict) else None
        if isinstance(pagination, dict):
            token = pagination.get("next_page_token") or None
        if token:
            # The endpoint's description mentions tokens although its schema has none: follow one if sent.
            self._push(_Window(window.lo, window.hi, str(token), root=window.root))
        elif full and events:
            self._split(window, events)
        elif full:
            log.warning(
                "Polytomic answered a full page of events outside the requested window; "
                "treating the window as read."
            )
        if window.probe is not None and not token:
            self._learn(window, events, full)
        return self._emit(events)

    # ----------------------------------------------------------------------- internals

    def _push(self, window: _Window) -> None:
        if window.hi is None or window.lo <= window.hi:
            self._pending.append(window)

    def _split(self, window: _Window, events: list[Event]) -> None:
        """Queue what a full page leaves unread of ``window``."""
        stamps = [e.created_at for e in events]
        oldest, newest = min(stamps), max(stamps)
        order = _page_order(stamps)
        if order is not None:
            self.side = order
        side = order or self.side
        if oldest == newest:
            if len(events) > 1 and oldest not in self._warned_instants:
                self._warned_instants.add(oldest)
                log.warning(
                    "%d or more Polytomic events share the instant %s; the events API filters by "
                    "time only, so some of them may be unreadable.",
                    self._limit,
                    oldest.isoformat(),
                )
            if side != "oldest":
                self._push(_Window(window.lo, oldest - ONE_MICROSECOND))
            if side != "newest":
                self._push(_Window(oldest + ONE_MICROSECOND, window.hi))
        elif side == "oldest":
            # Continue from the newest timestamp itself: events sharing it may be cut off.
            self._push(_Window(newest, window.hi))
        elif side == "newest":
            self._push(_Window(window.lo, oldest))
        elif side == "arbitrary":
            top = window.hi if window.hi is not None else newest
            mid = window.lo + (top - window.lo) // 2
            self._push(_Window(window.lo, mid))
            self._push(_Window(mid + ONE_MICROSECOND, top))
            if window.hi is None:
                self._push(_Window(newest + ONE_MICROSECOND, None))
        else:
            # An unordered page: read below, inside and above it once. Whichever side (and
            # the inside) shows nothing new tells which end of a window the server keeps.
            probe = _Probe(frozenset(e.id for e in events), window.root and _informative(stamps))
            self._push(_Window(window.lo, oldest, probe=probe, role="below"))
            if oldest + ONE_MICROSECOND <= newest - ONE_MICROSECOND:
                self._push(
                    _Window(oldest + ONE_MICROSECOND, newest - ONE_MICROSECOND, probe=probe, role="inside")
                )
            else:
                probe.ok.add("inside")
            self._push(_Window(newest, window.hi, probe=probe, role="above"))

    def _learn(self, window: _Window, events: list[Event], full: bool) -> None:
        probe = window.probe
        assert probe is not None
        nothing_new = not full and all(e.id in probe.ids for e in events)
        (probe.ok if nothing_new else probe.bad).add(window.role)
        if self.side is not None:
            return
        if "inside" in probe.bad:
            # Events missing from the middle of a full page: no end of a window is kept.
            self.side = "arbitrary"
        elif not probe.learnable:
            return
        elif {"below", "inside"} <= probe.ok:
            self.side = "oldest"
        elif {"above", "inside"} <= probe.ok:
            self.side = "newest"

    def _emit(self, events: list[Event]) -> list[Event]:
        if not self._ordered:
            out = []
            for event in events:
                if event.id not in self._returned:
                    self._returned.add(event.id)
                    out.append(event)
            return out
        for event in events:
            self._buffer.setdefault(event.id, event)
        # Every unread window lies at or after its lo, so what is older than the oldest
        # unread window can no longer be preceded by anything.
        frontier = self.frontier
        ready = [e for e in self._buffer.values() if frontier is None or e.created_at < frontier]
        ready.sort(key=lambda e: (e.created_at, e.id))
        for event in ready:
            del self._buffer[event.id]
        if len(self._buffer) > self._max_buffered:
            self._evict()
        return ready

    def _evict(self) -> None:
        """Drop the newest half of the held events; their time range is read again later."""
        held = sorted(self._buffer.values(), key=lambda e: (e.created_at, e.id))
        keep = self._max_buffered // 2
        cut = next((e.created_at for e in held[keep:] if e.created_at > held[keep - 1].created_at), None)
        if cut is None:
            return
        for event in held:
            if event.created_at >= cut:
                del self._buffer[event.id]
        # Re-read [cut, top] except what is still pending anyway.
        position: datetime | None = cut
        gaps: list[_Window] = []
        for window in sorted(self._pending, key=lambda w: w.lo):
            assert position is not None
            if window.hi is not None and window.hi < position:
                continue
            if window.lo > position:
                gaps.append(_Window(position, window.lo - ONE_MICROSECOND))
            if window.hi is None:
                position = None
                break
            position = max(position, window.hi + ONE_MICROSECOND)
        if position is not None:
            gaps.append(_Window(position, self._top))
        for gap in gaps:
            self._push(gap)
        log.debug("Event pager holding more than %d events: re-reading from %s", self._max_buffered, cut)


def _inside(when: datetime, window: _Window) -> bool:
    return window.lo <= when and (window.hi is None or when <= window.hi)


def _on_bound(when: datetime, window: _Window) -> bool:
    """Whether ``when`` is one of the strict bounds sent for ``window``."""
    return when == window.lo - ONE_MICROSECOND or (
        window.hi is not None and when == window.hi + ONE_MICROSECOND
    )


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


__all__ = ["MAX_BUFFERED_EVENTS", "EventPager", "PageSide", "aware"]
