"""A faithful fake of Polytomic's REST API, for testing DAGs that use this provider.

Quick start::

    from airflow_provider_polytomic.testing import FakePolytomic

    with FakePolytomic() as fake:
        sync_id = fake.add_sync("contacts")
        fake.set_auto_outcome(sync_id, "completed", after=0.2, inserted=[{"id": 1}])
        ...  # run code that talks to fake.url with API key fake.api_key

A sync reads and writes something realistic by default (a Snowflake table into Salesforce
``Contact``); declare your own with :meth:`~FakePolytomic.add_connection`,
:meth:`~FakePolytomic.add_model` and the ``source`` / ``models`` / ``target`` arguments of
:meth:`~FakePolytomic.add_sync`.

The fake is laid out like a moto service: state per resource in :mod:`.backends`, JSON
shapes in :mod:`.responses`, one FastAPI router per resource in :mod:`.routers`.

Pytest users can enable the fixtures ``fake_polytomic`` and ``polytomic_conn`` with
``pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin"]`` in a conftest.py.
From a shell: ``python -m airflow_provider_polytomic.testing serve --sync contacts``.
"""

from __future__ import annotations

from .backends.catalog import CONNECTION_TYPES, ModelField
from .backends.context import FakeSettings
from .clock import FakeClock
from .faults import Faults, RequestFault
from .records import (
    EVENT_TYPES,
    TERMINAL_STATUSES,
    Delivery,
    ExecutionEnding,
    FakeApiError,
    RecordedRequest,
    SyncKind,
    format_time,
)
from .server import FakePolytomic
from .state import EVENTS_ORDERS, Backends, EventsOrder, PolytomicState

__all__ = [
    "CONNECTION_TYPES",
    "EVENTS_ORDERS",
    "EVENT_TYPES",
    "TERMINAL_STATUSES",
    "Backends",
    "Delivery",
    "EventsOrder",
    "ExecutionEnding",
    "FakeApiError",
    "FakeClock",
    "FakePolytomic",
    "FakeSettings",
    "Faults",
    "ModelField",
    "PolytomicState",
    "RecordedRequest",
    "RequestFault",
    "SyncKind",
    "format_time",
]
