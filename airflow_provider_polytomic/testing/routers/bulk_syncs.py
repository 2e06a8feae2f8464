"""``/api/bulk/syncs``: bulk syncs, their schemas, executions, logs and log exports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..responses import job_json, ok
from ..responses.syncs import bulk_schema_item_json, bulk_schema_json, bulk_sync_json
from ._params import q_bool, q_int
from ._syncs import add_shared_routes, bulk_statuses, console_log, executions_page, log_urls

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def router(state: PolytomicState) -> APIRouter:
    """Bulk syncs. ``/api/bulk/syncs/status`` is declared before ``/{sync_id}``, which would
    otherwise take ``status`` for a sync id."""
    api = APIRouter()
    b, org = state.backends, state.org

    @api.get("/api/bulk/syncs")
    async def list_syncs(request: Request) -> JSONResponse:
        active = q_bool(request, "active", status=400)
        actor = org.actor()
        rows = sorted(b.syncs.all("bulk"), key=lambda s: (s.updated_at, s.id), reverse=True)
        return JSONResponse(
            ok(
                [
                    bulk_sync_json(s, org.organization_id, actor)
                    for s in rows
                    if active is None or s.active == active
                ]
            )
        )

    @api.get("/api/bulk/syncs/status")
    async def statuses(request: Request) -> JSONResponse:
        sync_ids = [v for v in request.query_params.getlist("sync_id") if v]
        data = bulk_statuses(
            state,
            sync_ids,
            all_syncs=bool(q_bool(request, "all", status=400)),
            active_only=bool(q_bool(request, "active", status=400)),
        )
        return JSONResponse(ok(data))

    @api.get("/api/bulk/syncs/{sync_id}")
    async def get_sync(sync_id: str, request: Request) -> JSONResponse:
        q_bool(request, "refresh_schemas", status=400)  # accepted; the fake's schemas never change
        sync = b.syncs.api_get(sync_id, "bulk")
        return JSONResponse(ok(bulk_sync_json(sync, org.organization_id, org.actor())))

    add_shared_routes(api, state, "bulk")

    @api.get("/api/bulk/syncs/{sync_id}/schemas")
    async def list_schemas(sync_id: str, request: Request) -> JSONResponse:
        enabled = q_bool(request, "filters[enabled]", status=400)
        sync = b.syncs.api_get(sync_id, "bulk")
        rows = [s for s in sync.schemas if enabled is None or s.enabled == enabled]
        return JSONResponse(ok([bulk_schema_item_json(s) for s in rows]))

    @api.get("/api/bulk/syncs/{sync_id}/schemas/{schema_id}")
    async def get_schema(sync_id: str, schema_id: str) -> JSONResponse:
        return JSONResponse(ok(bulk_schema_json(b.syncs.api_schema(sync_id, schema_id))))

    @api.get("/api/bulk/syncs/{sync_id}/executions")
    async def list_executions(sync_id: str, request: Request) -> JSONResponse:
        page = executions_page(
            state,
            sync_id,
            "bulk",
            page_token=request.query_params.get("page_token"),
            ascending=bool(q_bool(request, "ascending")),
            only_terminal=bool(q_bool(request, "only_terminal")),
            limit=min(q_int(request, "limit", 50, 1, 10_000), 100),
        )
        return JSONResponse(page)

    @api.get("/api/bulk/syncs/{sync_id}/executions/{execution_id}/logs")
    async def logs(sync_id: str, execution_id: str) -> JSONResponse:
        data = log_urls(state, sync_id, execution_id, "bulk", "records")
        # Bulk syncs capitalise these keys, unlike model syncs.
        return JSONResponse(ok({"URLs": data["urls"], "Expires": data["expires"]}))

    @api.post("/api/bulk/syncs/{sync_id}/executions/{execution_id}/logs/export")
    async def export_logs(sync_id: str, execution_id: str, request: Request) -> JSONResponse:
        q_bool(request, "notify", status=400)  # accepted; the fake sends no e-mail
        with org.lock:
            b.syncs.api_get(sync_id, "bulk")
            url = b.record_logs.export(b.executions.api_get(sync_id, execution_id))
            job = b.jobs.create("exportlogs", {"url": url})
        # The archive's URL comes with the answer only when the job is already done; otherwise
        # from polling the job (FakeSettings.export_job_polls).
        return JSONResponse({"data": {"url": url if job.status == "done" else None}, "job": job_json(job)})

    @api.get("/api/bulk/syncs/{sync_id}/executions/{execution_id}/schemas/{schema_id}/consolelog")
    async def schema_console(
        sync_id: str, execution_id: str, schema_id: str, request: Request
    ) -> JSONResponse:
        return JSONResponse(ok(console_log(state, request, sync_id, execution_id, "bulk", schema_id)))

    return api
