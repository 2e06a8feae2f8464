"""What a sync reads and writes, read from the fake Polytomic over real HTTP (no OpenLineage needed).

Covers the lookups behind the OpenLineage facets: which requests they make (few,
de-duplicated), the datasets they name for model and bulk syncs, and that every failing
lookup (404, 5xx, a body of the wrong shape, a server too slow) leaves a partial lineage
and a warning, never an exception, within the time budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.lineage.naming import DatasetRef, QueryRef
from airflow_provider_polytomic.lineage.resolver import (
    SyncLineage,
    SyncLineageResolver,
    lineage_budget,
    lineage_hook,
)
from airflow_provider_polytomic.models import BulkSync, ModelSync
from airflow_provider_polytomic.testing import FakePolytomic


def api_paths(fake: FakePolytomic, since: int) -> list[str]:
    return [r.path for r in fake.requests[since:]]


def resolve(
    fake: FakePolytomic, sync_id: str, kind: str = "model", budget: float = 10.0, **kwargs: Any
) -> SyncLineage:
    hook = lineage_hook("polytomic_default", budget)
    return SyncLineageResolver(hook).resolve(sync_id, kind, **kwargs)  # type: ignore[arg-type]


def refs(items: list[Any]) -> list[tuple[str, str]]:
    return [(i.ref.namespace, i.ref.name) for i in items if isinstance(i.ref, DatasetRef)]


@pytest.fixture
def warehouse_sync(polytomic_conn: FakePolytomic) -> dict[str, str]:
    """Two Snowflake models (one table, one query) on one connection, into HubSpot contacts."""
    fake = polytomic_conn
    snowflake = fake.add_connection("snowflake")
    hubspot = fake.add_connection("hubspot")
    users = fake.add_model(snowflake, table="CRM.USERS", fields=["id", "email"])
    scores = fake.add_model(snowflake, query="select id, score from ML.SCORES")
    sync_id = fake.add_sync("users", models=[users, scores], target=hubspot, target_object="contacts")
    return {"sync": sync_id, "snowflake": snowflake, "hubspot": hubspot, "users": users, "scores": scores}


def test_hook_reads_sync_models_and_connections(
    polytomic_conn: FakePolytomic, warehouse_sync: dict[str, str]
) -> None:
    hook = PolytomicHook()
    sync = hook.get_sync(warehouse_sync["sync"])
    assert isinstance(sync, ModelSync)
    assert sync.model_ids == [warehouse_sync["users"], warehouse_sync["scores"]]
    assert sync.target is not None
    assert (sync.target.connection_id, sync.target.object) == (warehouse_sync["hubspot"], "contacts")
    model = hook.get_model(warehouse_sync["users"])
    assert (model.connection_id, model.configuration) == (warehouse_sync["snowflake"], {"table": "CRM.USERS"})
    connection = hook.get_polytomic_connection(warehouse_sync["snowflake"])
    assert connection.type_id == "snowflake"
    assert connection.configuration is not None and connection.configuration["account"] == "acme-xy12345"
    bulk_id = polytomic_conn.add_sync("bulk", kind="bulk", schemas=["Account"])
    bulk = hook.get_sync(bulk_id, sync_kind="bulk")
    assert isinstance(bulk, BulkSync) and bulk.destination_configuration == {"schema": "salesforce"}
    assert [(s.id, s.output_name, s.enabled) for s in hook.list_bulk_sync_schemas(bulk_id)] == [
        ("Account", "account", True)
    ]


def test_model_sync_lineage_and_its_requests(
    polytomic_conn: FakePolytomic, warehouse_sync: dict[str, str]
) -> None:
    fake = polytomic_conn
    since = len(fake.requests)
    lineage = resolve(
        fake, warehouse_sync["sync"], counts={"record": 5, "inserted": 3, "updated": 1, "error": 1}
    )
    # The sync, each model, each connection once (both models share one): nothing else.
    assert sorted(api_paths(fake, since)) == sorted(
        [
            f"/api/syncs/{warehouse_sync['sync']}",
            f"/api/models/{warehouse_sync['users']}",
            f"/api/models/{warehouse_sync['scores']}",
            f"/api/connections/{warehouse_sync['snowflake']}",
            f"/api/connections/{warehouse_sync['hubspot']}",
        ]
    )
    assert lineage.requests == 5 and lineage.problems == []
    assert lineage.sync_name == "users"
    table, query = lineage.inputs
    assert (table.ref.namespace, table.ref.name) == ("snowflake://acme-xy12345", "ANALYTICS.CRM.USERS")
    assert table.fields == [("id", "VARCHAR"), ("email", "VARCHAR")]
    assert isinstance(query.ref, QueryRef) and query.ref.sql == "select id, score from ML.SCORES"
    assert refs(lineage.outputs) == [("hubspot://acme.com", "contacts")]
    # inserted + updated: what reached the target.
    assert lineage.outputs[0].row_count == 4
    assert lineage.outputs[0].column_lineage["Email"] == [(table.ref, "email")]


def test_same_connection_on_both_sides_is_read_once(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    pg = fake.add_connection("postgresql")
    model = fake.add_model(pg, table="public.users")
    sync_id = fake.add_sync("copy", models=[model], target=pg, target_object="public.users_copy")
    since = len(fake.requests)
    lineage = resolve(fake, sync_id)
    assert api_paths(fake, since).count(f"/api/connections/{pg}") == 1
    assert refs(lineage.inputs) == [("postgres://postgres.acme.internal:5432", "app.public.users")]
    assert refs(lineage.outputs) == [("postgres://postgres.acme.internal:5432", "app.public.users_copy")]


def test_counts_come_from_the_finished_execution_when_unknown(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    execution_id = fake.run_execution(sync_id, outcome="completed", inserted=[{"id": 1}, {"id": 2}])
    since = len(fake.requests)
    lineage = resolve(fake, sync_id, execution_id=execution_id)
    assert f"/api/syncs/{sync_id}/executions/{execution_id}" in api_paths(fake, since)
    assert lineage.outputs[0].row_count == 2 and lineage.status == "completed"
    # A running execution's counts are not what it wrote: not read, no statistics.
    running = fake.start_execution(sync_id)
    since = len(fake.requests)
    lineage = resolve(fake, sync_id, execution_id=running, execution_finished=False)
    assert not any("/executions/" in p for p in api_paths(fake, since))
    assert lineage.outputs[0].row_count is None


def test_bulk_sync_lineage_per_schema(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync(
        "crm", kind="bulk", source="salesforce", target="snowflake", schemas=["Account", "Contact"]
    )
    execution_id = fake.run_execution(sync_id, outcome="completed", inserted=[{"id": i} for i in range(5)])
    since = len(fake.requests)
    lineage = resolve(fake, sync_id, "bulk", execution_id=execution_id)
    paths = api_paths(fake, since)
    assert len(paths) == 4 and not any(p.endswith("/schemas") for p in paths), paths
    assert refs(lineage.inputs) == [
        ("salesforce://acme.my.salesforce.com", "Account"),
        ("salesforce://acme.my.salesforce.com", "Contact"),
    ]
    assert refs(lineage.outputs) == [
        ("snowflake://acme-xy12345", "ANALYTICS.SALESFORCE.ACCOUNT"),
        ("snowflake://acme-xy12345", "ANALYTICS.SALESFORCE.CONTACT"),
    ]
    per_schema = {s["schema"]: s["record_count"] for s in fake.execution(sync_id, execution_id)["schemas"]}
    assert [o.row_count for o in lineage.outputs] == [per_schema["Account"], per_schema["Contact"]]
    assert sum(o.row_count or 0 for o in lineage.outputs) == 5


def test_bulk_sync_without_an_execution_lists_its_enabled_schemas(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync(
        "warehouse", kind="bulk", source="postgresql", target="bigquery", schemas=["public.orders"]
    )
    since = len(fake.requests)
    lineage = resolve(fake, sync_id, "bulk")
    assert f"/api/bulk/syncs/{sync_id}/schemas" in api_paths(fake, since)
    # A database source names its objects schema.table.
    assert refs(lineage.inputs) == [("postgres://postgres.acme.internal:5432", "app.public.orders")]
    # The output table is the schema's output_name as Polytomic gives it, in the
    # destination schema the sync configures.
    output_name = fake.backends.syncs.get(sync_id).schemas[0].output_name
    assert refs(lineage.outputs) == [("bigquery", f"acme-analytics.postgresql.{output_name}")]
    assert lineage.outputs[0].row_count is None


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("route", "status", "body", "expect"),
    [
        (r"^/api/models/", 404, None, "model"),
        (r"^/api/models/", 500, None, "model"),
        (r"^/api/models/", 200, {"data": ["not", "a", "model"]}, "model"),
        (r"^/api/connections/", 503, None, "connection"),
        (r"^/api/connections/", 200, {"data": {"name": "no id"}}, "connection"),
    ],
)
def test_failed_lookups_leave_partial_lineage(
    polytomic_conn: FakePolytomic,
    warehouse_sync: dict[str, str],
    route: str,
    status: int,
    body: Any,
    expect: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = polytomic_conn
    fault = fake.faults.fail_route(route, status, body=body)
    lineage = resolve(fake, warehouse_sync["sync"])
    assert fault.served >= 1
    assert lineage.problems and all(expect in p for p in lineage.problems)
    assert any("OpenLineage" in r.message and expect in r.message for r in caplog.records)
    if expect == "model":
        # Without the models nothing is read, but the target still is.
        assert lineage.inputs == []
        assert refs(lineage.outputs) == [("hubspot://acme.com", "contacts")]
    else:
        # Unreadable connections: their datasets fall back to polytomic://{connection id}.
        assert refs(lineage.outputs) == [(f"polytomic://{warehouse_sync['hubspot']}", "contacts")]
        assert refs(lineage.inputs) == [
            (f"polytomic://{warehouse_sync['snowflake']}", "CRM.USERS"),
            # A query cannot be parsed without knowing the source's SQL dialect: the model.
            (f"polytomic://{warehouse_sync['snowflake']}", f"models/{warehouse_sync['scores']}"),
        ]


@pytest.mark.parametrize(("status", "body"), [(404, None), (502, None), (200, {"data": 42})])
def test_unreadable_sync_gives_no_datasets(polytomic_conn: FakePolytomic, status: int, body: Any) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.faults.fail_route(rf"^/api/syncs/{sync_id}$", status, body=body)
    lineage = resolve(fake, sync_id, execution_id="e-1")
    assert lineage.inputs == [] and lineage.outputs == []
    assert len(lineage.problems) == 1 and f"sync {sync_id}" in lineage.problems[0]


def test_transient_errors_are_retried_a_little(
    polytomic_conn: FakePolytomic, warehouse_sync: dict[str, str]
) -> None:
    fake = polytomic_conn
    fault = fake.faults.fail_route(r"^/api/connections/", 503, times=1)
    lineage = resolve(fake, warehouse_sync["sync"])
    assert fault.served == 1 and lineage.problems == []
    assert refs(lineage.outputs) == [("hubspot://acme.com", "contacts")]


def test_a_slow_polytomic_cannot_hold_the_task_past_the_budget(
    polytomic_conn: FakePolytomic, warehouse_sync: dict[str, str]
) -> None:
    fake = polytomic_conn
    fake.faults.fail_route(r"^/api/(models|connections)/", 200, body={"data": {}}, delay=30)
    budget = 1.5
    started = time.monotonic()
    lineage = resolve(fake, warehouse_sync["sync"], budget=budget)
    elapsed = time.monotonic() - started
    # The budget bounds everything (slack for a loaded machine), far below the 30 s delay.
    assert elapsed < budget + 2.0, elapsed
    assert lineage.problems and lineage.inputs == []
    assert any("ran out" in p or "Timeout" in p for p in lineage.problems), lineage.problems


@pytest.mark.parametrize(
    ("limit", "budget"), [(None, 6.0), ("10", 6.0), (2, 1.2), (1, 1.0), (600, 30.0), ("x", 6.0)]
)
def test_budget_follows_openlineage_execution_timeout(limit: Any, budget: float) -> None:
    assert lineage_budget(limit) == pytest.approx(budget)


# ---------------------------------------------------------------- without OpenLineage

_WITHOUT_OPENLINEAGE = """
import sys
# Make the OpenLineage provider's extraction API and the client unimportable, as in an
# environment without them. (Airflow's provider discovery may still load the provider's
# metadata module when it is installed; that is Airflow's doing, not the operators'.)
for name in ("airflow.providers.openlineage.extractors", "openlineage", "openlineage_sql"):
    sys.modules[name] = None
from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
ops = [
    PolytomicRunSyncOperator(task_id="a", sync_id="s"),
    PolytomicSyncSensor(task_id="b", sync_id="s"),
    PolytomicDownloadRecordLogsOperator(task_id="c", sync_id="s", execution_id="e", destination="/tmp/x"),
]
print(all(op.get_openlineage_facets_on_complete(None) is None for op in ops))
"""

_IMPORT_COST = """
import sys
import airflow_provider_polytomic.operators.sync, airflow_provider_polytomic.sensors.polytomic
import airflow_provider_polytomic.operators.record_logs
print(sorted(m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage.",
      "airflow_provider_polytomic.lineage")) and m != "airflow.providers.openlineage.get_provider_info"))
"""


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_without_openlineage_the_methods_report_nothing() -> None:
    assert _run(_WITHOUT_OPENLINEAGE) == "True"


def test_importing_the_operators_loads_no_lineage_code() -> None:
    assert json.loads(_run(_IMPORT_COST).replace("'", '"')) == []
