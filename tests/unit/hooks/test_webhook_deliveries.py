"""Webhook delivery history: recorded by the fake as it delivers, listed by the API and the hook,
and reported by ``ensure_webhook`` when Polytomic disabled the webhook after failures."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.operators.webhook import PolytomicEnsureWebhookOperator
from airflow_provider_polytomic.testing import FakePolytomic
from tests.webhook_endpoint import Endpoint

TIMEOUT = 10
SECRET = "delivery-secret-1"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


@pytest.fixture
def fake() -> Iterator[FakePolytomic]:
    with FakePolytomic(webhook_retry_base_delay=0.005) as f:
        yield f


def deliveries(fake: FakePolytomic, webhook_id: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{fake.url}/api/webhooks/{webhook_id}/deliveries",
        params=params,
        headers={"Authorization": f"Bearer {fake.api_key}"},
        timeout=TIMEOUT,
    )


@pytest.fixture
def hook(fake: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> PolytomicHook:
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        "extra": {"max_retries": 1, "retry_base_wait": 0.01, "webhook_secret": SECRET},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    return PolytomicHook()


# ------------------------------------------------------------------------ the fake records


def test_every_attempt_is_recorded_with_time_status_and_success(fake: FakePolytomic) -> None:
    endpoint = Endpoint(statuses=[500, 502])
    try:
        hook_id = fake.create_webhook({"endpoint": endpoint.url, "secret": SECRET})["id"]
        event = fake.add_event("sync.running", {"sync_id": "s"})
        assert fake.wait_for_deliveries(TIMEOUT)
    finally:
        endpoint.close()
    page = deliveries(fake, hook_id).json()
    rows = page["data"]
    assert "pagination" not in page
    assert [(d["status_code"], d["success"]) for d in rows] == [(200, True), (502, False), (500, False)]
    assert {d["event_id"] for d in rows} == {event["id"]} and {d["event_type"] for d in rows} == {
        "sync.running"
    }
    times = [datetime.fromisoformat(d["attempted_at"].replace("Z", "+00:00")) for d in rows]
    assert times == sorted(times, reverse=True)  # newest first
    assert (
        rows[0]["error"] is None
        and rows[0]["error_kind"] is None
        and rows[0]["response_body"] == "answer 200"
    )
    assert rows[1]["error"] == "endpoint answered HTTP 502" and rows[1]["error_kind"] == "http_status"
    assert all(d["duration_ms"] >= 0 and d["id"] for d in rows)
    assert [d.attempt for d in fake.webhook_deliveries] == [1, 2, 3]


def test_five_retries_with_exponential_backoff(fake: FakePolytomic) -> None:
    fake.webhook_retry_base_delay = 0.02
    fake.create_webhook({"endpoint": "http://127.0.0.1:9/closed", "secret": SECRET})
    fake.add_event("sync.failed", {"sync_id": "s"})
    assert fake.wait_for_deliveries(TIMEOUT)
    attempts = fake.webhook_deliveries
    assert [d.attempt for d in attempts] == [1, 2, 3, 4, 5, 6]
    assert all(d.status_code is None and d.error_kind == "connection" for d in attempts)
    starts = [d.attempted_at for d in attempts if d.attempted_at is not None]
    assert len(starts) == 6
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # Lower bounds only: a loaded machine can only make the waits longer.
    assert all(gap >= 0.02 * 2**i * 0.9 for i, gap in enumerate(gaps)), gaps


def test_repeated_failures_disable_the_webhook(fake: FakePolytomic) -> None:
    fake.webhook_disable_after = 2
    endpoint = Endpoint(default=500)
    try:
        hook_id = fake.create_webhook({"endpoint": endpoint.url, "secret": SECRET})["id"]
        fake.add_event("sync.running", {})
        assert fake.wait_for_deliveries(TIMEOUT)
        assert fake.get_webhook(hook_id)["disabled"] is False  # one failed event is not enough
        endpoint.default = 200
        fake.add_event("sync.running", {})  # delivered: the count starts again
        assert fake.wait_for_deliveries(TIMEOUT)
        endpoint.default = 500
        fake.add_event("sync.running", {})
        assert fake.wait_for_deliveries(TIMEOUT)
        assert fake.get_webhook(hook_id)["disabled"] is False
        fake.add_event("sync.running", {})
        assert fake.wait_for_deliveries(TIMEOUT)
        hook = fake.get_webhook(hook_id)
        assert hook["disabled"] is True and hook["disabled_at"].endswith("Z")
        assert hook["disabled_reason"].startswith("disabled after 2 consecutive failed deliveries")
        hits = endpoint.hits
        fake.add_event("sync.running", {})  # not queued while disabled
        assert fake.wait_for_deliveries(TIMEOUT) and endpoint.hits == hits
        enabled = fake.set_webhook_disabled(hook_id, False)
        assert (enabled["disabled"], enabled["disabled_at"], enabled["disabled_reason"]) == (
            False,
            None,
            None,
        )
    finally:
        endpoint.close()


def test_disabling_during_retries_stops_them(fake: FakePolytomic) -> None:
    fake.webhook_retry_base_delay = 0.3
    endpoint = Endpoint(default=503)
    try:
        hook_id = fake.create_webhook({"endpoint": endpoint.url, "secret": SECRET})["id"]
        fake.add_event("sync.running", {})
        assert endpoint.wait_hits(1)
        fake.set_webhook_disabled(hook_id, True)
        assert fake.wait_for_deliveries(TIMEOUT)
        assert endpoint.hits == 1 and len(fake.webhook_deliveries) == 1
        assert fake.get_webhook(hook_id)["disabled_reason"] is None  # disabled by a user: no reason
    finally:
        endpoint.close()


def test_deliveries_filters_paging_and_retention(fake: FakePolytomic) -> None:
    fake.webhook_deliveries_page_size = 2
    endpoint = Endpoint(statuses=[500])
    try:
        hook_id = fake.create_webhook({"endpoint": endpoint.url, "secret": SECRET})["id"]
        first = fake.add_event("sync.running", {})
        assert fake.wait_for_deliveries(TIMEOUT)
        between = datetime.now(timezone.utc)
        for _ in range(3):
            fake.add_event("sync.completed", {})
            assert fake.wait_for_deliveries(TIMEOUT)
    finally:
        endpoint.close()
    seen, token = [], None
    while True:
        page = deliveries(fake, hook_id, **({"page_token": token} if token else {})).json()
        assert len(page["data"]) <= 2
        seen.extend(d["id"] for d in page["data"])
        token = (page.get("pagination") or {}).get("next_page_token")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5
    failed = deliveries(fake, hook_id, success="false").json()["data"]
    assert [(d["event_id"], d["status_code"]) for d in failed] == [(first["id"], 500)]
    by_event = deliveries(fake, hook_id, event_id=first["id"]).json()["data"]
    assert [d["success"] for d in by_event] == [True, False]
    after = deliveries(fake, hook_id, start=between.isoformat()).json()
    assert {d["event_type"] for d in after["data"]} == {"sync.completed"} and after["pagination"]
    before = deliveries(fake, hook_id, end=between.isoformat()).json()["data"]
    assert {d["event_id"] for d in before} == {first["id"]}
    assert deliveries(fake, hook_id, page_token="garbage").status_code == 400
    assert deliveries(fake, hook_id, success="maybe").status_code == 400
    assert deliveries(fake, "no-such-webhook").status_code == 404
    fake.clock.advance(49 * 3600)  # attempts are listed only while their event is retained
    assert deliveries(fake, hook_id).json()["data"] == []


# ------------------------------------------------------------------------ the hook reads and reports


def test_hook_lists_one_page_and_iterates_all(
    fake: FakePolytomic, hook: PolytomicHook, endpoint: Endpoint
) -> None:
    fake.webhook_deliveries_page_size = 2
    webhook = hook.create_webhook(endpoint.url, SECRET)
    events = [fake.add_event("sync.running", {"n": i})["id"] for i in range(5)]
    assert fake.wait_for_deliveries(TIMEOUT)
    page = hook.list_webhook_deliveries(webhook.id)
    assert len(page.deliveries) == 2 and page.next_page_token
    every = list(hook.iter_webhook_deliveries(webhook.id))
    assert sorted(d.event_id for d in every) == sorted(events) and all(d.success for d in every)
    assert [d.id for d in every[:2]] == [d.id for d in page.deliveries]
    one = list(hook.iter_webhook_deliveries(webhook.id, event_id=events[0], success=True))
    assert [d.event_id for d in one] == [events[0]] and one[0].status_code == 200
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        hook.list_webhook_deliveries(webhook.id, start=datetime(2026, 1, 1))


def test_ensure_webhook_reports_and_reenables_a_webhook_polytomic_disabled(
    fake: FakePolytomic,
    hook: PolytomicHook,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.webhook_disable_after = 1
    endpoint = Endpoint(default=500)
    try:
        webhook = hook.create_webhook(endpoint.url, SECRET)
        failed = fake.add_event("sync.failed", {"sync_id": "s"})
        assert fake.wait_for_deliveries(TIMEOUT)
    finally:
        endpoint.close()
    disabled = hook.get_webhook(webhook.id)
    assert (
        disabled.disabled
        and disabled.disabled_at is not None
        and "consecutive" in (disabled.disabled_reason or "")
    )
    with caplog.at_level(logging.WARNING):
        result = hook.reconcile_webhook(endpoint.url, SECRET)
    assert result.reenabled and not result.created and not result.updated and result.webhook.disabled is False
    outage = result.outage
    assert outage is not None and outage.reason == disabled.disabled_reason and outage.failed_total == 6
    assert outage.failed_deliveries and {d.event_id for d in outage.failed_deliveries} == {failed["id"]}
    # The hook logs through Airflow's task logger: to logging or, on Airflow 3, structlog's stdout.
    captured = capsys.readouterr()
    warning = caplog.text + captured.out + captured.err
    assert webhook.id in warning and "consecutive failed deliveries" in warning
    assert "6 failed deliveries in the last 24 hours" in warning and "HTTP 500" in warning
    assert "Re-enabling it" in warning and SECRET not in warning
    assert hook.get_webhook(webhook.id).disabled is False
    again = hook.reconcile_webhook(endpoint.url, SECRET)  # enabled now: nothing to report
    assert again.outage is None and not again.reenabled


def test_ensure_webhook_without_a_delivery_history_still_reenables(
    fake: FakePolytomic, hook: PolytomicHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment that cannot list deliveries (404): the outage is reported without them."""
    from airflow_provider_polytomic.testing.routers import webhooks

    webhook = hook.create_webhook("https://example.com/hook", SECRET)
    fake.set_webhook_disabled(webhook.id, True, reason="too many failures")
    original = webhooks.router

    def without_deliveries(state: Any) -> Any:
        api = original(state)
        api.routes[:] = [r for r in api.routes if not getattr(r, "path", "").endswith("/deliveries")]
        return api

    monkeypatch.setattr(webhooks, "router", without_deliveries)
    from airflow_provider_polytomic.testing import routers, server

    monkeypatch.setattr(
        server,
        "build_api",
        lambda state: routers.build_api(
            state, [without_deliveries if r is original else r for r in routers.ROUTERS]
        ),
    )
    fake.stop()
    fake.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_DEFAULT",
        json.dumps(
            {
                "conn_type": "polytomic",
                "host": fake.url,
                "password": fake.api_key,
                "extra": {"max_retries": 0},
            }
        ),
    )
    hook = PolytomicHook()
    result = hook.reconcile_webhook("https://example.com/hook", SECRET)
    assert result.reenabled and result.outage is not None and result.outage.failed_deliveries is None
    assert "too many failures" in result.outage.summary() and "could not be read" in result.outage.summary()


def test_operator_returns_the_outage(fake: FakePolytomic, hook: PolytomicHook) -> None:
    fake.webhook_disable_after = 1
    endpoint = Endpoint(default=502)
    try:
        hook.create_webhook(endpoint.url, SECRET)
        event = fake.add_event("sync.completed", {})
        assert fake.wait_for_deliveries(TIMEOUT)
        result = PolytomicEnsureWebhookOperator(task_id="ensure", endpoint=endpoint.url).execute({})
    finally:
        endpoint.close()
    assert result["reenabled"] is True and result["disabled"] is False and SECRET not in json.dumps(result)
    outage = result["outage"]
    assert outage["reason"].startswith("disabled after 1 consecutive failed deliveries")
    assert outage["failed_deliveries_24h"] == 6 and outage["disabled_at"]
    assert {d["event_id"] for d in outage["failed_deliveries"]} == {event["id"]}
    assert {d["status_code"] for d in outage["failed_deliveries"]} == {502}
    json.dumps(result)  # XCom-serialisable
    quiet = PolytomicEnsureWebhookOperator(task_id="ensure", endpoint=endpoint.url).execute({})
    assert quiet["outage"] is None and quiet["reenabled"] is False
