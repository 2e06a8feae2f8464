"""Pytest fixtures for the fake Polytomic server.

Enable them in your ``conftest.py``::

    pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin"]

Fixtures (function scope):

* ``fake_polytomic``: a started :class:`~airflow_provider_polytomic.testing.FakePolytomic`,
  stopped after the test.
* ``polytomic_conn``: the same fake, with ``AIRFLOW_CONN_POLYTOMIC_DEFAULT`` set (through
  ``monkeypatch``) to a JSON connection pointing at it::

      {"conn_type": "polytomic", "host": fake.url, "password": fake.api_key,
       "extra": {"max_retries": 3}}
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .server import FakePolytomic

__all__ = ["fake_polytomic", "polytomic_conn"]


@pytest.fixture
def fake_polytomic() -> Iterator[FakePolytomic]:
    """A started fake Polytomic API on 127.0.0.1 (free port), stopped after the test."""
    with FakePolytomic() as fake:
        yield fake


@pytest.fixture
def polytomic_conn(fake_polytomic: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePolytomic]:
    """The ``fake_polytomic`` fake, with the ``polytomic_default`` Airflow connection pointing at it."""
    conn = {
        "conn_type": "polytomic",
        "host": fake_polytomic.url,
        "password": fake_polytomic.api_key,
        "extra": {"max_retries": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    yield fake_polytomic
