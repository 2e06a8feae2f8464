"""Polytomic's concepts, each said once: sync kinds, event types and what they mean, the
``polytomic`` connection's extras, the webhook-secret rule, and the window of event ids
already seen.

Everything else in the provider asks this module rather than spelling a rule again:

* **Sync kinds.** A sync is a *model* sync (``/api/syncs``, events ``sync.*``) or a *bulk*
  sync (``/api/bulk/syncs``, events ``bulk_sync.*``)::

      >>> check_sync_kind("bulk"), sync_path("bulk"), event_prefix("bulk")
      ('bulk', 'bulk/syncs', 'bulk_sync.')
      >>> sync_kind_of_event("bulk_sync.completed_with_error")
      'bulk'

* **Outcomes.** :func:`classify` maps every execution status and event type to an
  :class:`Outcome`; anything unknown counts as still running (fail closed: never a success
  by accident)::

      >>> classify("sync.completed_with_errors")
      <Outcome.SUCCEEDED_WITH_ERRORS: 'succeeded_with_errors'>

* **Connection extras**, read once into :class:`ConnectionExtras`, each checked (with the
  connection, the extra's name and the value in the message) when first used.
* **Webhook secrets**: :func:`is_valid_webhook_secret` (Polytomic's 6-32 characters).
* **Seen event ids**: :class:`SeenEventIds`, the ids seen above a time floor that only
  rises, so re-reads never return an event twice and memory stays bounded.

Pure Python: importing it loads nothing beyond the standard library.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, cast

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------- sync kinds

SyncKind = Literal["model", "bulk"]
"""A model sync (models into a target object) or a bulk sync (a source's schemas copied)."""

SYNC_KINDS: tuple[SyncKind, ...] = ("model", "bulk")

_SYNC_PATHS: dict[str, str] = {"model": "syncs", "bulk": "bulk/syncs"}
_EVENT_PREFIXES: dict[str, str] = {"model": "sync.", "bulk": "bulk_sync."}


def check_sync_kind(value: Any, name: str = "sync_kind") -> SyncKind:
    """Return ``value`` as a :data:`SyncKind`, or raise naming ``name`` and the value.

    >>> check_sync_kind("model")
    'model'
    """
    if value not in SYNC_KINDS:
        raise ValueError(f"{name} must be 'model' or 'bulk', got {value!r}")
    return cast(SyncKind, value)


def sync_path(kind: str) -> str:
    """Where syncs of ``kind`` live: ``syncs`` or ``bulk/syncs`` (under ``/api/`` in the API)."""
    return _SYNC_PATHS[check_sync_kind(kind)]


def sync_api_root(kind: str) -> str:
    """The API collection of syncs of ``kind``: ``/api/syncs`` or ``/api/bulk/syncs``."""
    return f"/api/{sync_path(kind)}"


def event_prefix(kind: str) -> str:
    """The prefix of the event types of syncs of ``kind``: ``sync.`` or ``bulk_sync.``."""
    return _EVENT_PREFIXES[check_sync_kind(kind)]


def sync_kind_of_event(event_type: str) -> SyncKind:
    """``bulk`` for ``bulk_sync.*`` event types, ``model`` otherwise."""
    return "bulk" if event_type.startswith(_EVENT_PREFIXES["bulk"]) else "model"


# --------------------------------------------------------------- outcomes and events


class Outcome(str, enum.Enum):
    """What a status or an event type means for someone waiting on a sync."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self is not Outcome.RUNNING

    @property
    def severity(self) -> int:
        """Order used when two sources disagree: the worse one wins."""
        return _SEVERITY[self]


_SEVERITY = {
    Outcome.RUNNING: 0,
    Outcome.SUCCEEDED: 1,
    Outcome.SUCCEEDED_WITH_ERRORS: 2,
    Outcome.CANCELED: 3,
    Outcome.FAILED: 4,
}


class EventType:
    """The event types Polytomic documents. Note the plural/singular asymmetry of the
    completed-with-errors types, which is Polytomic's own spelling."""

    SYNC_RUNNING = "sync.running"
    SYNC_COMPLETED = "sync.completed"
    SYNC_COMPLETED_WITH_ERRORS = "sync.completed_with_errors"
    SYNC_FAILED = "sync.failed"
    SYNC_CANCELED = "sync.canceled"
    BULK_SYNC_RUNNING = "bulk_sync.running"
    BULK_SYNC_COMPLETED = "bulk_sync.completed"
    BULK_SYNC_COMPLETED_WITH_ERROR = "bulk_sync.completed_with_error"
    BULK_SYNC_FAILED = "bulk_sync.failed"
    BULK_SYNC_CANCELED = "bulk_sync.canceled"

    ALL: tuple[str, ...] = (
        SYNC_RUNNING,
        SYNC_COMPLETED,
        SYNC_COMPLETED_WITH_ERRORS,
        SYNC_FAILED,
        SYNC_CANCELED,
        BULK_SYNC_RUNNING,
        BULK_SYNC_COMPLETED,
        BULK_SYNC_COMPLETED_WITH_ERROR,
        BULK_SYNC_FAILED,
        BULK_SYNC_CANCELED,
    )


_EVENT_OUTCOMES: dict[str, Outcome] = {
    EventType.SYNC_RUNNING: Outcome.RUNNING,
    EventType.SYNC_COMPLETED: Outcome.SUCCEEDED,
    EventType.SYNC_COMPLETED_WITH_ERRORS: Outcome.SUCCEEDED_WITH_ERRORS,
    EventType.SYNC_FAILED: Outcome.FAILED,
    EventType.SYNC_CANCELED: Outcome.CANCELED,
    EventType.BULK_SYNC_RUNNING: Outcome.RUNNING,
    EventType.BULK_SYNC_COMPLETED: Outcome.SUCCEEDED,
    EventType.BULK_SYNC_COMPLETED_WITH_ERROR: Outcome.SUCCEEDED_WITH_ERRORS,
    EventType.BULK_SYNC_FAILED: Outcome.FAILED,
    EventType.BULK_SYNC_CANCELED: Outcome.CANCELED,
}

# Execution statuses (model: UtilExecutionStatus, bulk: BulkExecutionStatus). Polytomic
# documents completed/canceled/failed as terminal. `interrupted` and bulk `errors` are not
# documented as terminal; we treat `interrupted` as a failure and `errors` as completed with
# errors (the status the bulk `completed_with_error` event corresponds to). Both are
# assumptions, stated in docs/unconfirmed.md.
_STATUS_OUTCOMES: dict[str, Outcome] = {
    "created": Outcome.RUNNING,
    "scheduled": Outcome.RUNNING,
    "queued": Outcome.RUNNING,
    "waiting": Outcome.RUNNING,
    "running": Outcome.RUNNING,
    "processing": Outcome.RUNNING,
    "exporting": Outcome.RUNNING,
    "canceling": Outcome.RUNNING,
    "completed": Outcome.SUCCEEDED,
    "errors": Outcome.SUCCEEDED_WITH_ERRORS,
    "failed": Outcome.FAILED,
    "interrupted": Outcome.FAILED,
    "canceled": Outcome.CANCELED,
}

_warned_unknown: set[str] = set()


def classify(value: str | None) -> Outcome:
    """Classify an execution status or an event type.

    >>> classify("sync.completed_with_errors")
    <Outcome.SUCCEEDED_WITH_ERRORS: 'succeeded_with_errors'>
    >>> classify("completed")
    <Outcome.SUCCEEDED: 'succeeded'>
    >>> classify("some-new-status")  # unknown: still running, logged once
    <Outcome.RUNNING: 'running'>
    """
    if not isinstance(value, str) or not value:
        return Outcome.RUNNING
    key = value.strip().lower()
    outcome = _EVENT_OUTCOMES.get(key) or _STATUS_OUTCOMES.get(key)
    if outcome is None:
        if key not in _warned_unknown:
            _warned_unknown.add(key)
            log.warning("Unknown Polytomic status or event type %r: treating it as still running.", value)
        return Outcome.RUNNING
    return outcome


def event_types_for(kind: str, *, terminal_only: bool = False) -> tuple[str, ...]:
    """The event types of one sync kind (``model`` -> ``sync.*``, ``bulk`` -> ``bulk_sync.*``),
    or only those that end an execution.

    >>> event_types_for("bulk", terminal_only=True)[:2]
    ('bulk_sync.completed', 'bulk_sync.completed_with_error')
    """
    prefix = event_prefix(kind)
    return tuple(
        t
        for t in EventType.ALL
        if t.startswith(prefix) and (not terminal_only or _EVENT_OUTCOMES[t].is_terminal)
    )


def event_type_for_outcome(kind: str, outcome: Outcome) -> str | None:
    """The event type Polytomic emits for ``outcome`` on a sync of ``kind``."""
    for event_type in event_types_for(kind):
        if _EVENT_OUTCOMES[event_type] is outcome:
            return event_type
    return None


TERMINAL_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EventType.ALL if _EVENT_OUTCOMES[t].is_terminal)
"""Completion and failure types of both kinds: ``sync.{completed,completed_with_errors,failed,canceled}``
and ``bulk_sync.{completed,completed_with_error,failed,canceled}``."""


