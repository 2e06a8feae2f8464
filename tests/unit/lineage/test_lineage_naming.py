"""OpenLineage dataset naming per Polytomic connection type (pure functions, no OpenLineage needed)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_polytomic.lineage.naming import (
    CONNECTION_NAMING,
    ConnectionInfo,
    DatasetRef,
    QueryRef,
    connection_dataset,
    fix_snowflake_account,
    model_source,
    split_identifier,
    storage_dataset,
)
from airflow_provider_polytomic.testing import CONNECTION_TYPES

SNOWFLAKE = {"account": "FRXJLEC-UJA94780", "dbname": "Analytics", "warehouse": "WH"}
BIGQUERY = {"project_id": "acme-analytics", "location": "US"}
REDSHIFT = {"hostname": "analytics.c1a2b3c4d5e6.us-east-1.redshift.amazonaws.com", "database": "dev"}
POSTGRES = {"hostname": "db.example.com", "port": 5433, "database": "app"}
DATABRICKS = {"server_hostname": "DBC-1234.cloud.databricks.com", "unity_catalog_enabled": True}

# (type, configuration, table or object, namespace, name)
MAPPED: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("snowflake", SNOWFLAKE, "PUBLIC.CONTACTS", "snowflake://frxjlec-uja94780", "ANALYTICS.PUBLIC.CONTACTS"),
    ("snowflake", SNOWFLAKE, "contacts", "snowflake://frxjlec-uja94780", "ANALYTICS.PUBLIC.CONTACTS"),
    ("snowflake", SNOWFLAKE, 'raw."Mixed Case"', "snowflake://frxjlec-uja94780", "ANALYTICS.RAW.Mixed Case"),
    ("snowflake", SNOWFLAKE, "other.s.t", "snowflake://frxjlec-uja94780", "OTHER.S.T"),
    (
        "snowflake",
        {"account": "xy12345.us-east-1", "dbname": "DB"},
        "S.T",
        "snowflake://xy12345.us-east-1.aws",
        "DB.S.T",
    ),
    ("bigquery", BIGQUERY, "analytics.users", "bigquery", "acme-analytics.analytics.users"),
    ("bigquery", BIGQUERY, "other-project.raw.events", "bigquery", "other-project.raw.events"),
    (
        "bigquery",
        {**BIGQUERY, "override_project_id": "billing-proj"},
        "analytics.users",
        "bigquery",
        "billing-proj.analytics.users",
    ),
    ("redshift", REDSHIFT, "Public.Users", "redshift://analytics.us-east-1:5439", "dev.public.users"),
    (
        "redshift",
        {"hostname": "mycluster.us-west-2.redshift.amazonaws.com", "database": "db", "port": 5440},
        "users",
        "redshift://mycluster.us-west-2:5440",
        "db.public.users",
    ),
    (
        "redshift",
        {"hostname": "warehouse.internal.example", "database": "db"},
        "s.t",
        "redshift://warehouse.internal.example:5439",
        "db.s.t",
    ),
    ("postgresql", POSTGRES, "public.users", "postgres://db.example.com:5433", "app.public.users"),
    ("postgresql", {"hostname": "pg", "database": "app"}, "Users", "postgres://pg:5432", "app.public.users"),
    (
        "databricks",
        DATABRICKS,
        "main.analytics.contacts",
        "databricks://dbc-1234.cloud.databricks.com",
        "main.analytics.contacts",
    ),
    (
        "databricks",
        {**DATABRICKS, "unity_catalog_enabled": False},
        "analytics.contacts",
        "databricks://dbc-1234.cloud.databricks.com",
        "hive_metastore.analytics.contacts",
    ),
    (
        "mysql",
        {"hostname": "mysql.local", "dbname": "shop"},
        "orders",
        "mysql://mysql.local:3306",
        "shop.orders",
    ),
    (
        "mssql",
        {"hostname": "sql.local", "database": "crm"},
        "accounts",
        "mssql://sql.local:1433",
        "crm.dbo.accounts",
    ),
    (
        "azuresql",
        {"hostname": "x.database.windows.net", "database": "d"},
        "s.t",
        "mssql://x.database.windows.net:1433",
        "d.s.t",
    ),
    (
        "synapse",
        {"hostname": "ws.sql.azuresynapse.net"},
        "t",
        "sqlserver://ws.sql.azuresynapse.net:1433",
        "dbo.t",
    ),
    (
        "salesforce",
        {"domain": "Acme.my.salesforce.com"},
        "Contact",
        "salesforce://acme.my.salesforce.com",
        "Contact",
    ),
    (
        "salesforce",
        {"domain": "http://instance.my.salesforce.com"},
        "Custom__c",
        "salesforce://instance.my.salesforce.com",
        "Custom__c",
    ),
    ("hubspot", {"hub_domain": "acme.com"}, "contacts", "hubspot://acme.com", "contacts"),
]


@pytest.mark.parametrize(("type_id", "config", "table", "namespace", "name"), MAPPED)
def test_mapped_types(type_id: str, config: dict[str, Any], table: str, namespace: str, name: str) -> None:
    ref = connection_dataset(ConnectionInfo("c-1", type_id, config), table)
    assert (ref.namespace, ref.name, ref.mapped, ref.note) == (namespace, name, True, None)


# (type, configuration, table): not enough to name it by the spec -> polytomic://{connection id}
FALLBACKS: list[tuple[str | None, dict[str, Any], str, str]] = [
    (None, {}, "Contact", "could not be read"),
    ("marketo", {"munchkin_id": "123"}, "Lead", "has no OpenLineage naming"),
    ("redshiftserverless", {"workgroup": "wg", "region": "us-east-1"}, "s.t", "has no OpenLineage naming"),
    ("snowflake", {"dbname": "DB"}, "S.T", "lacks account"),
    ("postgresql", {"database": "app"}, "public.users", "lacks hostname"),
    ("postgresql", {"hostname": "pg", "port": "not-a-port", "database": "app"}, "t", "lacks hostname"),
    ("postgresql", {"hostname": "pg"}, "users", "lacks its Postgres database or schema"),
    ("bigquery", {}, "analytics.users", "lacks its BigQuery database or schema"),
    ("bigquery", BIGQUERY, "users", "lacks its BigQuery database or schema"),
    ("databricks", DATABRICKS, "analytics.contacts", "lacks its Databricks database or schema"),
    ("postgresql", POSTGRES, "a.b.c.d", "is not a 3-part Postgres table name"),
    ("postgresql", POSTGRES, "a..b", "is not a 3-part Postgres table name"),
    ("salesforce", {}, "Contact", "lacks domain"),
]


@pytest.mark.parametrize(("type_id", "config", "table", "why"), FALLBACKS)
def test_fallbacks(type_id: str | None, config: dict[str, Any], table: str, why: str) -> None:
    ref = connection_dataset(ConnectionInfo("5f1c-conn", type_id, config), table)
    assert (ref.namespace, ref.name, ref.mapped) == ("polytomic://5f1c-conn", table, False)
    assert ref.note is not None and why in ref.note


def test_every_type_the_fake_knows_is_mapped_with_its_default_configuration() -> None:
    """The fake's default configurations carry every field naming needs."""
    for type_id, known in CONNECTION_TYPES.items():
        assert type_id in CONNECTION_NAMING
        ref = connection_dataset(
            ConnectionInfo("c", type_id, dict(known.configuration)), known.default_object
        )
        assert ref.mapped, (type_id, ref.note)


