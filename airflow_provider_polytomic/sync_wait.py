"""The one wait engine: decides whether a Polytomic sync execution has finished, and how.

The sensor's poke (poke and reschedule modes), its trigger (deferrable mode) and the
run-sync operator all feed what they observe into a :class:`WaitDecider` and ask it for a
:class:`SyncResult`, so the three modes cannot disagree about the same scenario.

Truth comes from two sources:

* **Events** (``sync.*`` / ``bulk_sync.*``): cheap to poll for many waiters at once, but
  delivered at most once and kept 48 hours. A terminal event only *nominates* an
  execution; it never decides on its own.
* **Execution status endpoints**: authoritative. When they are read depends on what a
  read costs the driver:

  - a poke (poke and reschedule modes, the run-sync operator waiting in its worker) reads
    one page of events and the status on every poke: two requests, so a completion whose
    event Polytomic dropped is found by the next poke;
  - a trigger shares one events poll with every other waiter of its connection, so it reads
    the status only on its first check (which catches completions before the wait began and
    anything older than 48 hours), as soon as an event nominates an execution, and
    otherwise every ``status_check_interval`` (which catches dropped events).

When both speak about one execution the worse outcome wins (a ``sync.completed`` event
never turns a failed execution into a success). Unknown statuses count as still running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_polytomic import api
from airflow_provider_polytomic.api import EVENT_RETENTION, EVENT_VISIBILITY_LAG
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.event_tail import EventTail
from airflow_provider_polytomic.models import (
    BulkExecution,
    Event,
    Execution,
    Outcome,
    SyncCompletedPayload,
    SyncCompletedWithErrorsPayload,
    SyncKind,
    event_type_for_outcome,
    event_types_for,
)
from airflow_provider_polytomic.vocabulary import check_sync_kind

log = logging.getLogger(__name__)

DEFAULT_STATUS_CHECK_INTERVAL = 300.0
"""Seconds between a trigger's fallback status reads (deferrable mode): one request per waiting
trigger per interval, spread by +-10 % jitter and at most 16 in flight per connection."""
# How many pages of executions a status check may read looking for the first completion.
MAX_EXECUTION_PAGES = 3


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: Any, name: str) -> datetime:
    """Parse a datetime argument (datetime or ISO 8601 string), naming the field on error."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 datetime, got {value!r}") from None
    else:
        # Pendulum DateTime is a datetime subclass and handled above.
        raise ValueError(f"{name} must be a datetime or an ISO 8601 string, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class WaitTarget:
    """What is being waited for.

    :param execution_id: wait for this execution; when None, wait for the first execution
        of the sync that finishes after ``baseline``.
    """

    sync_id: str
    sync_kind: SyncKind = "model"
    execution_id: str | None = None
    baseline: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if not isinstance(self.sync_id, str) or not self.sync_id.strip():
            raise ValueError(f"sync_id must be a non-empty string, got {self.sync_id!r}")
        check_sync_kind(self.sync_kind)
        if self.execution_id is not None and (
            not isinstance(self.execution_id, str) or not self.execution_id
        ):
            raise ValueError(f"execution_id must be a non-empty string or None, got {self.execution_id!r}")


@dataclass(frozen=True)
class SyncResult:
    """A finished execution, as reported to the user (the sensor's XCom is :meth:`summary`)."""

    sync_id: str
    execution_id: str
    outcome: Outcome
    status: str | None
    event_type: str | None
    event_id: str | None
    completed_at: str | None
    counts: dict[str, int | None]
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The XCom value: ids, status and counts; never record data."""
        return {
            "sync_id": self.sync_id,
            "execution_id": self.execution_id,
            "status": self.status,
            "outcome": self.outcome.value,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "completed_at": self.completed_at,
            "counts": dict(self.counts),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncResult:
        """Rebuild from :meth:`to_dict` (trigger event payloads). Fails closed on a bad outcome."""
        try:
            outcome = Outcome(data["outcome"])
        except (KeyError, ValueError):
            raise ValueError(  # noqa: B904 - the cause adds nothing
                f"outcome must be one of {[o.value for o in Outcome]}, got {data.get('outcome')!r}"
            )
        return cls(
            sync_id=str(data["sync_id"]),
            execution_id=str(data["execution_id"]),
            outcome=outcome,
            status=data.get("status"),
            event_type=data.get("event_type"),
            event_id=data.get("event_id"),
            completed_at=data.get("completed_at"),
            counts=dict(data.get("counts") or {}),
            error=data.get("error"),
        )

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.CANCELED)

    def describe(self) -> str:
        what = {
            Outcome.SUCCEEDED: "completed",
            Outcome.SUCCEEDED_WITH_ERRORS: "completed with errors",
            Outcome.FAILED: "failed",
            Outcome.CANCELED: "was canceled",
        }.get(self.outcome, self.outcome.value)
        text = f"Polytomic sync {self.sync_id} execution {self.execution_id} {what} (status {self.status!r})"
        if self.error:
            text += f": {self.error}"
        return text


def _worse(a: Outcome, b: Outcome) -> Outcome:
    return a if a.severity >= b.severity else b


def _counts(execution: Execution | BulkExecution, event: Event | None) -> dict[str, int | None]:
    counts = execution.summary_counts()
    if event is None:
        return counts
    payload = event.payload
    if isinstance(payload, SyncCompletedPayload):
        fallback = {
            "record": payload.record_count,
            "inserted": payload.inserted_count,
            "updated": payload.updated_count,
            "error": payload.error_count,
            "warning": payload.warning_count,
        }
    elif isinstance(payload, SyncCompletedWithErrorsPayload):
        fallback = {"error": payload.number_of_errors, "warning": payload.number_of_warnings}
    else:
        fallback = {}
    for name, value in fallback.items():
        if counts.get(name) is None and value is not None:
            counts[name] = value
    return counts


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


class WaitDecider:
    """Decides one wait from what its driver read: pure state, no I/O.

    Drivers call :meth:`observe_events` with every event they read, run a status check
    (:class:`StatusCheckPlan`: a GET of the execution when ``execution_id`` is known, else a
    listing of recent executions) and pass the executions to :meth:`observe_executions`,
    then read :attr:`result`. A driver whose status read costs as much as its events read
    (:class:`PokeDriver`) checks on every poke; one sharing its events poll (the trigger)
    checks when :meth:`status_check_due` says so.
    """

    def __init__(self, target: WaitTarget, *, status_check_interval: float = DEFAULT_STATUS_CHECK_INTERVAL):
        self.target = target
        self.status_check_interval = max(0.0, float(status_check_interval))
        self._types = frozenset(event_types_for(target.sync_kind))
        # Terminal events per execution id (the worst one kept), and each event id seen.
        self._terminal: dict[str, Event] = {}
        self._seen_ids: set[str] = set()
        self._unconfirmed = False
        self._last_status_check: datetime | None = None
        self.result: SyncResult | None = None

    # ------------------------------------------------------------------ observations

    def relevant(self, event: Event) -> bool:
        """Does this event speak about what we wait for?"""
        if event.type not in self._types or event.sync_id != self.target.sync_id:
            return False
        if self.target.execution_id is not None:
            return event.execution_id == self.target.execution_id
        return event.created_at > self.target.baseline

    def observe_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.id in self._seen_ids or not self.relevant(event):
                continue
            self._seen_ids.add(event.id)
            execution_id = event.execution_id
            if not event.outcome.is_terminal or not execution_id:
                continue
            known = self._terminal.get(execution_id)
            if known is None or event.outcome.severity > known.outcome.severity:
                self._terminal[execution_id] = event
            self._unconfirmed = True

    def nominated(self) -> tuple[str, ...]:
        """Executions a terminal event named; a status check reads them even when the
        executions listing (newest *created* first) stops before reaching them."""
        return tuple(sorted(self._terminal))

    @property
    def unconfirmed(self) -> bool:
        """A terminal event nominated an execution that no status check has confirmed yet."""
        return self._unconfirmed

    def status_check_due(self, now: datetime | None = None) -> bool:
        if self.result is not None:
            return False
        if self._last_status_check is None or self._unconfirmed:
            return True
        now = now or utcnow()
        return (now - self._last_status_check).total_seconds() >= self.status_check_interval

    def observe_executions(
        self, executions: Iterable[Execution | BulkExecution], *, now: datetime | None = None
    ) -> SyncResult | None:
        """Feed the answer of a status check. Returns the result when the wait is over."""
        self._last_status_check = now or utcnow()
        executions = list(executions)
        terminal_ids = {e.id for e in executions if e.outcome.is_terminal}
        # A nominated execution the status endpoint does not show as finished yet (it may lag
        # behind the event) is checked again on the next poll rather than after the interval.
        self._unconfirmed = any(execution_id not in terminal_ids for execution_id in self._terminal)
        chosen: Execution | BulkExecution | None = None
        for execution in executions:
            if not execution.outcome.is_terminal:
                continue
            if self.target.execution_id is not None:
                if execution.id != self.target.execution_id:
                    continue
            else:
                finished = execution.completed_at or execution.started_at or execution.created_at
                if finished is None or finished <= self.target.baseline:
                    continue
                if chosen is not None:
                    chosen_finished = chosen.completed_at or chosen.started_at or chosen.created_at
                    if chosen_finished is not None and chosen_finished <= finished:
                        continue
            chosen = execution
        if chosen is not None:
            self.result = self._decide(chosen)
        return self.result

    def _decide(self, execution: Execution | BulkExecution) -> SyncResult:
        event = self._terminal.get(execution.id)
        outcome = execution.outcome
        if event is not None:
            outcome = _worse(outcome, event.outcome)
        error = execution.error_message
        if event is not None and not error:
            error = event.payload.error
        return SyncResult(
            sync_id=self.target.sync_id,
            execution_id=execution.id,
            outcome=outcome,
            status=execution.status,
            event_type=event.type
            if event is not None
            else event_type_for_outcome(self.target.sync_kind, outcome),
            event_id=event.id if event is not None else None,
            completed_at=_iso(execution.completed_at) or (_iso(event.created_at) if event else None),
            counts=_counts(execution, event),
            error=error,
        )

    # ----------------------------------------------------------------- event windows

    def events_since(self, now: datetime | None = None) -> datetime:
        """Where a driver without a cursor should start reading events."""
        now = now or utcnow()
        return max(self.target.baseline - EVENT_VISIBILITY_LAG, now - EVENT_RETENTION)


def pick_recent_executions(
    executions: Iterable[Execution | BulkExecution], baseline: datetime
) -> tuple[list[Execution | BulkExecution], bool]:
    """Take executions (newest first) until one finished at or before ``baseline``.

    Returns the executions read and whether the listing reached the baseline (so older
    pages cannot hold anything newer).
    """
    out: list[Execution | BulkExecution] = []
    for execution in executions:
        out.append(execution)
        finished = execution.completed_at
        if execution.outcome.is_terminal and finished is not None and finished <= baseline:
            return out, True
        started = execution.created_at or execution.started_at
        if not execution.outcome.is_terminal and started is not None and started <= baseline:
            # A run that started before the baseline and is still going: nothing older can finish later.
            return out, True
    return out, False


# ----------------------------------------------------------------------------- drivers
# Status checks are described without I/O so the synchronous and asynchronous drivers
# share them; only the `send` differs.


class StatusCheckPlan:
    """The requests of one status check, described without I/O: feed it the answer to each
    :meth:`next_call` until that is None (as :class:`~airflow_provider_polytomic.event_pager.EventPager`).

    With an ``execution_id``: one GET of that execution. Without: the sync's terminal
    executions, newest first, until one finished at or before the baseline (at most
    :data:`MAX_EXECUTION_PAGES` pages), then a GET of each execution a terminal event
    nominated that the listing did not reach (executions can overlap, and the listing is
    ordered by creation, not completion).
    """

    def __init__(self, target: WaitTarget, nominated: Iterable[str] = ()) -> None:
        self.target = target
        self.executions: list[Execution | BulkExecution] = []
        self._token: str | None = None
        self._pages = 0
        self._done = False
        self._nominated = [] if target.execution_id is not None else list(nominated)
        self._listed = False

    def next_call(self) -> Any:
        if self._done:
            return None
        if self._listed:
            return api.get_execution(self.target.sync_id, self._nominated[0], kind=self.target.sync_kind)
        if self.target.execution_id is not None:
            return api.get_execution(
                self.target.sync_id, self.target.execution_id, kind=self.target.sync_kind
            )
        return api.list_executions_page(
            self.target.sync_id, kind=self.target.sync_kind, page_token=self._token, only_completed=True
        )

    def feed(self, answer: Any) -> None:
        if self.target.execution_id is not None:
            self.executions.append(answer)
            self._done = True
            return
        if self._listed:
            self._nominated.pop(0)
            self.executions.append(answer)
            self._done = not self._nominated
            return
        self._pages += 1
        picked, reached = pick_recent_executions(answer.executions, self.target.baseline)
        self.executions.extend(picked)
        token = answer.next_page_token
        if reached or not token or token == self._token or self._pages >= MAX_EXECUTION_PAGES:
            listed = {e.id for e in self.executions}
            self._nominated = [i for i in self._nominated if i not in listed]
            self._listed = True
            self._done = not self._nominated
        self._token = token


class PokeDriver:
    """Drives a :class:`WaitDecider` from a worker, synchronously: one :meth:`check` per poke.

    Used by the sensor in poke and reschedule mode and by the run-sync operator when it
    waits without deferring. A check costs two requests (plus, rarely, a few more when
    overlapping executions need telling apart):

    * one page of events, continuing from where the previous check of this instance
      stopped (a new instance, as in reschedule mode, starts again from the baseline less
      :data:`EVENT_VISIBILITY_LAG`). Events only name and describe the execution, so an
      organization with more events per poke than one page holds delays nothing: the
      status read decides, and the result may then carry no ``event_id``. A read more than
      :data:`EVENT_VISIBILITY_LAG` behind skips ahead to the recent events;
    * the status: a GET of the execution when its id is known, else the sync's finished
      executions, newest first, which stop at the first one that finished before the
      baseline (one page while nothing has finished), plus a GET of each execution an event
      nominated that the listing did not reach.
    """

    def __init__(self, hook: Any, decider: WaitDecider) -> None:
        self.hook = hook
        self.decider = decider
        self._tail: EventTail | None = None

    def check(self, *, now: datetime | None = None) -> SyncResult | None:
        """Read one page of events, then the status. Returns the result when finished."""
        now = now or utcnow()
        if self._tail is None:
            self._tail = EventTail(
                start=self.decider.events_since(now), recheck_interval=None, max_behind=EVENT_VISIBILITY_LAG
            )
        self._tail.begin(now)
        call = self._tail.next_call()
        if call is not None:
            try:
                events = self._tail.feed(self.hook.run(call))
            except Exception as exc:
                self._tail.fail()
                if not is_retryable(exc):
                    raise
                # The status read below decides without events.
                log.warning("Reading Polytomic events failed; checking the status only: %s", exc)
            else:
                self.decider.observe_events(events)
        check = StatusCheckPlan(self.decider.target, self.decider.nominated())
        while (call := check.next_call()) is not None:
            check.feed(self.hook.run(call))
        self.decider.observe_executions(check.executions, now=now)
        return self.decider.result


__all__ = [
    "DEFAULT_STATUS_CHECK_INTERVAL",
    "PokeDriver",
    "StatusCheckPlan",
    "SyncResult",
    "WaitDecider",
    "WaitTarget",
    "parse_time",
    "pick_recent_executions",
]
