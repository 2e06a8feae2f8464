"""What every backend of the fake shares: one lock, the clock, the organization, the knobs."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from ..clock import FakeClock
from ..faults import Faults

__all__ = [
    "EVENTS_ORDERS",
    "LOGS_INDEX_URL_STYLES",
    "EventsOrder",
    "FakeSettings",
    "Knob",
    "LogsIndexUrlStyle",
    "Org",
    "OrgAttribute",
]

T = TypeVar("T")

LogsIndexUrlStyle = Literal["absolute", "path", "omitted", "foreign"]
LOGS_INDEX_URL_STYLES: tuple[LogsIndexUrlStyle, ...] = ("absolute", "path", "omitted", "foreign")
EventsOrder = Literal["oldest_first", "newest_first", "shuffled"]
EVENTS_ORDERS: tuple[EventsOrder, ...] = ("oldest_first", "newest_first", "shuffled")


@dataclass
class FakeSettings:
    """Behaviour knobs read by the backends on every request, so they can change while serving.

    Each one stands for something Polytomic does not document (or a test convenience); the
    testing page of the docs (docs/testing.md) lists them with the variants they cover.
    """

    signed_url_ttl: float = 3600.0
    """Lifetime of signed record-log URLs, in (fake-clock) seconds."""
    gzip_record_logs: bool = False
    """Serve record-log files gzip-compressed (half with ``Content-Encoding: gzip``, half as
    raw ``application/gzip`` bytes)."""
    record_log_format: Literal["json", "jsonl"] = "json"
    """A JSON array per record-log file, or one JSON object per line."""
    error_shape: Literal["api_error", "legacy"] = "api_error"
    """``ApiError`` bodies (``status``, ``key``, ``message``, ``metadata``) or the older
    ``RestErrResponse`` ones (``code``, ``error``, ``status``, ``context``)."""
    api_version: str = "2025-09-18"
    """``X-Polytomic-Version`` answered when the request sends none."""
    cancel_delay: float = 0.0
    """Seconds an execution canceled through the API stays ``canceling`` (0: canceled at once)."""
    logs_index_urls: LogsIndexUrlStyle = "absolute"
    """How the logs index's per-type ``url`` and ``sync.completed``'s ``logs_url`` are written:
    ``absolute`` (on the API origin), ``path`` (``/api/...``), ``omitted`` (no url) or
    ``foreign`` (another host, which must never receive the API key)."""
    logs_index_available: bool = True
    """False: the logs index answers 404, as a deployment without it would."""
    webhook_disable_after: int | None = None
    """Disable the webhook after this many consecutive events whose every delivery attempt
    failed (None: never). Polytomic disables failing webhooks but does not document when."""
    webhook_deliveries_page_size: int = 50
    """Attempts per page of ``GET /api/webhooks/{id}/deliveries`` (undocumented)."""
    export_job_polls: int = 1
    """How many polls of a log-export job answer ``running`` before it is ``done``."""
    console_log_limit: int = 50
    """Most console-log entries one request returns (Polytomic documents 50)."""
    events_order: EventsOrder = "oldest_first"
    """How ``GET /api/events`` orders a page, which Polytomic does not document:
    ``oldest_first`` (a window's oldest ``limit`` events, oldest first), ``newest_first``
    (the newest ``limit``, newest first) or ``shuffled`` (the oldest ``limit``, in a random,
    seeded order)."""
    model_executions_page_size: int = 50
    """Executions per page of ``GET /api/syncs/{id}/executions`` (Polytomic does not document it;
    the bulk listing takes ``limit``)."""


class Org:
    """The fake organization and the plumbing its backends share.

    One re-entrant lock guards every backend: an API call often touches several of them
    (finishing an execution writes record-log files, records an event and queues a webhook
    delivery), and one lock keeps that step atomic for the uvicorn thread, the timer threads
    and the webhook worker alike.
    """

    def __init__(
        self,
        *,
        organization_id: str | None,
        organization_name: str,
        clock: FakeClock,
        settings: FakeSettings,
        faults: Faults,
    ) -> None:
        """Create the organization (a random uuid4 id unless ``organization_id`` is given)."""
        self.lock = threading.RLock()
        self.organization_id = organization_id or str(uuid.uuid4())
        self.organization_name = organization_name
        self.user_id = str(uuid.uuid4())
        self.user_email = "fake-user@example.com"
        self.clock = clock
        self.settings = settings
        self.faults = faults
        self.random = random.Random(0)
        self.url = ""
        """API origin, ``http://127.0.0.1:PORT`` once started."""
        self.storage_url: str | None = None
        """Storage origin, when the fake serves record logs from a second server."""
        self.storage_origin = False
        self._seq = itertools.count(1)
        self._timers: set[threading.Timer] = set()

    def now(self) -> datetime:
        """The fake clock's time."""
        return self.clock.now()

    def next_seq(self) -> int:
        """A number larger than every one handed out before (orders equal timestamps)."""
        with self.lock:
            return next(self._seq)

    def actor(self) -> dict[str, str]:
        """The ``created_by`` / ``updated_by`` of everything the fake's user made."""
        return {"id": self.user_id, "name": "Fake User", "type": "user"}

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a timer thread after ``delay`` real seconds (until :meth:`cancel_timers`)."""

        def run() -> None:
            with self.lock:
                self._timers.discard(timer)
            fn(*args)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self.lock:
            self._timers.add(timer)
        timer.start()

    def cancel_timers(self) -> None:
        """Forget every pending :meth:`later` call."""
        with self.lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


class Knob(Generic[T]):
    """An attribute of the fake stored in its :class:`FakeSettings` (``obj.org.settings``), which
    the backends read on every request, so setting it changes the running fake."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Knob[T]: ...
    @overload
    def __get__(self, obj: Any, owner: type) -> T: ...
    def __get__(self, obj: Any | None, owner: type) -> T | Knob[T]:
        if obj is None:
            return self
        value: T = getattr(obj.org.settings, self.name)
        return value

    def __set__(self, obj: Any, value: T) -> None:
        setattr(obj.org.settings, self.name, value)


class OrgAttribute(Generic[T]):
    """An attribute of the fake stored on the :class:`Org` (``obj.org``) every backend shares."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> OrgAttribute[T]: ...
    @overload
    def __get__(self, obj: Any, owner: type) -> T: ...
    def __get__(self, obj: Any | None, owner: type) -> T | OrgAttribute[T]:
        if obj is None:
            return self
        value: T = getattr(obj.org, self.name)
        return value

    def __set__(self, obj: Any, value: T) -> None:
        setattr(obj.org, self.name, value)
