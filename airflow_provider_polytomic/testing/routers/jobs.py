"""``GET /api/jobs/{type}/{id}``: polling asynchronous jobs (log exports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..responses import job_json, ok

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """One job's state; each poll brings a running job closer to ``done``."""
    api = APIRouter()

    @api.get("/api/jobs/{job_type}/{job_id}")
    async def get_job(job_type: str, job_id: str) -> JSONResponse:
        return JSONResponse(ok(job_json(state.backends.jobs.poll(job_type, job_id))))

    return api
