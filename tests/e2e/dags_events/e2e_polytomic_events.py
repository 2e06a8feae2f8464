"""Test-only DAGs for tests/e2e/test_e2e_events.py: asset-scheduled on two Polytomic syncs.

* ``e2e_polytomic_poll`` - its asset has a polling ``PolytomicEventTrigger`` watcher.
* ``e2e_polytomic_webhook`` - its asset has no watcher: only the webhook receiver
  (REST asset events) can start it.

Each run returns what started it and what ``events_for_run`` recovered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_polytomic.assets import events_for_run, sync_asset

POLL_SYNC_ID = "0f8b6c1e-5d2a-4c3b-9e7f-1a2b3c4d5e6f"
WEBHOOK_SYNC_ID = "7c9d0e1f-2a3b-4c5d-8e6f-a1b2c3d4e5f6"

polled = sync_asset(POLL_SYNC_ID, watch=True, poll_interval=1, lookback=600, commit_delay=2)
pushed = sync_asset(WEBHOOK_SYNC_ID)


def _report(context: dict[str, Any]) -> dict[str, Any]:
    triggering = [
        dict(event.extra) for events in context["triggering_asset_events"].values() for event in events
    ]
    batch = events_for_run(context)
    batch.commit()
    return {"triggering": triggering, "recovered": [e["id"] for e in batch.events]}


for dag_id, asset in (("e2e_polytomic_poll", polled), ("e2e_polytomic_webhook", pushed)):
    with DAG(
        dag_id=dag_id,
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["e2e"],
    ):

        @task(inlets=[asset])
        def report(**context: Any) -> dict[str, Any]:
            return _report(context)

        report()
