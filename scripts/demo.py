"""One-command demo: run example DAG 1 end to end on a real Airflow 3 against a fake Polytomic.

    python scripts/demo.py            # (``make demo`` also creates the venv first)

What it does, and undoes:

1. starts the fake Polytomic API on 127.0.0.1 (in this process) with a ``contacts`` sync
   whose executions complete 2 seconds after they start, with a few inserted and updated
   records;
2. prepares ``.demo/airflow`` as AIRFLOW_HOME (SQLite, wiped first) and runs
   ``airflow db migrate``;
3. runs ``airflow dags test example_polytomic_sync_and_record_logs``: start the sync, wait
   for it deferred (the trigger runs in-line), download the inserted/updated record logs to
   ``.demo/record_logs/``, count them back through ObjectStoragePath;
4. prints the sync outcome, the files with their counts, and where everything is (Airflow's
   output goes to ``.demo/dags-test.log``);
5. stops the fake server. Exit status 0 only if every task succeeded.

``--real`` runs the same DAG against your Polytomic account instead of the fake: set
``POLYTOMIC_API_KEY`` and ``POLYTOMIC_SYNC_ID`` (and ``POLYTOMIC_URL`` for an on-prem
deployment). This starts a real sync execution. The key is passed to Airflow through the
environment only and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.harness import AirflowHome  # noqa: E402

DAG_ID = "example_polytomic_sync_and_record_logs"
DEMO = REPO / ".demo"
INSERTED = [{"id": i, "email": f"customer{i}@example.com", "plan": "pro"} for i in range(1, 6)]
UPDATED = [{"id": i, "email": f"customer{i}@example.com", "plan": "enterprise"} for i in (2, 4, 9)]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _local_path(uri: str) -> str:
    parts = urlsplit(uri)
    return parts.path if parts.scheme in ("", "file") else uri


def _connection(url: str | None, api_key: str) -> str:
    conn: dict[str, Any] = {"conn_type": "polytomic", "password": api_key, "extra": {"max_retries": 3}}
    if url:
        conn["host"] = url
    return json.dumps(conn)


def run_demo(*, real: bool, keep: bool) -> int:
    """Run the demo; returns the process exit status."""
    airflow_home = DEMO / "airflow"
    record_logs = DEMO / "record_logs"
    if not keep:
        shutil.rmtree(airflow_home, ignore_errors=True)
        shutil.rmtree(record_logs, ignore_errors=True)
    fake = None
    if real:
        api_key = os.environ.get("POLYTOMIC_API_KEY", "")
        sync_id = os.environ.get("POLYTOMIC_SYNC_ID", "")
        if not api_key or not sync_id:
            _say("--real needs POLYTOMIC_API_KEY and POLYTOMIC_SYNC_ID in the environment.")
            return 2
        url = os.environ.get("POLYTOMIC_URL") or None
        _say(f"Polytomic: {url or 'https://app.polytomic.com'} (your account), sync {sync_id}")
    else:
        from airflow_provider_polytomic.testing import FakePolytomic

        fake = FakePolytomic().start()
        sync_id = fake.add_sync("contacts")
        fake.set_auto_outcome(
            sync_id, "completed", after=2, inserted=INSERTED, updated=UPDATED, records_per_file=2
        )
        api_key, url = fake.api_key, fake.url
        _say(f"Fake Polytomic API on {fake.url}: sync 'contacts' = {sync_id} (completes 2 s after it starts)")
    try:
        env = {
            "AIRFLOW_CONN_POLYTOMIC_DEFAULT": _connection(url, api_key),
            "POLYTOMIC_EXAMPLE_SYNC_ID": sync_id,
            "POLYTOMIC_EXAMPLE_DESTINATION": f"file://{record_logs}",
            "POLYTOMIC_EXAMPLE_POLL_INTERVAL": "1" if fake else "15",
        }
        home = AirflowHome(airflow_home, dags_folder=REPO / "example_dags", env=env)
        started = time.monotonic()
        _say(f"AIRFLOW_HOME={home.root}: airflow db migrate ...")
        home.migrate()
        _say(f"airflow dags test {DAG_ID} ...")
        result = home.dags_test(DAG_ID, timeout=3600 if real else 600)
        return _report(home, result.run_id, result.returncode, result.output, time.monotonic() - started)
    finally:
        if fake is not None:
            fake.stop()
            _say("Fake Polytomic API stopped.")


def _report(home: AirflowHome, run_id: str | None, returncode: int, output: str, elapsed: float) -> int:
    if not run_id:
        _say(output[-4000:])
        _say("airflow dags test created no DAG run; see the output above.")
        return 1
    states = home.task_states(DAG_ID, run_id)
    _say()
    _say(f"DAG run {run_id}: {home.run_state(DAG_ID, run_id)} in {elapsed:.0f} s")
    for task_id, state in states.items():
        _say(f"  {task_id:<22} {state}")
    sync = home.xcom(DAG_ID, run_id, "run_sync") or {}
    url = home.xcom(DAG_ID, run_id, "run_sync", key="execution_url")
    if sync:
        _say()
        _say(f"Sync {sync.get('sync_id')} execution {sync.get('execution_id')}: {sync.get('outcome')}")
        _say(f"  status {sync.get('status')!r}, counts {sync.get('counts')}")
        _say(f"  'Polytomic execution' link: {url}")
    downloaded = home.xcom(DAG_ID, run_id, "download_record_logs") or {}
    if downloaded:
        _say()
        _say(f"Record logs downloaded (Polytomic's counts: {downloaded.get('counts')}):")
        for entry in downloaded.get("files", []):
            _say(f"  {entry['record_type']:<9} {entry['bytes']:>7} bytes  {_local_path(entry['uri'])}")
    report = home.xcom(DAG_ID, run_id, "report_counts") or {}
    if report:
        _say(f"Counted back through ObjectStoragePath: {report.get('counted')}")
    _say()
    _say(f"Files:     {DEMO / 'record_logs'}")
    log_file = DEMO / "dags-test.log"
    log_file.write_text(output)
    _say(f"Airflow output (task logs): {log_file}")
    ok = bool(states) and set(states.values()) == {"success"}
    if not ok:
        _say(output[-6000:])
        _say(f"Demo FAILED (airflow dags test exit status {returncode}).")
        return 1
    _say("Demo OK.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--real", action="store_true", help="use POLYTOMIC_API_KEY/POLYTOMIC_SYNC_ID, not the fake"
    )
    parser.add_argument("--keep", action="store_true", help="keep .demo/ from a previous run")
    args = parser.parse_args(argv)
    return run_demo(real=args.real, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
