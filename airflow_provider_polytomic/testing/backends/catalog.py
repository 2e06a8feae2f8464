"""Connections and models: where a sync reads from and writes to.

Only as much as a sync's source and target need: a connection has a type and a configuration
(account, project, host, database...), a model has a source connection and a table, query or
object. Sensitive configuration (passwords, keys, tokens) is never stored: Polytomic redacts it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..records import FakeApiError
from .context import Org

__all__ = [
    "CONNECTION_TYPES",
    "DEFAULT_MODEL_FIELDS",
    "CatalogBackend",
    "Connection",
    "ConnectionType",
    "Model",
    "ModelField",
]


@dataclass(frozen=True)
class ConnectionType:
    """A kind of connection the fake knows, with a realistic, secret-free default configuration.

    Field names follow Polytomic's own connection configurations (as its Terraform provider
    documents them); the values are invented.
    """

    id: str
    name: str
    configuration: Mapping[str, Any]
    warehouse: bool
    """Whether models on it name a table (warehouses, databases) rather than an object (SaaS)."""
    default_object: str
    """What a sync writes to on this connection when the caller names nothing."""
    remote_types: Mapping[str, str] = field(default_factory=dict)
    """How the connection names the fake's field types (``string``, ``number``, ``datetime``)."""


_SQL_TYPES = {"string": "VARCHAR", "number": "NUMBER", "datetime": "TIMESTAMP_NTZ"}

CONNECTION_TYPES: dict[str, ConnectionType] = {
    t.id: t
    for t in (
        ConnectionType(
            "snowflake",
            "Snowflake",
            {
                "account": "acme-xy12345",
                "dbname": "ANALYTICS",
                "warehouse": "COMPUTE_WH",
                "username": "POLYTOMIC",
            },
            True,
            "PUBLIC.CONTACTS",
            _SQL_TYPES,
        ),
        ConnectionType(
            "bigquery",
            "Google BigQuery",
            {
                "auth_method": "service_account_key",
                "project_id": "acme-analytics",
                "client_email": "polytomic@acme-analytics.iam.gserviceaccount.com",
                "location": "US",
            },
            True,
            "analytics.contacts",
            {"string": "STRING", "number": "INT64", "datetime": "TIMESTAMP"},
        ),
        ConnectionType(
            "redshift",
            "Amazon Redshift",
            {
                "hostname": "analytics.c1a2b3c4d5e6.us-east-1.redshift.amazonaws.com",
                "port": 5439,
                "database": "analytics",
                "username": "polytomic",
                "auth_mode": "access_key_and_secret",
            },
            True,
            "public.contacts",
            {"string": "character varying", "number": "bigint", "datetime": "timestamp without time zone"},
        ),
        ConnectionType(
            "postgresql",
            "PostgreSQL",
            {
                "hostname": "postgres.acme.internal",
                "port": 5432,
                "database": "app",
                "username": "polytomic",
                "ssl": True,
            },
            True,
            "public.contacts",
            {"string": "text", "number": "bigint", "datetime": "timestamp with time zone"},
        ),
        ConnectionType(
            "databricks",
            "Databricks",
            {
                "server_hostname": "dbc-a1b2c3d4-e5f6.cloud.databricks.com",
                "http_path": "/sql/1.0/warehouses/1a2b3c4d5e6f7a8b",
                "port": 443,
                "databricks_auth_mode": "access_token",
                "unity_catalog_enabled": True,
            },
            True,
            "main.analytics.contacts",
            {"string": "STRING", "number": "BIGINT", "datetime": "TIMESTAMP"},
        ),
        ConnectionType(
            "salesforce",
            "Salesforce",
            {
                "domain": "acme.my.salesforce.com",
                "connect_mode": "browser",
                "username": "integration@acme.com",
            },
            False,
            "Contact",
            {"string": "string", "number": "double", "datetime": "datetime"},
        ),
        ConnectionType(
            "hubspot",
            "HubSpot",
            {"hub_domain": "acme.com", "hub_user": "integration@acme.com", "use_search_api": True},
            False,
            "contacts",
            {"string": "string", "number": "number", "datetime": "datetime"},
        ),
    )
}
"""Connection types the fake can create with defaults (any other type id needs a configuration)."""


@dataclass(frozen=True)
class ModelField:
    """One field of a model: name and one of ``string``, ``number``, ``datetime``."""

    name: str
    type: str = "string"
    unique: bool = False


DEFAULT_MODEL_FIELDS: tuple[ModelField, ...] = (
    ModelField("id", "number", unique=True),
    ModelField("email", "string", unique=True),
    ModelField("first_name"),
    ModelField("last_name"),
    ModelField("updated_at", "datetime"),
)


@dataclass
class Connection:
    id: str
    name: str
    type: str
    configuration: dict[str, Any]
    created_at: datetime
    status: str = "healthy"
    status_error: str | None = None


@dataclass
class Model:
    id: str
    name: str
    connection_id: str
    configuration: dict[str, Any]
    fields: list[ModelField]
    identifier: str | None
    tracking_columns: list[str]
    created_at: datetime
    field_ids: dict[str, str] = field(default_factory=dict)


