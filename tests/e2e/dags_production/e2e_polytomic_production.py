"""Test-only DAGs for tests/e2e/test_e2e_production.py (PostgreSQL, two triggerers).

* ``e2e_prod_sensors`` - one deferred ``PolytomicSyncSensor`` per entry of the run's
  ``conf["waits"]`` (``[{"sync_id", "execution_id"}, ...]``), as mapped task instances of
  ``wait``; no retries, so a task that succeeds did so in its first and only try.
* ``e2e_prod_watch`` - scheduled on a sync's asset watched by a polling
  ``PolytomicEventTrigger`` (interval 1 s, cursor committed once 2 s old).
* ``e2e_prod_webhook`` - scheduled on a sync's asset with no watcher: only the webhook
  receiver (REST asset events) feeds it. Both asset-scheduled DAGs only hold an
  ``EmptyOperator`` (the scheduler finishes it without a worker): the tests count asset
  events, not task runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

from airflow_provider_polytomic.assets import sync_asset
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor

WATCH_SYNC_ID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
WEBHOOK_SYNC_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
SENSOR_TIMEOUT = 1200

with DAG(
    dag_id="e2e_prod_sensors",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=1000,
    tags=["e2e"],
):

    @task
    def plan(**context: Any) -> list[dict[str, str]]:
        return list(context["dag_run"].conf["waits"])

    PolytomicSyncSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=1,
        timeout=SENSOR_TIMEOUT,
        retries=0,
    ).expand_kwargs(plan())

watched = sync_asset(WATCH_SYNC_ID, watch=True, poll_interval=1, lookback=600, commit_delay=2)
pushed = sync_asset(WEBHOOK_SYNC_ID)

for dag_id, asset in (("e2e_prod_watch", watched), ("e2e_prod_webhook", pushed)):
    with DAG(
        dag_id=dag_id,
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["e2e"],
    ):
        EmptyOperator(task_id="noted")
