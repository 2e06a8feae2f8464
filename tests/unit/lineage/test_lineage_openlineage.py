"""The OpenLineage facets of the run-sync operator, the sync sensor and the record-log operator.

Needs the OpenLineage provider (``airflow-provider-polytomic[openlineage]``): the CI cells
that install it run this module; the others run ``tests/unit/lineage/test_lineage.py``, which checks the
same lookups and that without the provider the methods report nothing. Every task here runs
against the fake Polytomic over real HTTP; only the task instance is a stand-in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage.extractors", reason="needs the [openlineage] extra")

from openlineage.client.serde import Serde

from airflow_provider_polytomic._compat import TaskDeferred
from airflow_provider_polytomic.exceptions import PolytomicSyncFailedError
from airflow_provider_polytomic.lineage import MAX_FILE_DATASETS
from airflow_provider_polytomic.lineage.openlineage import RUN_FACET_KEY, OperatorLineage
from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.testing import FakePolytomic
from tests.modes import FakeTI, context_for, first_trigger_event, rebuild

FAST = {"poll_interval": 0.05, "status_check_interval": 0.5}
INSERTED = [{"id": i, "email": f"u{i}@example.com"} for i in range(3)]
UPDATED = [{"id": 10, "email": "x@example.com"}]


class TI(FakeTI):
    """The task instance OpenLineage passes (ids only) plus what the operators push."""

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcom.get(key)


def datasets(items: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in items]


def as_json(lineage: OperatorLineage) -> dict[str, Any]:
    """The facets as OpenLineage would serialize them into the event."""
    import json

    return {
        "inputs": [json.loads(Serde.to_json(d)) for d in lineage.inputs],
        "outputs": [json.loads(Serde.to_json(d)) for d in lineage.outputs],
        "run": {k: json.loads(Serde.to_json(v)) for k, v in lineage.run_facets.items()},
    }


@pytest.fixture
def crm_sync(polytomic_conn: FakePolytomic) -> dict[str, str]:
    """BigQuery users (a table) and scores (a query) into Salesforce Contact."""
    fake = polytomic_conn
    users = fake.add_model("bigquery", table="analytics.users", fields=["id", "email"])
    scores = fake.add_model(
        "bigquery", query="select u.id, s.score from analytics.users u join ml.scores s using (id)"
    )
    sync_id = fake.add_sync("crm", models=[users, scores], target="salesforce", target_object="Contact")
    return {"sync": sync_id, "users": users, "scores": scores}


BQ_INPUTS = [
    ("bigquery", "acme-analytics.analytics.users"),
    ("bigquery", "acme-analytics.ml.scores"),
]
SF_CONTACT = ("salesforce://acme.my.salesforce.com", "Contact")


def test_run_sync_operator_facets(polytomic_conn: FakePolytomic, crm_sync: dict[str, str]) -> None:
    fake = polytomic_conn
    fake.set_auto_outcome(crm_sync["sync"], "completed", after=0.2, inserted=INSERTED, updated=UPDATED)
    op = PolytomicRunSyncOperator(task_id="run_sync", sync_id=crm_sync["sync"], deferrable=False, **FAST)
    ti = TI()
    result = op.execute(context_for(ti))
    since = len(fake.requests)
    lineage = op.get_openlineage_facets_on_complete(ti)
    # Query models are parsed: the table model and the query share analytics.users once.
    assert datasets(lineage.inputs) == BQ_INPUTS
    assert datasets(lineage.outputs) == [SF_CONTACT]
    event = as_json(lineage)
    assert event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 4
    sources = event["outputs"][0]["facets"]["columnLineage"]["fields"]["Email"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in sources] == [
        ("bigquery", "acme-analytics.analytics.users", "email")
    ]
    assert [f["name"] for f in event["inputs"][0]["facets"]["schema"]["fields"]] == ["id", "email"]
    run = event["run"][RUN_FACET_KEY]
    assert run["syncId"] == crm_sync["sync"] and run["syncKind"] == "model" and run["syncName"] == "crm"
    assert run["executionId"] == result["execution_id"] and run["status"] == "completed"
    assert run["executionUrl"] == ti.xcom["execution_url"]
    assert run["executionUrl"].endswith(f"/syncs/{crm_sync['sync']}/executions/{result['execution_id']}")
    assert run["counts"]["inserted"] == 3 and "problems" not in run
    # The counts came with the result: sync + 2 models + 2 connections, nothing else.
    assert len(fake.requests) - since == 5
    # Cached per task instance: asking again sends nothing.
    again = op.get_openlineage_facets_on_complete(ti)
    assert again is lineage and len(fake.requests) - since == 5


def test_deferred_operator_facets_after_resuming(
    polytomic_conn: FakePolytomic, crm_sync: dict[str, str]
) -> None:
    fake = polytomic_conn
    fake.set_auto_outcome(crm_sync["sync"], "completed", after=0.3, inserted=INSERTED)
    ti = TI()

    def make() -> PolytomicRunSyncOperator:
        return PolytomicRunSyncOperator(task_id="run_sync", sync_id=crm_sync["sync"], deferrable=True, **FAST)

    with pytest.raises(TaskDeferred) as deferred:
        make().execute(context_for(ti))
    payload = asyncio.run(first_trigger_event(rebuild(deferred.value.trigger), 30))
    resumed = make()  # Airflow resumes a fresh instance: nothing of the first survives.
    resumed.resume_execution(deferred.value.method_name, {"event": payload}, context_for(ti))
    lineage = resumed.get_openlineage_facets_on_complete(ti)
    assert datasets(lineage.inputs) == BQ_INPUTS and datasets(lineage.outputs) == [SF_CONTACT]
    run = as_json(lineage)["run"][RUN_FACET_KEY]
    assert run["executionId"] == payload["result"]["execution_id"]
    assert run["executionUrl"].endswith(payload["result"]["execution_id"])
    assert as_json(lineage)["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_failed_execution_still_reports_its_datasets(
    polytomic_conn: FakePolytomic, crm_sync: dict[str, str]
) -> None:
    fake = polytomic_conn
    fake.set_auto_outcome(crm_sync["sync"], "failed", after=0.1, error="target unreachable")
    op = PolytomicRunSyncOperator(task_id="run_sync", sync_id=crm_sync["sync"], deferrable=False, **FAST)
    ti = TI()
    with pytest.raises(PolytomicSyncFailedError):
        op.execute(context_for(ti))
    lineage = op.get_openlineage_facets_on_failure(ti)
    assert datasets(lineage.outputs) == [SF_CONTACT]
    run = as_json(lineage)["run"][RUN_FACET_KEY]
    assert run["status"] == "failed" and run["executionId"] == ti.xcom["execution_id"]


def test_operator_without_waiting_reports_no_statistics(
    polytomic_conn: FakePolytomic, crm_sync: dict[str, str]
) -> None:
    op = PolytomicRunSyncOperator(
        task_id="run_sync", sync_id=crm_sync["sync"], wait_for_completion=False, **FAST
    )
    ti = TI()
    op.execute(context_for(ti))
    lineage = op.get_openlineage_facets_on_complete(ti)
    assert datasets(lineage.outputs) == [SF_CONTACT]
    assert "outputStatistics" not in as_json(lineage)["outputs"][0]["outputFacets"]


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_facets_for_a_bulk_sync(polytomic_conn: FakePolytomic, deferrable: bool) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync(
        "crm", kind="bulk", source="salesforce", target="snowflake", schemas=["Account", "Contact"]
    )
    execution_id = fake.run_execution(sync_id, outcome="completed", inserted=[{"id": i} for i in range(4)])

    def make() -> PolytomicSyncSensor:
        return PolytomicSyncSensor(
            task_id="wait",
            sync_id=sync_id,
            execution_id=execution_id,
            sync_kind="bulk",
            deferrable=deferrable,
            poke_interval=0.05,
            timeout=30,
        )

    ti = TI()
    sensor = make()
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context_for(ti))
        payload = asyncio.run(first_trigger_event(rebuild(deferred.value.trigger), 30))
        sensor = make()
        sensor.resume_execution(deferred.value.method_name, {"event": payload}, context_for(ti))
    else:
        sensor.execute(context_for(ti))
    lineage = sensor.get_openlineage_facets_on_complete(ti)
    assert datasets(lineage.inputs) == [
        ("salesforce://acme.my.salesforce.com", "Account"),
        ("salesforce://acme.my.salesforce.com", "Contact"),
    ]
    assert datasets(lineage.outputs) == [
        ("snowflake://acme-xy12345", "ANALYTICS.SALESFORCE.ACCOUNT"),
        ("snowflake://acme-xy12345", "ANALYTICS.SALESFORCE.CONTACT"),
    ]
    rows = [o["outputFacets"]["outputStatistics"]["rowCount"] for o in as_json(lineage)["outputs"]]
    assert sum(rows) == 4
    run = as_json(lineage)["run"][RUN_FACET_KEY]
    assert (run["syncKind"], run["executionId"]) == ("bulk", execution_id)
    assert run["executionUrl"].endswith(f"/bulk/syncs/{sync_id}/executions/{execution_id}")


def test_lookup_failures_never_fail_the_task(polytomic_conn: FakePolytomic, crm_sync: dict[str, str]) -> None:
    fake = polytomic_conn
    fake.set_auto_outcome(crm_sync["sync"], "completed", after=0.1, inserted=INSERTED)
    op = PolytomicRunSyncOperator(task_id="run_sync", sync_id=crm_sync["sync"], deferrable=False, **FAST)
    ti = TI()
    result = op.execute(context_for(ti))
    assert result["outcome"] == "succeeded"
    # Now every lookup lineage makes fails; the task has succeeded and lineage is partial.
    fake.faults.fail_route(r"^/api/(syncs/[^/]+|models/.*|connections/.*)$", 500)
    lineage = op.get_openlineage_facets_on_complete(ti)
    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [] and lineage.outputs == []
    run = as_json(lineage)["run"][RUN_FACET_KEY]
    assert run["executionId"] == result["execution_id"] and run["problems"]


def test_an_unexpected_error_gives_empty_lineage(
    polytomic_conn: FakePolytomic, crm_sync: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_polytomic.lineage as lineage_module

    def boom(task: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(lineage_module, "resolve_sync_task", boom)
    op = PolytomicRunSyncOperator(task_id="run_sync", sync_id=crm_sync["sync"], deferrable=False, **FAST)
    lineage = op.get_openlineage_facets_on_complete(TI())
    assert isinstance(lineage, OperatorLineage) and lineage.inputs == [] and lineage.outputs == []


# ------------------------------------------------------------------------- record logs


def _download(
    fake: FakePolytomic, tmp_path: Path, per_file: int, **kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    sync_id = fake.add_sync("contacts")
    execution_id = fake.run_execution(
        sync_id, outcome="completed", inserted=INSERTED, updated=UPDATED, records_per_file=per_file
    )
    op = PolytomicDownloadRecordLogsOperator(
        task_id="record_logs", sync_id=sync_id, execution_id=execution_id, destination=str(tmp_path), **kwargs
    )
    return op, op.execute(context={})  # type: ignore[arg-type]


def test_record_log_files_are_output_datasets(polytomic_conn: FakePolytomic, tmp_path: Path) -> None:
    fake = polytomic_conn
    op, xcom = _download(fake, tmp_path, per_file=2, count_records=True)
    since = len(fake.requests)
    lineage = op.get_openlineage_facets_on_complete(TI())
    assert len(fake.requests) == since  # the files are known: no API call
    files = sorted(xcom["files"], key=lambda f: f["uri"])
    assert len(files) == 3
    event = as_json(lineage)
    outputs = sorted(event["outputs"], key=lambda o: o["name"])
    assert [(o["namespace"], o["name"]) for o in outputs] == [
        ("file", f["uri"][len("file://") :]) for f in files
    ]
    for output, f in zip(outputs, files, strict=True):
        assert Path(output["name"]).is_file()
        stats = output["outputFacets"]["outputStatistics"]
        assert (stats["rowCount"], stats["size"], stats.get("fileCount")) == (f["records"], f["bytes"], 1)
    run = event["run"][RUN_FACET_KEY]
    assert run["executionId"] == xcom["execution_id"] and run["counts"] == {"inserted": 3, "updated": 1}


def test_many_record_log_files_are_reported_per_folder(
    polytomic_conn: FakePolytomic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_polytomic.lineage as lineage_module

    monkeypatch.setattr(lineage_module, "MAX_FILE_DATASETS", 2)
    op, xcom = _download(polytomic_conn, tmp_path, per_file=1)
    assert len(xcom["files"]) == 4 > lineage_module.MAX_FILE_DATASETS == 2 < MAX_FILE_DATASETS
    outputs = {
        o["name"]: o["outputFacets"]["outputStatistics"]
        for o in as_json(op.get_openlineage_facets_on_complete(TI()))["outputs"]
    }
    folders = {str(Path(f["uri"][len("file://") :]).parent) for f in xcom["files"]}
    assert set(outputs) == folders and len(folders) == 2
    assert sum(s["fileCount"] for s in outputs.values()) == 4
    assert sum(s["size"] for s in outputs.values()) == sum(f["bytes"] for f in xcom["files"])
    # Records were not counted, so no folder claims a row count.
    assert all(s.get("rowCount") is None for s in outputs.values())


def test_record_log_operator_that_wrote_nothing_reports_nothing(tmp_path: Path) -> None:
    op = PolytomicDownloadRecordLogsOperator(
        task_id="r", sync_id="s", execution_id="e", destination=str(tmp_path)
    )
    lineage = op.get_openlineage_facets_on_complete(TI())
    assert lineage.inputs == [] and lineage.outputs == []
