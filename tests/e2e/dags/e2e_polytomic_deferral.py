"""Test-only DAG: real deferral through the triggerer (driven by tests/e2e/test_e2e_dags.py).

Everything comes from the run's conf, so the test decides ids and timing:
``{"sync_id", "execution_id", "run_sync_id", "timeout_sync_id", "timeout_seconds"}``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor

with DAG(
    dag_id="e2e_polytomic_deferral",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["e2e"],
):
    # Waits on an execution the test started; the test completes it once it saw this task deferred.
    PolytomicSyncSensor(
        task_id="wait_for_execution",
        sync_id="{{ dag_run.conf['sync_id'] }}",
        execution_id="{{ dag_run.conf['execution_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    # Starts an execution itself, then waits deferred; the test completes it.
    PolytomicRunSyncOperator(
        task_id="run_sync",
        sync_id="{{ dag_run.conf['run_sync_id'] }}",
        deferrable=True,
        poll_interval=1,
        timeout=600,
    )

    # Never completes: the deferral times out and soft_fail turns that into "skipped".
    PolytomicSyncSensor(
        task_id="wait_times_out",
        sync_id="{{ dag_run.conf['timeout_sync_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=8,
        soft_fail=True,
    )
