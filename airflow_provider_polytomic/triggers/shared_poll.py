"""One poll of Polytomic's events API per connection, shared by every waiting trigger.

Deferred sensors (and asset watchers) on one connection subscribe to a single stream of
:class:`EventTick` objects instead of polling once each. Each tick reads only the events
created since the newest one already seen (:class:`~airflow_provider_polytomic.event_tail.EventTail`),
so its cost follows the organization's new events, not the number of waiters, plus one
page now and then to re-read events that may have shown up late. On Airflow 3.3+ the triggerer
runs that stream itself (``BaseEventTrigger.shared_stream_key`` / ``open_shared_stream``);
elsewhere, and when a trigger is driven through ``run()`` (for example by ``dag.test``),
:func:`subscribe_in_process` provides the same fan-out inside the process.

Work that is per trigger but often identical is coalesced here too:

* :class:`EventBackfill` - a newly started trigger must see the events between its baseline
  and its first tick. Triggers that start together share one read from the oldest baseline.
* :class:`StatusCheckCoalescer` - identical status checks in flight at the same time are made once,
  and at most ``concurrency`` run at a time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow_provider_polytomic._compat import BaseEventTrigger, TriggerEvent
from airflow_provider_polytomic.api import EVENT_VISIBILITY_LAG
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.event_tail import EventTail
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.models import BulkExecution, Event, Execution
from airflow_provider_polytomic.sync_wait import (
    StatusCheckPlan,
    WaitTarget,
    utcnow,
)

log = logging.getLogger(__name__)

# Triggers that start within this window share one backfill read.
BACKFILL_BATCH_WINDOW = 0.05
STATUS_CHECK_CONCURRENCY = 16


@dataclass(frozen=True)
class EventTick:
    """What one shared poll produced: the events first seen in it, and when it ran.

    ``ok`` is False when the poll failed transiently (its retries exhausted); subscribers
    still get the tick (with the events read before the failure) so they can check their
    deadlines and status fallbacks. ``horizon``: every event created before it that showed
    up in the API within :data:`~airflow_provider_polytomic.api.EVENT_VISIBILITY_LAG` has
    been in this tick or an earlier one (None when unknown).
    """

    events: tuple[Event, ...]
    polled_at: datetime
    ok: bool = True
    horizon: datetime | None = None

    @cached_property
    def _by_sync(self) -> dict[str | None, tuple[Event, ...]]:
        index: dict[str | None, list[Event]] = {}
        for event in self.events:
            index.setdefault(event.sync_id, []).append(event)
        return {sync_id: tuple(events) for sync_id, events in index.items()}

    def for_sync(self, sync_id: str) -> tuple[Event, ...]:
        """This tick's events of one sync: indexed once per tick, not scanned per trigger."""
        return self._by_sync.get(sync_id, ())


async def poll_events(
    hook: PolytomicHook, poll_interval: float, *, recheck_interval: float | None = None
) -> AsyncIterator[EventTick]:
    """Yield one :class:`EventTick` per ``poll_interval``, forever (raises on fatal API errors).

    Each tick reads the events created since the newest one seen (about
    ``ceil(new events / 100)`` requests) plus at most one page of the late-visibility re-read,
    which runs every ``recheck_interval`` seconds (default: the connection's extra
    ``event_recheck_interval``, else 60 s).
    """
    if recheck_interval is None:
        recheck_interval = (await hook.aconfig()).event_recheck_interval
    tail = EventTail(start=utcnow() - EVENT_VISIBILITY_LAG, recheck_interval=recheck_interval)
    while True:
        started = utcnow()
        tail.begin(started)
        fresh: list[Event] = []
        try:
            while (call := tail.next_call()) is not None:
                fresh.extend(tail.feed(await hook.arun(call)))
        except Exception as exc:
            tail.fail()
            if not is_retryable(exc):
                raise
            log.warning("Polytomic events poll failed, will retry next interval: %s", exc)
            yield EventTick(tuple(fresh), started, ok=False)
        else:
            yield EventTick(tuple(fresh), started, horizon=tail.horizon)
        elapsed = (utcnow() - started).total_seconds()
        await asyncio.sleep(max(0.0, poll_interval - elapsed))


