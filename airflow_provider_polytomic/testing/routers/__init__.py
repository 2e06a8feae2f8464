"""The fake's routes, one FastAPI router per resource, composed by :func:`build_api`.

Each module builds an ``APIRouter`` from the fake's state: request parsing and validation
here, state in :mod:`..backends`, JSON shapes in :mod:`..responses`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..records import FakeApiError
from ..responses import error_body
from . import bulk_syncs, catalog, control, events, identity, jobs, model_syncs, webhooks

if TYPE_CHECKING:
    from ..state import PolytomicState

__all__ = ["ROUTERS", "build_api"]

RouterFactory = Callable[["PolytomicState"], APIRouter]

ROUTERS: tuple[RouterFactory, ...] = (
    identity.router,
    events.router,
    webhooks.router,
    bulk_syncs.router,
    model_syncs.router,
    catalog.router,
    jobs.router,
    control.router,
)
"""Every router of the fake, in registration order."""


def build_api(state: PolytomicState, routers: Sequence[RouterFactory] = ROUTERS) -> FastAPI:
    """The FastAPI application serving ``routers`` (default: every Polytomic route and the
    ``/_fake`` control routes), with errors in the configured error shape."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Fake Polytomic")

    def error(status: int, message: str, key: str | None = None) -> JSONResponse:
        return JSONResponse(
            error_body(state.org.settings.error_shape, status, message, key), status_code=status
        )

    @app.exception_handler(FakeApiError)
    async def _api_error(_request: Request, exc: FakeApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.key)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, str(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_fake/"):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        return error(exc.status_code, "not found" if exc.status_code == 404 else str(exc.detail))

    for factory in routers:
        app.include_router(factory(state))
    return app
