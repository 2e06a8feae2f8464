"""Fault injection knobs for the fake Polytomic server."""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Faults", "RequestFault", "RouteFault"]

RequestFaultKind = Literal["rate_limit", "server_error", "reset"]


@dataclass(frozen=True)
class RequestFault:
    """One fault answered to one API request (returned by :meth:`Faults.take_request_fault`)."""

    kind: RequestFaultKind
    status: int = 0
    retry_after: float | str | None = None


@dataclass
class RouteFault:
    """How API requests to matching paths are answered (see :meth:`Faults.fail_route`).

    :ivar status: the HTTP status; with ``body`` set, that JSON is sent instead of an error.
    :ivar delay: seconds to wait before answering.
    :ivar remaining: answers left (None: every matching request).
    """

    pattern: re.Pattern[str]
    status: int = 503
    body: Any = None
    delay: float = 0.0
    remaining: int | None = None
    served: int = field(default=0)


@dataclass
class _Burst:
    fault: RequestFault
    remaining: int


class Faults:
    """Runtime-mutable fault knobs; every counter is consumed per request under a lock.

    Request faults (:meth:`rate_limit`, :meth:`server_errors`, :meth:`reset_connections`) queue
    up in the order they were configured: ``rate_limit(1); server_errors(2)`` makes the next API
    request answer 429 and the two after it 503. They apply only to ``/api/*`` routes, never
    to ``/_fake/*`` control routes or record-log files.

    Plain attributes:

    * ``drop_events``: event types never stored in the events API (execution status still changes;
      the webhook still fires unless ``drop_webhook`` says otherwise).
    * ``drop_next_events``: drop the next N events from the events API.
    * ``drop_webhook`` / ``drop_webhook_next``: skip all / the next N webhook deliveries.
    * ``duplicate_events``: every event recorded while set is stored twice (same id).
    * ``expire_record_links``: record-log URLs placed in events are already expired; the
      log-URL endpoints still mint working URLs.

    Route faults (:meth:`fail_route`) answer only requests to matching paths, before the
    queued request faults, e.g. ``fail_route(r"/api/models/", 404)``.

    How the events endpoint orders its pages is not a fault but a plausible variant of
    Polytomic's undocumented behaviour: ``FakePolytomic(events_order=...)``.
    """

    def __init__(self) -> None:
        """Create a fault set with every knob off."""
        self._lock = threading.Lock()
        self._bursts: deque[_Burst] = deque()
        self._slow_seconds = 0.0
        self._slow_remaining: int | None = 0
        self._truncate_remaining = 0
        self._corrupt_gzip_remaining = 0
        self._routes: list[RouteFault] = []
        self.drop_events: set[str] = set()
        self.drop_next_events = 0
        self.drop_webhook = False
        self.drop_webhook_next = 0
        self.duplicate_events = False
        self.expire_record_links = False

    # -- configuration -------------------------------------------------------------------------

    def rate_limit(self, n: int, retry_after: float | str = 1) -> None:
        """Answer the next ``n`` API requests with 429 and ``Retry-After: retry_after``.

        ``retry_after`` is sent as given: a number of seconds or an HTTP-date string.
        """
        self._push(RequestFault("rate_limit", 429, retry_after), n)

    def server_errors(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` API requests with ``status`` (a 5xx by default 503)."""
        self._push(RequestFault("server_error", status), n)

    def reset_connections(self, n: int) -> None:
        """Drop the TCP connection (RST, no response bytes) for the next ``n`` API requests."""
        self._push(RequestFault("reset"), n)

    def fail_route(
        self,
        path: str,
        status: int = 503,
        *,
        body: Any = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> RouteFault:
        """Answer API requests whose path matches the regular expression ``path`` (``re.search``)
        with ``status`` and an error body in the configured shape, or with ``body`` as JSON
        when given (``fail_route(r"/api/connections/", 200, body={"data": []})`` serves a body
        of the wrong shape). ``delay`` seconds pass first; ``times`` limits how many requests
        are answered so (None: all). Returns the fault, whose ``served`` counts its answers.
        """
        if not 100 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status!r}")
        fault = RouteFault(re.compile(path), int(status), body, float(delay), times)
        with self._lock:
            self._routes.append(fault)
        return fault

    def take_route_fault(self, path: str) -> RouteFault | None:
        """Consume and return the route fault answering a request to ``path``, or None."""
        with self._lock:
            for fault in self._routes:
                if (fault.remaining is None or fault.remaining > 0) and fault.pattern.search(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.served += 1
                    return fault
        return None

    def slow(self, seconds: float, n: int | None = None) -> None:
        """Delay the next ``n`` API responses (all of them when ``n`` is None) by ``seconds``."""
        with self._lock:
            self._slow_seconds = seconds
            self._slow_remaining = n

    def truncate_record_logs(self, n: int) -> None:
        """The next ``n`` record-log file responses advertise the full Content-Length but stop halfway."""
        with self._lock:
            self._truncate_remaining += max(0, n)

    def corrupt_gzip_record_logs(self, n: int) -> None:
        """Serve the next ``n`` gzip record-log files whole but with a wrong CRC-32 in their
        trailer (plain files are not affected)."""
        with self._lock:
            self._corrupt_gzip_remaining += max(0, n)

    def clear(self) -> None:
        """Turn every knob off and forget pending request faults."""
        with self._lock:
            self._bursts.clear()
            self._routes.clear()
            self._slow_seconds = 0.0
            self._slow_remaining = 0
            self._truncate_remaining = 0
            self._corrupt_gzip_remaining = 0
            self.drop_events = set()
            self.drop_next_events = 0
            self.drop_webhook = False
            self.drop_webhook_next = 0
            self.duplicate_events = False
            self.expire_record_links = False

    @property
    def pending_request_faults(self) -> int:
        """How many queued request faults (429 / 5xx / reset) are still to be served."""
        with self._lock:
            return sum(b.remaining for b in self._bursts)

    # -- consumption (used by the server) ------------------------------------------------------

    def _push(self, fault: RequestFault, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self._bursts.append(_Burst(fault, n))

    def take_request_fault(self) -> RequestFault | None:
        """Consume and return the fault for the current API request, or None."""
        with self._lock:
            while self._bursts and self._bursts[0].remaining <= 0:
                self._bursts.popleft()
            if not self._bursts:
                return None
            burst = self._bursts[0]
            burst.remaining -= 1
            if burst.remaining <= 0:
                self._bursts.popleft()
            return burst.fault

    def take_slow(self) -> float:
        """Consume and return the delay (seconds) for the current API response (0.0 for none)."""
        with self._lock:
            if self._slow_seconds <= 0:
                return 0.0
            if self._slow_remaining is None:
                return self._slow_seconds
            if self._slow_remaining <= 0:
                return 0.0
            self._slow_remaining -= 1
            return self._slow_seconds

    def take_truncate(self) -> bool:
        """Consume one record-log truncation; True when this file response must be cut short."""
        with self._lock:
            if self._truncate_remaining > 0:
                self._truncate_remaining -= 1
                return True
            return False

    def take_drop_event(self, event_type: str) -> bool:
        """True when an event of ``event_type`` must not be stored in the events API."""
        with self._lock:
            if event_type in self.drop_events:
                return True
            if self.drop_next_events > 0:
                self.drop_next_events -= 1
                return True
            return False

    def take_drop_webhook(self) -> bool:
        """True when the webhook delivery of the current event must be skipped."""
        with self._lock:
            if self.drop_webhook:
                return True
            if self.drop_webhook_next > 0:
                self.drop_webhook_next -= 1
                return True
            return False

    def take_corrupt_gzip(self) -> bool:
        """Consume one gzip corruption; True when this gzip file response must fail its CRC check."""
        with self._lock:
            if self._corrupt_gzip_remaining <= 0:
                return False
            self._corrupt_gzip_remaining -= 1
            return True
