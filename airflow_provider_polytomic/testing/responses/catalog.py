"""Models and connections as Polytomic writes them."""

from __future__ import annotations

from typing import Any

from ..backends.catalog import CONNECTION_TYPES, CatalogBackend, Connection, Model
from ..records import format_time

__all__ = ["connection_json", "model_json"]

_EXAMPLES = {"string": "example", "number": 42, "datetime": "2025-01-01T00:00:00Z"}


def model_json(
    model: Model, catalog: CatalogBackend, organization_id: str, actor: dict[str, str]
) -> dict[str, Any]:
    """``GET /api/models/{id}`` (``ModelResponse``): a connection and a table, query or object.

    ``type`` is the model's connection type (Polytomic does not document the field).
    """
    created = format_time(model.created_at)
    connection = catalog.connection(model.connection_id)
    return {
        "id": model.id,
        "name": model.name,
        "organization_id": organization_id,
        "connection_id": model.connection_id,
        "type": connection.type,
        "configuration": dict(model.configuration),
        "fields": [
            {
                "id": model.field_ids[f.name],
                "name": f.name,
                "label": f.name.replace("_", " ").title(),
                "type": f.type,
                "remote_type": catalog.remote_type(model.connection_id, f.type),
                "description": "",
                "example": _EXAMPLES.get(f.type),
                "unique": f.unique,
                "user_added": False,
                "created_at": created,
                "created_by": dict(actor),
                "updated_at": created,
            }
            for f in model.fields
        ],
        "identifier": model.identifier,
        "tracking_columns": list(model.tracking_columns),
        "labels": [],
        "relations": [],
        "policies": [],
        "version": 1,
        "created_at": created,
        "created_by": dict(actor),
        "updated_at": created,
        "updated_by": dict(actor),
    }


def connection_json(connection: Connection, organization_id: str, actor: dict[str, str]) -> dict[str, Any]:
    """``GET /api/connections/{id}`` (``ConnectionResponseSchema``), secrets left out."""
    known = CONNECTION_TYPES.get(connection.type)
    created = format_time(connection.created_at)
    data: dict[str, Any] = {
        "id": connection.id,
        "name": connection.name,
        "organization_id": organization_id,
        "type": {"id": connection.type, "name": known.name if known else connection.type},
        "configuration": dict(connection.configuration),
        "status": connection.status,
        "saved": True,
        "policies": [],
        "api_calls_last_24_hours": 0,
        "rate_limit": {"currently_limited": False},
        "created_at": created,
        "created_by": dict(actor),
        "updated_at": created,
        "updated_by": dict(actor),
    }
    if connection.status_error is not None:
        data["status_error"] = connection.status_error
    return data
