"""Test configuration: an isolated AIRFLOW_HOME, unit-test mode, the fake Polytomic server,
and the ``unit`` marker on every test under ``tests/unit``.

Layout: ``tests/unit/`` mirrors the package (``hooks/``, ``triggers/``, ``webhook/``...);
``tests/e2e/`` runs a real Airflow; ``tests/fault/``, ``tests/load/`` and ``tests/security/``
are the fault-injection, load and security suites; ``tests/project/`` checks the repository
itself (CI matrix, packaging, example DAGs). Helpers shared by several suites sit here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports airflow.
_HOME = tempfile.mkdtemp(prefix="polytomic-provider-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))

# CI runs each property test's examples from a fixed seed, so a run is reproducible and a
# new example never turns a green commit red; locally Hypothesis keeps exploring.
if os.environ.get("HYPOTHESIS_PROFILE") == "ci":
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    settings.load_profile("ci")

pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin", "tests.secret_audit"]


@pytest.fixture(scope="session", autouse=True)
def _metadata_database() -> None:
    """Airflow 2 only: a rescheduled sensor reads the metadata database; create it up front,
    so no test's timing includes it (a no-op on Airflow 3)."""
    from airflow_provider_polytomic._compat import prepare_metadata_database

    prepare_metadata_database()


_UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests under ``tests/unit`` so ``-m unit`` (``make test-unit``) selects them."""
    for item in items:
        if _UNIT in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.unit)