def test_parts_from_a_parser_are_qualified_like_a_table_name() -> None:
    conn = ConnectionInfo("c", "snowflake", SNOWFLAKE)
    assert connection_dataset(conn, ["raw", "events"]) == connection_dataset(conn, "RAW.EVENTS")


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        ({"table": "public.users"}, DatasetRef("postgres://db.example.com:5433", "app.public.users")),
        (
            {"schema": "sales", "table": "orders"},
            DatasetRef("postgres://db.example.com:5433", "app.sales.orders"),
        ),
        (
            {"database": "other", "schema": "s", "table": "t"},
            DatasetRef("postgres://db.example.com:5433", "other.s.t"),
        ),
        ({"object": "users"}, DatasetRef("postgres://db.example.com:5433", "app.public.users")),
    ],
)
def test_model_tables(configuration: dict[str, Any], expected: DatasetRef) -> None:
    assert model_source("m-1", configuration, ConnectionInfo("c", "postgresql", POSTGRES)) == expected


def test_query_models_carry_their_dialect_and_default_schema() -> None:
    ref = model_source("m-1", {"query": "select 1"}, ConnectionInfo("c", "snowflake", SNOWFLAKE))
    assert isinstance(ref, QueryRef)
    assert (ref.sql, ref.dialect, ref.default_schema) == ("select 1", "snowflake", "PUBLIC")
    assert ref.fallback == DatasetRef("polytomic://c", "models/m-1", mapped=False, note=ref.fallback.note)
    bq = model_source("m-2", {"query": "select 1"}, ConnectionInfo("c", "bigquery", BIGQUERY))
    assert isinstance(bq, QueryRef) and (bq.dialect, bq.default_schema) == ("bigquery", None)


