"""``GET /api/events`` and ``GET /api/events_types``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..records import EVENT_TYPES
from ..responses import ok
from ._params import q_int, q_time

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """The events listing (a time window, at most ``limit`` events) and the event types."""
    api = APIRouter()

    @api.get("/api/events")
    async def list_events(request: Request) -> JSONResponse:
        page = state.backends.events.page(
            type=request.query_params.get("type") or None,
            starting_after=q_time(request, "starting_after"),
            ending_before=q_time(request, "ending_before"),
            limit=q_int(request, "limit", 10, 1, 100),
        )
        return JSONResponse(ok(page))

    @api.get("/api/events_types")
    async def events_types() -> JSONResponse:
        return JSONResponse(ok(list(EVENT_TYPES)))

    return api
