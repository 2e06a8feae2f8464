"""End to end on every supported Airflow, Airflow 2.11 included, against the fake Polytomic.

On a freshly migrated SQLite home:

* ``airflow providers list`` shows the provider, and ``providers get`` shows what it
  registers there (no Airflow 3 features on Airflow 2) without breaking discovery;
* ``airflow dags test`` of a DAG running the sensor in poke, reschedule and deferrable mode
  and the record-log operator (tests/e2e/dags_portable), with the test deciding when each
  execution finishes: the poke sensor's execution once that sensor runs, the rescheduled
  sensor's once Airflow has rescheduled it, so each mode really waits;
* the "Polytomic execution" link as this Airflow's UI would build it;
* ``airflow dags test`` of the example DAG ``example_polytomic_sync_and_record_logs`` (the
  run-sync operator deferred, record logs, and a task reading them back through
  ``ObjectStoragePath``).

The CI matrix runs this module in the Airflow 2.11 and 3.3 cells.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_polytomic import __version__
from airflow_provider_polytomic._compat import AIRFLOW_V_3
from airflow_provider_polytomic.testing import FakePolytomic
from tests.e2e.harness import AirflowHome, DagTestResult, polytomic_conn_env, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PORTABLE_DAGS = Path(__file__).resolve().parent / "dags_portable"
EXAMPLES = ROOT / "example_dags"
DAG_ID = "e2e_polytomic_sensor_modes"
INSERTED = [{"id": i, "email": f"user{i}@example.com"} for i in range(1, 4)]
UPDATED = [{"id": 10, "email": "changed@example.com"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePolytomic]:
    with FakePolytomic() as server:
        yield server


def cli_json(home: AirflowHome, *args: str) -> Any:
    """The JSON an ``airflow`` command prints (some versions log to stdout before it)."""
    output = home.cli(*args, "-o", "json").stdout
    for line in reversed(output.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise AssertionError(f"no JSON in the output of airflow {' '.join(args)}:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, fake: FakePolytomic) -> AirflowHome:
    root = tmp_path_factory.mktemp("every-airflow")
    home = AirflowHome(root / "airflow", dags_folder=PORTABLE_DAGS, env=polytomic_conn_env(fake))
    home.migrate()
    return home


def test_providers_list_shows_the_provider(home: AirflowHome) -> None:
    providers = cli_json(home, "providers", "list")
    ours = [p for p in providers if p["package_name"] == "airflow-provider-polytomic"]
    assert ours and ours[0]["version"] == __version__, providers
    assert any(p["package_name"] == "apache-airflow-providers-common-io" for p in providers)
    (info,) = cli_json(home, "providers", "get", "airflow-provider-polytomic", "--full")
    assert info["connection-types"][0]["connection-type"] == "polytomic"
    assert ("asset-uris" in info) is AIRFLOW_V_3 and ("plugins" in info) is AIRFLOW_V_3
    hooks = cli_json(home, "providers", "hooks")
    assert [h["class"] for h in hooks if h["connection_type"] == "polytomic"] == [
        "airflow_provider_polytomic.hooks.polytomic.PolytomicHook"
    ]


def test_sensor_modes_and_record_logs(home: AirflowHome, fake: FakePolytomic, tmp_path: Path) -> None:
    syncs = {name: fake.add_sync(name) for name in ("poke", "reschedule", "deferred")}
    home.env.update({f"E2E_SYNC_{name.upper()}": sync_id for name, sync_id in syncs.items()})
    home.env["E2E_DESTINATION"] = f"file://{tmp_path / 'record_logs'}"

    result: dict[str, DagTestResult] = {}
    runner = threading.Thread(target=lambda: result.setdefault("run", home.dags_test(DAG_ID)), daemon=True)
    runner.start()

    def run_id() -> str | None:
        return home.latest_run_id(DAG_ID)

    def state(task_id: str) -> str | None:
        rid = run_id()
        return home.task_states(DAG_ID, rid).get(task_id) if rid else None

    def wait_for(what: str, condition: Any) -> None:
        def check() -> bool:
            if not runner.is_alive():
                output = result["run"].output if "run" in result else "(no result)"
                raise AssertionError(f"airflow dags test ended before {what}:\n{output[-6000:]}")
            return bool(condition())

        wait_until(what, check, 120)

    def execution(name: str) -> str:
        (only,) = fake.executions(syncs[name])
        return str(only["id"])

    def asked_about(name: str) -> bool:
        """Someone read this execution's status: its sensor is waiting (the operator never reads it)."""
        path = f"/syncs/{syncs[name]}/executions/{execution(name)}"
        return any(r.method == "GET" and r.path.endswith(path) for r in list(fake.requests))

    # Each execution finishes only once its sensor is waiting for it (Airflow 2 does not
    # commit a task's running state before it ends, so the server side tells).
    wait_for(
        "the poke-mode sensor to wait",
        lambda: len(fake.executions(syncs["poke"])) == 1 and asked_about("poke"),
    )
    fake.complete_execution(syncs["poke"], execution("poke"), inserted=INSERTED, updated=UPDATED)
    wait_for(
        "the reschedule-mode sensor to be rescheduled",
        lambda: (rid := run_id()) is not None and home.reschedule_count(DAG_ID, rid, "wait_reschedule") > 0,
    )
    fake.complete_execution(syncs["reschedule"], execution("reschedule"))
    wait_for("the rescheduled sensor to succeed", lambda: state("wait_reschedule") == "success")
    fake.complete_execution(syncs["deferred"], execution("deferred"))
    runner.join(240)
    assert not runner.is_alive(), "airflow dags test did not finish"

    run = result["run"]
    assert run.run_id, run.output[-4000:]
    states = home.task_states(DAG_ID, run.run_id)
    assert set(states.values()) == {"success"}, f"{states}\n{run.output[-4000:]}"
    for name in syncs:
        summary = home.xcom(DAG_ID, run.run_id, f"wait_{name}")
        assert summary["execution_id"] == execution(name) and summary["outcome"] == "succeeded", summary

    downloaded = home.xcom(DAG_ID, run.run_id, "record_logs")
    assert downloaded["counts"] == {"inserted": 3, "updated": 1}
    rows = []
    for entry in downloaded["files"]:
        text = Path(urlsplit(entry["uri"]).path).read_text().strip()
        rows += json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    assert sorted(r["id"] for r in rows) == [1, 2, 3, 10]

    # The "Polytomic execution" link, as this Airflow's UI gets it.
    poke_url = f"{fake.url}/syncs/{syncs['poke']}/executions/{execution('poke')}"
    if AIRFLOW_V_3:  # stored in XCom when the task ends
        assert home.xcom(DAG_ID, run.run_id, "start_poke", key="_link_PolytomicExecutionLink") == poke_url
        assert home.xcom(DAG_ID, run.run_id, "wait_poke", key="_link_PolytomicExecutionLink") == poke_url
    else:  # built on demand from the metadata database
        assert airflow2_link(home, run.run_id, "start_poke") == poke_url
        assert airflow2_link(home, run.run_id, "wait_poke") == poke_url


