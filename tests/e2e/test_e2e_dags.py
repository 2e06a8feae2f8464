"""End to end on a real Airflow 3 (SQLite) against the fake Polytomic server.

* ``airflow dags test`` of each example DAG (triggers run in-line there), asserting task
  states, XCom and the record-log files written.
* One run under a real api-server + scheduler + dag-processor + triggerer proving that a
  sensor and the run-sync operator really deferred, were resumed after the triggerer fired,
  and that a deferred timeout with ``soft_fail=True`` ends the task as skipped.

The fake server runs in this process; Airflow runs in subprocesses that reach it through
``AIRFLOW_CONN_POLYTOMIC_DEFAULT``. Nothing here sleeps to synchronise: the fake's
executions finish when the test (or an auto-outcome timer) says so, and the harness polls
state with deadlines.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from airflow_provider_polytomic.testing import FakePolytomic
from tests.e2e.harness import AirflowHome, DagTestResult, needs_airflow_3_stack, polytomic_conn_env

pytestmark = [pytest.mark.e2e, needs_airflow_3_stack]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"

INSERTED = [{"id": i, "email": f"user{i}@example.com"} for i in range(1, 4)]
UPDATED = [{"id": i, "email": f"changed{i}@example.com"} for i in range(10, 12)]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePolytomic]:
    """One fake Polytomic for the module (loopback, free port)."""
    with FakePolytomic() as server:
        yield server


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    """A freshly migrated database, copied by the other homes (one migration for the module)."""
    home = AirflowHome(tmp_path_factory.mktemp("template"), dags_folder=EXAMPLES)
    home.migrate()
    return home


@pytest.fixture(scope="module")
def syncs(fake: FakePolytomic) -> dict[str, str]:
    """The fake's syncs, one per example DAG."""
    ids = {
        "contacts": fake.add_sync("contacts"),
        "scheduled": fake.add_sync("scheduled"),
        "warehouse": fake.add_sync("warehouse", kind="bulk"),
    }
    # Executions the DAGs start finish 2 s later with records (3 inserted in 2 files, 2 updated).
    fake.set_auto_outcome(
        ids["contacts"], "completed", after=2, inserted=INSERTED, updated=UPDATED, records_per_file=2
    )
    fake.set_auto_outcome(ids["warehouse"], "completed", after=2, inserted=INSERTED)
    return ids


@dataclass(frozen=True)
class ExampleRun:
    """One example DAG run by ``airflow dags test`` in its own home."""

    home: AirflowHome
    result: DagTestResult
    scheduled_execution_id: str | None = None


EXAMPLE_IDS = (
    "example_polytomic_sync_and_record_logs",
    "example_polytomic_sensor_external_schedule",
    "example_polytomic_bulk_sync",
)


@pytest.fixture(scope="module")
def example_runs(
    tmp_path_factory: pytest.TempPathFactory,
    template: AirflowHome,
    fake: FakePolytomic,
    syncs: dict[str, str],
) -> dict[str, ExampleRun]:
    """``airflow dags test`` of the three example DAGs, concurrently, one home (database) each."""
    homes: dict[str, AirflowHome] = {}
    for dag_id in EXAMPLE_IDS:
        root = tmp_path_factory.mktemp(dag_id)
        env = {
            **polytomic_conn_env(fake),
            "POLYTOMIC_EXAMPLE_SYNC_ID": syncs["contacts"],
            "POLYTOMIC_EXAMPLE_SCHEDULED_SYNC_ID": syncs["scheduled"],
            "POLYTOMIC_EXAMPLE_BULK_SYNC_ID": syncs["warehouse"],
            "POLYTOMIC_EXAMPLE_DESTINATION": f"file://{root / 'record_logs'}",
            "POLYTOMIC_EXAMPLE_POLL_INTERVAL": "1",
        }
        homes[dag_id] = AirflowHome(root / "airflow", dags_folder=EXAMPLES, env=env)
        homes[dag_id].migrate(copy_from=template)
    # Polytomic ran the scheduled sync on its own; the run's data interval (yesterday's) precedes it.
    scheduled = fake.run_execution(syncs["scheduled"], outcome="completed", inserted=INSERTED[:1])
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    dates = {"example_polytomic_sensor_external_schedule": yesterday}
    with ThreadPoolExecutor(max_workers=len(homes)) as pool:
        futures = {
            dag_id: pool.submit(home.dags_test, dag_id, logical_date=dates.get(dag_id))
            for dag_id, home in homes.items()
        }
        results = {dag_id: future.result() for dag_id, future in futures.items()}
    return {
        dag_id: ExampleRun(homes[dag_id], results[dag_id], scheduled if dag_id in dates else None)
        for dag_id in EXAMPLE_IDS
    }


