"""``GET /api/me``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..responses import identity_json, ok

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """Who the API key belongs to."""
    api = APIRouter()

    @api.get("/api/me")
    async def me() -> JSONResponse:
        return JSONResponse(ok(identity_json(state.org)))

    return api
