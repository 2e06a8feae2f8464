"""Background delivery of events to the organization's webhook, with retries.

The worker only does I/O: what an attempt means (history, failure counts, disabling the
webhook) is decided by the callbacks it is given (:class:`~.backends.webhooks.WebhooksBackend`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from airflow_provider_polytomic.signature import SIGNATURE_HEADER, sign

from .records import RESPONSE_BODY_LIMIT, Delivery

__all__ = ["MAX_ATTEMPTS", "WebhookDispatcher"]

MAX_ATTEMPTS = 6
"""First attempt plus the 5 documented retries."""


@dataclass
class _Job:
    url: str
    secret: str
    body: bytes
    event_id: str
    event_type: str
    webhook_id: str = ""
    attempt: int = 1


class WebhookDispatcher:
    """Delivers events on one worker thread; never blocks the caller of :meth:`submit`.

    A non-2xx answer or a connection error is retried up to 5 more times, waiting
    ``base_delay * 2 ** (attempt - 1)`` seconds before each retry (Polytomic documents 5
    retries with exponential backoff, not the delays).

    :param on_attempt: called with every attempt and whether it was the event's last one
        (delivered, or given up after the last retry), before :meth:`wait` can return.
    :param should_attempt: asked with the webhook id before each attempt; False drops the
        event (the webhook was disabled or deleted meanwhile).
    """

    def __init__(
        self,
        on_attempt: Callable[[Delivery, bool], None],
        now: Callable[[], datetime],
        *,
        base_delay: float = 0.05,
        timeout: float = 5.0,
        should_attempt: Callable[[str], bool] | None = None,
    ) -> None:
        """Create a dispatcher (its worker thread starts with the first event)."""
        self.base_delay = base_delay
        self._on_attempt = on_attempt
        self._should_attempt = should_attempt or (lambda _webhook_id: True)
        self._now = now
        self._timeout = timeout
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._pending = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def submit(
        self, url: str, secret: str, body: bytes, event_id: str, event_type: str, webhook_id: str = ""
    ) -> None:
        """Queue one event for delivery (starts the worker thread on first use)."""
        with self._cond:
            if self._stopped:
                return
            self._pending += 1
            job = _Job(url, secret, body, event_id, event_type, webhook_id)
            heapq.heappush(self._heap, (time.monotonic(), next(self._seq), job))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fake-polytomic-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Events not yet delivered successfully nor given up on."""
        with self._cond:
            return self._pending

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (a stopped dispatcher ignores new events)."""
        with self._cond:
            return self._stopped

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued event is delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        """Stop the worker; queued retries are abandoned."""
        with self._cond:
            self._stopped = True
            self._pending = 0
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._timeout + 1)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, trust_env=False) as client:
            while True:
                with self._cond:
                    while not self._stopped:
                        if self._heap:
                            wait = self._heap[0][0] - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        else:
                            self._cond.wait()
                    if self._stopped:
                        return
                    _, _, job = heapq.heappop(self._heap)
                self._attempt(client, job)

    def _attempt(self, client: httpx.Client, job: _Job) -> None:
        if not self._should_attempt(job.webhook_id):
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            return
        signature = sign(job.body, job.secret)
        status: int | None = None
        error: str | None = None
        error_kind: str | None = None
        answer = ""
        attempted_at = self._now()
        started = time.monotonic()
        try:
            response = client.post(
                job.url,
                content=job.body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            )
            status = response.status_code
            answer = response.text[:RESPONSE_BODY_LIMIT]
            if not 200 <= status < 300:
                error, error_kind = f"endpoint answered HTTP {status}", "http_status"
        except httpx.TimeoutException as exc:
            error, error_kind = f"{type(exc).__name__}: {exc}", "timeout"
        except httpx.HTTPError as exc:
            error, error_kind = f"{type(exc).__name__}: {exc}", "connection"
        delivery = Delivery(
            job.url,
            job.event_id,
            job.event_type,
            job.attempt,
            status,
            None if status is not None else error,
            job.body,
            signature,
            self._now(),
            webhook_id=job.webhook_id,
            id=str(uuid.uuid4()),
            attempted_at=attempted_at,
            duration_ms=int((time.monotonic() - started) * 1000),
            response_body=answer,
            error_kind=error_kind,
            seq=next(self._seq),
        )
        final = delivery.ok or job.attempt >= MAX_ATTEMPTS
        with self._cond:
            if self._stopped:
                return
        # Outside the condition: the callback takes the fake's lock, which is held while
        # events are submitted (lock order: fake lock, then this condition).
        self._on_attempt(delivery, final)
        with self._cond:
            if self._stopped:
                return
            if not final:
                delay = self.base_delay * 2 ** (job.attempt - 1)
                job.attempt += 1
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            else:
                self._pending -= 1
            self._cond.notify_all()
