"""A DAG file that uses the provider must stay cheap to parse.

Airflow's DAG processor imports every DAG file again and again, so what the provider's
operators, sensor and hook load at import (and when a DAG instantiates them) is paid on every
parse. The HTTP stack (``requests``, ``httpx``), the retry library, object storage (fsspec),
pydantic's schema building and the fake server are only needed when a task runs, so they must
load on first use, not on import.

Each check runs in a fresh interpreter: first it imports what a DAG file without the
provider imports (``DAG``, ``BaseOperator`` and ``BaseSensorOperator`` from ``airflow.sdk``,
or from their Airflow 2 modules) and builds a DAG with an Airflow operator; then it imports
what a DAG file using the provider adds, and builds a DAG with the provider's three tasks.
Only the modules the second step loads count, so a library Airflow itself already loads
(``httpx`` and ``tenacity`` on Airflow 3, ``requests`` on Airflow 2, FastAPI on Airflow 3.0)
is not held against the provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a DAG file using only Airflow's own operators imports (as in benchmarks/import_cost.py),
# and a DAG built with one of them.
AIRFLOW_ONLY = """
try:
    from airflow.sdk import DAG, BaseOperator, BaseSensorOperator
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.baseoperator import BaseOperator
    from airflow.sensors.base import BaseSensorOperator

# Airflow 3.0 loads its API server's stack (FastAPI...) when the first operator is created:
# Airflow's cost, not the provider's, so it is paid before the provider's part starts.
import datetime
with DAG("airflow_only", start_date=datetime.datetime(2026, 1, 1), schedule=None):
    BaseOperator(task_id="noop")
"""

WITH_PROVIDER = """
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
"""

BUILD_DAG = """
with DAG("import_cost", start_date=datetime.datetime(2026, 1, 1), schedule=None):
    wait = PolytomicSyncSensor(task_id="wait", sync_id="s-1", deferrable=True, timeout=60)
    run = PolytomicRunSyncOperator(task_id="run", sync_id="s-1", sync_kind="bulk", deferrable=False)
    logs = PolytomicDownloadRecordLogsOperator(
        task_id="logs",
        sync_id="s-1",
        execution_id="{{ ti.xcom_pull(task_ids='run')['execution_id'] }}",
        destination="s3://aws_default@bucket/polytomic/{{ run_id }}/",
    )
    run >> wait >> logs
"""

REPORT = """
import json, sys
import pydantic
models = []
for name, module in list(sys.modules.items()):
    if not name.startswith("airflow_provider_polytomic") or module is None:
        continue
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and issubclass(value, pydantic.BaseModel)
            and value.__module__ == name
        ):
            models.append([f"{name}.{value.__qualname__}", bool(value.__pydantic_complete__)])
print(json.dumps({"before": sorted(before), "loaded": sorted(set(sys.modules) - before), "models": models}))
"""

# Top-level packages that only a running task (or the webhook receiver, or the test suite's
# fake server) needs.
DEFERRED_PACKAGES = (
    "requests",
    "httpx",
    "urllib3",
    "tenacity",
    "fsspec",
    "upath",
    "fastapi",
    "starlette",
    "uvicorn",
)
# The provider's own modules that a DAG file must not load: the fake server and the webhook
# receiver.
DEFERRED_PROVIDER_MODULES = ("airflow_provider_polytomic.testing", "airflow_provider_polytomic.webhook")


def probe(*steps: str) -> dict[str, Any]:
    """Run ``steps`` in a fresh interpreter after Airflow's own imports; what they loaded."""
    code = "\n".join(
        [AIRFLOW_ONLY, "import sys\nbefore = set(sys.modules)", *map(textwrap.dedent, steps), REPORT]
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def offending(loaded: list[str]) -> list[str]:
    """The modules of ``loaded`` that belong to something a DAG file must not load."""
    return [
        name
        for name in loaded
        if name.split(".")[0] in DEFERRED_PACKAGES
        or "openlineage" in name
        or any(name == p or name.startswith(p + ".") for p in DEFERRED_PROVIDER_MODULES)
    ]


@pytest.fixture(scope="module")
def dag_file() -> dict[str, Any]:
    return probe(WITH_PROVIDER, BUILD_DAG)


def test_a_dag_file_loads_no_http_stack_or_runtime_library(dag_file: dict[str, Any]) -> None:
    assert "airflow_provider_polytomic.sensors.polytomic" in dag_file["loaded"]
    assert offending(dag_file["loaded"]) == []


def test_a_dag_file_builds_no_pydantic_schema(dag_file: dict[str, Any]) -> None:
    complete = [name for name, built in dag_file["models"] if built]
    assert complete == []


def test_the_probe_sees_what_a_task_loads() -> None:
    """The checks above can fail: sending requests loads what they look for, and builds the schemas."""
    result = probe(
        WITH_PROVIDER,
        """
        import asyncio, socket
        from pydantic import SecretStr
        from airflow_provider_polytomic import api
        from airflow_provider_polytomic.client import AsyncTransport, ClientConfig, SyncTransport
        from airflow_provider_polytomic.exceptions import PolytomicAPIError

        with socket.socket() as s:  # a port nothing listens on: the request fails at once
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = ClientConfig(api_key=SecretStr("k"), base_url=f"http://127.0.0.1:{port}", max_retries=0)
        for send in (SyncTransport(config).send, lambda call: asyncio.run(AsyncTransport(config).send(call))):
            try:
                send(api.get_identity())
            except PolytomicAPIError:
                pass
        """,
    )
    preloaded = {name.split(".")[0] for name in result["before"]}
    flagged = {name.split(".")[0] for name in offending(result["loaded"])}
    assert {"requests", "httpx"} - preloaded <= flagged
    assert {"requests", "httpx"} - preloaded, "Airflow itself loads both HTTP libraries: nothing to check"
    # The transports built every model's schema before their first request (build_schemas).
    schemas = {name: built for name, built in result["models"] if ".models." in name}
    assert "airflow_provider_polytomic.models.events.Event" in schemas
    assert [name for name, built in schemas.items() if not built] == []
