"""Run a Polytomic bulk (ELT) sync without holding a worker slot while it runs.

``start_bulk_sync`` starts the execution and returns at once with its id
(``wait_for_completion=False``); ``wait_for_bulk_sync`` waits on exactly that execution in
the triggerer. Splitting start and wait lets you put other work in between, and a retry of
the wait never starts a second execution.

Configuration: Airflow Variable ``polytomic_example_bulk_sync_id``, else the environment
variable ``POLYTOMIC_EXAMPLE_BULK_SYNC_ID``; ``POLYTOMIC_EXAMPLE_POLL_INTERVAL`` (seconds,
default 30); connection ``polytomic_default``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor


def _setting(variable: str, env: str, placeholder: str) -> str:
    """Template reading Variable ``variable`` at run time; default ``$env``, else ``placeholder``."""
    default = os.environ.get(env) or placeholder
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", default):
        raise ValueError(f"{env} must be a plain id, got {default!r}")
    return "{{ var.value.get('" + variable + "', '" + default + "') }}"


BULK_SYNC_ID = _setting(
    "polytomic_example_bulk_sync_id", "POLYTOMIC_EXAMPLE_BULK_SYNC_ID", "set-polytomic_example_bulk_sync_id"
)
POLL_INTERVAL = float(os.environ.get("POLYTOMIC_EXAMPLE_POLL_INTERVAL") or 30)

with DAG(
    dag_id="example_polytomic_bulk_sync",
    description="Start a Polytomic bulk sync, then wait for that execution in the triggerer.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "polytomic"],
    doc_md=__doc__,
):
    # [START bulk_sync]
    start_bulk_sync = PolytomicRunSyncOperator(
        task_id="start_bulk_sync",
        sync_id=BULK_SYNC_ID,
        sync_kind="bulk",
        fetch_mode="incremental",
        wait_for_completion=False,
    )

    wait_for_bulk_sync = PolytomicSyncSensor(
        task_id="wait_for_bulk_sync",
        sync_id=BULK_SYNC_ID,
        sync_kind="bulk",
        execution_id="{{ ti.xcom_pull(task_ids='start_bulk_sync', key='execution_id') }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=4 * 3600,
        fail_on_errors=True,
    )
    # [END bulk_sync]

    @task
    def report(summary: dict[str, Any]) -> dict[str, Any]:
        """Print the bulk execution's outcome and record counts."""
        print(f"Bulk execution {summary['execution_id']}: {summary['outcome']}, counts {summary['counts']}")
        return {"execution_id": summary["execution_id"], "records": summary["counts"].get("record")}

    start_bulk_sync >> wait_for_bulk_sync
    # .output is an XComArg that Airflow resolves to the sensor's summary at run time.
    report(wait_for_bulk_sync.output)  # type: ignore[arg-type]
