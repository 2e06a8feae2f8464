"""Polytomic's endpoints as :class:`~airflow_provider_polytomic.client.Call` objects, and the
events pager, all without I/O.

The synchronous hook and the asynchronous path (triggers) both build their requests here
and run the same paging logic, so they agree on paths, parameters and models.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

from airflow_provider_polytomic.client import Call, data_of
from airflow_provider_polytomic.models import (
    BulkExecution,
    BulkSync,
    BulkSyncSchema,
    Event,
    Execution,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    Identity,
    Model,
    ModelSync,
    PolytomicConnection,
    StartedExecution,
    SyncKind,
    SyncStatus,
    Webhook,
    WebhookDeliveriesPage,
    WebhookDelivery,
    parse_events,
)
from airflow_provider_polytomic.vocabulary import (
    DEFAULT_EVENT_RECHECK_INTERVAL,
    WEBHOOK_SECRET_MAX_LENGTH,
    WEBHOOK_SECRET_MIN_LENGTH,
    SeenEventIds,
    is_valid_webhook_secret,
    sync_api_root,
)

log = logging.getLogger(__name__)

EVENTS_PAGE_LIMIT = 100
EVENT_RETENTION = timedelta(hours=48)
EVENT_VISIBILITY_LAG = timedelta(seconds=60)
"""How long after its ``created_at`` an event may still show up in the events API (an
assumption: Polytomic does not say). Readers that follow the endpoint re-read this far back."""
EVENT_TAIL_OVERLAP = timedelta(seconds=1)
EVENT_TAIL_OVERLAP_EVENTS = 50
MAX_RECHECK_BACKLOG = timedelta(minutes=10)
MAX_BUFFERED_EVENTS = 10_000
MODEL_LOG_TYPES = ("records", "errors", "warnings", "inserts", "updates", "deletes")
_ONE_US = timedelta(microseconds=1)


def _seg(value: str, name: str) -> str:
    """Quote a path segment, refusing empty values with a clear error."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return quote(value.strip(), safe="")


def _sync_base(kind: str, sync_id: str) -> str:
    return f"{sync_api_root(kind)}/{_seg(sync_id, 'sync_id')}"


def parse_execution(kind: SyncKind, raw: Any) -> Execution | BulkExecution:
    if kind == "model":
        return Execution.model_validate(raw)
    return BulkExecution.model_validate(raw)


# -------------------------------------------------------------------------- endpoints


def get_identity() -> Call[Identity]:
    return Call("GET", "/api/me", lambda b: Identity.model_validate(data_of(b)))


def get_event_types() -> Call[list[str]]:
    return Call("GET", "/api/events_types", lambda b: [str(t) for t in (data_of(b) or [])])


def list_events_page(
    *,
    event_type: str | None = None,
    starting_after: datetime | None = None,
    ending_before: datetime | None = None,
    limit: int = EVENTS_PAGE_LIMIT,
    page_token: str | None = None,
) -> Call[dict[str, Any]]:
    """One page of ``GET /api/events``; the parse keeps the raw body (pager decides)."""
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit!r}")
    params = {
        "type": event_type,
        "starting_after": starting_after,
        "ending_before": ending_before,
        "limit": limit,
        "page_token": page_token,
    }
    return Call("GET", "/api/events", lambda b: b if isinstance(b, dict) else {"data": b}, params=params)


def list_webhooks() -> Call[list[Webhook]]:
    return Call("GET", "/api/webhooks", lambda b: [Webhook.model_validate(w) for w in (data_of(b) or [])])


def _webhook_body(endpoint: str, secret: str) -> dict[str, str]:
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
    if not is_valid_webhook_secret(secret):
        # Never echo the secret itself.
        raise ValueError(
            f"secret must be a string of {WEBHOOK_SECRET_MIN_LENGTH} to {WEBHOOK_SECRET_MAX_LENGTH} "
            "characters (Polytomic's limit)"
        )
    return {"endpoint": endpoint, "secret": secret}


def create_webhook(endpoint: str, secret: str) -> Call[Webhook]:
    return Call(
        "POST",
        "/api/webhooks",
        lambda b: Webhook.model_validate(data_of(b)),
        json=_webhook_body(endpoint, secret),
    )


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call(
        "GET", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}", lambda b: Webhook.model_validate(data_of(b))
    )


