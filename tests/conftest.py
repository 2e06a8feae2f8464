"""Test configuration: an isolated AIRFLOW_HOME, unit-test mode, and the fake Polytomic server."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before anything imports airflow.
_HOME = tempfile.mkdtemp(prefix="polytomic-provider-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))

pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin", "tests.secret_audit"]


@pytest.fixture(scope="session", autouse=True)
def _metadata_database() -> None:
    """Airflow 2 only: a rescheduled sensor reads the metadata database; create it up front,
    so no test's timing includes it (a no-op on Airflow 3)."""
    from airflow_provider_polytomic._compat import prepare_metadata_database

    prepare_metadata_database()
