"""Polytomic syncs as Airflow assets: the ``polytomic://`` URI scheme, and events for a run.

Needs Airflow 3.0+ (assets, asset watchers, the ``asset-uris`` provider hook); the
watermark of :func:`events_for_run` is persisted only on 3.3+ (the asset state store). On
Airflow 2 the URI helpers work, while :func:`sync_asset` and :func:`events_for_run` raise
:class:`~airflow_provider_polytomic.exceptions.PolytomicAirflowVersionError`.

URI scheme
----------

=====================================  =====================================
``polytomic://<sync_id>``              a model sync (the canonical form)
``polytomic://bulk/<sync_id>``         a bulk sync
``polytomic://model/<sync_id>``        accepted, normalised to ``polytomic://<sync_id>``
=====================================  =====================================

``<sync_id>`` is the sync's UUID (any case; normalised to lowercase). A trailing slash is
dropped. Anything else - a port, user info, a query string, a fragment, more path - is an
error naming the problem, raised when the DAG is parsed. The provider registers
:func:`normalize_uri` for the ``polytomic`` scheme (provider info ``asset-uris``), so
``Asset("polytomic://9A4E...")`` and ``Asset("polytomic://9a4e.../")`` are the same asset
as ``sync_asset("9a4e...")``.

The webhook receiver records each event on the asset of its sync, so DAGs scheduled on
``sync_asset(sync_id)`` run on webhook deliveries; with ``watch=True`` the same asset
also gets a polling :class:`~airflow_provider_polytomic.triggers.events.PolytomicEventTrigger`.

Recovering every event since the previous run
---------------------------------------------

Airflow may fold asset events that arrive close together into one DAG run, and a folded
event need not be listed in that run's ``triggering_asset_events``. :func:`events_for_run`
rebuilds the complete list from Polytomic's events API: everything since the consumer's
watermark (kept in the asset state store of the sync's asset), merged with the
triggering events and de-duplicated by Polytomic event id. :meth:`RunEvents.commit`
advances the watermark once the run has dealt with them::

    @task(inlets=[contacts])
    def load(**context):
        batch = events_for_run(context)
        for event in batch.events:
            ...
        batch.commit()
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from airflow_provider_polytomic import _compat
from airflow_provider_polytomic._compat import Asset
from airflow_provider_polytomic.api import EVENT_VISIBILITY_LAG
from airflow_provider_polytomic.asset_events import CursorState, event_payload
from airflow_provider_polytomic.models import Event
from airflow_provider_polytomic.sync_wait import parse_time, utcnow
from airflow_provider_polytomic.triggers.events import PolytomicEventTrigger
from airflow_provider_polytomic.vocabulary import (
    SYNC_KINDS,
    TERMINAL_EVENT_TYPES,
    SyncKind,
    check_sync_kind,
    event_types_for,
)

log = logging.getLogger(__name__)

SCHEME = "polytomic"
_HELP = "Use polytomic://<sync_id> for a model sync or polytomic://bulk/<sync_id> for a bulk sync."
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
CONSUMER_KEY_PREFIX = "polytomic.consumer."


@dataclass(frozen=True)
class SyncRef:
    """What a ``polytomic://`` URI points at."""

    sync_id: str
    kind: SyncKind = "model"

    @property
    def uri(self) -> str:
        """The canonical URI."""
        return sync_uri(self.sync_id, self.kind)


def _sync_id(value: str, uri: str) -> str:
    if not value:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: no sync id. {_HELP}")
    if not _UUID_RE.match(value):
        raise ValueError(
            f"Invalid Polytomic asset URI {uri!r}: {value!r} is not a sync id "
            f"(Polytomic sync ids are UUIDs). {_HELP}"
        )
    return str(uuid.UUID(value))