def update_webhook(webhook_id: str, endpoint: str, secret: str) -> Call[Webhook]:
    return Call(
        "PUT",
        f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}",
        lambda b: Webhook.model_validate(data_of(b)),
        json=_webhook_body(endpoint, secret),
    )


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}", lambda b: None)


def set_webhook_enabled(webhook_id: str, enabled: bool) -> Call[Webhook]:
    action = "enable" if enabled else "disable"
    return Call(
        "POST",
        f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}/{action}",
        lambda b: Webhook.model_validate(data_of(b)),
    )


def list_webhook_deliveries_page(
    webhook_id: str,
    *,
    success: bool | None = None,
    event_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    page_token: str | None = None,
) -> Call[WebhookDeliveriesPage]:
    """One page of ``GET /api/webhooks/{id}/deliveries``: attempts newest first.

    ``start`` includes attempts at or after it, ``end`` those before it; ``success`` keeps
    only delivered (True) or failed (False) attempts.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")

    def parse(body: Any) -> WebhookDeliveriesPage:
        items = data_of(body) or []
        token = None
        if isinstance(body, dict) and isinstance(body.get("pagination"), dict):
            token = body["pagination"].get("next_page_token") or None
        return WebhookDeliveriesPage(
            deliveries=[WebhookDelivery.model_validate(d) for d in items if isinstance(d, dict)],
            next_page_token=token,
        )

    params = {"success": success, "event_id": event_id, "start": start, "end": end, "page_token": page_token}
    return Call("GET", f"/api/webhooks/{_seg(webhook_id, 'webhook_id')}/deliveries", parse, params=params)


def start_sync(
    sync_id: str,
    *,
    kind: SyncKind = "model",
    resync: bool = False,
    test: bool = False,
    identities: Sequence[str] | None = None,
    resync_mode: str | None = None,
    fetch_mode: str | None = None,
    schemas: Sequence[str] | None = None,
    idempotency_key: str | None = None,
) -> Call[StartedExecution]:
    """Start an execution. A 409 answer raises ``PolytomicSyncAlreadyRunningError``."""
    base = _sync_base(kind, sync_id)
    body: dict[str, Any]
    if kind == "model":
        body = {"resync": bool(resync), "test": bool(test)}
        if identities:
            body["identities"] = list(identities)
    else:
        if resync and not resync_mode:
            # The bulk API rejects the legacy `resync` flag; its documented equivalent is rebuild.
            resync_mode = "rebuild"
        if resync_mode and test:
            raise ValueError("a bulk sync cannot be both a test and a resync (Polytomic forbids it)")
        if resync_mode not in (None, "refetch", "resync", "rebuild"):
            raise ValueError(f"resync_mode must be refetch, resync or rebuild, got {resync_mode!r}")
        if fetch_mode not in (None, "none", "incremental", "full"):
            raise ValueError(f"fetch_mode must be none, incremental or full, got {fetch_mode!r}")
        body = {"test": bool(test)}
        if resync_mode:
            body["resync_mode"] = resync_mode
        if fetch_mode:
            body["fetch_mode"] = fetch_mode
        if schemas:
            body["schemas"] = list(schemas)
    return Call(
        "POST",
        f"{base}/executions",
        lambda b: StartedExecution.model_validate(data_of(b)),
        json=body,
        conflict_is_running=True,
        idempotency_key=idempotency_key,
    )


def get_sync_status(sync_id: str, *, kind: SyncKind = "model") -> Call[SyncStatus]:
    return Call(
        "GET", f"{_sync_base(kind, sync_id)}/status", lambda b: SyncStatus.model_validate(data_of(b) or {})
    )


def get_execution(
    sync_id: str, execution_id: str, *, kind: SyncKind = "model"
) -> Call[Execution | BulkExecution]:
    return Call(
        "GET",
        f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}",
        lambda b: parse_execution(kind, data_of(b)),
    )


@dataclass(frozen=True)
class ExecutionsPage:
    executions: list[Execution | BulkExecution]
    next_page_token: str | None


def list_executions_page(
    sync_id: str,
    *,
    kind: SyncKind = "model",
    page_token: str | None = None,
    only_completed: bool | None = None,
    ascending: bool | None = None,
    limit: int | None = None,
) -> Call[ExecutionsPage]:
    """One page of an execution list (newest first unless ``ascending``)."""
    base = _sync_base(kind, sync_id)
    params: dict[str, Any] = {"page_token": page_token, "ascending": ascending}
    if kind == "model":
        params["only_completed"] = only_completed
    else:
        params["only_terminal"] = only_completed
        params["limit"] = limit

    def parse(body: Any) -> ExecutionsPage:
        items = data_of(body) or []
        token = None
        if isinstance(body, dict) and isinstance(body.get("pagination"), dict):
            token = body["pagination"].get("next_page_token") or None
        return ExecutionsPage([parse_execution(kind, item) for item in items], token)

    return Call("GET", f"{base}/executions", parse, params=params)


def cancel_execution(sync_id: str, execution_id: str, *, kind: SyncKind = "model") -> Call[str | None]:
    """Ask Polytomic to cancel one execution (asynchronous on Polytomic's side)."""
    return Call(
        "POST",
        f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}/cancel",
        lambda b: (data_of(b) or {}).get("message") if isinstance(data_of(b), dict) else None,
    )


