"""Sensor that gates tasks on a Polytomic sync's completion or failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_polytomic._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    default_deferrable,
    first_reschedule_date,
)
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.exceptions import PolytomicNotFoundError
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.links.polytomic import PolytomicExecutionLink
from airflow_provider_polytomic.sync_outcome import SyncOutcomeMixin
from airflow_provider_polytomic.sync_wait import (
    DEFAULT_STATUS_CHECK_INTERVAL,
    PokeDriver,
    WaitDecider,
    WaitTarget,
    parse_time,
    utcnow,
)
from airflow_provider_polytomic.vocabulary import check_sync_kind


class PolytomicSyncSensor(SyncOutcomeMixin, BaseSensorOperator):
    """Wait until a Polytomic sync execution finishes; succeed, warn or fail accordingly.

    * With ``execution_id``: wait for that execution.
    * Without: wait for the first execution of the sync that finishes after the baseline,
      which is ``completed_after`` if given, else the moment the sensor first started
      (kept through reschedules and deferral). A completion between the baseline and the
      first poke counts.

    Works in ``poke``, ``reschedule`` and deferrable mode with the same decision code
    (:mod:`airflow_provider_polytomic.sync_wait`). Deferred sensors on one connection
    share one poll of Polytomic's events API.

    The XCom return value is a summary: ``sync_id``, ``execution_id``, ``status``,
    ``outcome``, ``event_type``, ``event_id`` (None when the status endpoint decided),
    ``completed_at`` and ``counts``.

    Example::

        PolytomicSyncSensor(
            task_id="wait_for_contacts_sync",
            sync_id="9a4e1c2d-3b4a-4f5e-8d7c-6b5a4f3e2d1c",
            completed_after="{{ data_interval_end }}",
            deferrable=True,
            timeout=3600,
        )

    :param sync_id: the sync (templated).
    :param execution_id: a specific execution to wait for (templated).
    :param sync_kind: ``model`` (``sync.*`` events) or ``bulk`` (``bulk_sync.*`` events).
    :param completed_after: only executions finishing after this datetime count (templated;
        datetime or ISO 8601 string). Ignored with ``execution_id``.
    :param fail_on_errors: fail when the execution completed with errors (default: warn).
    :param polytomic_conn_id: the ``polytomic`` connection.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param status_check_interval: deferrable mode only: seconds between the trigger's
        fallback reads of the status endpoints, which catch completions whose event
        Polytomic dropped (one request per waiting sensor per interval). In poke and
        reschedule mode every poke reads the status (one request, like the events read), so
        a dropped event delays nothing.
    """

    template_fields: Sequence[str] = ("sync_id", "execution_id", "completed_after")
    operator_extra_links = (PolytomicExecutionLink(),)
    ui_color = "#5b3df5"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        sync_id: str,
        execution_id: str | None = None,
        sync_kind: str = "model",
        completed_after: datetime | str | None = None,
        fail_on_errors: bool = False,
        polytomic_conn_id: str = PolytomicHook.default_conn_name,
        deferrable: bool | None = None,
        status_check_interval: float = DEFAULT_STATUS_CHECK_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sync_id = sync_id
        self.execution_id = execution_id
        self.sync_kind = check_sync_kind(sync_kind)
        self.completed_after = completed_after
        self.fail_on_errors = fail_on_errors
        self.polytomic_conn_id = polytomic_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.status_check_interval = float(status_check_interval)
        self._poke_driver: PokeDriver | None = None
        self._pokes = 0

    # ------------------------------------------------------------------------ helpers

    def baseline(self, context: Context) -> datetime:
        """``completed_after``, else when this sensor first started (survives reschedules)."""
        if self.completed_after not in (None, ""):
            return parse_time(self.completed_after, "completed_after")
        ti = context.get("ti") if context else None
        if ti is not None:
            if self.reschedule:
                first = first_reschedule_date(ti, context)
                if first is not None:
                    return parse_time(first, "first reschedule date")
            start = getattr(ti, "start_date", None)
            if start is not None:
                return parse_time(start, "task start date")
        return utcnow()

    def target(self, context: Context) -> WaitTarget:
        return WaitTarget(
            sync_id=self.sync_id,
            sync_kind=self.sync_kind,
            execution_id=self.execution_id or None,
            baseline=self.baseline(context),
        )

    # -------------------------------------------------------------------------- modes

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        target = self.target(context)
        self.log.info(
            "Deferring: waiting for Polytomic sync %s (%s) to finish after %s.",
            target.sync_id,
            f"execution {target.execution_id}" if target.execution_id else "any execution",
            target.baseline.isoformat(),
        )
        # Imported when deferring: DAG files import this module, and only a running task defers.
        from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger

        self.defer(
            trigger=PolytomicSyncTrigger(
                polytomic_conn_id=self.polytomic_conn_id,
                sync_id=target.sync_id,
                sync_kind=target.sync_kind,
                execution_id=target.execution_id,
                baseline=target.baseline,
                deadline=utcnow() + timedelta(seconds=self.timeout),
                poll_interval=self.poke_interval,
                status_check_interval=self.status_check_interval,
            ),
            method_name="execute_complete",
            # The sensor's own timeout, so Airflow's timeout and soft_fail apply as in poke mode.
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self._poke_driver is None:
            target = self.target(context)
            decider = WaitDecider(target, status_check_interval=self.status_check_interval)
            self._poke_driver = PokeDriver(PolytomicHook(self.polytomic_conn_id), decider)
        self._pokes += 1
        try:
            result = self._poke_driver.check()
        except PolytomicNotFoundError as exc:
            if self.execution_id:
                raise AirflowFailException(str(exc)) from None
            raise
        except Exception as exc:
            if is_retryable(exc):
                self.log.warning("Polytomic is not answering right now (%s); will poke again.", exc)
                return False
            raise
        if result is None:
            return False
        return PokeReturnValue(
            is_done=True, xcom_value=self.finish(result, waited_on_execution=bool(self.execution_id))
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after deferral; a deferral timeout honours ``soft_fail`` on every Airflow.

        Airflow 3.0 turns the timeout into ``AirflowSensorTimeout`` without applying
        ``soft_fail`` (later versions and Airflow 2 apply it); this applies it there too.
        """
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"{exc} (soft_fail=True: skipping)") from exc
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired."""
        return self.finish_trigger_event(event, waited_on_execution=bool(self.execution_id))