@pytest.mark.parametrize(
    ("type_id", "configuration"),
    [
        ("salesforce", {"query": "SELECT Id FROM Contact"}),  # SOQL: no parser for it
        ("marketo", {"query": "select 1"}),
        ("snowflake", {"report": "r-1"}),  # a configuration naming neither table, object nor query
        ("snowflake", {}),
    ],
)
def test_models_without_a_nameable_source_are_the_model_itself(
    type_id: str, configuration: dict[str, Any]
) -> None:
    ref = model_source("m-9", configuration, ConnectionInfo("c-9", type_id, {"domain": "x", **SNOWFLAKE}))
    assert isinstance(ref, DatasetRef)
    assert (ref.namespace, ref.name, ref.mapped) == ("polytomic://c-9", "models/m-9", False)


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("myorg-myaccount", "myorg-myaccount"),
        ("MyOrg-MyAccount.snowflakecomputing.com", "myorg-myaccount"),
        ("xy12345", "xy12345.us-west-1.aws"),
        ("xy12345.us-east-2", "xy12345.us-east-2.aws"),
        ("xy12345.east-us-2.azure", "xy12345.east-us-2.azure"),
        ("https://xy12345.east-us-2.azure.snowflakecomputing.com/", "xy12345.east-us-2.azure"),
    ],
)
def test_snowflake_accounts(account: str, expected: str) -> None:
    assert fix_snowflake_account(account) == expected


def test_split_identifier_quotes() -> None:
    assert split_identifier("db.`my.schema`.[My Table]") == [
        ("db", False),
        ("my.schema", True),
        ("My Table", True),
    ]


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("file:///tmp/logs/inserted/a.json", "file", "/tmp/logs/inserted/a.json"),
        ("file://host.example/data/a.json", "file://host.example", "/data/a.json"),
        ("s3://aws_default@bucket/polytomic/a.json", "s3://bucket", "polytomic/a.json"),
        ("s3a://bucket/k", "s3://bucket", "k"),
        ("gs://google_cloud_default@bkt/x/y.json", "gs://bkt", "x/y.json"),
        ("gcs://bkt/x", "gs://bkt", "x"),
        (
            "abfss://logs@acct.dfs.core.windows.net/p/a.json",
            "abfss://logs@acct.dfs.core.windows.net",
            "p/a.json",
        ),
        ("memory://bucket/a.json", "memory://bucket", "a.json"),
    ],
)
def test_storage_datasets(uri: str, namespace: str, name: str) -> None:
    assert storage_dataset(uri) == DatasetRef(namespace, name)