def _parse(parts: SplitResult, uri: str) -> SyncRef:
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"{uri!r} is not a Polytomic asset URI (scheme must be '{SCHEME}'). {_HELP}")
    if "@" in parts.netloc:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: user info is not allowed. {_HELP}")
    if ":" in parts.netloc:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: a port is not allowed. {_HELP}")
    if parts.query:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: query strings are not allowed. {_HELP}")
    if parts.fragment:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: fragments are not allowed. {_HELP}")
    segments = [s for s in parts.path.split("/") if s]
    host = parts.netloc.lower()
    if host in SYNC_KINDS:
        if len(segments) != 1:
            raise ValueError(
                f"Invalid Polytomic asset URI {uri!r}: expected exactly one sync id after '{host}/'. {_HELP}"
            )
        return SyncRef(_sync_id(segments[0], uri), check_sync_kind(host))
    if segments:
        raise ValueError(f"Invalid Polytomic asset URI {uri!r}: unexpected path {parts.path!r}. {_HELP}")
    return SyncRef(_sync_id(parts.netloc, uri), "model")


def parse_sync_uri(uri: str) -> SyncRef:
    """Parse a ``polytomic://`` URI into sync id and kind.

    :raises ValueError: with a message saying what is wrong and what the valid forms are.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"A Polytomic asset URI must be a non-empty string, got {uri!r}. {_HELP}")
    return _parse(urlsplit(uri.strip()), uri)


def sync_uri(sync_id: str, kind: str = "model") -> str:
    """The canonical URI of a sync's asset: ``polytomic://<id>`` or ``polytomic://bulk/<id>``."""
    check_sync_kind(kind, "kind")
    if not isinstance(sync_id, str):
        raise ValueError(f"sync_id must be a string, got {sync_id!r}")
    sid = _sync_id(sync_id.strip(), f"polytomic://{sync_id}")
    return f"{SCHEME}://{sid}" if kind == "model" else f"{SCHEME}://bulk/{sid}"


def normalize_uri(parts: SplitResult) -> SplitResult:
    """Airflow asset-URI handler for ``polytomic`` (provider info ``asset-uris``).

    Airflow has already lowercased the scheme, stripped trailing slashes (an empty path
    becomes ``/``) and dropped any fragment; this validates the rest and returns the
    canonical form.
    """
    shown = urlunsplit(parts)
    path = "" if parts.path == "/" else parts.path
    ref = _parse(parts._replace(path=path), shown)
    if ref.kind == "model":
        return SplitResult(SCHEME, ref.sync_id, "", "", "")
    return SplitResult(SCHEME, "bulk", f"/{ref.sync_id}", "", "")


def sanitize_uri(uri: str) -> str:
    """Validate a ``polytomic://`` URI and return its canonical form (the same as Airflow stores)."""
    return parse_sync_uri(uri).uri


def sync_asset(
    sync_id: str,
    kind: SyncKind = "model",
    *,
    name: str | None = None,
    group: str = "polytomic",
    extra: dict[str, Any] | None = None,
    watch: bool = False,
    polytomic_conn_id: str = "polytomic_default",
    event_types: Sequence[str] | None = None,
    poll_interval: float = 30.0,
    **trigger_kwargs: Any,
) -> Any:
    """The asset of one Polytomic sync, optionally watched by a polling event trigger.

    :param sync_id: the sync's UUID.
    :param kind: ``model`` or ``bulk``.
    :param name: asset name (default: the URI).
    :param group: asset group.
    :param extra: asset extra.
    :param watch: attach an ``AssetWatcher`` with a :class:`PolytomicEventTrigger` for this sync.
    :param polytomic_conn_id: connection the watcher polls with.
    :param event_types: event types the watcher yields (default: the sync kind's terminal types).
    :param poll_interval: seconds between polls (shared per connection).
    :param trigger_kwargs: more :class:`PolytomicEventTrigger` arguments (``lookback``,
        ``webhook_dedupe``, ...).
    :return: an :class:`airflow.sdk.Asset`.
    :raises PolytomicAirflowVersionError: on Airflow 2, which has no assets (only datasets).
    """
    _compat.require_airflow("sync_asset (polytomic:// assets)", (3, 0))
    uri = sync_uri(sync_id, kind)
    ref = parse_sync_uri(uri)
    kwargs: dict[str, Any] = {"uri": uri, "name": name or uri, "group": group, "extra": extra or {}}
    if watch:
        types = list(event_types if event_types is not None else event_types_for(kind, terminal_only=True))
        trigger = PolytomicEventTrigger(
            polytomic_conn_id=polytomic_conn_id,
            sync_ids=[ref.sync_id],
            event_types=types,
            poll_interval=poll_interval,
            **trigger_kwargs,
        )
        watcher = _compat.AssetWatcher(name=f"polytomic_{kind}_{ref.sync_id}", trigger=trigger)
        kwargs["watchers"] = [watcher]
    return Asset(**kwargs)