def extra_links(api_url: str, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """The extra links the UI shows for a task instance (REST API; the harness disables login)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
    with urllib.request.urlopen(api_url + path, timeout=30) as resp:
        return dict(json.load(resp)["extra_links"])


def assert_all_success(home: AirflowHome, dag_id: str, run_id: str | None, output: str) -> None:
    assert run_id, f"airflow dags test created no run:\n{output[-4000:]}"
    states = home.task_states(dag_id, run_id)
    assert states and set(states.values()) == {"success"}, f"{states}\n{output[-4000:]}"
    assert home.run_state(dag_id, run_id) == "success"


# --------------------------------------------------------------------------- dags test


def test_dags_test_sync_and_record_logs(
    example_runs: dict[str, ExampleRun], fake: FakePolytomic, syncs: dict[str, str]
) -> None:
    dag_id = "example_polytomic_sync_and_record_logs"
    sync_id = syncs["contacts"]
    examples, result = example_runs[dag_id].home, example_runs[dag_id].result
    assert_all_success(examples, dag_id, result.run_id, result.output)
    run_id = result.run_id
    assert run_id is not None
    assert examples.task_states(dag_id, run_id) == {
        "run_sync": "success",
        "download_record_logs": "success",
        "report_counts": "success",
    }

    (execution,) = fake.executions(sync_id)  # exactly one execution was started
    execution_id = execution["id"]
    summary = examples.xcom(dag_id, run_id, "run_sync")
    assert summary["execution_id"] == execution_id
    assert summary["outcome"] == "succeeded"
    assert summary["counts"]["inserted"] == 3 and summary["counts"]["updated"] == 2
    url = f"{fake.url}/syncs/{sync_id}/executions/{execution_id}"
    assert examples.xcom(dag_id, run_id, "run_sync", key="execution_id") == execution_id
    assert examples.xcom(dag_id, run_id, "run_sync", key="execution_url") == url
    assert examples.xcom(dag_id, run_id, "run_sync", key="_link_PolytomicExecutionLink") == url

    downloaded = examples.xcom(dag_id, run_id, "download_record_logs")
    assert downloaded["counts"] == {"inserted": 3, "updated": 2}
    by_type: dict[str, list[Any]] = {"inserted": [], "updated": []}
    for entry in downloaded["files"]:
        path = Path(urlsplit(entry["uri"]).path)
        assert path.is_file(), entry
        assert path.stat().st_size == entry["bytes"]
        text = path.read_text().strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        assert entry["records"] is None  # counting is opt-in; the counts are Polytomic's
        by_type[entry["record_type"]].extend(rows)
    assert len([f for f in downloaded["files"] if f["record_type"] == "inserted"]) == 2
    assert sorted(r["id"] for r in by_type["inserted"]) == [r["id"] for r in INSERTED]
    assert sorted(r["id"] for r in by_type["updated"]) == [r["id"] for r in UPDATED]
    assert {t: len(rows) for t, rows in by_type.items()} == downloaded["counts"]

    report = examples.xcom(dag_id, run_id, "report_counts")
    assert report["counted"] == {"inserted": 3, "updated": 2}
    assert report["files"] == 3
    assert report["execution_id"] == execution_id


def test_dags_test_sensor_external_schedule(example_runs: dict[str, ExampleRun]) -> None:
    dag_id = "example_polytomic_sensor_external_schedule"
    run = example_runs[dag_id]
    examples, result, execution_id = run.home, run.result, run.scheduled_execution_id
    assert_all_success(examples, dag_id, result.run_id, result.output)
    assert result.run_id is not None
    summary = examples.xcom(dag_id, result.run_id, "wait_for_sync")
    assert summary["execution_id"] == execution_id
    assert summary["outcome"] == "succeeded"
    assert examples.xcom(dag_id, result.run_id, "use_results")["inserted"] == 1


def test_dags_test_bulk_sync(
    example_runs: dict[str, ExampleRun], fake: FakePolytomic, syncs: dict[str, str]
) -> None:
    dag_id = "example_polytomic_bulk_sync"
    sync_id = syncs["warehouse"]
    examples, result = example_runs[dag_id].home, example_runs[dag_id].result
    assert_all_success(examples, dag_id, result.run_id, result.output)
    run_id = result.run_id
    assert run_id is not None
    (execution,) = fake.executions(sync_id)
    started = examples.xcom(dag_id, run_id, "start_bulk_sync")
    assert started["execution_id"] == execution["id"]
    assert set(started) == {"sync_id", "execution_id", "status"}
    assert examples.xcom(dag_id, run_id, "start_bulk_sync", key="execution_url") == (
        f"{fake.url}/bulk/syncs/{sync_id}/executions/{execution['id']}"
    )
    summary = examples.xcom(dag_id, run_id, "wait_for_bulk_sync")
    assert summary["execution_id"] == execution["id"]
    assert summary["outcome"] == "succeeded"
    assert examples.xcom(dag_id, run_id, "report") == {"execution_id": execution["id"], "records": 3}
    starts = [
        r for r in fake.requests if r.method == "POST" and r.path == f"/api/bulk/syncs/{sync_id}/executions"
    ]
    assert len(starts) == 1 and b'"fetch_mode": "incremental"' in starts[0].body


# ------------------------------------------------------------------- real scheduler stack


@pytest.mark.timeout(450)
def test_real_triggerer_defers_resumes_and_soft_fails(
    tmp_path_factory: pytest.TempPathFactory, template: AirflowHome, fake: FakePolytomic
) -> None:
    dag_id = "e2e_polytomic_deferral"
    waited = fake.add_sync("waited")
    started_by_task = fake.add_sync("started-by-task")
    never = fake.add_sync("never-finishes")
    execution_id = fake.start_execution(waited)  # stays running until this test completes it

    home = AirflowHome(
        tmp_path_factory.mktemp("stack") / "airflow", dags_folder=TEST_DAGS, env=polytomic_conn_env(fake)
    )
    home.migrate(copy_from=template)
    with home.stack(timeout=600) as stack:
        home.wait_for_dag(dag_id)
        run_id = home.trigger(
            dag_id,
            conf={
                "sync_id": waited,
                "execution_id": execution_id,
                "run_sync_id": started_by_task,
                "timeout_sync_id": never,
            },
        )
        # 1. All three tasks are handed to the triggerer.
        home.wait_for_task_states(
            dag_id,
            run_id,
            {
                "wait_for_execution": {"deferred"},
                "run_sync": {"deferred"},
                "wait_times_out": {"deferred", "skipped"},
            },
            timeout=150,
        )
        # The operator published the execution it started before deferring; the UI link works already.
        (started,) = fake.executions(started_by_task)
        assert home.xcom(dag_id, run_id, "run_sync", key="execution_id") == started["id"]
        url = f"{fake.url}/syncs/{started_by_task}/executions/{started['id']}"
        assert extra_links(stack.api_url, dag_id, run_id, "run_sync") == {"Polytomic execution": url}
        assert fake.execution(waited, execution_id)["status"] == "running"

        # 2. Polytomic finishes both executions; the triggerer fires, the tasks resume and succeed.
        fake.complete_execution(waited, execution_id, inserted=INSERTED)
        fake.complete_execution(started_by_task, started["id"], updated=UPDATED)
        state = home.wait_for_run(dag_id, run_id, timeout=120)
        states = home.task_states(dag_id, run_id)
        assert state == "success", f"{states}\n{stack.log('triggerer')[-3000:]}"

    # 3. The never-finishing wait timed out while deferred and soft_fail skipped it.
    assert states == {"wait_for_execution": "success", "run_sync": "success", "wait_times_out": "skipped"}

    summary = home.xcom(dag_id, run_id, "wait_for_execution")
    assert summary["execution_id"] == execution_id and summary["counts"]["inserted"] == 3
    assert home.xcom(dag_id, run_id, "run_sync")["execution_id"] == started["id"]

    for task_id in ("wait_for_execution", "run_sync"):
        events = [str(e["event"]) for e in home.task_log(dag_id, run_id, task_id)]
        assert any("DEFERRED" in e for e in events), events  # paused in the worker ...
        assert "Trigger fired event" in events, events  # ... the triggerer fired ...
        assert any("completed (status 'completed')" in e for e in events), events  # ... and it resumed.
    # The timeout is enforced by the trigger's deadline or the scheduler's trigger timeout,
    # whichever comes first; either way the task was deferred and soft_fail skipped it.
    events = [str(e["event"]) for e in home.task_log(dag_id, run_id, "wait_times_out")]
    assert any("DEFERRED" in e for e in events), events
