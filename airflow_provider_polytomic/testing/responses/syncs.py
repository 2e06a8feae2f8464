"""Model and bulk sync definitions as Polytomic writes them (``GET /api/syncs/{id}``, ...)."""

from __future__ import annotations

from typing import Any

from ..backends.syncs import BulkSchema, FieldMapping, Sync
from ..records import format_time

__all__ = [
    "bulk_schema_item_json",
    "bulk_schema_json",
    "bulk_sync_json",
    "model_sync_item_json",
    "model_sync_json",
]


def _audit(sync: Sync, actor: dict[str, str]) -> dict[str, Any]:
    return {
        "created_at": format_time(sync.created_at),
        "created_by": dict(actor),
        "updated_at": format_time(sync.updated_at),
        "updated_by": dict(actor),
    }


def _mapping(mapping: FieldMapping) -> dict[str, Any]:
    return {
        "source": {"field": mapping.source, "model_id": mapping.model_id},
        "target": mapping.target,
        "new": False,
        "sync_mode": "updateOrCreate",
        "encryption_enabled": False,
    }


def _identity(mapping: FieldMapping) -> dict[str, Any]:
    return {
        "source": {"field": mapping.source, "model_id": mapping.model_id},
        "target": mapping.target,
        "function": "Equality",
        "new_field": False,
        "remote_field_type_id": "string",
    }


def _model_sync_common(sync: Sync, organization_id: str, actor: dict[str, str]) -> dict[str, Any]:
    return {
        "id": sync.id,
        "name": sync.name,
        "organization_id": organization_id,
        "active": sync.active,
        "mode": sync.mode,
        "model_ids": list(sync.model_ids),
        "schedule": dict(sync.schedule),
        "only_enrich_updates": False,
        "skip_initial_backfill": False,
        "sync_all_records": False,
        **_audit(sync, actor),
    }


def model_sync_json(sync: Sync, organization_id: str, actor: dict[str, str]) -> dict[str, Any]:
    """``GET /api/syncs/{id}`` (``ModelSyncV5Response``): models in, target object out.

    Filters, overrides and policies are empty: the fake's syncs have none.
    """
    identity = _identity(sync.identity) if sync.identity else None
    return {
        **_model_sync_common(sync, organization_id, actor),
        "target": {
            "connection_id": sync.target_connection_id,
            "object": sync.target_object,
            "configuration": {},
            "search_values": {},
        },
        "fields": [_mapping(m) for m in sync.fields],
        "identity": identity,
        "identities": {"mappings": [identity] if identity else [], "strategy": "priority"},
        "filters": [],
        "filter_logic": "",
        "model_filters": {"conditions": [], "logic": ""},
        "target_filters": {"conditions": [], "logic": ""},
        "overrides": [],
        "override_fields": [],
        "policies": [],
        "problems": [],
    }


def model_sync_item_json(sync: Sync, organization_id: str, actor: dict[str, str]) -> dict[str, Any]:
    """One item of ``GET /api/syncs`` (``ListSyncItem``)."""
    return {
        **_model_sync_common(sync, organization_id, actor),
        "target_connection_id": sync.target_connection_id,
        "target_object": sync.target_object,
    }


def bulk_sync_json(sync: Sync, organization_id: str, actor: dict[str, str]) -> dict[str, Any]:
    """``GET /api/bulk/syncs/{id}`` (``BulkSyncResponse``): source connection to destination."""
    schedule = {
        "id": sync.schedule_id,
        "frequency": sync.schedule.get("frequency", "manual"),
        **{
            k: str(v)
            for k, v in sync.schedule.items()
            if k in ("minute", "hour", "day_of_week", "day_of_month", "month")
        },
        "created_at": format_time(sync.created_at),
        "created_by": dict(actor),
        "updated_at": format_time(sync.updated_at),
        "updated_by": dict(actor),
    }
    return {
        "id": sync.id,
        "name": sync.name,
        "organization_id": organization_id,
        "active": sync.active,
        "mode": sync.mode,
        "source_connection_id": sync.source_connection_id,
        "source_configuration": {},
        "destination_connection_id": sync.destination_connection_id,
        "destination_configuration": dict(sync.destination_configuration),
        "default_schedule": schedule,
        "additional_schedules": [],
        "automatically_add_new_fields": "all",
        "automatically_add_new_objects": "none",
        "concurrency_limit": 10,
        "resync_concurrency_limit": 1,
        "disable_record_timestamps": False,
        "normalize_names": "enabled",
        "policies": [],
        **_audit(sync, actor),
    }


def bulk_schema_item_json(schema: BulkSchema) -> dict[str, Any]:
    """One item of ``GET /api/bulk/syncs/{id}/schemas`` (``BulkSchemaListItem``)."""
    return {
        "id": schema.id,
        "enabled": schema.enabled,
        "output_name": schema.output_name,
        "tracking_field": schema.tracking_field,
        "disable_data_cutoff": False,
        "history_enabled": False,
    }


def bulk_schema_json(schema: BulkSchema) -> dict[str, Any]:
    """``GET /api/bulk/syncs/{id}/schemas/{schema_id}`` (``BulkSchema``): with its fields."""
    return {
        **bulk_schema_item_json(schema),
        "fields": [
            {"id": name, "enabled": True, "obfuscated": False, "output_name": name.lower()}
            for name in schema.fields
        ],
        "filters": [],
    }
