"""``/api/models`` and ``/api/connections``: a sync's source and target, read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..responses import ok
from ..responses.catalog import connection_json, model_json

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """Models (a connection and a table, query or object) and connections (type, configuration)."""
    api = APIRouter()
    catalog, org = state.backends.catalog, state.org

    @api.get("/api/models")
    async def list_models() -> JSONResponse:
        actor = org.actor()
        # Newest first, as Polytomic orders by updated_at descending.
        models = sorted(catalog.models(), key=lambda m: (m.created_at, m.id), reverse=True)
        return JSONResponse(ok([model_json(m, catalog, org.organization_id, actor) for m in models]))

    @api.get("/api/models/{model_id}")
    async def get_model(model_id: str) -> JSONResponse:
        return JSONResponse(
            ok(model_json(catalog.api_model(model_id), catalog, org.organization_id, org.actor()))
        )

    @api.get("/api/connections")
    async def list_connections() -> JSONResponse:
        actor = org.actor()
        return JSONResponse(
            ok([connection_json(c, org.organization_id, actor) for c in catalog.connections()])
        )

    @api.get("/api/connections/{connection_id}")
    async def get_connection(connection_id: str) -> JSONResponse:
        connection = catalog.api_connection(connection_id)
        return JSONResponse(ok(connection_json(connection, org.organization_id, org.actor())))

    return api
