"""Test-only DAG for OpenLineage (driven by tests/e2e/test_e2e_lineage.py).

A model sync run and waited on deferred, a sensor on a bulk sync's execution, and the
record logs of the model sync's execution. Ids come from the run's conf:
``{"sync_id", "bulk_sync_id", "bulk_execution_id", "destination"}``.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore[attr-defined,no-redef,unused-ignore]

from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor

with DAG(
    dag_id="e2e_polytomic_lineage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["e2e"],
):
    run_sync = PolytomicRunSyncOperator(
        task_id="run_sync",
        sync_id="{{ dag_run.conf['sync_id'] }}",
        deferrable=True,
        poll_interval=1,
        timeout=300,
    )
    PolytomicSyncSensor(
        task_id="wait_bulk",
        sync_id="{{ dag_run.conf['bulk_sync_id'] }}",
        execution_id="{{ dag_run.conf['bulk_execution_id'] }}",
        sync_kind="bulk",
        poke_interval=1,
        timeout=300,
    )
    run_sync >> PolytomicDownloadRecordLogsOperator(
        task_id="record_logs",
        sync_id="{{ dag_run.conf['sync_id'] }}",
        execution_id="{{ ti.xcom_pull(task_ids='run_sync')['execution_id'] }}",
        destination="{{ dag_run.conf['destination'] }}",
        record_types=("inserted", "updated"),
    )
