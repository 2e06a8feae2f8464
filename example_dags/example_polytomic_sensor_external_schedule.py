"""Gate a DAG on a Polytomic sync that Polytomic schedules itself.

The sensor waits for the first execution of the sync that *finishes after* a baseline:

* scheduled runs: the start of the run's data interval (``data_interval_start``), so a
  completion during or after the interval counts;
* manual runs: Airflow 3 gives them no logical date and no data interval (``ds`` is
  undefined), so the baseline is when the run was triggered (``dag_run.run_after``).

It waits in the triggerer (``deferrable=True``); after ``timeout`` seconds the task is
skipped rather than failed (``soft_fail=True``), so a day without a sync does not page anyone.

Configuration: Airflow Variable ``polytomic_example_scheduled_sync_id``, else the environment
variable ``POLYTOMIC_EXAMPLE_SCHEDULED_SYNC_ID``; ``POLYTOMIC_EXAMPLE_POLL_INTERVAL`` (seconds,
default 60); connection ``polytomic_default``.
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

from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor


def _setting(variable: str, env: str, placeholder: str) -> str:
    """Template reading Variable ``variable`` at run time; default ``$env``, else ``placeholder``."""
    default = os.environ.get(env) or placeholder
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", default):
        raise ValueError(f"{env} must be a plain id, got {default!r}")
    return "{{ var.value.get('" + variable + "', '" + default + "') }}"


SYNC_ID = _setting(
    "polytomic_example_scheduled_sync_id",
    "POLYTOMIC_EXAMPLE_SCHEDULED_SYNC_ID",
    "set-polytomic_example_scheduled_sync_id",
)
POLL_INTERVAL = float(os.environ.get("POLYTOMIC_EXAMPLE_POLL_INTERVAL") or 60)
# [START baseline]
# Works for scheduled runs (data interval) and manual ones (no logical date in Airflow 3).
BASELINE = (
    "{{ data_interval_start if (data_interval_start is defined and data_interval_start) "
    "else dag_run.run_after }}"
)
# [END baseline]

with DAG(
    dag_id="example_polytomic_sensor_external_schedule",
    description="Wait for a sync Polytomic runs on its own schedule, then use its results.",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "polytomic"],
    doc_md=__doc__,
):
    # [START sensor]
    wait_for_sync = PolytomicSyncSensor(
        task_id="wait_for_sync",
        sync_id=SYNC_ID,
        completed_after=BASELINE,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=6 * 3600,
        soft_fail=True,
    )
    # [END sensor]

    @task
    def use_results(summary: dict[str, Any]) -> dict[str, Any]:
        """Downstream work; here, print what the sensor reported."""
        print(
            f"Polytomic execution {summary['execution_id']} finished at {summary['completed_at']} "
            f"({summary['outcome']}): {summary['counts']}"
        )
        return summary["counts"]

    # .output is an XComArg that Airflow resolves to the sensor's summary at run time.
    use_results(wait_for_sync.output)  # type: ignore[arg-type]
