"""Executions, sync statuses, console logs and event payloads as Polytomic writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..backends.executions import ConsoleEntry, Execution
from ..backends.syncs import Sync, next_execution_time
from ..records import format_time

__all__ = [
    "bulk_payload",
    "bulk_schedule",
    "bulk_status_json",
    "console_json",
    "execution_json",
    "model_payload",
    "status_json",
]

# Per-schema statuses have no `errors` or `canceling` (BulkSchemaExecutionStatus).
_SCHEMA_STATUS = {"errors": "completed", "canceling": "running"}


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _schema_runs(sync: Sync | None, execution: Execution) -> list[dict[str, Any]]:
    names = {s.id: s.output_name for s in sync.schemas} if sync is not None else {}
    parts = max(1, len(execution.schemas))
    status = _SCHEMA_STATUS.get(execution.status, execution.status)
    out = []
    for i, schema in enumerate(execution.schemas):
        out.append(
            {
                "schema": schema,
                "output_name": names.get(schema, schema.lower()),
                "status": status,
                # Polytomic's per-schema message when nothing went wrong is not documented.
                "status_message": execution.status_message or "",
                "record_count": _share(execution.counts["total"], parts, i),
                "error_count": _share(execution.counts["error"], parts, i),
                "warning_count": _share(execution.counts["warnings"], parts, i),
                "created_at": format_time(execution.created_at),
                "started_at": format_time(execution.started_at),
                "updated_at": format_time(execution.updated_at),
                "completed_at": format_time(execution.completed_at),
                "version": execution.version,
            }
        )
    return out


def execution_json(execution: Execution, sync: Sync | None = None) -> dict[str, Any]:
    """A model execution (``GetExecutionResponseSchema``) or bulk one (``BulkSyncExecution``)."""
    if execution.kind == "model":
        return {
            "id": execution.id,
            "status": execution.status,
            "type": execution.type,
            "created_at": format_time(execution.created_at),
            "started_at": format_time(execution.started_at),
            "completed_at": format_time(execution.completed_at),
            "counts": dict(execution.counts),
            "errors": list(execution.errors),
            "version": execution.version,
        }
    return {
        "id": execution.id,
        "status": execution.status,
        "status_message": execution.status_message,
        "type": execution.type,
        "fetch_mode": execution.fetch_mode,
        "output_disposition": "retain",
        "is_partial": False,
        "is_resync": execution.is_resync,
        "is_test": execution.is_test,
        "record_count": execution.counts["total"],
        "error_count": execution.counts["error"],
        "warning_count": execution.counts["warnings"],
        "created_at": format_time(execution.created_at),
        "started_at": format_time(execution.started_at),
        "updated_at": format_time(execution.updated_at),
        "completed_at": format_time(execution.completed_at),
        "schemas": _schema_runs(sync, execution),
        "version": execution.version,
    }


def status_json(
    sync: Sync, current: Execution | None, last: Execution | None, now: datetime
) -> dict[str, Any]:
    """``GET /api/syncs/{id}/status`` and its bulk twin."""
    data: dict[str, Any] = {
        "current_execution": execution_json(current, sync) if current else None,
        "last_execution": execution_json(last, sync) if last else None,
        "next_execution_time": format_time(next_execution_time(sync, now)),
    }
    if sync.kind == "bulk":
        # Continuous ingestion (change data capture) is off for the fake's bulk syncs.
        data["ingestion_status"] = {
            "enabled": False,
            "is_running": False,
            "status": "ok",
            "status_message": "",
            "position": "",
            "position_time": None,
            "highwater_mark": "",
            "updated_at": format_time(sync.updated_at),
        }
    return data


def bulk_status_json(
    sync: Sync, schemas: list[tuple[str, Execution]], newest: Execution | None, now: datetime
) -> dict[str, Any]:
    """One item of ``GET /api/bulk/syncs/status`` (note Polytomic's camelCase ``nextExecutionTime``):
    the status of the sync's newest execution and, per schema, of its latest one."""
    rows = []
    for schema, execution in schemas:
        run = next(r for r in _schema_runs(sync, execution) if r["schema"] == schema)
        rows.append(
            {
                "schema": schema,
                "execution_id": execution.id,
                "status": run["status"],
                "status_message": run["status_message"],
                "record_count": run["record_count"],
                "error_count": run["error_count"],
                "warning_count": run["warning_count"],
                "started_at": run["started_at"],
                "completed_at": run["completed_at"],
            }
        )
    return {
        "sync_id": sync.id,
        "status": newest.status if newest else None,
        "nextExecutionTime": format_time(next_execution_time(sync, now)),
        "schemas": rows,
    }


def console_json(entries: list[ConsoleEntry], cursor: str) -> dict[str, Any]:
    """``.../consolelog``: entries and the cursor for newer ones."""
    return {
        "entries": [
            {
                "id": e.id,
                "level": e.level,
                "message": e.message,
                "payload": dict(e.payload),
                "timestamp": format_time(e.timestamp),
            }
            for e in entries
        ],
        "next_cursor": cursor,
    }


def model_payload(organization_id: str, sync: Sync, execution: Execution) -> dict[str, Any]:
    """Fields every ``sync.*`` event payload carries."""
    return {
        "execution_id": execution.id,
        "organization_id": organization_id,
        "sync_id": sync.id,
        "sync_name": sync.name,
        "target_connection_id": sync.target_connection_id,
    }


def bulk_payload(organization_id: str, sync: Sync, execution: Execution) -> dict[str, Any]:
    """Fields every ``bulk_sync.*`` event payload carries."""
    return {
        "execution_id": execution.id,
        "organization_id": organization_id,
        "sync_id": sync.id,
        "sync_name": sync.name,
        "source_connection_id": sync.source_connection_id,
        "destination_connection_id": sync.destination_connection_id,
    }


def bulk_schedule(sync: Sync) -> dict[str, Any]:
    """The ``schedule`` of bulk completed / completed-with-error / failed payloads."""
    return {"frequency": sync.schedule.get("frequency", "manual"), "id": sync.schedule_id}
