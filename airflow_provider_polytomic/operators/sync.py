"""Operator that starts a Polytomic sync execution and (optionally) waits for it to finish."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_polytomic._compat import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    Context,
    default_deferrable,
    link_xcom_key,
)
from airflow_provider_polytomic.client import is_retryable
from airflow_provider_polytomic.exceptions import (
    PolytomicAPIError,
    PolytomicNotFoundError,
    PolytomicSyncAlreadyRunningError,
    PolytomicSyncFailedError,
)
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.links.polytomic import (
    XCOM_EXECUTION_ID,
    XCOM_EXECUTION_URL,
    PolytomicExecutionLink,
    execution_url_for_connection,
)
from airflow_provider_polytomic.sync_outcome import SyncOutcomeMixin
from airflow_provider_polytomic.sync_wait import (
    DEFAULT_STATUS_CHECK_INTERVAL,
    PokeDriver,
    WaitDecider,
    WaitTarget,
    utcnow,
)
from airflow_provider_polytomic.vocabulary import check_sync_kind

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = 7 * 24 * 3600.0
# Rounds of the retry policy a cancel gets (see PolytomicRunSyncOperator._cancel).
CANCEL_ROUNDS = 3
# Baseline slack for the events window: the execution cannot have events older than its start.
_BASELINE_SLACK = timedelta(seconds=5)


class PolytomicSyncTimeoutError(PolytomicSyncFailedError):
    """The run-sync operator's wait passed its deadline (the execution is canceled when asked)."""


def idempotency_key_for(ti: Any, sync_id: str, sync_kind: str = "model") -> str | None:
    """The ``Idempotency-Key`` for starting ``sync_id`` from task instance ``ti``.

    A SHA-256 of (dag_id, task_id, run_id, map_index, try_number, sync kind, sync id), as
    ``airflow-<64 hex digits>`` (72 characters of ``[A-Za-z0-9_-]``). The same try always
    sends the same key, so a repeated request (HTTP retry, worker restart within the try)
    gets Polytomic's replay of the first answer instead of a second execution; a new try
    sends a new key and may start a new execution. None when ``ti`` is missing.
    """
    if ti is None:
        return None
    parts = [
        getattr(ti, "dag_id", None),
        getattr(ti, "task_id", None),
        getattr(ti, "run_id", None),
        getattr(ti, "map_index", -1),
        getattr(ti, "try_number", None),
        sync_kind,
        sync_id,
    ]
    if parts[0] is None or parts[1] is None or parts[2] is None:
        return None
    material = "\x1f".join("" if p is None else str(p) for p in parts)
    return "airflow-" + hashlib.sha256(material.encode("utf-8")).hexdigest()


