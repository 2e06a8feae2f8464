"""End to end on a real Airflow 3 stack: Polytomic events start asset-scheduled DAGs.

One real api-server + scheduler + dag-processor + triggerer (own process group, loopback,
hard timeout; see tests/e2e/harness.py) and the fake Polytomic server in this process:

1. **Polling**: a completed sync on the fake starts ``e2e_polytomic_poll`` through its
   ``AssetWatcher`` (``PolytomicEventTrigger`` in the real triggerer).
2. **Webhook**: the organization's webhook is pointed at the receiver the plugin mounts on
   the API server; a completed sync starts ``e2e_polytomic_webhook`` through a REST asset
   event (``POST /api/v2/assets/events``) - that DAG has no watcher.

The plugin is loaded from a plugins folder shim and the receiver authenticates to the API
server as a SimpleAuthManager user, exactly as a deployment would configure it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_polytomic.operators.webhook import ensure_receiver_webhook
from airflow_provider_polytomic.testing import FakePolytomic
from tests.e2e.harness import AirflowHome, needs_airflow_3_stack, wait_until

pytestmark = [pytest.mark.e2e, needs_airflow_3_stack]

DAGS = Path(__file__).resolve().parent / "dags_events"
POLL_SYNC_ID = "0f8b6c1e-5d2a-4c3b-9e7f-1a2b3c4d5e6f"
WEBHOOK_SYNC_ID = "7c9d0e1f-2a3b-4c5d-8e6f-a1b2c3d4e5f6"
SECRET = "e2e-webhook-secret"


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        try:
            return list(conn.execute(sql, params))
        except sqlite3.OperationalError:
            return []


def _asset_runs(home: AirflowHome, dag_id: str) -> list[str]:
    rows = _rows(
        home.db_path,
        "SELECT run_id FROM dag_run WHERE dag_id = ? AND run_type = 'asset_triggered' ORDER BY id",
        (dag_id,),
    )
    return [r[0] for r in rows]


def _state_keys(home: AirflowHome, prefix: str, writer: str) -> list[str]:
    rows = _rows(
        home.db_path,
        "SELECT key FROM asset_state_store WHERE key LIKE ? AND last_updated_by_kind = ?",
        (prefix + "%", writer),
    )
    return [r[0] for r in rows]


def _active_asset(home: AirflowHome, sync_id: str) -> bool:
    return bool(
        _rows(home.db_path, "SELECT 1 FROM asset_active WHERE uri LIKE ?", (f"polytomic://{sync_id}%",))
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePolytomic]:
    with FakePolytomic(webhook_retry_base_delay=0.5) as server:
        server.add_sync("polled", sync_id=POLL_SYNC_ID)
        server.add_sync("pushed", sync_id=WEBHOOK_SYNC_ID)
        conn = {
            "conn_type": "polytomic",
            "host": server.url,
            "password": server.api_key,
            "extra": {"max_retries": 3, "webhook_secret": SECRET},
        }
        monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
        yield server


def test_completed_syncs_start_asset_scheduled_dags(tmp_path: Path, fake: FakePolytomic) -> None:
    home = AirflowHome(tmp_path / "airflow", dags_folder=DAGS)
    home.enable_webhook_receiver(
        {
            "conn_type": "polytomic",
            "host": fake.url,
            "password": fake.api_key,
            "extra": {"max_retries": 3, "webhook_secret": SECRET},
        }
    )
    home.migrate()

    # Generous bounds: a busy 2-CPU CI box needs minutes to bring four Airflow components up.
    with home.stack(timeout=600) as stack:
        home.wait_for_dag("e2e_polytomic_poll")
        home.wait_for_dag("e2e_polytomic_webhook")

        # 1. Polling: the watcher's trigger sees the completion in the events API.
        polled_execution = fake.start_execution(POLL_SYNC_ID)
        polled_event = fake.complete_execution(POLL_SYNC_ID, polled_execution)
        (poll_run,) = wait_until(
            "an asset-triggered run of e2e_polytomic_poll",
            lambda: _asset_runs(home, "e2e_polytomic_poll"),
            timeout=120,
        )
        assert home.wait_for_run("e2e_polytomic_poll", poll_run, timeout=120) == "success"
        report = home.xcom("e2e_polytomic_poll", poll_run, "report")
        (extra,) = report["triggering"]
        assert extra["from_trigger"] is True and extra["payload"]["id"] == polled_event["id"]
        assert extra["payload"]["execution_id"] == polled_execution
        assert report["recovered"] == [polled_event["id"]]
        # The watcher persisted its cursor in the asset state store (writer kind "watcher").
        wait_until(
            "the watcher's cursor in the asset state store",
            lambda: _state_keys(home, "polytomic.events.cursor.", "watcher"),
            timeout=60,
        )

        # 2. Webhook: Polytomic pushes the event to the receiver on the API server.
        endpoint = f"{stack.api_url}/polytomic/events"
        ensure_receiver_webhook(endpoint)
        wait_until("the webhook's asset to be active", lambda: _active_asset(home, WEBHOOK_SYNC_ID), 60)
        pushed_event = fake.complete_execution(WEBHOOK_SYNC_ID, fake.start_execution(WEBHOOK_SYNC_ID))
        assert fake.wait_for_deliveries(60), stack.log("api-server")[-3000:]
        (hook_run,) = wait_until(
            "an asset-triggered run of e2e_polytomic_webhook",
            lambda: _asset_runs(home, "e2e_polytomic_webhook"),
            timeout=120,
        )
        assert home.wait_for_run("e2e_polytomic_webhook", hook_run, timeout=120) == "success"
        report = home.xcom("e2e_polytomic_webhook", hook_run, "report")
        (extra,) = report["triggering"]
        assert extra["from_rest_api"] is True and extra["source"] == "webhook"
        assert extra["polytomic_event_id"] == pushed_event["id"]
        assert extra["payload"]["payload"] == pushed_event["event"]
        assert report["recovered"] == [pushed_event["id"]]

        deliveries = [d for d in fake.webhook_deliveries if d.event_id == pushed_event["id"]]
        assert [d.status_code for d in deliveries] == [200]
        # The sync.running delivery was verified and acknowledged too (not forwarded).
        assert all(d.status_code == 200 for d in fake.webhook_deliveries)
        assert len(_asset_runs(home, "e2e_polytomic_webhook")) == 1
        # The receiver left its de-duplication ledger entry (through the REST API).
        assert _state_keys(home, f"polytomic.event.{pushed_event['id']}", "api")
        assert SECRET not in stack.log("api-server")
