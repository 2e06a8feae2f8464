"""How executions move: start, finish (with record logs), fail, cancel, scheduled outcomes.

Every transition records the event Polytomic emits (``sync.*`` / ``bulk_sync.*``), which the
events store hands to the webhook, and writes a console-log line.
"""

from __future__ import annotations

from typing import Any

from ..records import TERMINAL_STATUSES, ExecutionEnding, FakeApiError, SyncKind, format_time
from ..responses.executions import bulk_payload, bulk_schedule, execution_json, model_payload
from .context import Org
from .events import EventsBackend
from .executions import Execution, ExecutionsBackend, _zero_counts
from .record_logs import RecordLogsBackend
from .syncs import Sync, SyncsBackend

__all__ = ["OUTCOMES", "Lifecycle"]

OUTCOMES: tuple[ExecutionEnding, ...] = ("completed", "failed", "canceled", "completed_with_errors")
_PAYLOAD_LIST_FIELDS = (
    ("total_records", "records"),
    ("inserted_records", "inserts"),
    ("updated_records", "updates"),
    ("deleted_records", "deletes"),
    ("errored_records", "errors"),
)


class Lifecycle:
    """State changes of executions, through the API or driven by a test."""

    def __init__(
        self,
        org: Org,
        syncs: SyncsBackend,
        executions: ExecutionsBackend,
        events: EventsBackend,
        record_logs: RecordLogsBackend,
    ) -> None:
        """Wire the backends a transition touches."""
        self._org = org
        self._syncs = syncs
        self._executions = executions
        self._events = events
        self._logs = record_logs
        self.auto_complete: dict[str, tuple[str, float, dict[str, Any]]] = {}
        """Outcome of executions started through the API: sync id (or ``"*"``) -> (outcome, after, kwargs)."""

    # -- transitions ---------------------------------------------------------------------------

    def start(self, sync_id: str, *, status: str = "running", trigger: str = "manual") -> Execution:
        """A new execution moved to ``status`` (``running`` records the running event)."""
        with self._org.lock:
            execution = self._executions.add(self._syncs.get(sync_id), trigger=trigger)
            if status != "created":
                self._transition(execution, status)
            return execution

    def _transition(self, execution: Execution, status: str) -> None:
        self._executions.set_status(execution, status)
        if status != "running":
            return
        self._ensure_started(execution)
        sync = self._syncs.get(execution.sync_id)
        self._executions.log(execution, "info", "Sync started", {"mode": sync.mode})
        if sync.kind == "model":
            self._events.record("sync.running", model_payload(self._org.organization_id, sync, execution))
        else:
            for schema in execution.schemas:
                self._executions.log(execution, "info", f"Copying {schema}", schema=schema)
            self._events.record("bulk_sync.running", bulk_payload(self._org.organization_id, sync, execution))

    def _ensure_started(self, execution: Execution) -> None:
        if execution.started_at is None:
            execution.started_at = self._org.now()

    def complete(
        self,
        sync_id: str,
        execution_id: str,
        *,
        inserted: list[dict[str, Any]] | None = None,
        updated: list[dict[str, Any]] | None = None,
        deleted: list[dict[str, Any]] | None = None,
        errored: list[dict[str, Any]] | None = None,
        errors: int | None = None,
        warnings: int = 0,
        records_per_file: int = 1000,
        error_message: str | None = None,
    ) -> dict[str, Any]:
        """Finish an execution; see :meth:`PolytomicState.complete_execution`."""
        if records_per_file < 1:
            raise ValueError("records_per_file must be >= 1")
        ins, upd, dele, err = (list(x or []) for x in (inserted, updated, deleted, errored))
        n_errors = errors if errors is not None else len(err)
        org = self._org
        with org.lock:
            sync = self._syncs.get(sync_id)
            execution = self._executions.get(sync_id, execution_id)
            self._ensure_started(execution)
            total = len(ins) + len(upd) + len(dele) + len(err)
            by_type = {
                "records": ins + upd + dele + err,
                "inserts": ins,
                "updates": upd,
                "deletes": dele,
                "errors": err,
                "warnings": [],
            }
            self._logs.write(execution, by_type, records_per_file)
            message = error_message or (f"{n_errors} records failed" if n_errors else None)
            self._executions.log(
                execution,
                "warn" if n_errors else "info",
                f"Wrote {total - len(err)} of {total} records",
                {"inserted": len(ins), "updated": len(upd), "deleted": len(dele), "errored": n_errors},
            )
            if sync.kind == "bulk":
                return self._complete_bulk(sync, execution, total, n_errors, warnings, message)
            execution.counts = {
                **_zero_counts(),
                "total": total,
                "insert": len(ins),
                "update": len(upd),
                "delete": len(dele),
                "error": n_errors,
                "warnings": warnings,
            }
            execution.errors = [message] if (n_errors and message) else []
            self._executions.set_status(execution, "completed")
            payload = model_payload(org.organization_id, sync, execution)
            if n_errors > 0:
                payload.update(error=message, number_of_errors=n_errors, number_of_warnings=warnings)
                return self._events.record("sync.completed_with_errors", payload)
            payload.update(
                status="completed",
                trigger=execution.trigger,
                record_count=total,
                inserted_count=len(ins),
                updated_count=len(upd),
                upserted_count=0,
                error_count=0,
                warning_count=warnings,
                warnings=[f"warning {i + 1}" for i in range(warnings)],
                schedule={"frequency": sync.schedule.get("frequency", "manual")},
            )
            logs_url = self._logs.endpoint(sync.id, execution.id, "logs")
            if logs_url is not None:
                payload["logs_url"] = logs_url
            expired = org.faults.expire_record_links
            for field_name, record_type in _PAYLOAD_LIST_FIELDS:
                payload[field_name] = self._logs.urls(execution, record_type, expired=expired) or None
            return self._events.record("sync.completed", payload)

    def _complete_bulk(
        self, sync: Sync, execution: Execution, total: int, n_errors: int, warnings: int, message: str | None
    ) -> dict[str, Any]:
        execution.counts.update(total=total, error=n_errors, warnings=warnings)
        execution.status_message = message if n_errors else None
        self._executions.set_status(execution, "errors" if n_errors else "completed")
        payload = bulk_payload(self._org.organization_id, sync, execution)
        payload.update(trigger_source=execution.trigger, schedule=bulk_schedule(sync))
        event_type = "bulk_sync.completed_with_error" if n_errors else "bulk_sync.completed"
        return self._events.record(event_type, payload)

    def fail(self, sync_id: str, execution_id: str, *, error: str = "sync failed") -> dict[str, Any]:
        """Mark an execution ``failed``; record and return ``sync.failed`` / ``bulk_sync.failed``."""
        with self._org.lock:
            sync = self._syncs.get(sync_id)
            execution = self._executions.get(sync_id, execution_id)
            self._ensure_started(execution)
            self._executions.log(execution, "error", error)
            if sync.kind == "model":
                execution.errors = [error]
                self._executions.set_status(execution, "failed")
                payload = model_payload(self._org.organization_id, sync, execution)
                payload["error"] = error
                return self._events.record("sync.failed", payload)
            execution.status_message = error
            self._executions.set_status(execution, "failed")
            payload = bulk_payload(self._org.organization_id, sync, execution)
            payload.update(trigger_source=execution.trigger, error=error, schedule=bulk_schedule(sync))
            return self._events.record("bulk_sync.failed", payload)

    def cancel(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """Mark an execution ``canceled``; record and return ``sync.canceled`` / ``bulk_sync.canceled``."""
        with self._org.lock:
            sync = self._syncs.get(sync_id)
            execution = self._executions.get(sync_id, execution_id)
            self._executions.set_status(execution, "canceled")
            self._executions.log(execution, "info", "Execution canceled")
            if sync.kind == "model":
                payload = model_payload(self._org.organization_id, sync, execution)
                payload["status"] = "canceled"
                return self._events.record("sync.canceled", payload)
            return self._events.record(
                "bulk_sync.canceled", bulk_payload(self._org.organization_id, sync, execution)
            )

    def set_status(self, sync_id: str, execution_id: str, status: str) -> None:
        """Set any status string without recording an event."""
        with self._org.lock:
            self._executions.set_status(self._executions.get(sync_id, execution_id), status)

    # -- scheduled outcomes --------------------------------------------------------------------

    def run(self, sync_id: str, *, outcome: ExecutionEnding, after: float, kwargs: dict[str, Any]) -> str:
        """Start an execution and reach ``outcome`` ``after`` real seconds later; return its id."""
        execution = self.start(sync_id)
        self.schedule_outcome(sync_id, execution.id, outcome, after, kwargs)
        return execution.id

    def set_auto_outcome(
        self, sync_id: str | None, outcome: ExecutionEnding, after: float, kwargs: dict[str, Any]
    ) -> None:
        """Executions later started through the API for ``sync_id`` (None: any) reach ``outcome``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._org.lock:
            self.auto_complete[sync_id or "*"] = (outcome, after, dict(kwargs))

    def schedule_outcome(
        self, sync_id: str, execution_id: str, outcome: str, after: float, kwargs: dict[str, Any]
    ) -> None:
        """Apply ``outcome`` now (``after <= 0``) or on a timer."""
        if after <= 0:
            self._apply_outcome(sync_id, execution_id, outcome, kwargs)
        else:
            self._org.later(after, self._apply_outcome, sync_id, execution_id, outcome, kwargs)

    def _apply_outcome(self, sync_id: str, execution_id: str, outcome: str, kwargs: dict[str, Any]) -> None:
        with self._org.lock:
            if self._executions.get(sync_id, execution_id).status in TERMINAL_STATUSES | {"canceling"}:
                return  # canceled (or otherwise finished) in the meantime
            if outcome == "completed":
                self.complete(sync_id, execution_id, **kwargs)
            elif outcome == "completed_with_errors":
                if not kwargs.get("errors"):
                    kwargs["errors"] = max(1, len(kwargs.get("errored") or []))
                self.complete(sync_id, execution_id, **kwargs)
            elif outcome == "failed":
                self.fail(sync_id, execution_id, error=kwargs.get("error", "sync failed"))
            elif outcome == "canceled":
                self.cancel(sync_id, execution_id)
            else:
                raise ValueError(f"unknown outcome {outcome!r}")

    # -- API operations ------------------------------------------------------------------------

    def api_start(self, sync_id: str, kind: SyncKind, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/syncs/{id}/executions`` (and bulk): the response ``data``; 409 while running."""
        with self._org.lock:
            sync = self._syncs.api_get(sync_id, kind)
            active = self._executions.active(sync.id)
            if active:
                raise FakeApiError(
                    409,
                    f"sync {sync.id} is already running (execution {active[0].id})",
                    "sync_already_running",
                )
            requested = body.get("schemas") if kind == "bulk" else None
            if requested:
                unknown = sorted(set(requested) - {s.id for s in sync.schemas})
                if unknown:
                    raise FakeApiError(400, f"schemas {unknown} are not schemas of bulk sync {sync.id}")
            execution = self.start(sync.id, status="created", trigger="api")
            execution.is_test = bool(body.get("test"))
            if kind == "model":
                execution.is_resync = bool(body.get("resync"))
                data = {
                    "id": execution.id,
                    "status": "created",
                    "created_at": format_time(execution.created_at),
                }
            else:
                execution.is_resync = body.get("resync_mode") is not None
                execution.fetch_mode = body.get("fetch_mode") or "none"
                if requested:
                    execution.schemas = [s for s in execution.schemas if s in requested]
                data = execution_json(execution, sync)
            self._transition(execution, "running")
            auto = self.auto_complete.get(sync.id) or self.auto_complete.get("*")
        if auto is not None:
            outcome, after, kwargs = auto
            self.schedule_outcome(sync.id, execution.id, outcome, after, dict(kwargs))
        return data

    def api_cancel_execution(self, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST .../executions/{id}/cancel``: the response ``data``; 400 when not active."""
        with self._org.lock:
            sync = self._syncs.api_get(sync_id, kind)
            execution = self._executions.api_get(sync.id, execution_id)
            if execution.status in TERMINAL_STATUSES:
                raise FakeApiError(400, f"execution {execution_id} is not active (status {execution.status})")
            self._request_cancel(execution)
            return {"message": f"cancellation of execution {execution_id} requested"}

    def api_cancel_sync(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST /api/syncs/{id}/cancel``: cancel whatever execution is active."""
        with self._org.lock:
            sync = self._syncs.api_get(sync_id, kind)
            active = self._executions.active(sync.id)
            for execution in active:
                self._request_cancel(execution)
            if not active:
                return {"message": f"sync {sync_id} has no active execution"}
            return {"message": f"cancellation of sync {sync_id} requested"}

    def _request_cancel(self, execution: Execution) -> None:
        delay = self._org.settings.cancel_delay
        if delay > 0:
            self._executions.set_status(execution, "canceling")
            self._executions.log(execution, "info", "Cancellation requested")
            self._org.later(delay, self._finish_cancel, execution.sync_id, execution.id)
        else:
            self.cancel(execution.sync_id, execution.id)

    def _finish_cancel(self, sync_id: str, execution_id: str) -> None:
        with self._org.lock:
            if self._executions.get(sync_id, execution_id).status == "canceling":
                self.cancel(sync_id, execution_id)
