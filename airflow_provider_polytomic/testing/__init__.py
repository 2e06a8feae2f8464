"""A faithful fake of Polytomic's REST API, for testing DAGs that use this provider.

Quick start::

    from airflow_provider_polytomic.testing import FakePolytomic

    with FakePolytomic() as fake:
        sync_id = fake.add_sync("contacts")
        fake.set_auto_outcome(sync_id, "completed", after=0.2, inserted=[{"id": 1}])
        ...  # run code that talks to fake.url with API key fake.api_key

Pytest users can enable the fixtures ``fake_polytomic`` and ``polytomic_conn`` with
``pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin"]`` in a conftest.py.
From a shell: ``python -m airflow_provider_polytomic.testing serve --sync contacts``.
"""

from __future__ import annotations

from .clock import FakeClock
from .faults import Faults, RequestFault
from .records import (
    EVENT_TYPES,
    TERMINAL_STATUSES,
    Delivery,
    FakeApiError,
    Outcome,
    RecordedRequest,
    SyncKind,
    format_time,
)
from .server import FakePolytomic
from .state import PolytomicState

__all__ = [
    "EVENT_TYPES",
    "TERMINAL_STATUSES",
    "Delivery",
    "FakeApiError",
    "FakeClock",
    "FakePolytomic",
    "Faults",
    "Outcome",
    "PolytomicState",
    "RecordedRequest",
    "RequestFault",
    "SyncKind",
    "format_time",
]
