"""The example DAGs load in a DagBag without import errors or deprecation warnings, and serialize."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
EXPECTED = {
    "example_polytomic_sync_and_record_logs",
    "example_polytomic_sensor_external_schedule",
    "example_polytomic_bulk_sync",
}
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@pytest.fixture(scope="module")
def loaded() -> tuple[object, list[warnings.WarningMessage]]:
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(EXAMPLE_DAGS), safe_mode=False)
    return bag, list(caught)


def test_no_import_errors(loaded: tuple[object, list[warnings.WarningMessage]]) -> None:
    bag, _ = loaded
    assert bag.import_errors == {}  # type: ignore[attr-defined]
    assert set(bag.dags) >= EXPECTED  # type: ignore[attr-defined]


def test_no_deprecation_warnings(loaded: tuple[object, list[warnings.WarningMessage]]) -> None:
    _, caught = loaded
    found = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
    deprecations = [f for w, f in zip(caught, found, strict=True) if issubclass(w.category, DEPRECATIONS)]
    assert deprecations == []


def test_dags_serialize_with_the_extra_link(loaded: tuple[object, list[warnings.WarningMessage]]) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    bag, _ = loaded
    linked = []
    for dag in bag.dags.values():  # type: ignore[attr-defined]
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for task in restored.tasks:
            if task.task_type == "PolytomicRunSyncOperator":
                assert "Polytomic execution" in task.extra_links
                linked.append(task.task_id)
    assert sorted(linked) == ["run_sync", "start_bulk_sync"]


def test_manual_runs_do_not_need_a_logical_date(loaded: tuple[object, list[warnings.WarningMessage]]) -> None:
    """Airflow 3 manual runs have no logical date: no example may template ``ds``/``ts``."""
    for path in EXAMPLE_DAGS.glob("*.py"):
        text = path.read_text()
        for name in ("{{ ds", "{{ ts", "logical_date }}", "execution_date"):
            assert name not in text, f"{path.name} uses {name!r}"