# ------------------------------------------------------------------ connection extras

DEFAULT_HOST = "https://app.polytomic.com"
DEFAULT_API_VERSION = "2025-09-18"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_MAX_WAIT = 60.0
DEFAULT_RETRY_BASE_WAIT = 1.0
DEFAULT_EVENT_RECHECK_INTERVAL = 60.0
"""Seconds between the shared events poll's re-reads of events that may have shown up late."""

EXTRA_PREFIX = "extra__polytomic__"
"""Airflow 2's connection form stored extras under this prefix; the 3.2+ form does not."""

_API_VERSION_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ConnectionExtras:
    """The extras of one ``polytomic`` Airflow connection, read once.

    Each typed property checks its extra when first read and raises a :class:`ValueError`
    naming the connection, the extra and the value, so a part of the provider that needs
    one extra (the execution link needs ``scheme``) is not stopped by a bad other one.
    Extras stored by Airflow 2's form (``extra__polytomic__<name>``) are read too; the
    plain name wins when both are set.

    Example::

        extras = ConnectionExtras.of(BaseHook.get_connection("polytomic_default"))
        extras.timeout, extras.webhook_secret

    :param conn_id: the connection's id (in error messages).
    :param values: the extras by plain name; never printed (it may hold a secret).
    """

    conn_id: str
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, conn: Any, **overrides: Any) -> ConnectionExtras:
        """Read the extras of an Airflow ``Connection``; ``overrides`` that are not None win.

        :raises ValueError: the connection's extra is not a JSON object.
        """
        conn_id = str(getattr(conn, "conn_id", None) or "polytomic")
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
        if not isinstance(extra, dict):
            raise ValueError(f"Connection {conn_id!r}: extra must be a JSON object")
        values: dict[str, Any] = {
            str(k).removeprefix(EXTRA_PREFIX): v for k, v in extra.items() if str(k).startswith(EXTRA_PREFIX)
        }
        values.update({str(k): v for k, v in extra.items() if not str(k).startswith(EXTRA_PREFIX)})
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(conn_id, values)

    def text(self, name: str) -> str | None:
        """The extra ``name`` as a string; None when unset or empty."""
        value = self.values.get(name)
        return str(value) if value else None

    def seconds(self, name: str, default: float) -> float:
        """The extra ``name`` as a positive number of seconds, else ``default`` when unset."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"Connection {self.conn_id!r}: extra {name!r} must be a positive number of seconds, "
                f"got {value!r}"
            ) from None
        if number <= 0:
            raise ValueError(f"Connection {self.conn_id!r}: extra {name!r} must be positive, got {value!r}")
        return number

    def whole_number(self, name: str, default: int) -> int:
        """The extra ``name`` as a whole number of at least 0, else ``default`` when unset."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(str(value))
        except (TypeError, ValueError):
            raise ValueError(
                f"Connection {self.conn_id!r}: extra {name!r} must be a whole number, got {value!r}"
            ) from None
        if number < 0:
            raise ValueError(f"Connection {self.conn_id!r}: extra {name!r} must be 0 or more, got {value!r}")
        return number

    @property
    def api_key(self) -> str | None:
        """An API key kept in the extras (the password is the documented place)."""
        return self.text("api_key")

    @property
    def api_version(self) -> str:
        """``X-Polytomic-Version``, ``YYYY-MM-DD`` (default :data:`DEFAULT_API_VERSION`)."""
        value = self.text("api_version") or DEFAULT_API_VERSION
        if not _API_VERSION_RE.fullmatch(value):
            raise ValueError(
                f"Connection {self.conn_id!r}: extra 'api_version' must look like YYYY-MM-DD, got {value!r}"
            )
        return value

    @property
    def organization_id(self) -> str | None:
        """Set only for partner or deployment keys (switches to org-scoped Basic auth)."""
        return self.text("organization_id")

    @property
    def scheme(self) -> str | None:
        """The scheme of a host written without one (default ``https``)."""
        return self.text("scheme")

    @property
    def webhook_secret(self) -> str | None:
        """The organization's webhook secret, which signs deliveries (None when unset)."""
        return self.text("webhook_secret")

    @property
    def execution_url_template(self) -> str | None:
        """The pattern of Polytomic's execution pages, when the default is wrong."""
        return self.text("execution_url_template")

    @property
    def timeout(self) -> float:
        return self.seconds("timeout", DEFAULT_TIMEOUT)

    @property
    def connect_timeout(self) -> float:
        return self.seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT)

    @property
    def max_retries(self) -> int:
        return self.whole_number("max_retries", DEFAULT_MAX_RETRIES)

    @property
    def retry_max_wait(self) -> float:
        return self.seconds("retry_max_wait", DEFAULT_RETRY_MAX_WAIT)

    @property
    def retry_base_wait(self) -> float:
        return self.seconds("retry_base_wait", DEFAULT_RETRY_BASE_WAIT)

    @property
    def event_recheck_interval(self) -> float:
        return self.seconds("event_recheck_interval", DEFAULT_EVENT_RECHECK_INTERVAL)


