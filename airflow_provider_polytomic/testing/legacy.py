"""Methods :class:`~.state.PolytomicState` had when it held the routes' logic itself.

Code written against those names keeps working; new code calls the backends
(``fake.backends.<resource>``) or the HTTP API. Each method is one delegation.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .records import SyncKind
from .responses.executions import execution_json
from .responses.syncs import bulk_sync_json, model_sync_json
from .routers import _syncs

if TYPE_CHECKING:
    from .backends.context import Org
    from .backends.events import StoredEvent
    from .backends.executions import Execution
    from .backends.idempotency import IdempotencyEntry
    from .backends.record_logs import FileResponse
    from .state import Backends, PolytomicState

__all__ = ["LegacyStateMethods"]


class LegacyStateMethods:
    """The former route helpers of the fake's state (``api_*``, ``idempotency_*``, ...)."""

    if TYPE_CHECKING:
        backends: Backends
        org: Org

    def _facade(self) -> PolytomicState:
        return self  # type: ignore[return-value]

    def sync_json(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``GET /api/syncs/{id}`` (or bulk) data; 404 when unknown or of the other kind."""
        sync = self.backends.syncs.api_get(sync_id, kind)
        render = model_sync_json if kind == "model" else bulk_sync_json
        return render(sync, self.org.organization_id, self.org.actor())

    def api_start(self, sync_id: str, kind: SyncKind, body: dict[str, Any]) -> dict[str, Any]:
        """``POST .../executions``: the response ``data``."""
        return self.backends.lifecycle.api_start(sync_id, kind, body)

    def api_cancel_execution(self, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST .../executions/{id}/cancel``: the response ``data``."""
        return self.backends.lifecycle.api_cancel_execution(sync_id, execution_id, kind)

    def api_cancel_sync(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``POST .../cancel``: the response ``data``."""
        return self.backends.lifecycle.api_cancel_sync(sync_id, kind)

    def api_execution(self, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
        """``GET .../executions/{id}``: the response ``data``."""
        return _syncs.execution_data(self._facade(), sync_id, execution_id, kind)

    def api_status(self, sync_id: str, kind: SyncKind) -> dict[str, Any]:
        """``GET .../status``: the response ``data``."""
        return _syncs.sync_status(self._facade(), sync_id, kind)

    def api_bulk_statuses(self, sync_ids: list[str], active_only: bool) -> list[dict[str, Any]]:
        """``GET /api/bulk/syncs/status``: the response ``data``."""
        return _syncs.bulk_statuses(self._facade(), sync_ids, all_syncs=False, active_only=active_only)

    def api_list_executions(
        self,
        sync_id: str,
        kind: SyncKind,
        *,
        page_token: str | None,
        ascending: bool,
        only_terminal: bool,
        limit: int = 50,
    ) -> dict[str, Any]:
        """``GET .../executions``: the whole envelope."""
        return _syncs.executions_page(
            self._facade(),
            sync_id,
            kind,
            page_token=page_token,
            ascending=ascending,
            only_terminal=only_terminal,
            limit=limit,
        )

    def api_log_urls(self, sync_id: str, execution_id: str, kind: SyncKind, log_type: str) -> dict[str, Any]:
        """Fresh signed URLs of one execution's log files: ``{"urls": [...], "expires": ...}``."""
        return _syncs.log_urls(self._facade(), sync_id, execution_id, kind, log_type)

    def api_logs_index(self, sync_id: str, execution_id: str) -> dict[str, Any]:
        """A model execution's logs index: per log type ``{"count", "url"}``."""
        with self.org.lock:
            self.backends.syncs.api_get(sync_id, "model")
            return self.backends.record_logs.index(
                sync_id, self.backends.executions.api_get(sync_id, execution_id)
            )

    def api_log_file_url(self, sync_id: str, execution_id: str, log_type: str, filename: str) -> str:
        """Fresh signed URL of one log file by name; 404 when unknown."""
        with self.org.lock:
            self.backends.syncs.api_get(sync_id, "model")
            execution = self.backends.executions.api_get(sync_id, execution_id)
            return self.backends.record_logs.file_url(execution, log_type, filename)

    def file_response(self, token: str, filename: str, query: dict[str, str]) -> FileResponse:
        """Serve a signed record-log file URL (403 when expired or badly signed, 404 when unknown)."""
        return self.backends.record_logs.file_response(token, filename, query)

    def idempotency_begin(self, key: str) -> IdempotencyEntry | None:
        """The stored entry for ``key`` (replay or in flight), or None after reserving it."""
        return self.backends.idempotency.begin(key)

    def idempotency_finish(
        self, key: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Store the first response for ``key``."""
        self.backends.idempotency.finish(key, status, headers, body)

    def idempotency_abort(self, key: str) -> None:
        """Forget a reservation whose request never produced a response."""
        self.backends.idempotency.abort(key)

    def execution_json(self, execution: Execution) -> dict[str, Any]:
        """Render an execution as the API does."""
        return execution_json(execution, self.backends.syncs.get(execution.sync_id))

    def events_rows(
        self, type_: str | None, starting_after: datetime | None, ending_before: datetime | None
    ) -> list[StoredEvent]:
        """Unexpired stored events matching the filters, ascending."""
        return self.backends.events.rows(type_, starting_after, ending_before)

    def _cancel_timers(self) -> None:
        self.org.cancel_timers()
