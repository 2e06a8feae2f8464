"""The trigger that waits on a Polytomic sync execution in Airflow's triggerer.

:class:`PolytomicSyncTrigger` backs the deferrable sensor and the run-sync operator: it
fires once, when the awaited execution has finished (or its deadline passed). Asset
watchers use :class:`~airflow_provider_polytomic.triggers.events.PolytomicEventTrigger`.

Both triggers poll the events API through one shared stream per connection (see
:mod:`airflow_provider_polytomic.triggers.shared_poll`), so a thousand waiting tasks cost
one events request per poll interval rather than a thousand.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow_provider_polytomic._compat import TriggerEvent
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.exceptions import PolytomicAPIError, PolytomicNotFoundError
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.sync_wait import (
    DEFAULT_STATUS_CHECK_INTERVAL,
    SyncResult,
    WaitDecider,
    WaitTarget,
    parse_time,
    utcnow,
)
from airflow_provider_polytomic.triggers.shared_poll import EventTick, SharedEventsPollTrigger, shared_for
from airflow_provider_polytomic.vocabulary import check_sync_kind

log = logging.getLogger(__name__)


class PolytomicSyncTrigger(SharedEventsPollTrigger):
    """Fire when a Polytomic sync execution finishes, or when the wait's deadline passes.

    Everything it needs is in its serialized kwargs - including the baseline and an
    absolute wall-clock deadline - so a triggerer restart resumes the same wait: it
    re-reads the events since the baseline and the status endpoints, and reaches the same
    decision.

    :param polytomic_conn_id: Airflow connection id.
    :param sync_id: the sync.
    :param sync_kind: ``model`` or ``bulk``.
    :param execution_id: wait for this execution; None for the first one finishing after ``baseline``.
    :param baseline: ISO 8601 instant; only executions finishing after it count (without ``execution_id``).
    :param deadline: ISO 8601 instant after which the trigger fires a timeout event; None for no deadline.
    :param poll_interval: seconds between polls of the events API.
    :param status_check_interval: seconds between fallback reads of the status endpoints.
    :param shared: share one events poll with the other triggers of the connection.
    :param cancel_on_kill: cancel ``execution_id`` when a user kills the deferred task (mark
        failed / success, clear). Airflow then calls the trigger's ``on_kill``, not the
        operator's. Used by the run-sync operator for the execution it started.
    """

    def __init__(
        self,
        *,
        polytomic_conn_id: str,
        sync_id: str,
        sync_kind: str = "model",
        execution_id: str | None = None,
        baseline: str | datetime,
        deadline: str | datetime | None = None,
        poll_interval: float = 30.0,
        status_check_interval: float = DEFAULT_STATUS_CHECK_INTERVAL,
        shared: bool = True,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.polytomic_conn_id = polytomic_conn_id
        self.sync_id = sync_id
        self.sync_kind = check_sync_kind(sync_kind)
        self.execution_id = execution_id
        self.baseline = parse_time(baseline, "baseline")
        self.deadline = parse_time(deadline, "deadline") if deadline is not None else None
        if float(poll_interval) <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self.status_check_interval = float(status_check_interval)
        self.shared = bool(shared)
        self.cancel_on_kill = bool(cancel_on_kill)
        if self.cancel_on_kill and not execution_id:
            raise ValueError("cancel_on_kill=True needs the execution_id to cancel")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "polytomic_conn_id": self.polytomic_conn_id,
                "sync_id": self.sync_id,
                "sync_kind": self.sync_kind,
                "execution_id": self.execution_id,
                "baseline": self.baseline.isoformat(),
                "deadline": self.deadline.isoformat() if self.deadline else None,
                "poll_interval": self.poll_interval,
                "status_check_interval": self.status_check_interval,
                "shared": self.shared,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def target(self) -> WaitTarget:
        return WaitTarget(
            sync_id=self.sync_id,
            sync_kind=self.sync_kind,
            execution_id=self.execution_id,
            baseline=self.baseline,
        )

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        # Spread the periodic status checks of many triggers instead of firing them together.
        decider = WaitDecider(
            self.target(), status_check_interval=self.status_check_interval * random.uniform(0.9, 1.1)
        )
        shared = shared_for(self.polytomic_conn_id)
        try:
            try:
                backlog = await shared.backfill.events_since(decider.events_since(), decider.relevant)
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                log.warning("Reading past Polytomic events failed; the status check covers them: %s", exc)
            else:
                decider.observe_events(backlog)
            if (result := await self._status(decider)) is not None:
                yield self._finished(result)
                return
            async for tick in shared_stream:
                if self.deadline is not None and utcnow() >= self.deadline:
                    # The ids travel in the event: dag.test drops defer-time kwargs.
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": self._timeout_message(),
                            "sync_id": self.sync_id,
                            "execution_id": self.execution_id,
                        }
                    )
                    return
                if not isinstance(tick, EventTick):
                    continue
                decider.observe_events(tick.for_sync(self.sync_id))
                if (result := await self._status(decider)) is not None:
                    yield self._finished(result)
                    return
        except PolytomicAPIError as exc:
            fatal = isinstance(exc, PolytomicNotFoundError) and self.execution_id is not None
            yield TriggerEvent({"status": "error", "message": str(exc), "fatal": fatal})

    async def _status(self, decider: WaitDecider) -> SyncResult | None:
        now = utcnow()
        if not decider.status_check_due(now):
            return None
        try:
            executions = await shared_for(self.polytomic_conn_id).status_checks.check(
                decider.target, decider.nominated()
            )
        except Exception as exc:
            if not is_retryable(exc):
                raise
            log.warning("Polytomic status check failed, will retry: %s", exc)
            return None
        return decider.observe_executions(executions, now=now)

    @staticmethod
    def _finished(result: SyncResult) -> TriggerEvent:
        return TriggerEvent({"status": "finished", "result": result.to_dict()})

    def _timeout_message(self) -> str:
        what = (
            f"execution {self.execution_id}"
            if self.execution_id
            else f"an execution finishing after {self.baseline}"
        )
        return f"Timed out at {self.deadline} waiting for Polytomic sync {self.sync_id} ({what})."

    async def on_kill(self) -> None:
        """Cancel the execution when a user killed the deferred task and ``cancel_on_kill`` is set."""
        if not self.cancel_on_kill or not self.execution_id:
            return
        hook = PolytomicHook(self.polytomic_conn_id)
        try:
            await hook.acancel_execution(self.sync_id, self.execution_id, sync_kind=self.sync_kind)
            self.log.info("Canceled Polytomic execution %s of sync %s.", self.execution_id, self.sync_id)
        except PolytomicAPIError as exc:
            self.log.warning("Could not cancel Polytomic execution %s: %s", self.execution_id, exc)
        finally:
            await hook.aclose()

    async def cleanup(self) -> None:
        # The shared hook outlives one trigger; nothing of ours to release.
        return None


def __getattr__(name: str) -> Any:
    # PolytomicEventTrigger lives in triggers.events (its serialized classpath); this path
    # is the one earlier documentation gave, kept working with a warning.
    if name == "PolytomicEventTrigger":
        import warnings

        from airflow_provider_polytomic.triggers.events import PolytomicEventTrigger

        warnings.warn(
            "Import PolytomicEventTrigger from airflow_provider_polytomic.triggers.events; "
            "airflow_provider_polytomic.triggers.polytomic will stop providing it.",
            DeprecationWarning,
            stacklevel=2,
        )
        return PolytomicEventTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PolytomicSyncTrigger"]
