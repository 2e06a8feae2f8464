"""``PolytomicEventTrigger``: schedule DAGs on Polytomic events with Airflow 3 asset watchers.

Needs Airflow 3.0+ (asset watchers); the persisted cursor needs 3.3+ (asset state store).
On Airflow 2 this module imports, but building the trigger raises
:class:`~airflow_provider_polytomic.exceptions.PolytomicAirflowVersionError`.

One trigger yields one :class:`TriggerEvent` per matching Polytomic event. Airflow turns
each into an asset event (``extra = {"from_trigger": True, "payload": <the event>}``) on
the assets the watcher is attached to. Watchers of one connection share one poll of the
events API (Airflow 3.3 shared streams; :mod:`.shared_poll`).

Cursor and delivery semantics
-----------------------------

The trigger remembers how far it has read (a *cursor*: every event created at or before
it has been handled) plus the ids of handled events newer than the cursor, so a
re-read never yields an event twice.

* **Under a triggerer (Airflow 3.3+)** that state is persisted in the asset state store
  of the watched asset(s) (``BaseEventTrigger.asset_state_store``, writer kind
  ``watcher``), under a key derived from the connection, sync ids and event types. A
  restarted trigger (triggerer restart, redistribution, upgrade) re-reads the events API
  from that cursor: nothing created while it was down is skipped, as long as it is back
  within Polytomic's 48-hour retention (older events are gone; the trigger logs the gap).
* The state is committed only once it is ``commit_delay`` seconds old. A trigger event
  leaves the trigger before the triggerer has stored it, and the trigger is never told
  when it is stored; committing at once could record an event as handled that a crash
  then lost. With the delay, a crash can only *replay*: events yielded in the last
  ``commit_delay`` + ``poll_interval`` seconds before an unclean stop may be yielded
  again (at-least-once, bounded). Consumers de-duplicate by Polytomic event id
  (:func:`airflow_provider_polytomic.assets.events_for_run` does). ``commit_delay=0``
  trades this for at-most-once within the same window.
* **Without a state store** (``dag.test``, a trigger run outside the triggerer, Airflow
  before 3.3) the state lives in memory: a fresh start reads back ``lookback`` seconds
  and yields what it finds there (again, or for the first time), and misses events older
  than that.

A brand-new watcher (no stored cursor) starts ``lookback`` seconds in the past (default
0: from now).

Pairing with the webhook receiver (``webhook_dedupe=True``): the receiver writes a
ledger entry per recorded event into the asset state store of the sync's asset, and the
trigger skips events already in the ledger (and writes it for those it yields, so the
receiver skips them too). Events younger than ``webhook_grace`` seconds are held back so
the webhook, which is usually faster, gets the first chance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_polytomic._compat import TriggerEvent, asset_state_accessors, require_airflow
from airflow_provider_polytomic.api import EVENT_RETENTION
from airflow_provider_polytomic.asset_events import CursorState, event_payload, ledger_key, ledger_pending
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.models import Event, EventType
from airflow_provider_polytomic.sync_wait import utcnow
from airflow_provider_polytomic.triggers.shared_poll import EventTick, SharedEventsPollTrigger, shared_for
from airflow_provider_polytomic.vocabulary import TERMINAL_EVENT_TYPES

log = logging.getLogger(__name__)

DEFAULT_EVENT_TYPES: tuple[str, ...] = TERMINAL_EVENT_TYPES
"""What an event trigger yields by default: the completion and failure types of both sync kinds."""

CURSOR_KEY_PREFIX = "polytomic.events.cursor."
_ONE_US = timedelta(microseconds=1)


def _check_event_types(event_types: Iterable[str] | None) -> list[str]:
    if event_types is None:
        return sorted(DEFAULT_EVENT_TYPES)
    if isinstance(event_types, str):
        raise ValueError(f"event_types must be a list of event types, not the string {event_types!r}")
    types = sorted({str(t).strip().lower() for t in event_types})
    unknown = [t for t in types if t not in EventType.ALL]
    if unknown or not types:
        raise ValueError(
            f"event_types must be a non-empty list of Polytomic event types; unknown: {unknown}. "
            f"Known types: {list(EventType.ALL)}"
        )
    return types


def _check_sync_ids(sync_ids: Iterable[str] | None) -> list[str]:
    if sync_ids is None:
        return []
    if isinstance(sync_ids, str):
        raise ValueError(f"sync_ids must be a list of sync ids, not the string {sync_ids!r}")
    out: set[str] = set()
    for sid in sync_ids:
        if not isinstance(sid, str) or not sid.strip():
            raise ValueError(f"sync_ids must contain non-empty strings, got {sid!r}")
        out.add(sid.strip().lower())
    return sorted(out)


class PolytomicEventTrigger(SharedEventsPollTrigger):
    """Yield one ``TriggerEvent`` per Polytomic event matching sync ids and event types.

    Made for :class:`~airflow.sdk.AssetWatcher`::

        from airflow.sdk import Asset, AssetWatcher

        contacts = Asset(
            "polytomic://9a4e1c2d-...",
            watchers=[AssetWatcher(
                name="contacts_sync",
                trigger=PolytomicEventTrigger(sync_ids=["9a4e1c2d-..."]),
            )],
        )

    (:func:`airflow_provider_polytomic.assets.sync_asset` with ``watch=True`` builds exactly
    that.) The event payload is :func:`event_payload`: the event id, type, ``created_at``,
    ``sync_id``, ``execution_id``, ``sync_kind``, ``outcome`` and Polytomic's ``payload``.
    See the module documentation for the cursor and delivery guarantees.

    Every argument is a plain, static value: Airflow identifies a watcher's trigger by its
    serialized kwargs, so nothing here may change from one DAG parse to the next.

    :param polytomic_conn_id: Airflow connection id.
    :param sync_ids: only events of these syncs (model or bulk); empty or None for all syncs.
    :param event_types: event types to yield; default :data:`DEFAULT_EVENT_TYPES`.
    :param poll_interval: seconds between polls of the events API (shared per connection and interval).
    :param shared: share the poll with the connection's other triggers.
    :param lookback: seconds to read back when there is no stored cursor (first start, or no state store).
    :param commit_delay: seconds a cursor state must age before it is persisted (see module docs).
    :param webhook_dedupe: skip events the webhook receiver already recorded, and mark the ones yielded.
    :param webhook_grace: with ``webhook_dedupe``, hold events this many seconds for the webhook.
    """

    def __init__(
        self,
        *,
        polytomic_conn_id: str = "polytomic_default",
        sync_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        poll_interval: float = 30.0,
        shared: bool = True,
        lookback: float = 0.0,
        commit_delay: float = 10.0,
        webhook_dedupe: bool = False,
        webhook_grace: float = 5.0,
    ) -> None:
        require_airflow("PolytomicEventTrigger (asset watchers)", (3, 0))
        super().__init__()
        if not isinstance(polytomic_conn_id, str) or not polytomic_conn_id:
            raise ValueError(f"polytomic_conn_id must be a non-empty string, got {polytomic_conn_id!r}")
        self.polytomic_conn_id = polytomic_conn_id
        self.sync_ids = _check_sync_ids(sync_ids)
        self.event_types = _check_event_types(event_types)
        if float(poll_interval) <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self.shared = bool(shared)
        for name, value in (
            ("lookback", lookback),
            ("commit_delay", commit_delay),
            ("webhook_grace", webhook_grace),
        ):
            if float(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if float(lookback) > EVENT_RETENTION.total_seconds():
            raise ValueError(f"lookback cannot exceed Polytomic's 48-hour event retention, got {lookback!r}")
        self.lookback = float(lookback)
        self.commit_delay = float(commit_delay)
        self.webhook_dedupe = bool(webhook_dedupe)
        self.webhook_grace = float(webhook_grace)
        self._sync_set = frozenset(self.sync_ids)
        self._type_set = frozenset(self.event_types)
        # In-memory state, shared by successive run() calls of this instance.
        self._state: CursorState | None = None

    # ------------------------------------------------------------------ identity

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_polytomic.triggers.events.PolytomicEventTrigger",
            {
                "polytomic_conn_id": self.polytomic_conn_id,
                "sync_ids": list(self.sync_ids),
                "event_types": list(self.event_types),
                "poll_interval": self.poll_interval,
                "shared": self.shared,
                "lookback": self.lookback,
                "commit_delay": self.commit_delay,
                "webhook_dedupe": self.webhook_dedupe,
                "webhook_grace": self.webhook_grace,
            },
        )

    @property
    def cursor_key(self) -> str:
        """Asset-state-store key of this trigger's cursor.

        Derived from what decides which events match, so two watchers with different
        filters on one asset keep separate cursors; changing the filter starts afresh.
        """
        ident = json.dumps([self.polytomic_conn_id, self.sync_ids, self.event_types])
        return CURSOR_KEY_PREFIX + hashlib.sha256(ident.encode()).hexdigest()[:16]

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is one this trigger yields."""
        if event.type.lower() not in self._type_set:
            return False
        if not self._sync_set:
            return True
        return (event.sync_id or "").lower() in self._sync_set

    # ------------------------------------------------------------------ running

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        # Airflow 3.3+ gives watcher triggers an asset state store; before, there is none.
        store = _Store(getattr(self, "asset_state_store", None))
        state = self._state
        if state is None:
            state = await store.load(self.cursor_key)
            if state is None:
                state = CursorState(utcnow() - timedelta(seconds=self.lookback))
            self._state = state
        if state.cursor < utcnow() - EVENT_RETENTION:
            log.warning(
                "The stored Polytomic event cursor (%s) is older than Polytomic's 48-hour retention: "
                "events created before %s may have been missed.",
                state.cursor.isoformat(),
                (utcnow() - EVENT_RETENTION).isoformat(),
            )
        committer = _Committer(store, self.cursor_key, self.commit_delay)
        held: dict[str, Event] = {}
        backfilled = False
        shared = shared_for(self.polytomic_conn_id)

        async for tick in _with_initial(shared_stream):
            candidates: list[Event] = []
            if not backfilled:
                # Events between the cursor and the shared poll's first tick; triggers that
                # start together share this read.
                try:
                    candidates.extend(await shared.backfill.events_since(state.cursor, self.matches))
                    backfilled = True
                except Exception as exc:
                    if not is_retryable(exc):
                        raise
                    log.warning("Reading Polytomic events since %s failed, will retry: %s", state.cursor, exc)
            if isinstance(tick, EventTick):
                candidates.extend(e for e in tick.events if self.matches(e))
            for event in sorted(candidates, key=lambda e: (e.created_at, e.id)):
                if not state.handled(event) and event.id not in held:
                    held[event.id] = event
            now = utcnow()
            for event in sorted(held.values(), key=lambda e: (e.created_at, e.id)):
                if self.webhook_dedupe and event.created_at > now - timedelta(seconds=self.webhook_grace):
                    continue  # give the webhook its chance first
                del held[event.id]
                state.add(event.id, event.created_at)
                if self.webhook_dedupe and await store.ledger_has(event.id):
                    log.info("Polytomic event %s was already recorded by the webhook receiver.", event.id)
                    continue
                yield TriggerEvent(event_payload(event))
                if self.webhook_dedupe:
                    await store.ledger_mark(event, source="poll")
            if backfilled and isinstance(tick, EventTick) and tick.ok and tick.horizon is not None:
                # Everything created before the poll's horizon that will ever show up has been
                # in a tick (or in the backfill, for what was visible when it ran).
                horizon = tick.horizon
                if held:
                    horizon = min(horizon, min(e.created_at for e in held.values()) - _ONE_US)
                state.raise_floor(horizon)
                await committer.offer(state)

    async def cleanup(self) -> None:
        # The shared hook outlives one trigger; nothing of ours to release.
        return None


