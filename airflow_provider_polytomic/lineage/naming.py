"""OpenLineage dataset names for what Polytomic reads and writes, without OpenLineage itself.

A dataset is a namespace (its datasource) and a name within it, as the OpenLineage naming
spec (https://openlineage.io/docs/spec/naming) lays them out. Polytomic knows a table or an
object and the connection it is on; the connection's type and configuration give the
datasource. This module turns the three into a :class:`DatasetRef`:

==================  =============================================  ===============================
Polytomic type      namespace                                      name
==================  =============================================  ===============================
``snowflake``       ``snowflake://{account}``                      ``{DATABASE}.{SCHEMA}.{TABLE}``
``bigquery``        ``bigquery``                                   ``{project}.{dataset}.{table}``
``redshift``        ``redshift://{cluster}.{region}:{port}``       ``{database}.{schema}.{table}``
``postgresql``      ``postgres://{host}:{port}``                   ``{database}.{schema}.{table}``
``databricks``      ``databricks://{server_hostname}``             ``{catalog}.{schema}.{table}``
``mysql``           ``mysql://{host}:{port}``                      ``{database}.{table}``
``mssql``           ``mssql://{host}:{port}``                      ``{database}.{schema}.{table}``
``azuresql``        ``mssql://{host}:{port}``                      ``{database}.{schema}.{table}``
``synapse``         ``sqlserver://{host}:{port}``                  ``{schema}.{table}``
``salesforce``      ``salesforce://{my domain host}``              ``{object}``
``hubspot``         ``hubspot://{hub_domain}``                     ``{object}``
anything else       ``polytomic://{connection_id}``                ``{object or table}``
==================  =============================================  ===============================

Salesforce and HubSpot are not in the spec; their namespaces follow its pattern (the
instance as the authority). Where a configuration lacks a field a name needs (an account, a
host, a database), or a table name is too short to qualify, the dataset falls back to the
``polytomic://`` namespace and :attr:`DatasetRef.note` says why. Configuration field names
come from Polytomic's connection documentation (its SDK's PostgreSQL example and its
Terraform provider's connection resources); Polytomic does not promise them in its API
reference, so every one is read defensively.

Files written to object storage (record logs) are named by :func:`storage_dataset`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CONNECTION_NAMING",
    "POLYTOMIC_NAMESPACE_SCHEME",
    "ConnectionInfo",
    "ConnectionNaming",
    "DatasetRef",
    "QueryRef",
    "connection_dataset",
    "fix_snowflake_account",
    "model_source",
    "polytomic_dataset",
    "split_identifier",
    "storage_dataset",
]

POLYTOMIC_NAMESPACE_SCHEME = "polytomic"


@dataclass(frozen=True)
class ConnectionInfo:
    """What naming needs of a Polytomic connection: its id, type id and configuration.

    ``type_id`` and ``configuration`` are None when the connection could not be read; its
    datasets then use the ``polytomic://`` namespace.
    """

    id: str
    type_id: str | None = None
    configuration: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True)
class DatasetRef:
    """One OpenLineage dataset: ``namespace`` and ``name``.

    :ivar mapped: True when named by the OpenLineage spec for the connection's type, False
        for the ``polytomic://`` fallback.
    :ivar note: why a dataset fell back (a missing configuration field, an unknown type...).
    """

    namespace: str
    name: str
    mapped: bool = True
    note: str | None = None

    @property
    def uri(self) -> str:
        """``namespace/name``, for logs and messages."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class QueryRef:
    """A model that runs a SQL query: its inputs are the tables the query reads.

    Naming them needs a SQL parser (OpenLineage's, which comes with the OpenLineage
    provider); :meth:`qualify` names one table the parser found. ``fallback`` is the dataset
    to report when the query cannot be parsed.
    """

    sql: str
    dialect: str | None
    default_schema: str | None
    connection: ConnectionInfo
    fallback: DatasetRef

    def qualify(self, parts: list[str]) -> DatasetRef:
        """The dataset of one table the query reads, from its (database, schema, table) parts."""
        return connection_dataset(self.connection, parts)


Identifier = tuple[str, bool]
"""One part of a table name and whether it was quoted (quoted parts keep their case)."""


def split_identifier(text: str) -> list[Identifier]:
    """Split ``db.schema."My Table"`` into its parts, honouring ``"..."``, ```...``` and ``[...]``.

    >>> split_identifier('analytics."My.Table"')
    [('analytics', False), ('My.Table', True)]
    """
    parts: list[Identifier] = []
    current: list[str] = []
    quoted = False
    closer: str | None = None
    for char in text.strip():
        if closer is not None:
            if char == closer:
                closer = None
            else:
                current.append(char)
            continue
        if char in '"`[':
            closer = "]" if char == "[" else char
            quoted = True
        elif char == ".":
            parts.append(("".join(current).strip(), quoted))
            current, quoted = [], False
        else:
            current.append(char)
    parts.append(("".join(current).strip(), quoted))
    return parts


