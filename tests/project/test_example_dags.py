"""The example DAGs load in a DagBag without import errors or deprecation warnings, and serialize.

Each example is loaded on its own, so an example that needs a newer Airflow than the
installed one is skipped (with the reason) instead of failing the others.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from airflow_provider_polytomic._compat import AIRFLOW_V_3, dag_bag, serialize_round_trip

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
EXAMPLES = sorted(EXAMPLE_DAGS.glob("example_*.py"))
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
LINKED_TASKS = {
    "example_polytomic_sync_and_record_logs": ["run_sync"],
    "example_polytomic_sensor_external_schedule": ["wait_for_sync"],
    "example_polytomic_bulk_sync": ["start_bulk_sync", "wait_for_bulk_sync"],
    "example_polytomic_asset_watcher": [],
}
NEEDS_AIRFLOW_3 = {
    "example_polytomic_asset_watcher": "asset watchers and polytomic:// assets need Airflow 3.0",
}


def _skip_if_too_new(path: Path) -> None:
    if path.stem in NEEDS_AIRFLOW_3 and not AIRFLOW_V_3:
        pytest.skip(f"{path.stem}: {NEEDS_AIRFLOW_3[path.stem]}")


def _load(path: Path) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = dag_bag(str(path))
    return bag, list(caught)


def test_every_example_is_checked() -> None:
    assert {p.stem for p in EXAMPLES} == set(LINKED_TASKS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_loads_without_import_errors_or_deprecations(path: Path) -> None:
    _skip_if_too_new(path)
    bag, caught = _load(path)
    assert bag.import_errors == {}  # type: ignore[attr-defined]
    assert list(bag.dags) == [path.stem]  # type: ignore[attr-defined]
    deprecations = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, DEPRECATIONS)
    ]
    assert deprecations == []


@pytest.mark.skipif(AIRFLOW_V_3, reason="checks what Airflow 2 users see")
@pytest.mark.parametrize("stem", sorted(NEEDS_AIRFLOW_3))
def test_airflow_3_examples_fail_clearly_on_airflow_2(stem: str) -> None:
    bag, _ = _load(EXAMPLE_DAGS / f"{stem}.py")
    (message,) = bag.import_errors.values()  # type: ignore[attr-defined]
    assert "needs Airflow 3.0 or newer" in message, message


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_dags_serialize_with_the_extra_link(path: Path) -> None:
    _skip_if_too_new(path)
    bag, _ = _load(path)
    linked = []
    for dag in bag.dags.values():  # type: ignore[attr-defined]
        restored = serialize_round_trip(dag)
        for task in restored.tasks:
            if "Polytomic execution" in task.extra_links:
                linked.append(task.task_id)
    assert sorted(linked) == LINKED_TASKS[path.stem]


def test_manual_runs_do_not_need_a_logical_date() -> None:
    """Airflow 3 manual runs have no logical date: no example may template ``ds``/``ts``."""
    for path in EXAMPLES:
        text = path.read_text()
        for name in ("{{ ds", "{{ ts", "logical_date }}", "execution_date"):
            assert name not in text, f"{path.name} uses {name!r}"


def test_record_logs_take_the_execution_id_from_the_run_sync_output() -> None:
    """``execution_id=run_sync.output["execution_id"]`` passes the constructor's checks (it is
    resolved when the task runs) and makes the run-sync task upstream; a non-string that is no
    XComArg is still refused. The demo and the end-to-end suites run this DAG for real."""
    from airflow_provider_polytomic._compat import is_xcom_arg
    from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator

    bag, _ = _load(EXAMPLE_DAGS / "example_polytomic_sync_and_record_logs.py")
    dag = bag.dags["example_polytomic_sync_and_record_logs"]  # type: ignore[attr-defined]
    task = dag.get_task("download_record_logs")
    assert is_xcom_arg(task.execution_id)
    assert "run_sync" in task.upstream_task_ids
    with pytest.raises(ValueError, match="execution_id must be a non-empty string, got 42"):
        PolytomicDownloadRecordLogsOperator(task_id="t", sync_id="s", execution_id=42, destination="/tmp/x")