async def _with_initial(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream, preceded by a None item so the backfill runs before the first tick."""
    yield None
    async for item in stream:
        yield item


class _Committer:
    """Persists cursor snapshots once they are ``delay`` seconds old (see the module docs)."""

    def __init__(self, store: _Store, key: str, delay: float) -> None:
        self._store = store
        self._key = key
        self._delay = delay
        self._pending: list[tuple[float, CursorState]] = []
        self._committed: dict[str, Any] | None = None

    async def offer(self, state: CursorState) -> None:
        if not self._store.available:
            return
        now = time.monotonic()
        self._pending.append((now, state.copy()))
        ripe = [s for t, s in self._pending if now - t >= self._delay]
        self._pending = [(t, s) for t, s in self._pending if now - t < self._delay]
        if ripe:
            value = ripe[-1].to_json()
            if value != self._committed:
                await self._store.save(self._key, value)
                self._committed = value


class _Store:
    """The asset state store of every asset the watcher feeds (possibly none).

    One trigger instance can feed several assets (Airflow de-duplicates identical
    watcher triggers). The cursor is written to each of them, and read back as the
    most conservative of the stored ones: the oldest cursor and the union of ids.
    """

    def __init__(self, accessors: Any) -> None:
        self._accessors: list[Any] = []
        if accessors is not None:
            # Airflow's AssetStateStoreAccessors, one accessor per watched asset; anything
            # else is used as a single accessor.
            per_asset = asset_state_accessors(accessors)
            self._accessors = [accessors] if per_asset is None else per_asset

    @property
    def available(self) -> bool:
        return bool(self._accessors)

    async def load(self, key: str) -> CursorState | None:
        states: list[CursorState] = []
        for accessor in self._accessors:
            try:
                raw = await accessor.aget(key, None)
            except Exception as exc:
                log.warning("Could not read the Polytomic event cursor from the asset state store: %s", exc)
                continue
            if raw is not None and (parsed := CursorState.from_json(raw)) is not None:
                states.append(parsed)
        if not states:
            return None
        # The union of ids; the constructor drops those the oldest cursor already covers.
        return CursorState(min(s.cursor for s in states), {k: v for s in states for k, v in s.ids.items()})

    async def save(self, key: str, value: dict[str, Any]) -> None:
        for accessor in self._accessors:
            try:
                await accessor.aset(key, value)
            except Exception as exc:
                log.warning("Could not persist the Polytomic event cursor to the asset state store: %s", exc)

    async def ledger_has(self, event_id: str) -> bool:
        for accessor in self._accessors:
            try:
                value = await accessor.aget(ledger_key(event_id), None)
                if value is not None and not ledger_pending(value):
                    return True
            except Exception as exc:
                log.warning("Could not read the Polytomic webhook ledger: %s", exc)
        return False

    async def ledger_mark(self, event: Event, *, source: str) -> None:
        value = {"source": source, "created_at": event.created_at.isoformat(), "type": event.type}
        for accessor in self._accessors:
            try:
                await accessor.aset(ledger_key(event.id), value)
            except Exception as exc:
                log.warning("Could not write the Polytomic webhook ledger: %s", exc)


__all__ = ["DEFAULT_EVENT_TYPES", "PolytomicEventTrigger"]
