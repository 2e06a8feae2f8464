"""Sync executions: their status and counts, the sync status, and their record logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, ValidationError

from airflow_provider_polytomic.models.base import WireModel
from airflow_provider_polytomic.vocabulary import Outcome, classify


class ExecutionCounts(WireModel):
    total: int | None = None
    insert: int | None = None
    update: int | None = None
    delete: int | None = None
    upserts: int | None = None
    error: int | None = None
    warnings: int | None = None


class Execution(WireModel):
    """A model-sync execution (``GetExecutionResponseSchema``)."""

    id: str
    status: str | None = None
    type: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    counts: ExecutionCounts | None = None
    errors: list[str] | None = None

    @property
    def outcome(self) -> Outcome:
        outcome = classify(self.status)
        if outcome is Outcome.SUCCEEDED and self.counts and (self.counts.error or 0) > 0:
            return Outcome.SUCCEEDED_WITH_ERRORS
        return outcome

    @property
    def error_message(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None

    def summary_counts(self) -> dict[str, int | None]:
        c = self.counts or ExecutionCounts()
        return {
            "record": c.total,
            "inserted": c.insert,
            "updated": c.update,
            "deleted": c.delete,
            "error": c.error,
            "warning": c.warnings,
        }


class BulkSchemaExecution(WireModel):
    """One schema of a bulk-sync execution (``BulkSyncSchemaExecution``), with its counts."""

    schema_: str | None = Field(default=None, alias="schema")
    output_name: str | None = None
    status: str | None = None
    record_count: int | None = None
    error_count: int | None = None
    warning_count: int | None = None


class BulkExecution(WireModel):
    """A bulk-sync execution (``BulkSyncExecution``)."""

    id: str
    status: str | None = None
    status_message: str | None = None
    type: str | None = None
    is_partial: bool | None = None
    is_resync: bool | None = None
    is_test: bool | None = None
    record_count: int | None = None
    error_count: int | None = None
    warning_count: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    schemas: list[dict[str, Any]] | None = None

    @property
    def outcome(self) -> Outcome:
        return classify(self.status)

    def schema_runs(self) -> list[BulkSchemaExecution]:
        """The schemas this execution ran, with their counts (malformed entries skipped)."""
        runs: list[BulkSchemaExecution] = []
        for item in self.schemas or []:
            if isinstance(item, dict):
                try:
                    runs.append(BulkSchemaExecution.model_validate(item))
                except ValidationError:
                    continue
        return runs

    @property
    def error_message(self) -> str | None:
        return self.status_message

    def summary_counts(self) -> dict[str, int | None]:
        return {
            "record": self.record_count,
            "inserted": None,
            "updated": None,
            "deleted": None,
            "error": self.error_count,
            "warning": self.warning_count,
        }


class SyncStatus(WireModel):
    """``GET /api/syncs/{id}/status`` (model) with the execution type of the kind."""

    current_execution: dict[str, Any] | None = None
    last_execution: dict[str, Any] | None = None
    next_execution_time: datetime | None = None


class StartedExecution(WireModel):
    """What starting a sync returns: at least the new execution's id."""

    id: str
    status: str | None = None
    created_at: datetime | None = None


class ExecutionLogUrls(WireModel):
    """Signed URLs of an execution's log files. Bulk syncs spell the keys ``URLs``/``Expires``."""

    urls: list[str] = Field(default_factory=list, validation_alias=AliasChoices("urls", "URLs"))
    expires: datetime | None = Field(default=None, validation_alias=AliasChoices("expires", "Expires"))


class LogsIndexEntry(WireModel):
    """One log type in :class:`ExecutionLogsIndex`.

    :ivar count: records Polytomic reports for this log type across all its files.
    :ivar url: the endpoint returning this log type's signed URLs (an
        :class:`ExecutionLogUrls` envelope), per the official SDK. Whether it is absolute or a
        path is not documented.
    """

    count: int | None = None
    url: str | None = None


class ExecutionLogsIndex(WireModel):
    """``GET /api/syncs/{sync_id}/executions/{id}/logs`` (model syncs): per log type, its
    record count and the endpoint of its signed URLs. A type Polytomic leaves out is None;
    unknown types are kept as extra fields.

    Example::

        index = ExecutionLogsIndex.model_validate({"inserts": {"count": 80, "url": "/api/..."}})
        index.entry("inserts").count  # 80
        index.entry("deletes")  # None
    """

    records: LogsIndexEntry | None = None
    errors: LogsIndexEntry | None = None
    warnings: LogsIndexEntry | None = None
    inserts: LogsIndexEntry | None = None
    updates: LogsIndexEntry | None = None
    deletes: LogsIndexEntry | None = None

    def entry(self, log_type: str) -> LogsIndexEntry | None:
        """The entry of ``log_type`` (``records``, ``inserts``, ...), or None when absent."""
        value = getattr(self, log_type, None) if log_type in type(self).model_fields else None
        return value if isinstance(value, LogsIndexEntry) else None


__all__ = [
    "BulkExecution",
    "BulkSchemaExecution",
    "Execution",
    "ExecutionCounts",
    "ExecutionLogUrls",
    "ExecutionLogsIndex",
    "LogsIndexEntry",
    "StartedExecution",
    "SyncStatus",
]
