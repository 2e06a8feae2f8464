"""End-to-end DAG for every supported Airflow, Airflow 2.11 included.

Three executions are started at once; the sensor waits for the first in poke mode, for the
second in reschedule mode and for the third deferred (the trigger runs in-line under
``airflow dags test``); then the record-log operator downloads the first one's logs.
The test drives when each execution finishes (tests/e2e/test_e2e_every_airflow.py).
"""

from __future__ import annotations

import os
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor

SYNCS = {
    name: os.environ.get(f"E2E_SYNC_{name.upper()}", "unset") for name in ("poke", "reschedule", "deferred")
}
DESTINATION = os.environ.get("E2E_DESTINATION", "/tmp/e2e-record-logs")


def _execution(name: str) -> str:
    return "{{ ti.xcom_pull(task_ids='start_" + name + "', key='execution_id') }}"


with DAG(
    dag_id="e2e_polytomic_sensor_modes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
):
    starts = [
        PolytomicRunSyncOperator(task_id=f"start_{name}", sync_id=sync_id, wait_for_completion=False)
        for name, sync_id in SYNCS.items()
    ]
    waits = [
        PolytomicSyncSensor(
            task_id=f"wait_{name}",
            sync_id=SYNCS[name],
            execution_id=_execution(name),
            mode="reschedule" if name == "reschedule" else "poke",
            deferrable=name == "deferred",
            poke_interval=1,
            timeout=180,
        )
        for name in SYNCS
    ]
    record_logs = PolytomicDownloadRecordLogsOperator(
        task_id="record_logs",
        sync_id=SYNCS["poke"],
        execution_id=_execution("poke"),
        destination=DESTINATION,
    )
    starts >> waits[0]
    waits[0] >> waits[1] >> waits[2] >> record_logs
