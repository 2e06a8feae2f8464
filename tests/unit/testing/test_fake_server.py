"""Tests of the fake Polytomic server over real HTTP (requests / httpx, no provider hooks)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_polytomic.signature import verify_signature
from airflow_provider_polytomic.testing import FakeClock, FakePolytomic

# The documented way to enable the fixtures ``fake_polytomic`` and ``polytomic_conn``.
pytest_plugins = ["airflow_provider_polytomic.testing.pytest_plugin"]

TIMEOUT = 5


def auth(fake: FakePolytomic) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.api_key}"}


def api(fake: FakePolytomic, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**auth(fake), **kwargs.pop("headers", {})}
    return requests.request(method, fake.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def start_model(fake: FakePolytomic, sync_id: str, **kwargs: Any) -> str:
    response = api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, **kwargs)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


class Receiver:
    """A tiny webhook endpoint: answers the queued statuses (then 200) and records every POST."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.bodies.append(body)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def events(self) -> list[dict[str, Any]]:
        with self.cond:
            return [json.loads(b) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ------------------------------------------------------------------ auth, versions, validation


def test_auth_required(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    response = requests.get(fake.url + "/api/me", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "key": "unauthorized",
        "message": response.json()["message"],
        "metadata": {},
    }
    bad = requests.get(fake.url + "/api/me", headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT)
    assert bad.status_code == 401
    ok = api(fake, "GET", "/api/me")
    assert ok.status_code == 200
    assert ok.json()["data"]["organization_id"] == fake.organization_id
    basic = base64.b64encode(f"{fake.organization_id}:{fake.api_key}".encode()).decode()
    assert (
        requests.get(
            fake.url + "/api/me", headers={"Authorization": f"Basic {basic}"}, timeout=TIMEOUT
        ).status_code
        == 200
    )
    wrong_org = base64.b64encode(f"other:{fake.api_key}".encode()).decode()
    assert (
        requests.get(
            fake.url + "/api/me", headers={"Authorization": f"Basic {wrong_org}"}, timeout=TIMEOUT
        ).status_code
        == 401
    )
    # control routes need no auth
    assert requests.get(fake.url + "/_fake/state", timeout=TIMEOUT).status_code == 200


def test_version_header_echo(fake_polytomic: FakePolytomic) -> None:
    response = api(fake_polytomic, "GET", "/api/me", headers={"X-Polytomic-Version": "2024-02-08"})
    assert response.headers["X-Polytomic-Version"] == "2024-02-08"
    assert api(fake_polytomic, "GET", "/api/me").headers["X-Polytomic-Version"] == "2025-09-18"
    assert requests.get(fake_polytomic.url + "/api/me", timeout=TIMEOUT).headers["X-Polytomic-Version"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"starting_after": "yesterday"},
        {"ending_before": "2024-01-01T00:00:00"},
    ],
)
def test_events_query_validation(fake_polytomic: FakePolytomic, params: dict[str, str]) -> None:
    response = api(fake_polytomic, "GET", "/api/events", params=params)
    assert response.status_code == 422
    assert response.json()["key"] == "validation_error"


def test_events_types(fake_polytomic: FakePolytomic) -> None:
    data = api(fake_polytomic, "GET", "/api/events_types").json()["data"]
    assert "sync.completed_with_errors" in data and "bulk_sync.completed_with_error" in data
    assert len(data) == 10


def test_legacy_error_shape() -> None:
    with FakePolytomic(error_shape="legacy") as fake:
        response = api(fake, "GET", "/api/syncs/nope/status")
        assert response.status_code == 404
        body = response.json()
        assert body["code"] == 404 and body["status"] == "Not Found" and body["context"] == {}
        assert "nope" in body["error"]


# ------------------------------------------------------------------ webhooks CRUD