def cancel_sync(sync_id: str, *, kind: SyncKind = "model") -> Call[str | None]:
    return Call(
        "POST",
        f"{_sync_base(kind, sync_id)}/cancel",
        lambda b: (data_of(b) or {}).get("message") if isinstance(data_of(b), dict) else None,
    )


def get_execution_log_urls(
    sync_id: str, execution_id: str, log_type: str = "records", *, kind: SyncKind = "model"
) -> Call[ExecutionLogUrls]:
    """Fresh signed URLs of an execution's log files.

    Model syncs: ``log_type`` is one of records, errors, warnings, inserts, updates,
    deletes. Bulk syncs have one log set (``.../logs``) and ignore ``log_type``.
    """
    base = f"{_sync_base(kind, sync_id)}/executions/{_seg(execution_id, 'execution_id')}"
    if kind == "model":
        if log_type not in MODEL_LOG_TYPES:
            raise ValueError(f"log_type must be one of {', '.join(MODEL_LOG_TYPES)}, got {log_type!r}")
        path = f"{base}/{log_type}"
    else:
        path = f"{base}/logs"
    return Call("GET", path, lambda b: ExecutionLogUrls.model_validate(data_of(b) or {}))


def get_execution_logs_index(sync_id: str, execution_id: str) -> Call[ExecutionLogsIndex]:
    """A model sync execution's logs index: per log type, a record count and the endpoint of
    its signed URLs (``GET /api/syncs/{sync_id}/executions/{id}/logs``; bulk syncs have none,
    their ``.../logs`` is :func:`get_execution_log_urls`)."""
    return Call(
        "GET",
        f"{_sync_base('model', sync_id)}/executions/{_seg(execution_id, 'execution_id')}/logs",
        lambda b: ExecutionLogsIndex.model_validate(data_of(b) or {}),
    )


def get_log_urls_at(endpoint: str, base_url: str) -> Call[ExecutionLogUrls]:
    """The signed URLs behind an endpoint the logs index names (:attr:`LogsIndexEntry.url`).

    ``endpoint`` may be absolute or a path; it is resolved against ``base_url`` and must stay
    under ``base_url``'s ``/api/``, because the request carries the API key.

    :raises ValueError: the endpoint is anywhere else.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ValueError(f"endpoint must be a non-empty string, got {endpoint!r}")
    resolved = urlsplit(urljoin(base_url.rstrip("/") + "/", endpoint.strip()))
    base = urlsplit(base_url)
    api_root = base.path.rstrip("/") + "/api/"
    if (resolved.scheme, resolved.netloc.lower()) != (base.scheme, base.netloc.lower()) or not (
        resolved.path.startswith(api_root)
    ):
        raise ValueError("endpoint is not on the Polytomic API (the API key is only sent there)")
    params = dict(parse_qsl(resolved.query, keep_blank_values=True))
    path = resolved.path[len(base.path.rstrip("/")) :]
    return Call(
        "GET", path, lambda b: ExecutionLogUrls.model_validate(data_of(b) or {}), params=params or None
    )


# --------------------------------------------------- sync definitions, models, connections


def get_sync(sync_id: str, *, kind: SyncKind = "model") -> Call[ModelSync | BulkSync]:
    """A sync's definition: ``GET /api/syncs/{id}`` (a :class:`ModelSync`: models and target)
    or ``GET /api/bulk/syncs/{id}`` (a :class:`BulkSync`: source and destination)."""
    base = _sync_base(kind, sync_id)
    model: type[ModelSync] | type[BulkSync] = ModelSync if kind == "model" else BulkSync
    return Call("GET", base, lambda b: model.model_validate(data_of(b)))


def list_bulk_sync_schemas(sync_id: str) -> Call[list[BulkSyncSchema]]:
    """``GET /api/bulk/syncs/{id}/schemas``: the objects a bulk sync copies (one page: the
    endpoint has no pagination)."""

    def parse(body: Any) -> list[BulkSyncSchema]:
        items = data_of(body) or []
        if not isinstance(items, list):
            raise ValueError(f"expected a list of schemas, got {type(items).__name__}")
        return [BulkSyncSchema.model_validate(item) for item in items if isinstance(item, dict)]

    return Call("GET", f"{_sync_base('bulk', sync_id)}/schemas", parse)


def get_model(model_id: str) -> Call[Model]:
    """``GET /api/models/{id}``: a model's source connection, configuration and fields."""
    return Call(
        "GET", f"/api/models/{_seg(model_id, 'model_id')}", lambda b: Model.model_validate(data_of(b))
    )


