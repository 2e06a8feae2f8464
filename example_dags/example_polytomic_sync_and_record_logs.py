"""Run a Polytomic sync, wait for it in the triggerer, download its record logs, report counts.

Configuration (no code change needed to point the DAG at your sync or at the fake server):

* sync id: Airflow Variable ``polytomic_example_sync_id``, else the environment variable
  ``POLYTOMIC_EXAMPLE_SYNC_ID`` (read when the DAG file is parsed);
* where the record logs go: ``POLYTOMIC_EXAMPLE_DESTINATION`` (any ObjectStoragePath URI, e.g.
  ``s3://aws_default@bucket/polytomic``), default ``$AIRFLOW_HOME/polytomic_record_logs``;
  each run writes under ``<destination>/<run id>/``;
* how often the wait polls Polytomic: ``POLYTOMIC_EXAMPLE_POLL_INTERVAL`` seconds (default 30);
* the connection: ``polytomic_default`` (API key in the password, host = Polytomic URL).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, ObjectStoragePath, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.io.path import ObjectStoragePath

from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator


def _setting(variable: str, env: str, placeholder: str) -> str:
    """Template reading Variable ``variable`` at run time; default ``$env``, else ``placeholder``."""
    default = os.environ.get(env) or placeholder
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", default):
        raise ValueError(f"{env} must be a plain id, got {default!r}")
    return "{{ var.value.get('" + variable + "', '" + default + "') }}"


SYNC_ID = _setting("polytomic_example_sync_id", "POLYTOMIC_EXAMPLE_SYNC_ID", "set-polytomic_example_sync_id")
DESTINATION = os.environ.get("POLYTOMIC_EXAMPLE_DESTINATION") or "file://" + os.path.join(
    os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "polytomic_record_logs"
)
POLL_INTERVAL = float(os.environ.get("POLYTOMIC_EXAMPLE_POLL_INTERVAL") or 30)


def _count_records(text: str) -> int:
    """Records in a record-log file: a JSON array, or one JSON object per line."""
    stripped = text.strip()
    if not stripped:
        return 0
    if stripped.startswith("["):
        return len(json.loads(stripped))
    return sum(1 for line in stripped.splitlines() if line.strip())


with DAG(
    dag_id="example_polytomic_sync_and_record_logs",
    description="Run a Polytomic sync, wait (deferred), download inserted/updated record logs, count them.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "polytomic"],
    doc_md=__doc__,
):
    # [START run_sync]
    # Starts the sync (idempotently), publishes execution_id/execution_url, then waits in the triggerer.
    run_sync = PolytomicRunSyncOperator(
        task_id="run_sync",
        sync_id=SYNC_ID,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )
    # [END run_sync]

    # [START download_record_logs]
    download_record_logs = PolytomicDownloadRecordLogsOperator(
        task_id="download_record_logs",
        sync_id=SYNC_ID,
        execution_id=run_sync.output["execution_id"],  # resolved when the task runs
        record_types=["inserted", "updated"],
        destination=DESTINATION.rstrip("/") + "/{{ run_id | replace(':', '_') | replace('+', '_') }}",
    )
    # [END download_record_logs]

    @task
    def report_counts(downloaded: dict[str, Any], sync: dict[str, Any]) -> dict[str, Any]:
        """Read every downloaded file back through ObjectStoragePath and count its records."""
        counted: dict[str, int] = {}
        for entry in downloaded["files"]:
            path = ObjectStoragePath(entry["uri"])
            records = _count_records(path.read_text())
            counted[entry["record_type"]] = counted.get(entry["record_type"], 0) + records
            print(f"{entry['record_type']:>9}: {records:6d} records in {entry['uri']}")
        report = {
            "sync_id": sync["sync_id"],
            "execution_id": sync["execution_id"],
            "outcome": sync["outcome"],
            "files": len(downloaded["files"]),
            "counted": counted,
            "reported_by_download": downloaded["counts"],
        }
        print(f"Polytomic execution {sync['execution_id']} {sync['outcome']}: {counted}")
        return report

    # .output is an XComArg that Airflow resolves to the task's return value at run time.
    report = report_counts(download_record_logs.output, run_sync.output)  # type: ignore[arg-type]
    run_sync >> download_record_logs >> report