def airflow2_link(home: AirflowHome, run_id: str, task_id: str) -> str:
    code = (
        "from airflow_provider_polytomic._compat import airflow2_extra_link as link\n"
        f"print(link({str(home.dags_folder)!r}, {DAG_ID!r}, {run_id!r}, {task_id!r}, 'Polytomic execution'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=home.env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_example_dag_sync_and_record_logs(
    tmp_path_factory: pytest.TempPathFactory, home: AirflowHome, fake: FakePolytomic
) -> None:
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed", after=2, inserted=INSERTED, updated=UPDATED)
    root = tmp_path_factory.mktemp("example")
    env = {
        **polytomic_conn_env(fake),
        "POLYTOMIC_EXAMPLE_SYNC_ID": sync_id,
        "POLYTOMIC_EXAMPLE_DESTINATION": f"file://{root / 'record_logs'}",
        "POLYTOMIC_EXAMPLE_POLL_INTERVAL": "1",
    }
    example = AirflowHome(root / "airflow", dags_folder=EXAMPLES, env=env)
    example.migrate()
    dag_id = "example_polytomic_sync_and_record_logs"
    run = example.dags_test(dag_id)
    assert run.run_id, run.output[-4000:]
    states = example.task_states(dag_id, run.run_id)
    assert states == {"run_sync": "success", "download_record_logs": "success", "report_counts": "success"}, (
        f"{states}\n{run.output[-4000:]}"
    )
    report = example.xcom(dag_id, run.run_id, "report_counts")
    assert report["counted"] == {"inserted": 3, "updated": 1}
    assert report["outcome"] == "succeeded"
