"""Where an execution's record-log links and counts come from.

Links: the ``sync.completed`` event, else (event gone) the endpoints the logs index names,
else the documented per-type endpoints. Counts, per record type: the event's, else the logs
index's, else the execution's. Every source is asked only when a previous one lacks what is
needed, so the usual case (event present, inserted and updated) costs no request beyond the
events listing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from airflow_provider_polytomic.client import ClientConfig, RetryableAPIError
from airflow_provider_polytomic.exceptions import PolytomicAPIError, PolytomicNotFoundError
from airflow_provider_polytomic.models import (
    BulkExecution,
    Event,
    EventType,
    Execution,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    SyncCompletedPayload,
    SyncKind,
)
from airflow_provider_polytomic.record_logs.errors import RecordLogError

__all__ = [
    "EVENT_LINK_FIELDS",
    "LOG_TYPES",
    "RECORD_TYPES",
    "CountSource",
    "HookLike",
    "LinkSet",
    "LinkSource",
    "RecordType",
    "discover_links",
    "find_completed_event",
]

log = logging.getLogger(__name__)

RecordType = Literal["inserted", "updated", "deleted", "errored", "total"]
RECORD_TYPES: tuple[str, ...] = ("inserted", "updated", "deleted", "errored", "total")
"""Record types a ``sync.completed`` event links to, in XCom order."""

EVENT_LINK_FIELDS: dict[str, str] = {
    "inserted": "inserted_records",
    "updated": "updated_records",
    "deleted": "deleted_records",
    "errored": "errored_records",
    "total": "total_records",
}
"""Record type -> the ``sync.completed`` payload field listing its links."""

LOG_TYPES: dict[str, str] = {
    "inserted": "inserts",
    "updated": "updates",
    "deleted": "deletes",
    "errored": "errors",
    "total": "records",
}
"""Record type -> log type of the logs index and of ``GET /api/syncs/{sync_id}/executions/{id}/{type}``."""

_EVENT_COUNT_FIELDS: dict[str, str] = {
    "inserted": "inserted_count",
    "updated": "updated_count",
    "errored": "error_count",
    "total": "record_count",
}
_EXECUTION_COUNT_FIELDS: dict[str, str] = {
    "inserted": "insert",
    "updated": "update",
    "deleted": "delete",
    "errored": "error",
    "total": "total",
}

LinkSource = Literal["event", "logs_index", "api"]
CountSource = Literal["event", "logs_index", "execution"]


@dataclass
class LinkSet:
    """Links per record type, plus the counts Polytomic reported for them.

    :ivar links: record type -> signed links.
    :ivar reported_counts: record type -> Polytomic's count (None when no source reports it).
    :ivar source: where the links came from: the event, endpoints named by the logs index, or
        the per-type endpoints (``api``).
    :ivar count_sources: record type -> where its count came from.
    """

    links: dict[str, list[str]]
    reported_counts: dict[str, int | None]
    source: LinkSource
    count_sources: dict[str, CountSource] = field(default_factory=dict)


class HookLike(Protocol):
    """What discovery and download need from
    :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook`."""

    @property
    def config(self) -> ClientConfig: ...

    def iter_events(self, event_type: str | None = ...) -> Iterator[Event]: ...

    def get_execution_log_urls(
        self, sync_id: str, execution_id: str, log_type: str = ..., *, sync_kind: SyncKind = ...
    ) -> ExecutionLogUrls: ...

    def get_execution_logs_index(self, sync_id: str, execution_id: str) -> ExecutionLogsIndex: ...

    def get_log_urls_at(self, endpoint: str) -> ExecutionLogUrls: ...

    def get_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = ...
    ) -> Execution | BulkExecution: ...


def find_completed_event(hook: HookLike, sync_id: str, execution_id: str) -> SyncCompletedPayload | None:
    """The ``sync.completed`` payload of the execution within the events API's 48-hour window."""
    found: SyncCompletedPayload | None = None
    for event in hook.iter_events(event_type=EventType.SYNC_COMPLETED):
        payload = event.payload
        if payload.execution_id != execution_id or not isinstance(payload, SyncCompletedPayload):
            continue
        if payload.sync_id and payload.sync_id != sync_id:
            continue
        found = payload  # keep iterating: a duplicate delivered later carries the same data
    return found


class _Sources:
    """The logs index and the execution, each fetched at most once and only when needed."""

    def __init__(self, hook: HookLike, sync_id: str, execution_id: str, sync_kind: SyncKind) -> None:
        self.hook, self.sync_id, self.execution_id, self.sync_kind = hook, sync_id, execution_id, sync_kind
        self._index: ExecutionLogsIndex | None = None
        self._index_read = False
        self._execution: Execution | BulkExecution | None = None

    def index(self) -> ExecutionLogsIndex | None:
        if not self._index_read and self.sync_kind == "model":
            self._index_read = True
            try:
                self._index = self.hook.get_execution_logs_index(self.sync_id, self.execution_id)
            except PolytomicAPIError as exc:
                if isinstance(exc, RetryableAPIError):
                    raise  # retries ran out (5xx, 429, network): not a missing endpoint
                # A deployment without the endpoint, or an answer of another shape: the per-type
                # endpoints and the execution still give links and counts.
                log.warning("The logs index of execution %s is unavailable (%s).", self.execution_id, exc)
        return self._index

    def execution(self) -> Execution | BulkExecution:
        if self._execution is None:
            try:
                self._execution = self.hook.get_execution(
                    self.sync_id, self.execution_id, sync_kind=self.sync_kind
                )
            except PolytomicNotFoundError:
                raise RecordLogError(
                    f"Polytomic has no execution {self.execution_id!r} of sync {self.sync_id!r}"
                ) from None
        return self._execution


def discover_links(
    hook: HookLike,
    sync_id: str,
    execution_id: str,
    record_types: Sequence[str],
    *,
    sync_kind: SyncKind = "model",
) -> LinkSet:
    """Links and Polytomic's counts of each record type (see the module docstring for the order).

    Bulk syncs have no record links in their events, no logs index and a single log set
    (``total``): links from ``.../logs``, the count from the execution.
    """
    sources = _Sources(hook, sync_id, execution_id, sync_kind)
    payload = find_completed_event(hook, sync_id, execution_id) if sync_kind == "model" else None
    links: dict[str, list[str]] = {}
    counts: dict[str, int | None] = {}
    count_sources: dict[str, CountSource] = {}
    link_source: LinkSource
    if payload is not None:
        link_source = "event"
        for rtype in record_types:
            links[rtype] = list(getattr(payload, EVENT_LINK_FIELDS[rtype]) or [])
            count_field = _EVENT_COUNT_FIELDS.get(rtype)
            value = getattr(payload, count_field) if count_field else None
            if isinstance(value, int):
                counts[rtype], count_sources[rtype] = value, "event"
        log.info("Record-log links for execution %s come from its sync.completed event.", execution_id)
    else:
        if sync_kind == "model":
            log.info(
                "No sync.completed event for execution %s in the events API (older than 48 h or "
                "dropped); asking Polytomic's log endpoints for links.",
                execution_id,
            )
        link_source = "api"
        for rtype in record_types:
            links[rtype], from_index = _api_links(hook, sources, rtype)
            if from_index:
                link_source = "logs_index"
    for rtype in record_types:
        if rtype in counts:
            continue
        index = sources.index()
        entry = index.entry(LOG_TYPES[rtype]) if index is not None else None
        if entry is not None and isinstance(entry.count, int):
            counts[rtype], count_sources[rtype] = entry.count, "logs_index"
            continue
        value = _execution_count(sources.execution(), rtype)
        counts[rtype] = value
        if value is not None:
            count_sources[rtype] = "execution"
    return LinkSet(links, counts, link_source, count_sources)


def _api_links(hook: HookLike, sources: _Sources, record_type: str) -> tuple[list[str], bool]:
    """Fresh links of one record type: from the endpoint the logs index names for it when that
    endpoint is on the API, else from the documented per-type endpoint. True when the index's
    endpoint was used."""
    log_type = LOG_TYPES[record_type]
    index = sources.index()
    entry = index.entry(log_type) if index is not None else None
    if entry is not None and entry.url:
        try:
            return list(hook.get_log_urls_at(entry.url).urls), True
        except ValueError:
            log.warning(
                "The logs index names an endpoint outside the Polytomic API for %s; using %s's "
                "documented endpoint instead (the API key is only sent to the API).",
                log_type,
                log_type,
            )
        except PolytomicAPIError as exc:
            if isinstance(exc, RetryableAPIError):
                raise
            log.warning(
                "The logs index's endpoint for %s failed (%s); using the documented one.", log_type, exc
            )
    try:
        answer = hook.get_execution_log_urls(
            sources.sync_id, sources.execution_id, log_type, sync_kind=sources.sync_kind
        )
    except PolytomicNotFoundError:
        sources.execution()  # names a missing execution clearly
        raise RecordLogError(
            f"Polytomic has no {log_type} logs for execution {sources.execution_id!r}"
        ) from None
    return list(answer.urls), False


def _execution_count(execution: Execution | BulkExecution, record_type: str) -> int | None:
    if isinstance(execution, BulkExecution):
        return execution.record_count if record_type == "total" else None
    if execution.counts is None:
        return None
    value = getattr(execution.counts, _EXECUTION_COUNT_FIELDS[record_type], None)
    return value if isinstance(value, int) else None
