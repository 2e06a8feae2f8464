"""Operations model and bulk syncs share (status, executions, console logs), request to JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..records import FakeApiError, SyncKind
from ..responses import list_envelope, ok
from ..responses.executions import bulk_status_json, console_json, execution_json, status_json
from ._params import json_body, q_int

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = [
    "add_shared_routes",
    "bulk_statuses",
    "check_start_body",
    "console_log",
    "execution_data",
    "executions_page",
    "log_urls",
    "sync_status",
]


def check_start_body(kind: SyncKind, body: dict[str, Any]) -> None:
    """Validate a start body as Polytomic does (400 naming the field)."""
    for name in ("test", "resync"):
        if body.get(name) is not None and not isinstance(body.get(name), bool):
            raise FakeApiError(400, f"{name} must be a boolean")
    if kind == "model":
        for name in ("identities", "source_identities"):
            values = body.get(name)
            if values is not None and not (
                isinstance(values, list) and all(isinstance(i, str) for i in values)
            ):
                raise FakeApiError(400, f"{name} must be a list of strings or null")
        return
    if body.get("resync"):
        raise FakeApiError(400, "resync is deprecated in this API version; use resync_mode")
    resync_mode = body.get("resync_mode")
    if resync_mode is not None and resync_mode not in ("refetch", "resync", "rebuild"):
        raise FakeApiError(400, "resync_mode must be one of refetch, resync, rebuild")
    if body.get("test") and resync_mode is not None:
        raise FakeApiError(400, "test and resync_mode are mutually exclusive")
    fetch_mode = body.get("fetch_mode")
    if fetch_mode is not None and fetch_mode not in ("none", "incremental", "full"):
        raise FakeApiError(400, "fetch_mode must be one of none, incremental, full")
    schemas = body.get("schemas")
    if schemas is not None and not (isinstance(schemas, list) and all(isinstance(s, str) for s in schemas)):
        raise FakeApiError(400, "schemas must be a list of strings or null")


def sync_status(state: PolytomicState, sync_id: str, kind: SyncKind) -> dict[str, Any]:
    """``GET .../status``: current, last and next execution."""
    b = state.backends
    with state.org.lock:
        sync = b.syncs.api_get(sync_id, kind)
        current, last = b.executions.status(sync)
        return status_json(sync, current, last, state.org.now())


def execution_data(state: PolytomicState, sync_id: str, execution_id: str, kind: SyncKind) -> dict[str, Any]:
    """``GET .../executions/{id}``."""
    b = state.backends
    with state.org.lock:
        sync = b.syncs.api_get(sync_id, kind)
        return execution_json(b.executions.api_get(sync.id, execution_id), sync)


def executions_page(
    state: PolytomicState,
    sync_id: str,
    kind: SyncKind,
    *,
    page_token: str | None,
    ascending: bool,
    only_terminal: bool,
    limit: int,
) -> dict[str, Any]:
    """``GET .../executions``: ``{"data": [...], "pagination": {...}}`` (pagination only if more)."""
    b = state.backends
    with state.org.lock:
        sync = b.syncs.api_get(sync_id, kind)
        rows, token = b.executions.page(
            sync, page_token=page_token, ascending=ascending, only_terminal=only_terminal, limit=limit
        )
        return list_envelope([execution_json(e, sync) for e in rows], token)


def log_urls(
    state: PolytomicState, sync_id: str, execution_id: str, kind: SyncKind, log_type: str
) -> dict[str, Any]:
    """Fresh signed URLs of one execution's log files: ``{"urls": [...], "expires": ...}``."""
    b = state.backends
    with state.org.lock:
        sync = b.syncs.api_get(sync_id, kind)
        return b.record_logs.url_set(b.executions.api_get(sync.id, execution_id), log_type)