def get_connection(connection_id: str) -> Call[PolytomicConnection]:
    """``GET /api/connections/{id}``: a Polytomic connection's type and configuration."""
    return Call(
        "GET",
        f"/api/connections/{_seg(connection_id, 'connection_id')}",
        lambda b: PolytomicConnection.model_validate(data_of(b)),
    )


# ------------------------------------------------------------------------ events pager
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
            _aware(starting_after)
            if starting_after is not None
            else now - EVENT_RETENTION - timedelta(hours=1)
        )
        self._event_type = event_type
        self._limit = limit
        self._ordered = ordered
        self._max_buffered = max_buffered
        self._top = None if ending_before is None else _aware(ending_before) - _ONE_US
        self._pending: list[_Window] = []
        self._push(_Window(after + _ONE_US, self._top, root=True))
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
        step = timedelta(0) if self._inclusive else _ONE_US
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
                self._push(_Window(window.lo, oldest - _ONE_US))
            if side != "newest":
                self._push(_Window(oldest + _ONE_US, window.hi))
        elif side == "oldest":
            # Continue from the newest timestamp itself: events sharing it may be cut off.
            self._push(_Window(newest, window.hi))
        elif side == "newest":
            self._push(_Window(window.lo, oldest))
        elif side == "arbitrary":
            top = window.hi if window.hi is not None else newest
            mid = window.lo + (top - window.lo) // 2
            self._push(_Window(window.lo, mid))
            self._push(_Window(mid + _ONE_US, top))
            if window.hi is None:
                self._push(_Window(newest + _ONE_US, None))
        else:
            # An unordered page: read below, inside and above it once. Whichever side (and
            # the inside) shows nothing new tells which end of a window the server keeps.
            probe = _Probe(frozenset(e.id for e in events), window.root and _informative(stamps))
            self._push(_Window(window.lo, oldest, probe=probe, role="below"))
            if oldest + _ONE_US <= newest - _ONE_US:
                self._push(_Window(oldest + _ONE_US, newest - _ONE_US, probe=probe, role="inside"))
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
                gaps.append(_Window(position, window.lo - _ONE_US))
            if window.hi is None:
                position = None
                break
            position = max(position, window.hi + _ONE_US)
        if position is not None:
            gaps.append(_Window(position, self._top))
        for gap in gaps:
            self._push(gap)
        log.debug("Event pager holding more than %d events: re-reading from %s", self._max_buffered, cut)


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
        self._start = _aware(start)
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
        self._now = _aware(now)
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
            self._inc = EventPager(starting_after=self._inc_lower - _ONE_US, limit=self._limit, ordered=False)
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
                    starting_after=self._trail - _ONE_US, ending_before=to, limit=self._limit, ordered=False
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
        self._seen.raise_floor(floor - timedelta(seconds=1) - _ONE_US)


def _inside(when: datetime, window: _Window) -> bool:
    return window.lo <= when and (window.hi is None or when <= window.hi)


def _on_bound(when: datetime, window: _Window) -> bool:
    """Whether ``when`` is one of the strict bounds sent for ``window``."""
    return when == window.lo - _ONE_US or (window.hi is not None and when == window.hi + _ONE_US)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