# -------------------------------------------------------------------- webhook secrets

WEBHOOK_SECRET_MIN_LENGTH = 6
WEBHOOK_SECRET_MAX_LENGTH = 32


def is_valid_webhook_secret(secret: Any) -> bool:
    """Whether ``secret`` is a string Polytomic accepts as a webhook secret (6-32 characters)."""
    return isinstance(secret, str) and WEBHOOK_SECRET_MIN_LENGTH <= len(secret) <= WEBHOOK_SECRET_MAX_LENGTH


# ------------------------------------------------------------------- seen event ids

_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


class SeenEventIds:
    """Event ids already seen, each with its ``created_at``, above a time floor that only rises.

    Every event created at or before :attr:`floor` counts as seen, so the ids under it are
    forgotten as it rises: memory follows the events above the floor, not the whole history.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    >>> seen = SeenEventIds(t)
    >>> seen.add("e1", t.replace(minute=1)), seen.add("e1", t.replace(minute=1))
    (True, False)
    >>> seen.raise_floor(t.replace(minute=5)); len(seen), seen.seen("e1", t.replace(minute=1))
    (0, True)
    """

    def __init__(self, floor: datetime | None = None, ids: Mapping[str, datetime] | None = None) -> None:
        self.floor = _EARLIEST if floor is None else floor
        self._ids: dict[str, datetime] = {k: v for k, v in (ids or {}).items() if v > self.floor}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    @property
    def ids(self) -> Mapping[str, datetime]:
        """The ids kept above the floor, with their ``created_at`` (read-only view)."""
        return self._ids

    def times(self) -> Iterator[datetime]:
        """The ``created_at`` of every id kept."""
        return iter(self._ids.values())

    def seen(self, event_id: str, created_at: datetime) -> bool:
        """Whether the event is at or below the floor, or its id was added."""
        return created_at <= self.floor or event_id in self._ids

    def add(self, event_id: str, created_at: datetime) -> bool:
        """Note the event as seen; True when it was not seen before."""
        if self.seen(event_id, created_at):
            return False
        self._ids[event_id] = created_at
        return True

    def raise_floor(self, to: datetime) -> None:
        """Move the floor up to ``to`` (never down) and forget the ids it now covers."""
        if to > self.floor:
            self.floor = to
            if any(v <= to for v in self._ids.values()):
                self._ids = {k: v for k, v in self._ids.items() if v > to}


__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_EVENT_RECHECK_INTERVAL",
    "DEFAULT_HOST",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_BASE_WAIT",
    "DEFAULT_RETRY_MAX_WAIT",
    "DEFAULT_TIMEOUT",
    "EXTRA_PREFIX",
    "SYNC_KINDS",
    "TERMINAL_EVENT_TYPES",
    "WEBHOOK_SECRET_MAX_LENGTH",
    "WEBHOOK_SECRET_MIN_LENGTH",
    "ConnectionExtras",
    "EventType",
    "Outcome",
    "SeenEventIds",
    "SyncKind",
    "check_sync_kind",
    "classify",
    "event_prefix",
    "event_type_for_outcome",
    "event_types_for",
    "is_valid_webhook_secret",
    "sync_api_root",
    "sync_kind_of_event",
    "sync_path",
]
