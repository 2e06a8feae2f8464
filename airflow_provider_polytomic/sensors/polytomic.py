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
from airflow_provider_polytomic.exceptions import PolytomicNotFoundError, PolytomicSyncFailedError
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.links.polytomic import PolytomicExecutionLink
from airflow_provider_polytomic.models import Outcome
from airflow_provider_polytomic.sync_wait import (
    DEFAULT_STATUS_CHECK_INTERVAL,
    SyncResult,
    SyncWaiter,
    SyncWatch,
    WaitTarget,
    parse_time,
    transient,
    utcnow,
)
from airflow_provider_polytomic.vocabulary import check_sync_kind


class SyncOutcomeMixin:
    """Turns a :class:`SyncResult` into the task's fate; shared by the sensor and the run-sync operator."""

    fail_on_errors: bool
    soft_fail: bool
    log: Any

    def finish(self, result: SyncResult, *, waited_on_execution: bool) -> dict[str, Any]:
        """Return the summary for XCom, or raise for a failed, canceled or errored execution.

        A failure of a known execution raises :class:`AirflowFailException` (no retries: a
        retry would wait on the same finished execution); otherwise
        :class:`PolytomicSyncFailedError`. With ``soft_fail`` the task is skipped instead,
        in every mode alike.
        """
        summary = result.summary()
        # Kept for OpenLineage, which asks for this task's lineage once it has ended.
        self._polytomic_summary = summary
        failed = result.failed or (result.outcome is Outcome.SUCCEEDED_WITH_ERRORS and self.fail_on_errors)
        if not failed:
            if result.outcome is Outcome.SUCCEEDED_WITH_ERRORS:
                self.log.warning(
                    "%s; %s errors, %s warnings. Continuing because fail_on_errors=False.",
                    result.describe(),
                    summary["counts"].get("error"),
                    summary["counts"].get("warning"),
                )
            else:
                self.log.info("%s.", result.describe())
            return summary
        message = result.describe()
        if self.soft_fail:
            raise AirflowSkipException(f"{message} (soft_fail=True: skipping)")
        if waited_on_execution:
            raise AirflowFailException(message)
        raise PolytomicSyncFailedError(message)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the sync's sources as inputs, its target as outputs, rows written as
        output statistics and a ``polytomicExecution`` run facet (ids, status, counts, link).

        Called by Airflow's OpenLineage provider when the task ends; returns None when that
        provider is not installed. Lookups are few, cached per task instance and bounded in
        time, and a failed lookup only makes the lineage partial (see the README).
        """
        from airflow_provider_polytomic.lineage import sync_task_lineage

        return sync_task_lineage(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage for a failed task: the same datasets; statistics when the execution
        reported counts (a failed execution may have written part of its records)."""
        from airflow_provider_polytomic.lineage import sync_task_lineage

        return sync_task_lineage(self, task_instance)


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
        self._waiter: SyncWaiter | None = None
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
            fail_on_errors=self.fail_on_errors,
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
        if self._waiter is None:
            target = self.target(context)
            watch = SyncWatch(target, status_check_interval=self.status_check_interval)
            self._waiter = SyncWaiter(PolytomicHook(self.polytomic_conn_id), watch)
        self._pokes += 1
        try:
            result = self._waiter.check()
        except PolytomicNotFoundError as exc:
            if self.execution_id:
                raise AirflowFailException(str(exc)) from None
            raise
        except Exception as exc:
            if transient(exc):
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
        return handle_trigger_event(self, event, waited_on_execution=bool(self.execution_id))


def handle_trigger_event(
    op: SyncOutcomeMixin, event: dict[str, Any] | None, *, waited_on_execution: bool
) -> Any:
    """Turn a :class:`PolytomicSyncTrigger` event into the task's fate (sensor and operator)."""
    if not isinstance(event, dict):
        raise PolytomicSyncFailedError(f"The Polytomic trigger sent no usable event: {event!r}")
    status = event.get("status")
    if status == "finished":
        try:
            result = SyncResult.from_dict(event["result"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PolytomicSyncFailedError(f"The Polytomic trigger sent a malformed result: {exc}") from None
        return op.finish(result, waited_on_execution=waited_on_execution)
    if status == "timeout":
        raise AirflowSensorTimeout(event.get("message") or "Timed out waiting for the Polytomic sync.")
    message = event.get("message") or f"Polytomic trigger error: {event!r}"
    if event.get("fatal"):
        raise AirflowFailException(message)
    raise PolytomicSyncFailedError(message)
