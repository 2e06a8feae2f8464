"""``/api/webhooks``: the organization's webhook, enable/disable, and its deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..backends.webhooks import DeliveryFilter
from ..responses import list_envelope, ok
from ..responses.webhooks import delivery_json, webhook_json
from ._params import json_body, q_bool, q_time

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """Webhook CRUD (one per organization), enable/disable, delivery attempts."""
    api = APIRouter()
    hooks = state.backends.webhooks

    @api.get("/api/webhooks")
    async def list_webhooks() -> JSONResponse:
        return JSONResponse(ok([webhook_json(h) for h in hooks.all()]))

    @api.post("/api/webhooks")
    async def create_webhook(request: Request) -> JSONResponse:
        return JSONResponse(ok(webhook_json(hooks.create(await json_body(request, 422)))))

    @api.get("/api/webhooks/{webhook_id}")
    async def get_webhook(webhook_id: str) -> JSONResponse:
        return JSONResponse(ok(webhook_json(hooks.get(webhook_id))))

    @api.put("/api/webhooks/{webhook_id}")
    async def update_webhook(webhook_id: str, request: Request) -> JSONResponse:
        return JSONResponse(ok(webhook_json(hooks.update(webhook_id, await json_body(request, 422)))))

    @api.delete("/api/webhooks/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> Response:
        hooks.delete(webhook_id)
        return Response(status_code=200)

    @api.post("/api/webhooks/{webhook_id}/disable")
    async def disable_webhook(webhook_id: str) -> JSONResponse:
        return JSONResponse(ok(webhook_json(hooks.set_disabled(webhook_id, True))))

    @api.post("/api/webhooks/{webhook_id}/enable")
    async def enable_webhook(webhook_id: str) -> JSONResponse:
        return JSONResponse(ok(webhook_json(hooks.set_disabled(webhook_id, False))))

    @api.get("/api/webhooks/{webhook_id}/deliveries")
    async def list_deliveries(webhook_id: str, request: Request) -> JSONResponse:
        filters = DeliveryFilter(
            success=q_bool(request, "success", status=400),
            event_id=request.query_params.get("event_id") or None,
            start=q_time(request, "start", status=400),
            end=q_time(request, "end", status=400),
        )
        page, token = hooks.page(webhook_id, filters, request.query_params.get("page_token") or None)
        return JSONResponse(list_envelope([delivery_json(d) for d in page], token))

    return api