def test_webhook_crud_and_validation(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    for body in (
        {"endpoint": "https://example.com/h", "secret": "short"},
        {"endpoint": "https://example.com/h", "secret": "x" * 33},
        {"endpoint": "https://example.com/h"},
        {"endpoint": "not a url", "secret": "secret-123"},
        {"endpoint": "ftp://example.com/h", "secret": "secret-123"},
        {"secret": "secret-123"},
    ):
        assert api(fake, "POST", "/api/webhooks", json=body).status_code == 422, body
    created = api(
        fake, "POST", "/api/webhooks", json={"endpoint": "https://example.com/h", "secret": "secret-123"}
    )
    assert created.status_code == 200
    hook = created.json()["data"]
    assert hook["disabled"] is False and hook["secret"] == "secret-123"
    assert hook["organization_id"] == fake.organization_id
    second = api(
        fake, "POST", "/api/webhooks", json={"endpoint": "https://example.com/2", "secret": "secret-123"}
    )
    assert second.status_code == 422
    assert "one webhook" in second.json()["message"]
    assert [h["id"] for h in api(fake, "GET", "/api/webhooks").json()["data"]] == [hook["id"]]
    assert api(fake, "GET", f"/api/webhooks/{hook['id']}").json()["data"] == hook
    updated = api(
        fake,
        "PUT",
        f"/api/webhooks/{hook['id']}",
        json={"endpoint": "https://example.com/new", "secret": "other-secret"},
    ).json()["data"]
    assert updated["endpoint"] == "https://example.com/new"
    assert (
        api(fake, "PUT", f"/api/webhooks/{hook['id']}", json={"endpoint": "https://x.io"}).status_code == 422
    )
    assert api(fake, "POST", f"/api/webhooks/{hook['id']}/disable").json()["data"]["disabled"] is True
    assert api(fake, "POST", f"/api/webhooks/{hook['id']}/enable").json()["data"]["disabled"] is False
    deleted = api(fake, "DELETE", f"/api/webhooks/{hook['id']}")
    assert deleted.status_code == 200 and deleted.content == b""
    for method, path in (
        ("GET", "/api/webhooks/nope"),
        ("DELETE", f"/api/webhooks/{hook['id']}"),
        ("POST", "/api/webhooks/nope/disable"),
        ("POST", "/api/webhooks/nope/enable"),
    ):
        response = api(fake, method, path)
        assert response.status_code == 404, path
        assert response.json()["key"] == "not_found"


def test_unknown_ids_404(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    model = fake.add_sync("m")
    bulk = fake.add_sync("b", kind="bulk")
    for method, path in (
        ("POST", "/api/syncs/nope/executions"),
        ("GET", "/api/syncs/nope/status"),
        ("GET", f"/api/syncs/{model}/executions/nope"),
        ("GET", f"/api/syncs/{model}/executions/nope/inserts"),
        ("POST", f"/api/syncs/{model}/executions/nope/cancel"),
        ("GET", f"/api/syncs/{bulk}/status"),
        ("GET", f"/api/bulk/syncs/{model}/status"),
        ("GET", f"/api/bulk/syncs/{bulk}/executions/nope"),
        ("GET", f"/api/bulk/syncs/{bulk}/executions/nope/logs"),
        ("GET", "/api/no/such/route"),
    ):
        response = api(fake, method, path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404


# ------------------------------------------------------------------ lifecycle


def test_model_execution_lifecycle(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("contacts")
    start = api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={"resync": False})
    assert start.json()["data"]["status"] == "created"
    execution_id = start.json()["data"]["id"]
    again = api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={})
    assert again.status_code == 409
    status = api(fake, "GET", f"/api/syncs/{sync_id}/status").json()["data"]
    assert status["current_execution"]["id"] == execution_id
    assert status["current_execution"]["status"] == "running"
    assert status["last_execution"] is None
    event = fake.complete_execution(
        sync_id, execution_id, inserted=[{"id": i} for i in range(3)], updated=[{"id": 9}], records_per_file=2
    )
    assert event["type"] == "sync.completed"
    payload = event["event"]
    assert payload["record_count"] == 4 and payload["inserted_count"] == 3 and payload["updated_count"] == 1
    assert len(payload["inserted_records"]) == 2 and len(payload["updated_records"]) == 1
    assert payload["deleted_records"] is None and payload["errored_records"] is None
    execution = api(fake, "GET", f"/api/syncs/{sync_id}/executions/{execution_id}").json()["data"]
    assert execution["status"] == "completed"
    assert execution["counts"] == {
        "total": 4,
        "insert": 3,
        "update": 1,
        "delete": 0,
        "upserts": 0,
        "error": 0,
        "warnings": 0,
    }
    assert execution["completed_at"].endswith("Z")
    types = [e["type"] for e in api(fake, "GET", "/api/events").json()["data"]]
    assert types == ["sync.running", "sync.completed"]
    records: list[dict[str, Any]] = []
    for url in payload["inserted_records"]:
        records.extend(requests.get(url, timeout=TIMEOUT).json())
    assert (
        records == fake.record_log_records(sync_id, execution_id, "inserts") == [{"id": i} for i in range(3)]
    )
    urls = api(fake, "GET", f"/api/syncs/{sync_id}/executions/{execution_id}/inserts").json()["data"]
    assert len(urls["urls"]) == 2 and urls["expires"].endswith("Z")
    assert api(fake, "GET", f"/api/syncs/{sync_id}/executions/{execution_id}/bogus").status_code == 400
    status = api(fake, "GET", f"/api/syncs/{sync_id}/status").json()["data"]
    assert status["current_execution"] is None and status["last_execution"]["id"] == execution_id
    sync = api(fake, "GET", f"/api/syncs/{sync_id}").json()["data"]
    assert (sync["id"], sync["name"], sync["active"]) == (sync_id, "contacts", True)
    model = api(fake, "GET", f"/api/models/{sync['model_ids'][0]}").json()["data"]
    source = api(fake, "GET", f"/api/connections/{model['connection_id']}").json()["data"]
    target = api(fake, "GET", f"/api/connections/{sync['target']['connection_id']}").json()["data"]
    assert (source["type"]["id"], model["configuration"]) == ("snowflake", {"table": "PUBLIC.CONTACTS"})
    assert (target["type"]["id"], sync["target"]["object"]) == ("salesforce", "Contact")


def test_model_outcomes(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("s")
    first = start_model(fake, sync_id)
    event = fake.complete_execution(sync_id, first, errored=[{"id": 1}], warnings=2, error_message="bad rows")
    assert event["type"] == "sync.completed_with_errors"
    assert event["event"]["number_of_errors"] == 1 and event["event"]["number_of_warnings"] == 2
    assert event["event"]["error"] == "bad rows"
    execution = fake.executions(sync_id)[0]
    assert execution["status"] == "completed" and execution["counts"]["error"] == 1
    second = start_model(fake, sync_id)
    assert fake.fail_execution(sync_id, second, error="boom")["event"]["error"] == "boom"
    assert fake.executions(sync_id)[0]["status"] == "failed"
    third = start_model(fake, sync_id)
    cancel = api(fake, "POST", f"/api/syncs/{sync_id}/executions/{third}/cancel")
    assert cancel.status_code == 200 and "message" in cancel.json()["data"]
    assert fake.executions(sync_id)[0]["status"] == "canceled"
    assert api(fake, "POST", f"/api/syncs/{sync_id}/executions/{third}/cancel").status_code == 400
    fourth = start_model(fake, sync_id)
    fake.set_execution_status(sync_id, fourth, "mystery")
    assert api(fake, "GET", f"/api/syncs/{sync_id}/executions/{fourth}").json()["data"]["status"] == "mystery"
    assert api(fake, "POST", f"/api/syncs/{sync_id}/cancel").status_code == 200
    types = [e["type"] for e in fake.events()]
    assert types == [
        "sync.running",
        "sync.completed_with_errors",
        "sync.running",
        "sync.failed",
        "sync.running",
        "sync.canceled",
        "sync.running",
        "sync.canceled",
    ]
    assert fake.events()[5]["event"]["status"] == "canceled"


def test_cancel_goes_through_canceling(fake_polytomic: FakePolytomic, receiver: Receiver) -> None:
    fake = fake_polytomic
    fake.cancel_delay = 0.05
    api(fake, "POST", "/api/webhooks", json={"endpoint": receiver.url, "secret": "secret-123"})
    sync_id = fake.add_sync("s")
    execution_id = start_model(fake, sync_id)
    api(fake, "POST", f"/api/syncs/{sync_id}/executions/{execution_id}/cancel")
    assert fake.executions(sync_id)[0]["status"] == "canceling"
    assert receiver.wait_for(lambda r: any(e["type"] == "sync.canceled" for e in r.events()))
    assert fake.executions(sync_id)[0]["status"] == "canceled"


def test_bulk_lifecycle(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("bulk", kind="bulk")
    assert (
        api(
            fake,
            "POST",
            f"/api/bulk/syncs/{sync_id}/executions",
            json={"test": True, "resync_mode": "rebuild"},
        ).status_code
        == 400
    )
    start = api(fake, "POST", f"/api/bulk/syncs/{sync_id}/executions", json={"fetch_mode": "full"})
    data = start.json()["data"]
    assert data["status"] == "created" and data["fetch_mode"] == "full"
    assert [(s["schema"], s["status"]) for s in data["schemas"]] == [
        ("Account", "created"),
        ("Contact", "created"),
    ]
    assert api(fake, "POST", f"/api/bulk/syncs/{sync_id}/executions", json={}).status_code == 409
    event = fake.complete_execution(sync_id, data["id"], inserted=[{"a": 1}], errors=2, error_message="2 bad")
    assert event["type"] == "bulk_sync.completed_with_error"
    assert set(event["event"]) == {
        "execution_id",
        "organization_id",
        "sync_id",
        "sync_name",
        "source_connection_id",
        "destination_connection_id",
        "trigger_source",
        "schedule",
    }
    assert event["event"]["schedule"]["frequency"] == "manual"
    execution = api(fake, "GET", f"/api/bulk/syncs/{sync_id}/executions/{data['id']}").json()["data"]
    assert execution["status"] == "errors" and execution["status_message"] == "2 bad"
    assert execution["record_count"] == 1 and execution["error_count"] == 2
    logs = api(fake, "GET", f"/api/bulk/syncs/{sync_id}/executions/{data['id']}/logs").json()["data"]
    assert set(logs) == {"URLs", "Expires"}
    assert requests.get(logs["URLs"][0], timeout=TIMEOUT).json() == [{"a": 1}]
    statuses = api(fake, "GET", "/api/bulk/syncs/status", params={"sync_id": [sync_id]}).json()["data"]
    assert [(s["sync_id"], s["status"], s["nextExecutionTime"]) for s in statuses] == [
        (sync_id, "errors", None)
    ]
    assert [(s["schema"], s["execution_id"], s["status"]) for s in statuses[0]["schemas"]] == [
        ("Account", data["id"], "completed"),
        ("Contact", data["id"], "completed"),
    ]
    assert sum(s["error_count"] for s in statuses[0]["schemas"]) == 2
    status = api(fake, "GET", f"/api/bulk/syncs/{sync_id}/status").json()["data"]
    assert status["last_execution"]["id"] == data["id"] and status["current_execution"] is None
    second = fake.start_execution(sync_id)
    assert fake.fail_execution(sync_id, second, error="nope")["type"] == "bulk_sync.failed"
    third = fake.start_execution(sync_id)
    assert api(fake, "POST", f"/api/bulk/syncs/{sync_id}/cancel").status_code == 200
    assert (
        api(fake, "GET", f"/api/bulk/syncs/{sync_id}/executions/{third}").json()["data"]["status"]
        == "canceled"
    )
    listing = api(fake, "GET", f"/api/bulk/syncs/{sync_id}/executions", params={"limit": 2}).json()
    assert [e["id"] for e in listing["data"]] == [third, second]
    rest = api(
        fake,
        "GET",
        f"/api/bulk/syncs/{sync_id}/executions",
        params={"limit": 2, "page_token": listing["pagination"]["next_page_token"]},
    ).json()
    assert [e["id"] for e in rest["data"]] == [data["id"]] and "pagination" not in rest
    assert [e["type"] for e in fake.events()] == [
        "bulk_sync.running",
        "bulk_sync.completed_with_error",
        "bulk_sync.running",
        "bulk_sync.failed",
        "bulk_sync.running",
        "bulk_sync.canceled",
    ]


def test_executions_pagination(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("s")
    ids = []
    for _ in range(55):
        execution_id = fake.start_execution(sync_id)
        fake.set_execution_status(sync_id, execution_id, "completed")
        ids.append(execution_id)
    running = fake.start_execution(sync_id)
    first = api(fake, "GET", f"/api/syncs/{sync_id}/executions").json()
    assert len(first["data"]) == 50 and first["data"][0]["id"] == running
    second = api(
        fake,
        "GET",
        f"/api/syncs/{sync_id}/executions",
        params={"page_token": first["pagination"]["next_page_token"]},
    ).json()
    assert len(second["data"]) == 6 and "pagination" not in second
    ascending = api(
        fake,
        "GET",
        f"/api/syncs/{sync_id}/executions",
        params={"ascending": "true", "only_completed": "true"},
    ).json()
    assert ascending["data"][0]["id"] == ids[0]
    assert running not in [e["id"] for e in ascending["data"]]
    bad = api(fake, "GET", f"/api/syncs/{sync_id}/executions", params={"page_token": "garbage"})
    assert bad.status_code == 400


def test_idempotency_key(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("s")
    headers = {"Idempotency-Key": "start-key-0001"}
    first = api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers=headers)
    replay = api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers=headers)
    assert replay.status_code == first.status_code == 200
    assert replay.json() == first.json()
    assert len(fake.executions(sync_id)) == 1
    other = api(
        fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers={"Idempotency-Key": "other-key-1"}
    )
    assert other.status_code == 409
    assert (
        api(
            fake,
            "POST",
            f"/api/syncs/{sync_id}/executions",
            json={},
            headers={"Idempotency-Key": "other-key-1"},
        ).status_code
        == 409
    )
    assert (
        api(
            fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers={"Idempotency-Key": "bad key!"}
        ).status_code
        == 400
    )
    assert (
        api(
            fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers={"Idempotency-Key": "short"}
        ).status_code
        == 400
    )
    fake.clock.advance(25 * 3600)
    assert api(fake, "POST", f"/api/syncs/{sync_id}/executions", json={}, headers=headers).status_code == 409


# ------------------------------------------------------------------ events


def test_events_window_paging_and_filter(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    for i in range(25):
        fake.add_event("sync.running" if i % 5 else "bulk_sync.running", {"n": i})
    page = api(fake, "GET", "/api/events").json()["data"]
    assert [e["event"]["n"] for e in page] == list(range(10))
    seen: list[int] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if after:
            params["starting_after"] = after
        batch = api(fake, "GET", "/api/events", params=params).json()["data"]
        seen.extend(e["event"]["n"] for e in batch)
        if len(batch) < 7:
            break
        after = batch[-1]["created_at"]
    assert seen == list(range(25))
    only_bulk = api(fake, "GET", "/api/events", params={"type": "bulk_sync.running", "limit": 100}).json()[
        "data"
    ]
    assert [e["event"]["n"] for e in only_bulk] == [0, 5, 10, 15, 20]
    all_events = fake.events()
    before = api(
        fake, "GET", "/api/events", params={"ending_before": all_events[3]["created_at"], "limit": 100}
    ).json()["data"]
    assert [e["event"]["n"] for e in before] == [0, 1, 2]
    plus = all_events[1]["created_at"].replace("Z", "+00:00")
    assert len(api(fake, "GET", "/api/events", params={"ending_before": plus}).json()["data"]) == 1


def test_events_expire_after_48h() -> None:
    clock = FakeClock()
    with FakePolytomic(clock=clock) as fake:
        fake.add_event("sync.running", {"n": 1})
        clock.advance(47 * 3600)
        fake.add_event("sync.running", {"n": 2})
        assert len(api(fake, "GET", "/api/events").json()["data"]) == 2
        clock.advance(2 * 3600)
        assert [e["event"]["n"] for e in api(fake, "GET", "/api/events").json()["data"]] == [2]
        assert len(fake.events()) == 1
        old = fake.add_event("sync.running", {"n": 0}, created_at=clock.now() - timedelta(hours=49))
        assert old["id"] not in [e["id"] for e in fake.events()]


def test_event_fault_knobs(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    for i in range(15):
        fake.add_event("sync.running", {"n": i})
    assert [e["event"]["n"] for e in api(fake, "GET", "/api/events").json()["data"]] == list(range(10))
    fake.events_order = "newest_first"
    assert [e["event"]["n"] for e in api(fake, "GET", "/api/events").json()["data"]] == list(range(14, 4, -1))
    fake.events_order = "shuffled"  # the oldest `limit` events, in a random order
    shuffled = [e["event"]["n"] for e in api(fake, "GET", "/api/events", params={"limit": 12}).json()["data"]]
    assert sorted(shuffled) == list(range(12)) and shuffled != list(range(12))
    with pytest.raises(ValueError, match="events_order must be one of oldest_first, newest_first, shuffled"):
        fake.events_order = "random"  # type: ignore[assignment]
    fake.events_order = "oldest_first"
    fake.faults.duplicate_events = True
    dup = fake.add_event("sync.completed", {"n": 99})
    fake.faults.duplicate_events = False
    ids = [e["id"] for e in api(fake, "GET", "/api/events", params={"type": "sync.completed"}).json()["data"]]
    assert ids == [dup["id"], dup["id"]]
    fake.faults.drop_events = {"sync.failed"}
    fake.faults.drop_next_events = 1
    sync_id = fake.add_sync("s")
    execution_id = fake.start_execution(sync_id)  # sync.running dropped by drop_next_events
    fake.fail_execution(sync_id, execution_id)  # sync.failed dropped by type
    assert fake.executions(sync_id)[0]["status"] == "failed"
    assert not [e for e in fake.events() if e["event"].get("execution_id") == execution_id]


# ------------------------------------------------------------------ request faults


def test_rate_limit_with_retry_after(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    date = format_datetime(datetime(2030, 1, 1, tzinfo=timezone.utc), usegmt=True)
    fake.faults.rate_limit(1, retry_after=2)
    fake.faults.rate_limit(1, retry_after=date)
    first = api(fake, "GET", "/api/me")
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert first.json()["key"] == "rate_limited"
    second = api(fake, "GET", "/api/me")
    assert second.status_code == 429 and second.headers["Retry-After"] == date
    assert requests.get(fake.url + "/_fake/state", timeout=TIMEOUT).status_code == 200  # not consumed
    assert api(fake, "GET", "/api/me").status_code == 200


def test_server_error_burst(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.faults.server_errors(3)
    fake.faults.server_errors(1, status=500)
    assert [api(fake, "GET", "/api/me").status_code for _ in range(5)] == [503, 503, 503, 500, 200]
    assert fake.faults.pending_request_faults == 0


def test_connection_reset(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.faults.reset_connections(2)
    for client in (requests, httpx):
        with pytest.raises((requests.ConnectionError, httpx.TransportError)):
            client.get(fake.url + "/api/me", headers=auth(fake), timeout=TIMEOUT)
    assert api(fake, "GET", "/api/me").status_code == 200


def test_slow_responses(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    # A delay far above any scheduling hiccup, so "not delayed" holds on a loaded machine too.
    fake.faults.slow(5.0, n=1)
    with pytest.raises(requests.Timeout):
        requests.get(fake.url + "/api/me", headers=auth(fake), timeout=0.1)
    started = time.monotonic()
    assert api(fake, "GET", "/api/me").status_code == 200
    assert time.monotonic() - started < 5.0


# ------------------------------------------------------------------ record logs


def test_signed_urls_expire_and_are_checked() -> None:
    clock = FakeClock()
    with FakePolytomic(clock=clock, signed_url_ttl=60) as fake:
        sync_id = fake.add_sync("s")
        execution_id = fake.run_execution(sync_id, inserted=[{"id": 1}])
        url = fake.events()[-1]["event"]["inserted_records"][0]
        assert requests.get(url, timeout=TIMEOUT).status_code == 200
        assert requests.get(url.replace("sig=", "sig=0"), timeout=TIMEOUT).status_code == 403
        assert requests.get(url.split("?")[0], timeout=TIMEOUT).status_code == 403
        clock.advance(61)
        assert requests.get(url, timeout=TIMEOUT).status_code == 403
        fresh = api(fake, "GET", f"/api/syncs/{sync_id}/executions/{execution_id}/inserts").json()["data"][
            "urls"
        ]
        assert requests.get(fresh[0], timeout=TIMEOUT).json() == [{"id": 1}]
        fake.faults.expire_record_links = True
        second = fake.run_execution(sync_id, inserted=[{"id": 2}])
        expired = fake.events()[-1]["event"]["inserted_records"][0]
        assert requests.get(expired, timeout=TIMEOUT).status_code == 403
        fresh = api(fake, "GET", f"/api/syncs/{sync_id}/executions/{second}/inserts").json()["data"]["urls"]
        assert requests.get(fresh[0], timeout=TIMEOUT).json() == [{"id": 2}]


def test_storage_origin_never_sees_api_key() -> None:
    with FakePolytomic(storage_origin=True) as fake:
        assert fake.storage_url and fake.storage_url != fake.url
        sync_id = fake.add_sync("s")
        execution_id = fake.run_execution(sync_id, inserted=[{"id": 1}, {"id": 2}])
        url = fake.events()[-1]["event"]["inserted_records"][0]
        assert url.startswith(fake.storage_url + "/files/")
        assert requests.get(url, timeout=TIMEOUT).json() == [{"id": 1}, {"id": 2}]
        redirected = api(
            fake,
            "GET",
            f"/api/syncs/{sync_id}/executions/{execution_id}/inserts/inserts-0001.json",
            allow_redirects=False,
        )
        assert redirected.status_code == 302 and redirected.headers["Location"].startswith(fake.storage_url)
        followed = api(fake, "GET", f"/api/syncs/{sync_id}/executions/{execution_id}/inserts/inserts-0001")
        assert followed.json() == [{"id": 1}, {"id": 2}]
        assert len(fake.storage_requests) == 2
        assert not any(r.has_authorization for r in fake.storage_requests)
        assert not any(r.path.startswith("/files/") for r in fake.requests)


def test_gzip_record_logs_both_ways() -> None:
    with FakePolytomic(gzip_record_logs=True) as fake:
        sync_id = fake.add_sync("s")
        fake.run_execution(sync_id, inserted=[{"id": 1}, {"id": 2}], records_per_file=1)
        first, second = fake.events()[-1]["event"]["inserted_records"]
        assert "inserts-0001.json.gz" in first
        encoded = requests.get(first, timeout=TIMEOUT)
        assert encoded.headers["Content-Encoding"] == "gzip"
        assert encoded.json() == [{"id": 1}]
        raw = httpx.get(second, timeout=TIMEOUT)
        assert "content-encoding" not in raw.headers
        assert raw.headers["content-type"] == "application/gzip"
        assert raw.content[:2] == b"\x1f\x8b"
        assert int(raw.headers["content-length"]) == len(raw.content)
        assert json.loads(gzip.decompress(raw.content)) == [{"id": 2}]


def test_jsonl_record_logs() -> None:
    with FakePolytomic(record_log_format="jsonl") as fake:
        sync_id = fake.add_sync("s")
        fake.run_execution(sync_id, updated=[{"id": 1}, {"id": 2}])
        url = fake.events()[-1]["event"]["updated_records"][0]
        lines = requests.get(url, timeout=TIMEOUT).text.splitlines()
        assert [json.loads(line) for line in lines] == [{"id": 1}, {"id": 2}]


def test_truncated_record_log(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("s")
    fake.run_execution(sync_id, inserted=[{"id": i, "pad": "x" * 50} for i in range(20)])
    url = fake.events()[-1]["event"]["inserted_records"][0]
    fake.faults.truncate_record_logs(1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=TIMEOUT)
    assert len(requests.get(url, timeout=TIMEOUT).json()) == 20


# ------------------------------------------------------------------ webhooks delivery & scheduling


def test_webhook_delivery_with_retries(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    receiver = Receiver(statuses=[500, 502])
    try:
        hook = api(fake, "POST", "/api/webhooks", json={"endpoint": receiver.url, "secret": "s3cr3t-value"})
        event = fake.add_event("sync.running", {"sync_id": "x"})
        assert fake.wait_for_deliveries(TIMEOUT)
        attempts = [d for d in fake.webhook_deliveries if d.event_id == event["id"]]
        assert [(d.attempt, d.status_code) for d in attempts] == [(1, 500), (2, 502), (3, 200)]
        assert len(receiver.bodies) == 3
        body, headers = receiver.bodies[-1], receiver.headers[-1]
        assert json.loads(body) == event
        assert headers["content-type"] == "application/json"
        assert verify_signature(body, headers["polytomic-signature"], "s3cr3t-value")
        # disabled: nothing delivered; drop_webhook_next skips one
        api(fake, "POST", f"/api/webhooks/{hook.json()['data']['id']}/disable")
        fake.add_event("sync.running", {})
        api(fake, "POST", f"/api/webhooks/{hook.json()['data']['id']}/enable")
        fake.faults.drop_webhook_next = 1
        fake.add_event("sync.running", {"skipped": True})
        kept = fake.add_event("sync.running", {"kept": True})
        assert fake.wait_for_deliveries(TIMEOUT)
        assert [json.loads(b)["id"] for b in receiver.bodies[3:]] == [kept["id"]]
    finally:
        receiver.close()


def test_webhook_gives_up_after_five_retries(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.webhook_retry_base_delay = 0.001
    api(fake, "POST", "/api/webhooks", json={"endpoint": "http://127.0.0.1:9/none", "secret": "secret-123"})
    fake.add_event("sync.running", {})
    assert fake.wait_for_deliveries(TIMEOUT)
    assert [d.attempt for d in fake.webhook_deliveries] == [1, 2, 3, 4, 5, 6]
    assert all(d.status_code is None and d.error for d in fake.webhook_deliveries)


def test_scheduled_and_auto_outcomes(fake_polytomic: FakePolytomic, receiver: Receiver) -> None:
    fake = fake_polytomic
    api(fake, "POST", "/api/webhooks", json={"endpoint": receiver.url, "secret": "secret-123"})
    sync_id = fake.add_sync("s")
    fake.set_auto_outcome(sync_id, "completed_with_errors", after=0.05)
    execution_id = start_model(fake, sync_id)
    assert receiver.wait_for(lambda r: any(e["type"] == "sync.completed_with_errors" for e in r.events()))
    assert fake.executions(sync_id)[0]["id"] == execution_id
    fake.clear_auto_outcome(sync_id)
    other = fake.add_sync("bulk", kind="bulk")
    bulk_execution = fake.run_execution(other, outcome="failed", after=0.05, error="kaput")
    assert receiver.wait_for(lambda r: any(e["type"] == "bulk_sync.failed" for e in r.events()))
    failed = next(e for e in receiver.events() if e["type"] == "bulk_sync.failed")
    assert failed["event"]["execution_id"] == bulk_execution and failed["event"]["error"] == "kaput"


def test_polytomic_conn_fixture(polytomic_conn: FakePolytomic) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_POLYTOMIC_DEFAULT"])
    assert conn == {
        "conn_type": "polytomic",
        "host": polytomic_conn.url,
        "password": polytomic_conn.api_key,
        "extra": {"max_retries": 3},
    }


def test_fake_control_routes(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.faults.server_errors(10)
    sync_id = requests.post(
        fake.url + "/_fake/syncs", json={"name": "x", "kind": "model"}, timeout=TIMEOUT
    ).json()["id"]
    execution_id = requests.post(
        fake.url + f"/_fake/syncs/{sync_id}/executions", json={}, timeout=TIMEOUT
    ).json()["id"]
    done = requests.post(
        fake.url + f"/_fake/syncs/{sync_id}/executions/{execution_id}/complete",
        json={"inserted": [{"id": 1}]},
        timeout=TIMEOUT,
    )
    assert done.json()["type"] == "sync.completed"
    assert (
        requests.post(
            fake.url + f"/_fake/syncs/{sync_id}/executions/nope/fail", json={}, timeout=TIMEOUT
        ).status_code
        == 404
    )
    state = requests.get(fake.url + "/_fake/state", timeout=TIMEOUT).json()
    assert state["syncs"][0]["executions"][0]["status"] == "completed"
    assert fake.faults.pending_request_faults == 10


def test_cli_serve_subprocess() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_polytomic.testing",
            "serve",
            "--port",
            "0",
            "--sync",
            "alpha",
            "--sync",
            "bulk:beta",
            "--api-key",
            "cli-key-123456",
            "--auto-complete-after",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["api_key"] == "cli-key-123456" and set(line["syncs"]) == {"alpha", "beta"}
        headers = {"Authorization": "Bearer cli-key-123456"}
        me = requests.get(line["url"] + "/api/me", headers=headers, timeout=TIMEOUT).json()["data"]
        assert me["organization_id"] == line["organization_id"]
        alpha = line["syncs"]["alpha"]
        execution = requests.post(
            line["url"] + f"/api/syncs/{alpha}/executions", json={}, headers=headers, timeout=TIMEOUT
        ).json()["data"]["id"]
        got = requests.get(
            line["url"] + f"/api/syncs/{alpha}/executions/{execution}", headers=headers, timeout=TIMEOUT
        ).json()["data"]
        assert got["status"] == "completed"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
