"""Run a DAG as soon as a Polytomic sync finishes - no sensor, no schedule.

The sync's asset (``polytomic://<sync_id>``) is watched by a ``PolytomicEventTrigger``
in the triggerer: each completion or failure event of the sync becomes an asset event,
and the DAG, scheduled on the asset, runs. If the organization's webhook points at the
receiver (``PolytomicEnsureWebhookOperator``), deliveries start the DAG within about a
second; the polling watcher is the safety net for deliveries Polytomic drops (its
delivery is at-most-once), and ``webhook_dedupe=True`` keeps the two from recording the
same event twice.

Airflow can fold events that arrive close together into one run, and a folded event is
not necessarily listed in ``triggering_asset_events``. The task therefore asks
``events_for_run`` for every event since its last commit (kept in the asset state store
of the sync's asset, so the task declares the asset as an inlet), handles them, then
commits. ``max_active_runs=1`` keeps two runs from handling the same window.

Configuration: environment variable ``POLYTOMIC_EXAMPLE_WATCHED_SYNC_ID`` (the sync's
UUID; a placeholder otherwise), connection ``polytomic_default``.

Needs Airflow 3.0+ (asset watchers); the event watermark is kept across runs on 3.3+.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2: sync_asset() below says this DAG needs Airflow 3
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_polytomic.assets import events_for_run, sync_asset

# Read at parse time: an asset watcher's trigger arguments must not change between parses.
SYNC_ID = os.environ.get("POLYTOMIC_EXAMPLE_WATCHED_SYNC_ID") or "00000000-0000-4000-8000-000000000000"

# [START asset_watcher]
contacts_sync = sync_asset(SYNC_ID, watch=True, poll_interval=30, webhook_dedupe=True)

with DAG(
    dag_id="example_polytomic_asset_watcher",
    schedule=[contacts_sync],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "polytomic"],
    doc_md=__doc__,
):

    @task(inlets=[contacts_sync])
    def handle_sync_events(**context: Any) -> list[dict[str, Any]]:
        """Handle every event since the last run: completions and failures, oldest first."""
        batch = events_for_run(context)
        handled = []
        for event in batch.events:
            # A real DAG would load the records Polytomic changed (event["payload"] lists
            # the record-log URLs of a sync.completed) or alert on a failure.
            print(f"{event['created_at']} {event['type']} execution {event['execution_id']}")
            handled.append({"id": event["id"], "type": event["type"], "outcome": event["outcome"]})
        batch.commit()
        return handled

    handle_sync_events()
# [END asset_watcher]