# ----------------------------------------------------------------------- events for a run


def _event_from_extra(extra: Any) -> Event | None:
    """The Polytomic event carried by an asset event's extra (trigger or webhook path)."""
    if not isinstance(extra, Mapping):
        return None
    payload = extra.get("payload")
    if not isinstance(payload, Mapping) or not payload.get("id") or not payload.get("type"):
        return None
    try:
        return Event(
            id=str(payload["id"]),
            type=str(payload["type"]),
            created_at=parse_time(payload.get("created_at"), "created_at"),
            organization_id=payload.get("organization_id"),
            event=dict(payload.get("payload") or {}),
        )
    except ValueError:
        return None


@dataclass
class RunEvents:
    """The Polytomic events a run should handle; call :meth:`commit` once it has handled them."""

    events: list[dict[str, Any]]
    """:func:`~airflow_provider_polytomic.asset_events.event_payload` dicts, oldest first."""
    since: datetime
    until: datetime
    _state: CursorState | None = field(default=None, repr=False)
    _store: Any = field(default=None, repr=False)
    _key: str = field(default="", repr=False)

    def __iter__(self) -> Any:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def commit(self) -> None:
        """Record these events as handled: the next run starts after them.

        A no-op (logged) when the task has no asset state store (declare the sync's asset
        in the task's ``inlets``).
        """
        if self._store is None or self._state is None:
            log.info("No asset state store for this task: the Polytomic event watermark is not persisted.")
            return
        self._store.set(self._key, self._state.to_json())


def _context_get(context: Mapping[str, Any], key: str) -> Any:
    try:
        return context[key]
    except (KeyError, TypeError):
        return None


def events_for_run(
    context: Mapping[str, Any],
    *,
    polytomic_conn_id: str = "polytomic_default",
    sync_ids: Sequence[str] | None = None,
    event_types: Sequence[str] | None = None,
    asset: Any = None,
    default_lookback: timedelta = timedelta(hours=1),
    hook: Any = None,
) -> RunEvents:
    """Every Polytomic event this run should handle, including ones Airflow folded away.

    The window starts at the consumer's watermark in the asset state store of ``asset``
    (default: the task's single inlet/outlet; the key is per DAG and task), else at the
    oldest triggering event, else at the previous successful run's start, else
    ``default_lookback`` ago. It ends now. Events come from Polytomic's events API merged
    with the run's triggering asset events (which may not be visible in the API yet),
    filtered by sync ids and event types, de-duplicated by event id, oldest first.

    :param context: the task context (``**context`` in TaskFlow).
    :param polytomic_conn_id: the connection to read events with.
    :param sync_ids: syncs of interest; default: those of the triggering events and the
        task's ``polytomic://`` inlets (all syncs when there are none).
    :param event_types: default :data:`~airflow_provider_polytomic.vocabulary.TERMINAL_EVENT_TYPES`.
    :param asset: the asset whose state store keeps the watermark.
    :param default_lookback: the window when nothing else bounds it.
    :param hook: a :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook` to use.
    :raises PolytomicAirflowVersionError: on Airflow 2, which has no asset events.
    """
    from airflow_provider_polytomic.hooks.polytomic import PolytomicHook

    _compat.require_airflow("events_for_run (asset-triggered runs)", (3, 0))

    types = frozenset(event_types or TERMINAL_EVENT_TYPES)
    triggering = _triggering_events(context)
    wanted_syncs = {s.lower() for s in sync_ids or ()}
    if not sync_ids:
        wanted_syncs |= {e.sync_id.lower() for e in triggering if e.sync_id}
        wanted_syncs |= _inlet_sync_ids(context)

    def matches(event: Event) -> bool:
        if event.type not in types:
            return False
        return not wanted_syncs or (event.sync_id or "").lower() in wanted_syncs

    store, key = _consumer_store(context, asset)
    until = utcnow()
    state: CursorState | None = None
    if store is not None:
        raw = store.get(key, None)
        state = CursorState.from_json(raw) if raw is not None else None
    if state is None:
        since = _fallback_since(context, triggering, until, default_lookback)
        state = CursorState(since)
    hook = hook or PolytomicHook(polytomic_conn_id)
    found: dict[str, Event] = {}
    for event in [*hook.iter_events(starting_after=state.cursor), *triggering]:
        if matches(event) and not state.handled(event):
            found.setdefault(event.id, event)
    ordered = sorted(found.values(), key=lambda e: (e.created_at, e.id))
    new_state = state.copy()
    for event in ordered:
        new_state.add(event.id, event.created_at)
    new_state.raise_floor(until - EVENT_VISIBILITY_LAG)
    return RunEvents(
        events=[event_payload(e) for e in ordered],
        since=state.cursor,
        until=until,
        _state=new_state,
        _store=store,
        _key=key,
    )


