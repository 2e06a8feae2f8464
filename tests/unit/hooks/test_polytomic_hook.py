"""PolytomicHook over real HTTP against the fake Polytomic server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest

from airflow_provider_polytomic import api
from airflow_provider_polytomic._compat import airflow_version
from airflow_provider_polytomic.client import RetryableAPIError, parse_retry_after
from airflow_provider_polytomic.exceptions import (
    PolytomicAPIError,
    PolytomicNotFoundError,
    PolytomicSyncAlreadyRunningError,
)
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.models import BulkExecution, Execution, Outcome
from airflow_provider_polytomic.testing import EVENTS_ORDERS, FakePolytomic


def api_requests(fake: FakePolytomic, path: str | None = None) -> list:
    return [r for r in fake.requests if r.path.startswith("/api/") and (path is None or r.path == path)]


@pytest.fixture
def hook(polytomic_conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> PolytomicHook:
    conn = {
        "conn_type": "polytomic",
        "host": polytomic_conn.url,
        "password": polytomic_conn.api_key,
        # Small waits keep retry tests fast; the policy itself is what is under test.
        "extra": {"max_retries": 3, "retry_base_wait": 0.01, "retry_max_wait": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    return PolytomicHook()


# ----------------------------------------------------------------------- connection


def test_headers_on_every_request(hook, polytomic_conn):
    assert hook.get_identity().organization_name == "Fake Org"
    sync_id = polytomic_conn.add_sync("contacts")
    hook.start_sync(sync_id)
    get = api_requests(polytomic_conn, "/api/me")[0]
    post = api_requests(polytomic_conn, f"/api/syncs/{sync_id}/executions")[0]
    for req in (get, post):
        assert req.headers["authorization"] == f"Bearer {polytomic_conn.api_key}"
        assert req.headers["x-polytomic-version"] == "2025-09-18"
        assert req.headers["user-agent"].startswith("airflow-provider-polytomic/")
        assert f"apache-airflow/{airflow_version()} " in req.headers["user-agent"]
    assert "idempotency-key" not in get.headers
    assert len(post.headers["idempotency-key"]) >= 8


def test_organization_id_switches_to_basic_auth(polytomic_conn, monkeypatch):
    conn = {
        "conn_type": "polytomic",
        "host": polytomic_conn.url,
        "password": polytomic_conn.api_key,
        "extra": {"organization_id": polytomic_conn.organization_id, "api_version": "2024-02-08"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_PARTNER", json.dumps(conn))
    PolytomicHook("polytomic_partner").get_identity()
    req = api_requests(polytomic_conn, "/api/me")[-1]
    token = base64.b64encode(f"{polytomic_conn.organization_id}:{polytomic_conn.api_key}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {token}"
    assert req.headers["x-polytomic-version"] == "2024-02-08"


def test_connection_from_uri(polytomic_conn, monkeypatch):
    host = polytomic_conn.url.replace("http://", "")
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_URI",
        f"polytomic://:{polytomic_conn.api_key}@{host}/?scheme=http&timeout=12&max_retries=2",
    )
    hook = PolytomicHook("polytomic_uri")
    assert hook.test_connection() == (True, "Connected to Polytomic organization 'Fake Org'.")
    assert hook.config.timeout == 12.0 and hook.config.max_retries == 2
    assert hook.config.base_url == polytomic_conn.url


def test_test_connection_reports_failure_without_the_key(polytomic_conn, monkeypatch):
    conn = {"conn_type": "polytomic", "host": polytomic_conn.url, "password": "wrong-key-123456"}
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_BAD", json.dumps(conn))
    ok, message = PolytomicHook("polytomic_bad").test_connection()
    assert not ok
    assert "401" in message and "wrong-key-123456" not in message


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"timeout": "soon"}, "'timeout' must be a positive number of seconds, got 'soon'"),
        ({"max_retries": -1}, "'max_retries' must be 0 or more, got -1"),
        ({"api_version": "latest"}, "'api_version' must look like YYYY-MM-DD, got 'latest'"),
    ],
)
def test_bad_connection_extras_name_field_and_value(monkeypatch, extra, needle):
    conn = {
        "conn_type": "polytomic",
        "host": "https://app.polytomic.com",
        "password": "k" * 20,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_X", json.dumps(conn))
    with pytest.raises(ValueError, match="polytomic_x") as err:
        _ = PolytomicHook("polytomic_x").config
    assert needle in str(err.value)


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_NOKEY", json.dumps({"conn_type": "polytomic"}))
    with pytest.raises(ValueError, match="no API key"):
        _ = PolytomicHook("polytomic_nokey").config


def test_default_host_is_polytomic_cloud(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_CLOUD", json.dumps({"conn_type": "polytomic", "password": "k" * 10})
    )
    assert PolytomicHook("polytomic_cloud").config.base_url == "https://app.polytomic.com"


# -------------------------------------------------------------------------- retries


def test_429_retry_after_seconds_is_honoured(hook, polytomic_conn):
    polytomic_conn.faults.rate_limit(1, retry_after=1)
    started = time.monotonic()
    assert hook.get_event_types()
    elapsed = time.monotonic() - started
    reqs = api_requests(polytomic_conn, "/api/events_types")
    assert len(reqs) == 2
    assert elapsed >= 1.0
    assert (reqs[1].time - reqs[0].time).total_seconds() >= 0.99


def test_429_retry_after_http_date_is_honoured(hook, polytomic_conn):
    from datetime import datetime, timezone

    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    polytomic_conn.faults.rate_limit(1, retry_after=format_datetime(when, usegmt=True))
    started = time.monotonic()
    hook.get_event_types()
    # HTTP dates have one-second resolution: the wait is at least a second.
    assert time.monotonic() - started >= 1.0
    assert len(api_requests(polytomic_conn, "/api/events_types")) == 2


def test_retry_after_is_capped(polytomic_conn, monkeypatch):
    conn = {
        "conn_type": "polytomic",
        "host": polytomic_conn.url,
        "password": polytomic_conn.api_key,
        "extra": {"retry_max_wait": 0.2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_CAP", json.dumps(conn))
    polytomic_conn.faults.rate_limit(1, retry_after=3600)
    started = time.monotonic()
    PolytomicHook("polytomic_cap").get_event_types()
    assert time.monotonic() - started < 5


def test_5xx_burst_and_connection_resets_are_retried(hook, polytomic_conn):
    polytomic_conn.faults.server_errors(2, status=502)
    polytomic_conn.faults.reset_connections(1)
    assert hook.get_identity().organization_name == "Fake Org"
    assert len(api_requests(polytomic_conn, "/api/me")) == 4


def test_retries_exhausted_raise_with_status(hook, polytomic_conn):
    polytomic_conn.faults.server_errors(10, status=503)
    with pytest.raises(RetryableAPIError) as err:
        hook.get_identity()
    assert err.value.status_code == 503
    assert len(api_requests(polytomic_conn, "/api/me")) == 4  # 1 + max_retries


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_never_retried(hook, polytomic_conn, status):
    if status == 400:
        sync_id = polytomic_conn.add_sync(kind="bulk")
        path = f"/api/bulk/syncs/{sync_id}/executions"
        # The current API version refuses the legacy bulk `resync` flag with a 400.
        with pytest.raises(PolytomicAPIError) as err:
            hook.run(api.Call("POST", path, lambda b: b, json={"resync": True}))
        assert err.value.status_code == 400
    elif status == 401:
        polytomic_conn.api_key = "rotated-key-000000"
        with pytest.raises(PolytomicAPIError) as err:
            hook.get_identity()
        assert err.value.status_code == 401
        path = "/api/me"
    elif status == 404:
        with pytest.raises(PolytomicNotFoundError):
            hook.get_execution("00000000-0000-0000-0000-000000000000", "nope")
        path = "/api/syncs/00000000-0000-0000-0000-000000000000/executions/nope"
    else:
        with pytest.raises(PolytomicAPIError) as err:
            hook.run(api.Call("GET", "/api/events", lambda b: b, params={"limit": 1000}))
        assert err.value.status_code == 422
        path = "/api/events"
    assert len(api_requests(polytomic_conn, path)) == 1


def test_409_on_start_means_already_running(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    first = hook.start_sync(sync_id)
    with pytest.raises(PolytomicSyncAlreadyRunningError) as err:
        hook.start_sync(sync_id)
    assert err.value.status_code == 409
    assert hook.get_sync_status(sync_id).current_execution["id"] == first.id


def test_idempotency_key_replays_first_start(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    a = hook.start_sync(sync_id, idempotency_key="dag-task-run-1")
    b = hook.start_sync(sync_id, idempotency_key="dag-task-run-1")
    assert a.id == b.id
    assert len(polytomic_conn.executions(sync_id)) == 1


@pytest.mark.parametrize("shape", ["api_error", "legacy"])
def test_both_error_body_shapes(shape):
    with FakePolytomic(error_shape=shape) as fake:
        import os

        os.environ["AIRFLOW_CONN_POLYTOMIC_SHAPE"] = json.dumps(
            {"conn_type": "polytomic", "host": fake.url, "password": fake.api_key}
        )
        try:
            with pytest.raises(PolytomicNotFoundError) as err:
                PolytomicHook("polytomic_shape").get_webhook("missing-webhook")
        finally:
            del os.environ["AIRFLOW_CONN_POLYTOMIC_SHAPE"]
    assert err.value.status_code == 404
    assert err.value.message and "HTTP 404" not in err.value.message
    assert err.value.key


# --------------------------------------------------------------------------- events


def _many_events(fake: FakePolytomic, n: int) -> set[str]:
    sync_id = fake.add_sync()
    base = fake.clock.now() - timedelta(hours=1)
    ids = set()
    for i in range(n):
        event = fake.add_event(
            "sync.running",
            {"sync_id": sync_id, "execution_id": f"e{i}"},
            created_at=base + timedelta(seconds=i),
        )
        ids.add(event["id"])
    return ids


@pytest.mark.parametrize("duplicates", [False, True], ids=["unique", "duplicated"])
@pytest.mark.parametrize("order", EVENTS_ORDERS)
def test_list_events_pages_over_100_whatever_the_order(hook, polytomic_conn, order, duplicates):
    polytomic_conn.events_order = order
    polytomic_conn.faults.duplicate_events = duplicates
    ids = _many_events(polytomic_conn, 250)
    events = hook.list_events(starting_after=polytomic_conn.clock.now() - timedelta(hours=2))
    assert [e.id for e in events if e.id in ids] and {e.id for e in events} >= ids
    assert len(events) == len({e.id for e in events})
    stamps = [e.created_at for e in events]
    assert stamps == sorted(stamps)
    for req in api_requests(polytomic_conn, "/api/events"):
        assert req.query["limit"] == "100"


def test_list_events_window_and_type_filter(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    execution_id = polytomic_conn.start_execution(sync_id)
    polytomic_conn.complete_execution(sync_id, execution_id, inserted=[{"id": 1}])
    completed = hook.list_events(event_type="sync.completed")
    assert [e.type for e in completed] == ["sync.completed"]
    assert completed[0].payload.inserted_records
    assert completed[0].outcome is Outcome.SUCCEEDED
    assert hook.list_events(ending_before=completed[0].created_at - timedelta(hours=1)) == []


def test_events_older_than_48_hours_are_gone(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    polytomic_conn.start_execution(sync_id)
    assert hook.list_events()
    polytomic_conn.clock.advance(49 * 3600)
    assert hook.list_events() == []


def test_event_types(hook):
    types = hook.get_event_types()
    assert "sync.completed_with_errors" in types and "bulk_sync.completed_with_error" in types


def test_async_path_shares_policy_and_models(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    execution_id = polytomic_conn.start_execution(sync_id)
    polytomic_conn.fail_execution(sync_id, execution_id, error="warehouse unreachable")
    polytomic_conn.faults.rate_limit(1, retry_after=0.2)
    polytomic_conn.faults.server_errors(1)

    async def go():
        execution = await hook.aget_execution(sync_id, execution_id)
        events = await hook.alist_events()
        await hook.aclose()
        return execution, events

    execution, events = asyncio.run(go())
    assert isinstance(execution, Execution) and execution.outcome is Outcome.FAILED
    assert execution == hook.get_execution(sync_id, execution_id)
    assert [e.type for e in events] == [e.type for e in hook.list_events()]
    assert len(api_requests(polytomic_conn, f"/api/syncs/{sync_id}/executions/{execution_id}")) == 4


# ----------------------------------------------------------------------- executions


def test_list_executions_follows_page_tokens(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    for _ in range(60):
        execution_id = polytomic_conn.start_execution(sync_id)
        polytomic_conn.complete_execution(sync_id, execution_id)
    executions = hook.list_executions(sync_id)
    assert len(executions) == 60 == len({e.id for e in executions})
    assert len(api_requests(polytomic_conn, f"/api/syncs/{sync_id}/executions")) >= 2


def test_bulk_sync_endpoints(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync("bulk", kind="bulk")
    started = hook.start_sync(sync_id, sync_kind="bulk", resync=True)
    polytomic_conn.complete_execution(sync_id, started.id, errors=2)
    execution = hook.get_execution(sync_id, started.id, sync_kind="bulk")
    assert isinstance(execution, BulkExecution)
    assert execution.outcome is Outcome.SUCCEEDED_WITH_ERRORS
    body = json.loads(api_requests(polytomic_conn, f"/api/bulk/syncs/{sync_id}/executions")[0].body)
    assert body == {"test": False, "resync_mode": "rebuild"}
    logs = hook.get_execution_log_urls(sync_id, started.id, sync_kind="bulk")
    assert isinstance(logs.urls, list)
    assert [e.id for e in hook.list_executions(sync_id, sync_kind="bulk")] == [started.id]


def test_cancel_and_log_urls(hook, polytomic_conn):
    sync_id = polytomic_conn.add_sync()
    execution_id = polytomic_conn.start_execution(sync_id)
    assert hook.cancel_execution(sync_id, execution_id)
    assert polytomic_conn.execution(sync_id, execution_id)["status"] in ("canceling", "canceled")
    other = polytomic_conn.add_sync()
    run = polytomic_conn.start_execution(other)
    polytomic_conn.complete_execution(other, run, inserted=[{"id": i} for i in range(3)], records_per_file=2)
    urls = hook.get_execution_log_urls(other, run, "inserts")
    assert len(urls.urls) == 2 and urls.expires is not None
    with pytest.raises(ValueError, match="log_type must be one of"):
        hook.get_execution_log_urls(other, run, "inserted")


# -------------------------------------------------------------------------- webhooks


def test_webhook_crud_and_one_per_organization(hook, polytomic_conn):
    webhook = hook.create_webhook("http://127.0.0.1:9/hook", "secret-one")
    assert hook.get_webhook(webhook.id).endpoint == "http://127.0.0.1:9/hook"
    with pytest.raises(PolytomicAPIError) as err:
        hook.create_webhook("http://127.0.0.1:9/other", "secret-two")
    assert err.value.status_code == 422
    assert hook.disable_webhook(webhook.id).disabled is True
    assert hook.enable_webhook(webhook.id).disabled is False
    assert hook.update_webhook(webhook.id, "http://127.0.0.1:9/new", "secret-3x").endpoint.endswith("/new")
    hook.delete_webhook(webhook.id)
    assert hook.list_webhooks() == []


def test_webhook_secret_length_is_checked_before_sending(hook, polytomic_conn):
    with pytest.raises(ValueError, match="6 to 32") as err:
        hook.create_webhook("http://127.0.0.1:9/hook", "short")
    assert "short" not in str(err.value)
    assert api_requests(polytomic_conn, "/api/webhooks") == []


def test_ensure_webhook_is_idempotent(hook, polytomic_conn):
    first = hook.ensure_webhook("http://127.0.0.1:9/hook", "secret-one")
    hook.disable_webhook(first.id)
    second = hook.ensure_webhook("http://127.0.0.1:9/hook", "secret-one")
    assert second.id == first.id and second.disabled is False
    before = len([r for r in api_requests(polytomic_conn) if r.method != "GET"])
    third = hook.ensure_webhook("http://127.0.0.1:9/hook", "secret-one")
    after = len([r for r in api_requests(polytomic_conn) if r.method != "GET"])
    assert third.id == first.id and before == after  # nothing to change: no write
    moved = hook.ensure_webhook("http://127.0.0.1:9/moved", "secret-two")
    assert moved.id == first.id and moved.endpoint.endswith("/moved")
    assert len(hook.list_webhooks()) == 1


# --------------------------------------------------------------------------- secrets


def test_secrets_absent_from_logs_exceptions_and_reprs(hook, polytomic_conn, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "webhook-secret-42"
    webhook = hook.create_webhook("http://127.0.0.1:9/hook", secret)
    texts = [repr(webhook), str(webhook), repr(hook), repr(hook.config), str(webhook.model_dump())]
    polytomic_conn.faults.server_errors(10)
    with pytest.raises(PolytomicAPIError) as err:
        hook.get_webhook(webhook.id)
    texts += [str(err.value), repr(err.value)]
    polytomic_conn.api_key = "another-key-entirely"
    with pytest.raises(PolytomicAPIError) as err2:
        hook.list_webhooks()
    texts += [str(err2.value)]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert "fake-api-key" not in blob and hook.config.api_key.get_secret_value() not in blob
    assert secret not in blob


def test_parse_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