class EventBackfill:
    """Coalesces "events since my baseline" reads of triggers that start together."""

    def __init__(self, hook: PolytomicHook) -> None:
        self.hook = hook
        self._pending: list[tuple[datetime, Callable[[Event], bool], asyncio.Future[list[Event]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def events_since(self, since: datetime, wanted: Callable[[Event], bool]) -> list[Event]:
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append((since, wanted, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(BACKFILL_BATCH_WINDOW)
            batch, self._pending = self._pending, []
            oldest = min(since for since, _, _ in batch)
            # Memory: keep only events some waiter of the batch wants, not the whole window.
            buckets: list[list[Event]] = [[] for _ in batch]
            try:
                async for event in self.hook.aiter_events(starting_after=oldest):
                    for (since, wanted, _), bucket in zip(batch, buckets, strict=True):
                        if event.created_at > since and wanted(event):
                            bucket.append(event)
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), bucket in zip(batch, buckets, strict=True):
                if not future.done():
                    future.set_result(bucket)


class StatusCheckCoalescer:
    """Runs the status checks of every trigger of a connection: identical checks in flight at
    the same time are sent once, and at most ``concurrency`` run at a time."""

    def __init__(self, hook: PolytomicHook, concurrency: int = STATUS_CHECK_CONCURRENCY) -> None:
        self.hook = hook
        self._semaphore = asyncio.Semaphore(concurrency)
        self._inflight: dict[Hashable, asyncio.Task[list[Execution | BulkExecution]]] = {}
        self.requests = 0

    async def check(
        self, target: WaitTarget, nominated: tuple[str, ...] = ()
    ) -> list[Execution | BulkExecution]:
        key = (
            target.sync_kind,
            target.sync_id,
            target.execution_id,
            None if target.execution_id else target.baseline,
            nominated,
        )
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(target, nominated))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch(
        self, target: WaitTarget, nominated: tuple[str, ...] = ()
    ) -> list[Execution | BulkExecution]:
        async with self._semaphore:
            check = StatusCheckPlan(target, nominated)
            while (call := check.next_call()) is not None:
                self.requests += 1
                check.feed(await self.hook.arun(call))
            return check.executions


@dataclass
class ConnectionShared:
    """Everything shared by the triggers of one connection inside one event loop."""

    hook: PolytomicHook
    backfill: EventBackfill
    status_checks: StatusCheckCoalescer


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ConnectionShared]] = (
    weakref.WeakKeyDictionary()
)


def shared_for(conn_id: str) -> ConnectionShared:
    """The shared hook and coalescers of ``conn_id`` for the running event loop."""
    loop = asyncio.get_running_loop()
    per_loop = _by_loop.setdefault(loop, {})
    shared = per_loop.get(conn_id)
    if shared is None:
        hook = PolytomicHook(conn_id)
        shared = ConnectionShared(hook, EventBackfill(hook), StatusCheckCoalescer(hook))
        per_loop[conn_id] = shared
    return shared


# ----------------------------------------------------------------- in-process fan-out


@dataclass
class _Failure:
    error: BaseException


@dataclass
class _Group:
    factory: Callable[[], AsyncIterator[Any]]
    queues: set[asyncio.Queue[Any]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        try:
            async for item in self.factory():
                for queue in list(self.queues):
                    queue.put_nowait(item)
            raise RuntimeError("the shared Polytomic events stream ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for queue in list(self.queues):
                queue.put_nowait(_Failure(exc))


_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Group]] = (
    weakref.WeakKeyDictionary()
)


class Subscription:
    """One subscriber's view of an in-process shared stream; subscribed from creation on,
    so nothing produced after :func:`subscribe_in_process` returns is missed."""

    def __init__(self, key: Hashable, group: _Group, groups: dict[Hashable, _Group]) -> None:
        self._key = key
        self._group = group
        self._groups = groups
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        group.queues.add(self._queue)
        if group.task is None or group.task.done():
            group.task = asyncio.create_task(group.pump())

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        item = await self._queue.get()
        if isinstance(item, _Failure):
            raise item.error
        return item

    async def aclose(self) -> None:
        """Leave the stream; the last subscriber to leave stops it."""
        self._group.queues.discard(self._queue)
        if not self._group.queues:
            if self._groups.get(self._key) is self._group:
                del self._groups[self._key]
            if self._group.task is not None:
                self._group.task.cancel()


def subscribe_in_process(key: Hashable, factory: Callable[[], AsyncIterator[Any]]) -> Subscription:
    """Subscribe to the in-process shared stream ``key``, starting it with ``factory`` if needed.

    The stream stops when its last subscriber calls :meth:`Subscription.aclose`. Like
    Airflow's shared streams, a subscriber receives the items produced after it joined.
    """
    groups = _groups.setdefault(asyncio.get_running_loop(), {})
    group = groups.get(key)
    if group is None:
        group = groups[key] = _Group(factory)
    return Subscription(key, group, groups)


SHARED_STREAM_NAME = "airflow_provider_polytomic.events"


class SharedEventsPollTrigger(BaseEventTrigger):
    """Base of the provider's triggers: one shared poll of the events API per connection.

    Subclasses set ``polytomic_conn_id``, ``poll_interval`` and ``shared``, and implement
    ``filter_shared_stream`` (consuming :class:`EventTick` objects). On Airflow 3.3+ the
    triggerer drives the shared stream itself; ``run()`` implementations use
    :meth:`_ticks` for the same fan-out inside the process.
    """

    polytomic_conn_id: str
    poll_interval: float
    shared: bool

    def shared_stream_key(self) -> Hashable | None:
        if not self.shared:
            return None
        return (SHARED_STREAM_NAME, self.polytomic_conn_id, float(self.poll_interval))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll the events API of the connection in ``kwargs`` and yield :class:`EventTick` objects."""
        shared = shared_for(kwargs["polytomic_conn_id"])
        async for tick in poll_events(shared.hook, float(kwargs["poll_interval"])):
            yield tick

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Standalone path (``dag.test``, tests, triggerers without shared streams): the same
        ``filter_shared_stream``, fed by the in-process fan-out."""
        ticks = self._ticks()
        try:
            async for event in self.filter_shared_stream(ticks):
                yield event
        finally:
            await ticks.aclose()

    def _ticks(self) -> Subscription:
        """The shared stream when the trigger is driven through ``run()``."""
        kwargs = self.serialize()[1]
        key = self.shared_stream_key() or (SHARED_STREAM_NAME, "private", id(self))
        return subscribe_in_process(key, lambda: type(self).open_shared_stream(kwargs))