def _triggering_events(context: Mapping[str, Any]) -> list[Event]:
    accessor = _context_get(context, "triggering_asset_events")
    out: list[Event] = []
    if not accessor:
        return out
    try:
        groups: Iterable[Any] = accessor.values()
    except AttributeError:
        return out
    for events in groups:
        for asset_event in events or ():
            event = _event_from_extra(getattr(asset_event, "extra", None))
            if event is not None:
                out.append(event)
    return out


def _inlet_sync_ids(context: Mapping[str, Any]) -> set[str]:
    task = _context_get(context, "task")
    out: set[str] = set()
    for inlet in getattr(task, "inlets", None) or ():
        uri = getattr(inlet, "uri", None)
        if isinstance(uri, str) and uri.lower().startswith(f"{SCHEME}://"):
            try:
                out.add(parse_sync_uri(uri).sync_id)
            except ValueError:
                continue
    return out


def _consumer_store(context: Mapping[str, Any], asset: Any) -> tuple[Any, str]:
    """The asset state store accessor holding this consumer's watermark, and its key."""
    ti = _context_get(context, "ti") or _context_get(context, "task_instance")
    dag_id = getattr(ti, "dag_id", None) or "dag"
    task_id = getattr(ti, "task_id", None) or "task"
    key = f"{CONSUMER_KEY_PREFIX}{dag_id}.{task_id}"
    accessors = _context_get(context, "asset_state_store")
    if accessors is None:
        return None, key
    if asset is not None:
        return accessors[asset], key
    per_asset = _compat.asset_state_accessors(accessors)
    if per_asset is not None and len(per_asset) != 1:
        raise ValueError(
            f"events_for_run: the task has {len(per_asset)} asset inlets and outlets with a state "
            "store; pass asset= to choose where the watermark lives"
        )
    # Single inlet/outlet: the accessors object answers get/set itself.
    return accessors, key


def _fallback_since(
    context: Mapping[str, Any], triggering: list[Event], until: datetime, default_lookback: timedelta
) -> datetime:
    if triggering:
        return min(e.created_at for e in triggering) - timedelta(microseconds=1)
    try:
        # A lazy proxy in the task context; it may wrap None or fail without a previous run.
        prev = _context_get(context, "prev_start_date_success")
        if prev is not None:
            return parse_time(prev, "prev_start_date_success") - EVENT_VISIBILITY_LAG
    except Exception:
        log.debug("No previous successful run to bound the Polytomic event window.")
    return until - default_lookback


__all__ = [
    "SCHEME",
    "RunEvents",
    "SyncRef",
    "events_for_run",
    "normalize_uri",
    "parse_sync_uri",
    "sanitize_uri",
    "sync_asset",
    "sync_uri",
]