def console_log(
    state: PolytomicState,
    request: Request,
    sync_id: str,
    execution_id: str,
    kind: SyncKind,
    schema: str | None = None,
) -> dict[str, Any]:
    """``GET .../consolelog`` (``limit`` above the retention limit is capped to it)."""
    b = state.backends
    cap = state.org.settings.console_log_limit
    limit = min(q_int(request, "limit", cap, 1, 1_000_000, status=400), cap)
    after = request.query_params.get("after") or None
    with state.org.lock:
        sync = b.syncs.api_get(sync_id, kind)
        if schema is not None:
            b.syncs.api_schema(sync.id, schema)
        execution = b.executions.api_get(sync.id, execution_id)
        entries, cursor = b.executions.console_page(execution, limit=limit, after=after, schema=schema)
        return console_json(entries, cursor)


def bulk_statuses(
    state: PolytomicState, sync_ids: list[str], *, all_syncs: bool, active_only: bool
) -> list[dict[str, Any]]:
    """``GET /api/bulk/syncs/status``: per bulk sync, each schema's latest execution.

    ``all`` or ``active`` widen the answer to the organization and override ``sync_id``
    (as the SDK documents); with neither and no ``sync_id``, every bulk sync is listed too.
    """
    b = state.backends
    with state.org.lock:
        if all_syncs or active_only or not sync_ids:
            syncs = [s for s in b.syncs.all("bulk") if s.active or not active_only]
        else:
            syncs = [b.syncs.api_get(s, "bulk") for s in sync_ids]
        now = state.org.now()
        out = []
        for sync in syncs:
            newest = b.executions.of_sync(sync.id, ascending=False)
            out.append(
                bulk_status_json(sync, b.executions.schema_statuses(sync), newest[0] if newest else None, now)
            )
        return out


def add_shared_routes(api: APIRouter, state: PolytomicState, kind: SyncKind) -> None:
    """The routes model and bulk syncs have alike, under ``/api/syncs`` or ``/api/bulk/syncs``:
    activate, start, status, cancel, one execution, its cancel and its console log."""
    root = "/api/syncs" if kind == "model" else "/api/bulk/syncs"
    b = state.backends

    @api.post(root + "/{sync_id}/activate")
    async def activate(sync_id: str, request: Request) -> JSONResponse:
        active = (await json_body(request, 400)).get("active")
        with state.org.lock:
            sync = b.syncs.api_set_active(sync_id, kind, active)
            if kind == "bulk" and not sync.active:
                # Polytomic documents that pausing a bulk sync cancels its running execution
                # (pausing a model sync does not).
                b.lifecycle.api_cancel_sync(sync.id, kind)
        return JSONResponse(ok({"id": sync.id, "active": sync.active}))

    @api.post(root + "/{sync_id}/executions")
    async def start(sync_id: str, request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        check_start_body(kind, body)
        return JSONResponse(ok(b.lifecycle.api_start(sync_id, kind, body)))

    @api.get(root + "/{sync_id}/status")
    async def status(sync_id: str) -> JSONResponse:
        return JSONResponse(ok(sync_status(state, sync_id, kind)))

    @api.post(root + "/{sync_id}/cancel")
    async def cancel_sync(sync_id: str) -> JSONResponse:
        return JSONResponse(ok(b.lifecycle.api_cancel_sync(sync_id, kind)))

    @api.get(root + "/{sync_id}/executions/{execution_id}")
    async def get_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return JSONResponse(ok(execution_data(state, sync_id, execution_id, kind)))

    @api.post(root + "/{sync_id}/executions/{execution_id}/cancel")
    async def cancel_execution(sync_id: str, execution_id: str) -> JSONResponse:
        return JSONResponse(ok(b.lifecycle.api_cancel_execution(sync_id, execution_id, kind)))

    @api.get(root + "/{sync_id}/executions/{execution_id}/consolelog")
    async def console(sync_id: str, execution_id: str, request: Request) -> JSONResponse:
        return JSONResponse(ok(console_log(state, request, sync_id, execution_id, kind)))
