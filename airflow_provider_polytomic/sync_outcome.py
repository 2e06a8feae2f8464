"""What a finished sync execution means for the task that waited on it.

The sensor and the run-sync operator both end their wait here, whichever mode they waited
in: :meth:`SyncOutcomeMixin.finish` for a result decided in the worker (poke, reschedule,
or the operator's own loop), :meth:`SyncOutcomeMixin.finish_trigger_event` for what the
trigger sent after a deferral.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_polytomic._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_provider_polytomic.exceptions import PolytomicSyncFailedError
from airflow_provider_polytomic.sync_wait import SyncResult
from airflow_provider_polytomic.vocabulary import Outcome


class SyncOutcomeMixin:
    """Turns a finished execution into the task's fate; mixed into the sensor and the run-sync operator.

    The class mixing it in provides ``fail_on_errors``, ``soft_fail`` and ``log``.
    """

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
        time, and a failed lookup only makes the lineage partial (see docs/lineage.md).
        """
        from airflow_provider_polytomic.lineage import sync_task_lineage

        return sync_task_lineage(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """OpenLineage for a failed task: the same datasets; statistics when the execution
        reported counts (a failed execution may have written part of its records)."""
        from airflow_provider_polytomic.lineage import sync_task_lineage

        return sync_task_lineage(self, task_instance)

    def finish_trigger_event(self, event: dict[str, Any] | None, *, waited_on_execution: bool) -> Any:
        """Turn a :class:`~airflow_provider_polytomic.triggers.polytomic.PolytomicSyncTrigger`
        event into the task's fate, as :meth:`finish` does for a result decided in the worker."""
        if not isinstance(event, dict):
            raise PolytomicSyncFailedError(f"The Polytomic trigger sent no usable event: {event!r}")
        status = event.get("status")
        if status == "finished":
            try:
                result = SyncResult.from_dict(event["result"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PolytomicSyncFailedError(
                    f"The Polytomic trigger sent a malformed result: {exc}"
                ) from None
            return self.finish(result, waited_on_execution=waited_on_execution)
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message") or "Timed out waiting for the Polytomic sync.")
        message = event.get("message") or f"Polytomic trigger error: {event!r}"
        if event.get("fatal"):
            raise AirflowFailException(message)
        raise PolytomicSyncFailedError(message)


__all__ = ["SyncOutcomeMixin"]