def _identifier(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "records"


class CatalogBackend:
    """The organization's connections and models."""

    def __init__(self, org: Org) -> None:
        """An empty catalog of ``org``."""
        self._org = org
        self._connections: dict[str, Connection] = {}
        self._models: dict[str, Model] = {}
        self._defaults: dict[str, str] = {}

    # -- connections ---------------------------------------------------------------------------

    def add_connection(
        self,
        type: str,
        *,
        name: str | None = None,
        configuration: Mapping[str, Any] | None = None,
        connection_id: str | None = None,
        status: str = "healthy",
        status_error: str | None = None,
    ) -> str:
        """Create a connection of ``type`` and return its id.

        :param configuration: replaces the type's default configuration (required for a type
            the fake does not know).
        :raises ValueError: naming the argument and value, on an unknown type without configuration.
        """
        if not isinstance(type, str) or not type:
            raise ValueError(f"type must be a connection type such as 'snowflake', got {type!r}")
        known = CONNECTION_TYPES.get(type)
        if known is None and configuration is None:
            raise ValueError(
                f"type {type!r} is not one the fake knows ({', '.join(CONNECTION_TYPES)}); "
                "pass its configuration"
            )
        config = (
            dict(configuration) if configuration is not None else dict(known.configuration if known else {})
        )
        cid = connection_id or str(uuid.uuid4())
        with self._org.lock:
            self._connections[cid] = Connection(
                cid,
                name or (known.name if known else type),
                type,
                config,
                self._org.now(),
                status,
                status_error,
            )
        return cid

    def resolve_connection(self, value: str, argument: str) -> str:
        """A connection id for ``value``: an existing connection's id, or a connection type whose
        default connection (one per type, created on first use) is meant."""
        with self._org.lock:
            if value in self._connections:
                return value
            if value in CONNECTION_TYPES:
                if value not in self._defaults:
                    self._defaults[value] = self.add_connection(value)
                return self._defaults[value]
        raise ValueError(
            f"{argument} must be a connection id or a connection type ({', '.join(CONNECTION_TYPES)}), "
            f"got {value!r}"
        )

    def connection(self, connection_id: str) -> Connection:
        """One connection; KeyError when unknown."""
        with self._org.lock:
            found = self._connections.get(connection_id)
        if found is None:
            raise KeyError(f"unknown connection {connection_id!r}")
        return found

    def api_connection(self, connection_id: str) -> Connection:
        """One connection; a 404 API error when unknown."""
        try:
            return self.connection(connection_id)
        except KeyError:
            raise FakeApiError(404, f"connection {connection_id} not found") from None

    def connections(self) -> list[Connection]:
        """Every connection, oldest first."""
        with self._org.lock:
            return list(self._connections.values())

    def default_object(self, connection_id: str, sync_name: str) -> str:
        """What a sync named ``sync_name`` writes to on a connection when told nothing."""
        known = CONNECTION_TYPES.get(self.connection(connection_id).type)
        if known is None:
            return _identifier(sync_name)
        if not known.warehouse:
            return known.default_object
        schema = known.default_object.rsplit(".", 1)[0]
        table = _identifier(sync_name)
        return f"{schema}.{table.upper() if known.id == 'snowflake' else table}"

    # -- models --------------------------------------------------------------------------------

    def add_model(
        self,
        connection: str,
        *,
        name: str | None = None,
        table: str | None = None,
        query: str | None = None,
        object: str | None = None,
        fields: Sequence[str | ModelField] | None = None,
        identifier: str | None = None,
        tracking_columns: Sequence[str] | None = None,
        model_id: str | None = None,
    ) -> str:
        """Create a model on ``connection`` (an id, or a connection type for its default
        connection) and return its id.

        A model reads a ``table`` or runs a ``query`` (warehouses and databases) or reads an
        ``object`` (SaaS connections); with none of them it reads a table (or object) named
        after the model. Its configuration is ``{"table": ...}``, ``{"query": ...}`` or
        ``{"object": ...}``.
        """
        given = [k for k, v in (("table", table), ("query", query), ("object", object)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of table, query and object, got {', '.join(given)}")
        cid = self.resolve_connection(connection, "connection")
        label = name or table or object or "Users"
        if given:
            configuration: dict[str, Any] = {
                given[0]: {"table": table, "query": query, "object": object}[given[0]]
            }
        else:
            known = CONNECTION_TYPES.get(self.connection(cid).type)
            if known is not None and not known.warehouse:
                configuration = {"object": known.default_object}
            else:
                configuration = {"table": self.default_object(cid, label)}
        model_fields = [
            f if isinstance(f, ModelField) else ModelField(str(f)) for f in (fields or DEFAULT_MODEL_FIELDS)
        ]
        names = [f.name for f in model_fields]
        if identifier is not None and identifier not in names:
            raise ValueError(f"identifier must be one of the model's fields {names}, got {identifier!r}")
        unique = next((f.name for f in model_fields if f.unique), None)
        mid = model_id or str(uuid.uuid4())
        with self._org.lock:
            self._models[mid] = Model(
                mid,
                label,
                cid,
                configuration,
                model_fields,
                identifier or unique,
                list(tracking_columns)
                if tracking_columns is not None
                else [n for n in names if n == "updated_at"],
                self._org.now(),
                {n: str(uuid.uuid4()) for n in names},
            )
        return mid

    def model(self, model_id: str) -> Model:
        """One model; KeyError when unknown."""
        with self._org.lock:
            found = self._models.get(model_id)
        if found is None:
            raise KeyError(f"unknown model {model_id!r}")
        return found

    def api_model(self, model_id: str) -> Model:
        """One model; a 404 API error when unknown."""
        try:
            return self.model(model_id)
        except KeyError:
            raise FakeApiError(404, f"model {model_id} not found") from None

    def models(self) -> list[Model]:
        """Every model, oldest first."""
        with self._org.lock:
            return list(self._models.values())

    def remote_type(self, connection_id: str, field_type: str) -> str:
        """How the connection names a field type (its SQL or API type)."""
        known = CONNECTION_TYPES.get(self.connection(connection_id).type)
        return (known.remote_types if known else {}).get(field_type, field_type)
