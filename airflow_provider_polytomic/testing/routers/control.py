"""``/_fake/*``: driving the fake from another process (no auth, no faults).

Each route calls the :class:`~..state.PolytomicState` method of the same name with the JSON
body as keyword arguments, and answers ``{"error": ...}`` with 404 (unknown id) or 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ._params import json_body

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["router"]


def _control(fn: Callable[[], Any]) -> JSONResponse:
    try:
        return JSONResponse(fn())
    except KeyError as exc:
        return JSONResponse({"error": str(exc.args[0] if exc.args else exc)}, status_code=404)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


def router(state: PolytomicState) -> APIRouter:
    """State summary, request counts, and the driver methods of the fake."""
    api = APIRouter()

    @api.get("/_fake/state")
    async def fake_state() -> JSONResponse:
        return JSONResponse(state.summary())

    @api.get("/_fake/requests")
    async def fake_requests(path_prefix: str = "/api/") -> JSONResponse:
        """How many API requests arrived, in all and under ``path_prefix`` (for benchmarks)."""
        matching = [r for r in list(state.requests) if r.path.startswith(path_prefix)]
        return JSONResponse({"total": len(state.requests), "matching": len(matching)})

    @api.get("/_fake/events")
    async def fake_events() -> JSONResponse:
        return JSONResponse({"data": state.events()})

    @api.post("/_fake/events")
    async def fake_add_event(request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: state.add_event(str(body.get("type")), dict(body.get("event") or {})))

    @api.post("/_fake/connections")
    async def fake_add_connection(request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"id": state.add_connection(**body)})

    @api.post("/_fake/models")
    async def fake_add_model(request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"id": state.add_model(**body)})

    @api.post("/_fake/syncs")
    async def fake_add_sync(request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"id": state.add_sync(**body)})

    @api.post("/_fake/syncs/{sync_id}/executions")
    async def fake_start(sync_id: str, request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"id": state.start_execution(sync_id, **body)})

    @api.post("/_fake/syncs/{sync_id}/run")
    async def fake_run(sync_id: str, request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"id": state.run_execution(sync_id, **body)})

    @api.post("/_fake/syncs/{sync_id}/auto_outcome")
    async def fake_auto(sync_id: str, request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        target = None if sync_id == "*" else sync_id

        def apply() -> dict[str, Any]:
            state.set_auto_outcome(target, **body)
            return {"ok": True}

        return _control(apply)

    @api.post("/_fake/syncs/{sync_id}/executions/{execution_id}/{action}")
    async def fake_action(sync_id: str, execution_id: str, action: str, request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        actions: dict[str, Callable[..., Any]] = {
            "complete": state.complete_execution,
            "fail": state.fail_execution,
            "cancel": state.cancel_execution,
            "status": state.set_execution_status,
        }
        if action not in actions:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        fn = actions[action]
        return _control(lambda: fn(sync_id, execution_id, **body) or {"ok": True})

    @api.post("/_fake/clock/advance")
    async def fake_advance(request: Request) -> JSONResponse:
        body = await json_body(request, 400)
        return _control(lambda: {"now": state.clock.advance(float(body.get("seconds", 0))).isoformat()})

    return api
