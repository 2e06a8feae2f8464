"""What an organization has defined: syncs (what they read and write), models,
connections, and who an API key belongs to (:class:`Identity`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_provider_polytomic.models.base import WireModel

# What a sync reads and writes. Polytomic's SDK types every field optional and keeps
# configurations as free-form objects, whose keys depend on the connection type.


class SyncTarget(WireModel):
    """Where a model sync writes (``ModelSyncV5Target``): a connection and an object in it.

    ``object`` is the target object or table; a sync that creates its target names it in
    ``new_name`` instead.
    """

    connection_id: str | None = None
    object: str | None = None
    new_name: str | None = None
    configuration: dict[str, Any] | None = None


class SyncFieldSource(WireModel):
    """The model field a sync field mapping reads."""

    field: str | None = None
    model_id: str | None = None


class SyncFieldMapping(WireModel):
    """One field a model sync writes: a model field (``source``) into a target field."""

    source: SyncFieldSource | None = None
    target: str | None = None


class ModelSync(WireModel):
    """A model sync (``GET /api/syncs/{id}``, ``ModelSyncV5Response``): models in, a target out."""

    id: str
    name: str | None = None
    mode: str | None = None
    active: bool | None = None
    model_ids: list[str] = Field(default_factory=list)
    target: SyncTarget | None = None
    fields: list[SyncFieldMapping] | None = None


class BulkSync(WireModel):
    """A bulk sync (``GET /api/bulk/syncs/{id}``, ``BulkSyncResponse``): the objects
    (schemas) of a source connection copied into a destination connection.

    ``destination_configuration`` holds destination-specific settings such as the output
    ``schema``.
    """

    id: str
    name: str | None = None
    mode: str | None = None
    active: bool | None = None
    source_connection_id: str | None = None
    source_configuration: dict[str, Any] | None = None
    destination_connection_id: str | None = None
    destination_configuration: dict[str, Any] | None = None


class BulkSyncSchema(WireModel):
    """One object a bulk sync copies (``GET /api/bulk/syncs/{id}/schemas``): ``id`` names it
    on the source (an object for SaaS sources, ``schema.table`` for databases), ``output_name``
    is the table it lands in."""

    id: str | None = None
    enabled: bool | None = None
    output_name: str | None = None


class ModelField(WireModel):
    """One field of a model: its name and Polytomic's (and the source's) type for it."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    remote_type: str | None = None


class Model(WireModel):
    """A model (``GET /api/models/{id}``, ``ModelResponse``): what a model sync reads.

    ``configuration`` depends on the source connection's type: ``{"table": "public.users"}``
    (Polytomic's own example) or ``{"query": "select ..."}`` for databases and warehouses;
    other keys elsewhere. ``type`` is the source connection's type, as far as anyone can tell.
    """

    id: str
    name: str | None = None
    connection_id: str | None = None
    type: str | None = None
    configuration: dict[str, Any] | None = None
    fields: list[ModelField] | None = None


class ConnectionType(WireModel):
    """A connection's type: ``id`` (``snowflake``, ``salesforce``...) and display ``name``."""

    id: str | None = None
    name: str | None = None


class PolytomicConnection(WireModel):
    """A connection in Polytomic (``GET /api/connections/{id}``, ``ConnectionResponseSchema``).

    ``configuration`` holds the type's settings (``account``, ``hostname``, ``database``...),
    with secrets left out by Polytomic. Not to be confused with an Airflow connection.
    """

    id: str
    name: str | None = None
    type: ConnectionType | None = None
    configuration: dict[str, Any] | None = None
    status: str | None = None

    @property
    def type_id(self) -> str | None:
        """The connection type's id, lowercased (``snowflake``...), or None."""
        return self.type.id.strip().lower() if self.type and self.type.id else None


class Identity(WireModel):
    """``GET /api/me``."""

    id: str | None = None
    email: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    is_user: bool | None = None
    is_organization: bool | None = None
    is_partner: bool | None = None
    is_system: bool | None = None


__all__ = [
    "BulkSync",
    "BulkSyncSchema",
    "ConnectionType",
    "Identity",
    "Model",
    "ModelField",
    "ModelSync",
    "PolytomicConnection",
    "SyncFieldMapping",
    "SyncFieldSource",
    "SyncTarget",
]