# ------------------------------------------------------------------------ per type


@dataclass(frozen=True)
class ConnectionNaming:
    """How one Polytomic connection type names its datasource and its tables.

    :ivar levels: how many parts a full name has (3: database.schema.table).
    :ivar namespace: configuration -> namespace, or None when a field it needs is missing.
    :ivar defaults: configuration -> the leading parts a short name lacks (None: unknown).
    :ivar fold: how unquoted identifiers are normalised (``upper``, ``lower`` or None).
    :ivar dialect: the SQL dialect of query models, for OpenLineage's SQL parser.
    :ivar objects: True for SaaS applications: names are object names, never split.
    """

    spec_name: str
    namespace: Callable[[Mapping[str, Any]], str | None]
    levels: int = 3
    defaults: Callable[[Mapping[str, Any]], list[str | None]] = lambda config: []
    fold: str | None = None
    dialect: str | None = None
    objects: bool = False
    requires: tuple[str, ...] = ()


def _text(config: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that is a non-empty string (or number) in ``config``."""
    for name in names:
        value = config.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _host(value: str | None) -> str | None:
    """A bare host name from ``acme.example.com``, ``https://acme.example.com/x`` or ``host:5432``."""
    if not value:
        return None
    parts = urlsplit(value if "://" in value else f"//{value}")
    return parts.hostname or None


def _port(config: Mapping[str, Any], default: int) -> int | None:
    raw = config.get("port")
    if raw in (None, ""):
        return default
    try:
        port = int(str(raw))
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def _host_port(config: Mapping[str, Any], default_port: int, *host_fields: str) -> str | None:
    host = _host(_text(config, *host_fields))
    port = _port(config, default_port)
    if not host or port is None:
        return None
    return f"{host.lower()}:{port}"


def fix_snowflake_account(account: str) -> str:
    """Canonical Snowflake account for the namespace, as OpenLineage's own integrations write it.

    ``orgname-accountname`` stays as it is (lowercased); a legacy account locator gets the
    region and cloud OpenLineage assumes when they are left out (``xy12345`` ->
    ``xy12345.us-west-1.aws``, ``xy12345.us-east-1`` -> ``xy12345.us-east-1.aws``). A full
    ``*.snowflakecomputing.com`` host or URL is reduced to its account part first.

    >>> fix_snowflake_account("FRXJLEC-UJA94780")
    'frxjlec-uja94780'
    >>> fix_snowflake_account("https://xy12345.us-east-1.snowflakecomputing.com")
    'xy12345.us-east-1.aws'
    """
    text = account.strip().lower()
    host = _host(text) if ("://" in text or "/" in text) else text
    text = host or text
    text = re.sub(r"\.snowflakecomputing\.com$", "", text)
    parts = text.split(".")
    if "-" in parts[0]:
        return parts[0]
    if len(parts) == 1:
        return f"{parts[0]}.us-west-1.aws"
    if len(parts) == 2:
        return f"{parts[0]}.{parts[1]}.aws"
    return text


def _snowflake_namespace(config: Mapping[str, Any]) -> str | None:
    account = _text(config, "account")
    return f"snowflake://{fix_snowflake_account(account)}" if account else None


_REDSHIFT_HOST = re.compile(
    r"^(?P<cluster>[^.]+)\.(?:[^.]+\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.redshift\.amazonaws\.com$"
)


def _redshift_namespace(config: Mapping[str, Any]) -> str | None:
    host = _host(_text(config, "hostname", "host"))
    port = _port(config, 5439)
    if not host or port is None:
        return None
    host = host.lower()
    match = _REDSHIFT_HOST.match(host)
    if match:
        # The spec's {cluster_identifier}.{region_name}, read from the cluster endpoint.
        return f"redshift://{match['cluster']}.{match['region']}:{port}"
    # A custom DNS name or a proxy: the host itself, as OpenLineage's dbt integration writes it.
    return f"redshift://{host}:{port}"


def _bigquery_project(config: Mapping[str, Any]) -> list[str | None]:
    return [_text(config, "override_project_id", "project_id", "wif_project_id")]


def _databricks_catalog(config: Mapping[str, Any]) -> list[str | None]:
    catalog = _text(config, "catalog")
    if catalog:
        return [catalog]
    # Without Unity Catalog every table lives in the legacy hive_metastore catalog.
    return ["hive_metastore"] if config.get("unity_catalog_enabled") is False else [None]


def _salesforce_namespace(config: Mapping[str, Any]) -> str | None:
    host = _host(_text(config, "domain", "instance_url_override", "instance_url"))
    return f"salesforce://{host.lower()}" if host else None


def _hubspot_namespace(config: Mapping[str, Any]) -> str | None:
    domain = _host(_text(config, "hub_domain")) or _text(config, "hub_id", "portal_id")
    return f"hubspot://{domain.lower()}" if domain else None


def _database(*names: str) -> Callable[[Mapping[str, Any]], list[str | None]]:
    return lambda config: [_text(config, *names)]


def _database_and_schema(schema: str, *names: str) -> Callable[[Mapping[str, Any]], list[str | None]]:
    return lambda config: [_text(config, *names), schema]


_POSTGRES = ConnectionNaming(
    "Postgres",
    lambda c: f"postgres://{hp}" if (hp := _host_port(c, 5432, "hostname", "host")) else None,
    defaults=_database_and_schema("public", "database", "dbname"),
    fold="lower",
    dialect="postgres",
    requires=("hostname", "database"),
)
_MSSQL = ConnectionNaming(
    "MSSQL",
    lambda c: f"mssql://{hp}" if (hp := _host_port(c, 1433, "hostname", "host")) else None,
    defaults=_database_and_schema("dbo", "database"),
    dialect="mssql",
    requires=("hostname", "database"),
)

CONNECTION_NAMING: dict[str, ConnectionNaming] = {
    "snowflake": ConnectionNaming(
        "Snowflake",
        _snowflake_namespace,
        # Snowflake puts a table without a schema in PUBLIC.
        defaults=_database_and_schema("PUBLIC", "dbname", "database"),
        fold="upper",
        dialect="snowflake",
        requires=("account", "dbname"),
    ),
    "bigquery": ConnectionNaming(
        "BigQuery",
        lambda c: "bigquery",
        defaults=_bigquery_project,
        dialect="bigquery",
        requires=("project_id",),
    ),
    "redshift": ConnectionNaming(
        "Redshift",
        _redshift_namespace,
        defaults=_database_and_schema("public", "database"),
        fold="lower",
        dialect="redshift",
        requires=("hostname", "database"),
    ),
    "postgresql": _POSTGRES,
    "databricks": ConnectionNaming(
        "Databricks",
        lambda c: f"databricks://{h.lower()}" if (h := _host(_text(c, "server_hostname"))) else None,
        defaults=lambda c: [*_databricks_catalog(c), "default"],
        fold="lower",
        dialect="databricks",
        requires=("server_hostname",),
    ),
    "mysql": ConnectionNaming(
        "MySQL",
        lambda c: f"mysql://{hp}" if (hp := _host_port(c, 3306, "hostname", "host")) else None,
        levels=2,
        defaults=_database("dbname", "database"),
        dialect="mysql",
        requires=("hostname", "dbname"),
    ),
    "mssql": _MSSQL,
    "azuresql": _MSSQL,
    "synapse": ConnectionNaming(
        "Azure Synapse",
        lambda c: f"sqlserver://{hp}" if (hp := _host_port(c, 1433, "hostname", "host")) else None,
        levels=2,
        defaults=lambda c: ["dbo"],
        dialect="mssql",
        requires=("hostname",),
    ),
    "salesforce": ConnectionNaming(
        "Salesforce", _salesforce_namespace, levels=1, objects=True, requires=("domain",)
    ),
    "hubspot": ConnectionNaming(
        "HubSpot", _hubspot_namespace, levels=1, objects=True, requires=("hub_domain",)
    ),
}
"""Polytomic connection type id -> how its datasets are named."""


# ------------------------------------------------------------------------ naming


def polytomic_dataset(connection_id: str, name: str, note: str | None = None) -> DatasetRef:
    """A dataset of a connection the spec has no name for: ``polytomic://{connection_id}``."""
    return DatasetRef(f"{POLYTOMIC_NAMESPACE_SCHEME}://{connection_id}", name, mapped=False, note=note)


def _fold(value: str, quoted: bool, fold: str | None) -> str:
    if quoted or fold is None:
        return value
    return value.upper() if fold == "upper" else value.lower()


def connection_dataset(connection: ConnectionInfo, table: str | list[str]) -> DatasetRef:
    """The dataset ``table`` (a table, ``schema.table``..., or an object) names on ``connection``.

    ``table`` may also be the parts of a name (from a SQL parser), outermost first.
    """
    raw = table if isinstance(table, str) else ".".join(table)
    naming = CONNECTION_NAMING.get(connection.type_id or "")
    if naming is None:
        why = (
            "the connection could not be read"
            if connection.type_id is None
            else f"connection type {connection.type_id!r} has no OpenLineage naming"
        )
        return polytomic_dataset(connection.id, raw, why)
    config = connection.configuration or {}
    namespace = naming.namespace(config)
    if not namespace:
        return polytomic_dataset(
            connection.id,
            raw,
            f"the {naming.spec_name} connection's configuration lacks {' or '.join(naming.requires)}",
        )
    if naming.objects:
        return DatasetRef(namespace, raw.strip())
    parts: list[Identifier] = (
        split_identifier(table) if isinstance(table, str) else [(p, False) for p in table if p]
    )
    if not parts or any(not p for p, _ in parts) or len(parts) > naming.levels:
        return polytomic_dataset(
            connection.id, raw, f"{raw!r} is not a {naming.levels}-part {naming.spec_name} table name"
        )
    missing = naming.levels - len(parts)
    if missing:
        # Defaults are outermost first: a name lacking k parts lacks the first k.
        defaults = naming.defaults(config)[:missing]
        if len(defaults) < missing or any(d is None for d in defaults):
            return polytomic_dataset(
                connection.id,
                raw,
                f"{raw!r} lacks its {naming.spec_name} database or schema and the connection gives none",
            )
        parts = [(str(d), False) for d in defaults] + parts
    return DatasetRef(namespace, ".".join(_fold(p, q, naming.fold) for p, q in parts))


def model_source(
    model_id: str,
    configuration: Mapping[str, Any] | None,
    connection: ConnectionInfo,
) -> DatasetRef | QueryRef:
    """What a model reads: a table or object on its connection, or a query (:class:`QueryRef`).

    Model configurations depend on the source; this reads ``table`` (with optional
    ``database``/``catalog``/``project``, ``schema``/``dataset`` beside it), ``object`` and
    ``query``. Anything else is the model itself under ``polytomic://{connection_id}``
    (``models/{model_id}``).
    """
    config = configuration or {}
    fallback = polytomic_dataset(
        connection.id, f"models/{model_id}", "the model reads no table Polytomic names"
    )
    query = _text(config, "query", "sql")
    table = _text(config, "table", "table_name")
    obj = _text(config, "object", "object_name")
    if table:
        prefix = [
            p
            for p in (_text(config, "database", "catalog", "project"), _text(config, "schema", "dataset"))
            if p
        ]
        if prefix and "." not in table:
            return connection_dataset(connection, [*prefix, table])
        return connection_dataset(connection, table)
    if obj:
        return connection_dataset(connection, obj)
    if query:
        naming = CONNECTION_NAMING.get(connection.type_id or "")
        if naming is None or naming.objects or naming.dialect is None:
            return polytomic_dataset(
                connection.id, f"models/{model_id}", "a query model on a source without OpenLineage naming"
            )
        defaults = naming.defaults(connection.configuration or {})
        # The parser qualifies bare table names with the default schema, when there is one.
        schema = defaults[-1] if len(defaults) == naming.levels - 1 and naming.levels > 1 else None
        return QueryRef(query, naming.dialect, schema, connection, fallback)
    return fallback


# ----------------------------------------------------------------------- storage


def storage_dataset(uri: str) -> DatasetRef:
    """The dataset of a file written to ``uri`` (``file://``, ``s3://``, ``gs://``...).

    Follows the spec's blob-storage rows: the bucket is the namespace, the object key the
    name; a local file is ``file`` and its absolute path. Connection ids Airflow keeps in the
    URI (``s3://aws_default@bucket/key``) are dropped.

    >>> storage_dataset("s3://aws_default@bucket/polytomic/inserted/part-0.json")
    DatasetRef(namespace='s3://bucket', name='polytomic/inserted/part-0.json', mapped=True, note=None)
    >>> storage_dataset("file:///tmp/logs/part-0.json").name
    '/tmp/logs/part-0.json'
    """
    parts = urlsplit(uri)
    scheme = (parts.scheme or "file").lower()
    host = parts.hostname or ""
    if "@" in parts.netloc and scheme in ("abfs", "abfss", "wasb", "wasbs"):
        # Azure keeps the container before the @: container@account.dfs.core.windows.net.
        host = parts.netloc.split("@", 1)[0] + "@" + (parts.hostname or "")
    if scheme == "file" or not scheme:
        return DatasetRef(f"file://{host}" if host not in ("", "localhost") else "file", parts.path or "/")
    scheme = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}.get(scheme, scheme)
    key = parts.path.lstrip("/") or "/"
    return DatasetRef(f"{scheme}://{host}", key)
