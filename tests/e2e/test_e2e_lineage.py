"""OpenLineage on a real Airflow: ``airflow dags test`` with the OpenLineage provider's file
transport, against the fake Polytomic server.

The DAG's events must name the sync's sources and target (and the record-log files) as
their inputs and outputs. Without the provider the same DAG must run unchanged; that half
runs wherever the provider is absent (the CI cells without the ``[openlineage]`` extra),
and the half with events wherever it is installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_polytomic.testing import FakePolytomic
from tests.e2e.harness import AirflowHome, polytomic_conn_env

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).resolve().parent / "dags_lineage"
DAG_ID = "e2e_polytomic_lineage"
HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None
ALL_SUCCEEDED = {"run_sync": "success", "wait_bulk": "success", "record_logs": "success"}
INSERTED = [{"id": i, "email": f"user{i}@example.com"} for i in range(1, 4)]


def _run(
    tmp_path: Path, *, lineage_file: Path | None
) -> tuple[AirflowHome, Any, dict[str, str], FakePolytomic]:
    fake = FakePolytomic()
    fake.start()
    warehouse = fake.add_connection("snowflake")
    users = fake.add_model(warehouse, table="CRM.USERS", fields=["id", "email"])
    sync_id = fake.add_sync("users to hubspot", models=[users], target="hubspot", target_object="contacts")
    fake.set_auto_outcome(sync_id, "completed", after=1, inserted=INSERTED, records_per_file=2)
    bulk_id = fake.add_sync("crm", kind="bulk", source="salesforce", target=warehouse, schemas=["Account"])
    bulk_execution = fake.run_execution(bulk_id, outcome="completed", inserted=INSERTED[:2])
    env = polytomic_conn_env(fake)
    if lineage_file is not None:
        env.update(
            {
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(lineage_file), "append": True}
                ),
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "e2e-airflow",
            }
        )
    home = AirflowHome(tmp_path / "airflow", dags_folder=DAGS, env=env)
    home.migrate()
    conf = {
        "sync_id": sync_id,
        "bulk_sync_id": bulk_id,
        "bulk_execution_id": bulk_execution,
        "destination": (tmp_path / "record_logs").as_uri(),
    }
    result = home.dags_test(DAG_ID, conf=conf)
    ids = {"sync": sync_id, "bulk": bulk_id, "bulk_execution": bulk_execution, "warehouse": warehouse}
    return home, result, ids, fake


def _complete_events(path: Path) -> dict[str, dict[str, Any]]:
    """The COMPLETE event of each task, by task id."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].startswith(f"{DAG_ID}."):
            out[event["job"]["name"].split(".", 1)[1]] = event
    return out


def _names(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((d["namespace"], d["name"]) for d in items)


@pytest.mark.skipif(
    not HAS_OPENLINEAGE, reason="needs the [openlineage] extra (the CI cells that install it)"
)
def test_dag_run_emits_the_syncs_datasets(tmp_path: Path) -> None:
    lineage_file = tmp_path / "openlineage.jsonl"
    home, result, ids, fake = _run(tmp_path, lineage_file=lineage_file)
    try:
        assert result.returncode == 0, result.output[-5000:]
        assert home.task_states(DAG_ID, result.run_id or "") == ALL_SUCCEEDED
        events = _complete_events(lineage_file)
        assert set(events) == {"run_sync", "wait_bulk", "record_logs"}, list(events)

        run_sync = events["run_sync"]
        assert _names(run_sync["inputs"]) == [("snowflake://acme-xy12345", "ANALYTICS.CRM.USERS")]
        assert _names(run_sync["outputs"]) == [("hubspot://acme.com", "contacts")]
        assert run_sync["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
        facet = run_sync["run"]["facets"]["polytomicExecution"]
        execution_id = home.xcom(DAG_ID, result.run_id or "", "run_sync")["execution_id"]
        assert (facet["syncId"], facet["executionId"], facet["status"]) == (
            ids["sync"],
            execution_id,
            "completed",
        )
        assert facet["executionUrl"].endswith(f"/syncs/{ids['sync']}/executions/{execution_id}")

        bulk = events["wait_bulk"]
        assert _names(bulk["inputs"]) == [("salesforce://acme.my.salesforce.com", "Account")]
        assert _names(bulk["outputs"]) == [("snowflake://acme-xy12345", "ANALYTICS.SALESFORCE.ACCOUNT")]
        assert bulk["run"]["facets"]["polytomicExecution"]["executionId"] == ids["bulk_execution"]

        written = sorted(p for p in (tmp_path / "record_logs").rglob("*.json") if "_polytomic" not in p.parts)
        assert len(written) == 2  # 3 inserted records, 2 per file
        assert _names(events["record_logs"]["outputs"]) == sorted(("file", str(p)) for p in written)
    finally:
        fake.stop()


@pytest.mark.skipif(
    HAS_OPENLINEAGE, reason="checks a run without the OpenLineage provider (the CI cells without it)"
)
def test_dag_runs_unchanged_without_openlineage(tmp_path: Path) -> None:
    home, result, _, fake = _run(tmp_path, lineage_file=None)
    try:
        assert result.returncode == 0, result.output[-5000:]
        assert home.task_states(DAG_ID, result.run_id or "") == ALL_SUCCEEDED
        # No lineage lookups happened: only the calls the tasks themselves make.
        assert not any(r.path.startswith(("/api/models/", "/api/connections/")) for r in fake.requests)
    finally:
        fake.stop()
