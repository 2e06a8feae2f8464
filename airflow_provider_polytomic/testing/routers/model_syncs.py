"""``/api/syncs``: model syncs, their executions, record logs and console logs."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..records import MODEL_LOG_TYPES, FakeApiError
from ..responses import list_envelope, ok
from ..responses.syncs import model_sync_item_json, model_sync_json
from ._params import q_bool, q_int
from ._syncs import add_shared_routes, executions_page, log_urls

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]

_LIST_LIMIT = 50


def _check_log_type(log_type: str) -> None:
    if log_type not in MODEL_LOG_TYPES:
        raise FakeApiError(400, f"log type must be one of {', '.join(MODEL_LOG_TYPES)}")


def router(state: PolytomicState) -> APIRouter:
    """Model syncs: definition, activation, executions, logs.

    Routes under ``/executions/{execution_id}/`` with fixed names (``logs``, ``consolelog``,
    ``cancel``) are declared before ``/{log_type}``, which would otherwise answer them.
    """
    api = APIRouter()
    b, org = state.backends, state.org

    @api.get("/api/syncs")
    async def list_syncs(request: Request) -> JSONResponse:
        active = q_bool(request, "active", status=400)
        mode = request.query_params.get("mode") or None
        target = request.query_params.get("target_connection_id") or None
        limit = q_int(request, "limit", _LIST_LIMIT, -(2**31), 2**31, status=400)
        limit = _LIST_LIMIT if limit <= 0 else min(limit, _LIST_LIMIT)
        token = request.query_params.get("page_token") or None
        offset = _decode_offset(token) if token else 0
        rows = [
            s
            for s in b.syncs.all("model")
            if (active is None or s.active == active)
            and (mode is None or s.mode == mode)
            and (target is None or s.target_connection_id == target)
        ]
        rows.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        actor = org.actor()
        page = [model_sync_item_json(s, org.organization_id, actor) for s in rows[offset : offset + limit]]
        more = offset + limit < len(rows)
        return JSONResponse(list_envelope(page, _encode_offset(offset + limit) if more else None))

    @api.get("/api/syncs/{sync_id}")
    async def get_sync(sync_id: str) -> JSONResponse:
        sync = b.syncs.api_get(sync_id, "model")
        return JSONResponse(ok(model_sync_json(sync, org.organization_id, org.actor())))

    add_shared_routes(api, state, "model")  # before /{log_type}: it declares .../consolelog

    @api.get("/api/syncs/{sync_id}/executions")
    async def list_executions(sync_id: str, request: Request) -> JSONResponse:
        page = executions_page(
            state,
            sync_id,
            "model",
            page_token=request.query_params.get("page_token"),
            ascending=bool(q_bool(request, "ascending")),
            only_terminal=bool(q_bool(request, "only_completed")),
            limit=max(1, int(org.settings.model_executions_page_size)),
        )
        return JSONResponse(page)

    @api.get("/api/syncs/{sync_id}/executions/{execution_id}/logs")
    async def logs_index(sync_id: str, execution_id: str) -> JSONResponse:
        with org.lock:
            b.syncs.api_get(sync_id, "model")
            execution = b.executions.api_get(sync_id, execution_id)
            return JSONResponse(ok(b.record_logs.index(sync_id, execution)))

    @api.get("/api/syncs/{sync_id}/executions/{execution_id}/{log_type}")
    async def log_type_urls(sync_id: str, execution_id: str, log_type: str) -> JSONResponse:
        _check_log_type(log_type)
        return JSONResponse(ok(log_urls(state, sync_id, execution_id, "model", log_type)))

    @api.get("/api/syncs/{sync_id}/executions/{execution_id}/{log_type}/{filename}")
    async def log_file(sync_id: str, execution_id: str, log_type: str, filename: str) -> Response:
        _check_log_type(log_type)
        with org.lock:
            b.syncs.api_get(sync_id, "model")
            execution = b.executions.api_get(sync_id, execution_id)
            url = b.record_logs.file_url(execution, log_type, filename)
        return RedirectResponse(url, status_code=302)

    return api


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_offset(token: str) -> int:
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))["o"])
    except (ValueError, KeyError, TypeError):
        raise FakeApiError(400, "invalid page_token") from None
    if offset < 0:
        raise FakeApiError(400, "invalid page_token")
    return offset