class PolytomicRunSyncOperator(SyncOutcomeMixin, BaseOperator):
    """Start a Polytomic sync execution and, by default, wait until it finishes.

    * **No duplicate executions.** The start request carries an ``Idempotency-Key``
      derived from the task instance (see :func:`idempotency_key_for`), so a repeated
      request within one try cannot start a second execution. When Polytomic answers 409
      (an execution is already running) the operator attaches to that execution if
      ``reuse_running_execution`` (default), else fails with a clear message.
    * **Link first.** ``execution_id`` and ``execution_url`` are pushed to XCom (and the
      "Polytomic execution" extra link is stored) *before* waiting, so they are there while
      the task waits or if it fails.
    * **One wait engine.** Waiting uses the sensor's logic
      (:mod:`airflow_provider_polytomic.sync_wait`): in the worker with
      ``deferrable=False``, or in the triggerer (:class:`PolytomicSyncTrigger`, an
      absolute deadline serialized) with ``deferrable=True``. Outcomes are decided as in
      :class:`~airflow_provider_polytomic.sensors.polytomic.PolytomicSyncSensor`: failed or
      canceled executions fail the task (retryable: a new try starts a new execution),
      completed-with-errors warns unless ``fail_on_errors``, ``soft_fail`` skips instead.
    * **No leaks.** With ``cancel_on_kill`` (default) the execution is canceled when the
      task is killed (worker or triggerer) and when the wait passes ``timeout``.

    Returns the sensor's summary (``sync_id``, ``execution_id``, ``status``, ``outcome``,
    ``event_type``, ``event_id``, ``completed_at``, ``counts``), or
    ``{"sync_id", "execution_id", "status"}`` with ``wait_for_completion=False``.

    Example::

        PolytomicRunSyncOperator(
            task_id="run_contacts_sync",
            sync_id="{{ var.value.polytomic_contacts_sync_id }}",
            deferrable=True,
            timeout=2 * 3600,
        )

    :param sync_id: the sync to run (templated).
    :param sync_kind: ``model`` (``/api/syncs``) or ``bulk`` (``/api/bulk/syncs``).
    :param wait_for_completion: wait for the execution to finish (default True).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param resync: force a full resync (model), or ``resync_mode=rebuild`` for a bulk sync.
    :param resync_mode: bulk only: ``refetch``, ``resync`` or ``rebuild``.
    :param fetch_mode: bulk only: ``none``, ``incremental`` or ``full``.
    :param schemas: bulk only: the schemas to sync (templated).
    :param reuse_running_execution: on 409, wait on the running execution instead of failing.
    :param cancel_on_kill: cancel the execution when the task is killed or the wait times out.
    :param polytomic_conn_id: the ``polytomic`` connection.
    :param fail_on_errors: fail when the execution completed with record errors (default: warn).
    :param soft_fail: skip the task instead of failing it when the execution failed.
    :param poll_interval: seconds between polls while waiting.
    :param timeout: seconds to wait for the execution (None: no deadline; default 7 days).
        An absolute deadline computed when the execution started, kept across deferral.
    :param status_check_interval: deferrable mode only: seconds between the trigger's
        fallback reads of the execution's status. Waiting in the worker reads the status on
        every poll (one request, next to one page of events).
    """

    template_fields: Sequence[str] = ("sync_id", "schemas")
    operator_extra_links = (PolytomicExecutionLink(),)
    ui_color = "#5b3df5"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        sync_id: str,
        sync_kind: str = "model",
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        resync: bool = False,
        resync_mode: str | None = None,
        fetch_mode: str | None = None,
        schemas: Sequence[str] | None = None,
        reuse_running_execution: bool = True,
        cancel_on_kill: bool = True,
        polytomic_conn_id: str = PolytomicHook.default_conn_name,
        fail_on_errors: bool = False,
        soft_fail: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = DEFAULT_TIMEOUT,
        status_check_interval: float = DEFAULT_STATUS_CHECK_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if float(poll_interval) <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        if timeout is not None and float(timeout) <= 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        self.sync_id = sync_id
        self.sync_kind = check_sync_kind(sync_kind)
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.resync = resync
        self.resync_mode = resync_mode
        self.fetch_mode = fetch_mode
        self.schemas = schemas
        self.reuse_running_execution = reuse_running_execution
        self.cancel_on_kill = cancel_on_kill
        self.polytomic_conn_id = polytomic_conn_id
        self.fail_on_errors = fail_on_errors
        self.soft_fail = soft_fail
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout) if timeout is not None else None
        self.status_check_interval = float(status_check_interval)
        # Worker-side state of the current wait (on_kill runs in the same process).
        self._execution_id: str | None = None
        self._execution_url: str | None = None
        self._finished = False
        # Created in execute(): operators are deep-copied while DAGs are parsed, and locks cannot be.
        self._stop: threading.Event | None = None

    # ------------------------------------------------------------------------ helpers

    @property
    def hook(self) -> PolytomicHook:
        """A hook on :attr:`polytomic_conn_id` (one per operator instance)."""
        hook = self.__dict__.get("_hook")
        if hook is None:
            hook = self.__dict__["_hook"] = PolytomicHook(self.polytomic_conn_id)
        return hook

    def start(self, context: Context) -> tuple[str, str | None, bool]:
        """Start the sync (or find the running execution). Returns ``(execution_id, status, reused)``."""
        ti = context.get("ti") if context else None
        key = idempotency_key_for(ti, self.sync_id, self.sync_kind)
        try:
            started = self.hook.start_sync(
                self.sync_id,
                sync_kind=self.sync_kind,
                resync=self.resync,
                resync_mode=self.resync_mode,
                fetch_mode=self.fetch_mode,
                schemas=list(self.schemas) if self.schemas else None,
                idempotency_key=key,
            )
        except PolytomicSyncAlreadyRunningError as exc:
            running = self.hook.get_sync_status(self.sync_id, sync_kind=self.sync_kind).current_execution
            running_id = running.get("id") if isinstance(running, dict) else None
            if not running_id:
                raise AirflowException(
                    f"Polytomic answered 409 to starting sync {self.sync_id} ({exc.message}) but reports "
                    "no running execution now; it probably just finished. A retry will start a new one."
                ) from None
            if not self.reuse_running_execution:
                raise AirflowException(
                    f"Polytomic sync {self.sync_id} is already running (execution {running_id}) and "
                    "reuse_running_execution=False, so this task will not wait on it. Set "
                    "reuse_running_execution=True to attach to the running execution."
                ) from None
            self.log.info(
                "Polytomic sync %s is already running: attaching to execution %s.", self.sync_id, running_id
            )
            return str(running_id), running.get("status") if isinstance(running, dict) else None, True
        return started.id, started.status, False

    def execution_url(self, execution_id: str) -> str | None:
        """The execution page URL (see :mod:`airflow_provider_polytomic.links.polytomic`), or None."""
        try:
            return execution_url_for_connection(
                self.polytomic_conn_id, self.sync_id, execution_id, sync_kind=self.sync_kind
            )
        except Exception as exc:
            self.log.warning("Could not build the Polytomic execution URL: %s", exc)
            return None

    def _push_ids(self, context: Context, execution_id: str) -> str | None:
        url = self._execution_url = self.execution_url(execution_id)
        ti = context.get("ti") if context else None
        if ti is not None:
            ti.xcom_push(key=XCOM_EXECUTION_ID, value=execution_id)
            ti.xcom_push(key=XCOM_EXECUTION_URL, value=url)
            link_key = link_xcom_key(PolytomicExecutionLink())
            if url and link_key:
                # What the Airflow 3 UI reads for the extra link; Airflow rewrites it when the task ends.
                ti.xcom_push(key=link_key, value=url)
        return url

    def _target(self, execution_id: str, started_at: datetime) -> WaitTarget:
        return WaitTarget(
            sync_id=self.sync_id,
            sync_kind=self.sync_kind,
            execution_id=execution_id,
            baseline=started_at - _BASELINE_SLACK,
        )

    def _cancel(self, execution_id: str, why: str) -> bool:
        """Ask Polytomic to cancel the execution; False (logged) when it refused or did not answer.

        A leaked execution keeps writing to the destination after Airflow gave up on it, so a
        cancel gets :data:`CANCEL_ROUNDS` rounds of the connection's whole retry policy
        against transient failures (429, 5xx, timeouts), not just one.
        """
        for round_ in range(1, CANCEL_ROUNDS + 1):
            try:
                self.hook.cancel_execution(self.sync_id, execution_id, sync_kind=self.sync_kind)
            except PolytomicAPIError as exc:
                if is_retryable(exc) and round_ < CANCEL_ROUNDS:
                    self.log.warning(
                        "Canceling Polytomic execution %s failed (%s); trying again.", execution_id, exc
                    )
                    continue
                self.log.warning("Could not cancel Polytomic execution %s (%s): %s", execution_id, why, exc)
                return False
            self.log.info("Canceled Polytomic execution %s of sync %s (%s).", execution_id, self.sync_id, why)
            return True
        return False

    def _timed_out(self, execution_id: str, deadline: datetime | None) -> PolytomicSyncTimeoutError:
        when = f" at {deadline.isoformat()}" if deadline else ""
        message = (
            f"Timed out{when} waiting for Polytomic sync {self.sync_id} execution {execution_id} "
            f"(timeout={self.timeout}s)"
        )
        if self.cancel_on_kill:
            if self._cancel(execution_id, "deadline passed"):
                message += "; the execution was canceled (cancel_on_kill=True)."
            else:
                message += "; canceling the execution failed, it may still be running."
        else:
            message += "; the execution keeps running (cancel_on_kill=False)."
        return PolytomicSyncTimeoutError(message)

    # -------------------------------------------------------------------------- execute

    def execute(self, context: Context) -> Any:
        """Start the sync, publish the ids, then return or wait (in the worker or deferred)."""
        started_at = utcnow()
        self._stop = threading.Event()
        execution_id, status, reused = self.start(context)
        self._execution_id = execution_id
        self._finished = False
        url = self._push_ids(context, execution_id)
        self.log.info(
            "%s Polytomic sync %s execution %s%s.",
            "Attached to" if reused else "Started",
            self.sync_id,
            execution_id,
            f": {url}" if url else "",
        )
        if not self.wait_for_completion:
            self._finished = True
            return {"sync_id": self.sync_id, "execution_id": execution_id, "status": status}
        deadline = started_at + timedelta(seconds=self.timeout) if self.timeout is not None else None
        target = self._target(execution_id, started_at)
        if self.deferrable:
            # Imported when deferring: DAG files import this module, and only a running task defers.
            from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger

            self.defer(
                trigger=PolytomicSyncTrigger(
                    polytomic_conn_id=self.polytomic_conn_id,
                    sync_id=self.sync_id,
                    sync_kind=self.sync_kind,
                    execution_id=execution_id,
                    baseline=target.baseline,
                    deadline=deadline,
                    poll_interval=self.poll_interval,
                    status_check_interval=self.status_check_interval,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                # The trigger owns the deadline, so the framework cannot cut off the cleanup.
                timeout=None,
            )
        return self._wait(target, deadline)

    def _wait(self, target: WaitTarget, deadline: datetime | None) -> dict[str, Any]:
        execution_id = target.execution_id
        assert execution_id is not None
        driver = PokeDriver(self.hook, WaitDecider(target, status_check_interval=self.status_check_interval))
        stop = self._stop = self._stop or threading.Event()
        while True:
            if stop.is_set():
                raise AirflowException(f"Killed while waiting for Polytomic execution {execution_id}.")
            try:
                result = driver.check()
            except PolytomicNotFoundError as exc:
                raise AirflowFailException(str(exc)) from None
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                self.log.warning("Polytomic is not answering right now (%s); will check again.", exc)
                result = None
            if result is not None:
                self._finished = True
                return self.finish(result, waited_on_execution=False)
            now = utcnow()
            if deadline is not None and now >= deadline:
                self._finished = True
                raise self._timed_out(execution_id, deadline)
            pause = self.poll_interval
            if deadline is not None:
                pause = min(pause, max(0.0, (deadline - now).total_seconds()))
            stop.wait(pause)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Resume after the trigger fired: decide, or cancel the execution on its deadline."""
        if isinstance(event, dict) and event.get("status") == "timeout":
            execution_id = event.get("execution_id") or kwargs.get("execution_id")
            if not execution_id:
                # Defer-time kwargs can be lost (dag.test); the XCom pushed before deferring is not.
                ti = context.get("ti") if context else None
                execution_id = (
                    ti.xcom_pull(task_ids=ti.task_id, key=XCOM_EXECUTION_ID, map_indexes=ti.map_index)
                    if ti is not None
                    else None
                )
            self._finished = True
            self._execution_id = str(execution_id) if execution_id else None
            if not execution_id:
                message = event.get("message") or "Timed out waiting for Polytomic."
                raise PolytomicSyncTimeoutError(str(message))
            raise self._timed_out(str(execution_id), None)
        return self.finish_trigger_event(event, waited_on_execution=False)

    def on_kill(self) -> None:
        """Stop waiting; with ``cancel_on_kill``, cancel the execution the task started or attached to."""
        if self._stop is not None:
            self._stop.set()
        if self.cancel_on_kill and self._execution_id and not self._finished:
            self._cancel(self._execution_id, "task killed")


__all__ = [
    "PolytomicRunSyncOperator",
    "PolytomicSyncTimeoutError",
    "idempotency_key_for",
]
