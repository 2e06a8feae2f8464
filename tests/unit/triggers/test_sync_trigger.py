"""PolytomicSyncTrigger: serialization, resume, shared polling, errors and deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_polytomic._compat import (
    AIRFLOW_V_3,
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
    trigger_failure_resume,
)
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger
from tests.modes import (
    FakeTI,
    context_for,
    first_event_via_shared_stream,
    first_trigger_event,
    rebuild,
    triggerer_stream_manager,
)


def events_requests(fake: FakePolytomic) -> list:
    return [r for r in fake.requests if r.path == "/api/events"]


def make_trigger(sync_id: str, **kw) -> PolytomicSyncTrigger:
    options = {
        "polytomic_conn_id": "polytomic_default",
        "sync_id": sync_id,
        "baseline": datetime.now(timezone.utc),
        "poll_interval": 0.2,
        **kw,
    }
    return PolytomicSyncTrigger(**options)


def test_serialize_round_trip_is_json_and_absolute():
    deadline = datetime(2030, 1, 1, tzinfo=timezone.utc)
    trigger = make_trigger("s1", execution_id="e1", baseline="2026-01-01T00:00:00Z", deadline=deadline)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_polytomic.triggers.polytomic.PolytomicSyncTrigger"
    json.dumps(kwargs)
    assert kwargs["baseline"] == "2026-01-01T00:00:00+00:00"
    assert kwargs["deadline"] == "2030-01-01T00:00:00+00:00"
    assert rebuild(trigger).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("baseline", "yesterday", "baseline must be an ISO 8601 datetime, got 'yesterday'"),
        ("sync_kind", "mirror", "sync_kind must be 'model' or 'bulk', got 'mirror'"),
        ("poll_interval", 0, "poll_interval must be positive, got 0"),
    ],
)
def test_bad_arguments_name_field_and_value(field, value, needle):
    with pytest.raises(ValueError) as err:
        make_trigger("s1", **{field: value})
    assert needle in str(err.value)


def test_resumed_trigger_keeps_its_baseline(polytomic_conn: FakePolytomic):
    sync_id = polytomic_conn.add_sync()
    before = polytomic_conn.start_execution(sync_id)
    polytomic_conn.complete_execution(sync_id, before)
    trigger = make_trigger(sync_id, baseline=polytomic_conn.clock.now() + timedelta(milliseconds=1))

    async def run_a_while() -> None:
        with pytest.raises(asyncio.TimeoutError):  # the builtin only from Python 3.11 on
            await first_trigger_event(trigger, timeout=0.6)

    asyncio.run(run_a_while())
    # The triggerer is down; the sync runs and completes meanwhile.
    time.sleep(0.01)
    after = polytomic_conn.start_execution(sync_id)
    polytomic_conn.complete_execution(sync_id, after, inserted=[{"id": 1}])
    payload = asyncio.run(first_trigger_event(rebuild(trigger), timeout=10))
    assert payload["status"] == "finished"
    assert payload["result"]["execution_id"] == after
    assert payload["result"]["event_id"]  # found again in the events since the baseline


def test_transient_errors_are_ridden_out_in_the_trigger(polytomic_conn: FakePolytomic, monkeypatch):
    conn = {
        "conn_type": "polytomic",
        "host": polytomic_conn.url,
        "password": polytomic_conn.api_key,
        "extra": {"max_retries": 2, "retry_base_wait": 0.01},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    sync_id = polytomic_conn.add_sync()
    execution_id = polytomic_conn.start_execution(sync_id)
    polytomic_conn.faults.server_errors(12)

    async def scenario() -> dict:
        task = asyncio.create_task(first_trigger_event(make_trigger(sync_id, execution_id=execution_id), 20))
        while polytomic_conn.faults.pending_request_faults:
            await asyncio.sleep(0.05)
        polytomic_conn.complete_execution(sync_id, execution_id)
        return await task

    payload = asyncio.run(scenario())
    assert payload["status"] == "finished" and payload["result"]["status"] == "completed"


def test_unknown_execution_is_a_fatal_error(polytomic_conn: FakePolytomic):
    sync_id = polytomic_conn.add_sync()
    payload = asyncio.run(first_trigger_event(make_trigger(sync_id, execution_id="no-such-execution"), 10))
    assert payload["status"] == "error" and payload["fatal"] is True
    assert "404" in payload["message"]


def test_bad_api_key_is_an_error_event_without_the_key(polytomic_conn: FakePolytomic, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_BAD",
        json.dumps({"conn_type": "polytomic", "host": polytomic_conn.url, "password": "bad-key-987654"}),
    )
    trigger = make_trigger(polytomic_conn.add_sync(), polytomic_conn_id="polytomic_bad")
    payload = asyncio.run(first_trigger_event(trigger, 10))
    assert payload["status"] == "error" and "401" in payload["message"]
    assert "bad-key-987654" not in json.dumps(payload)


def test_deadline_fires_a_timeout_event(polytomic_conn: FakePolytomic):
    sync_id = polytomic_conn.add_sync()
    deadline = datetime.now(timezone.utc) + timedelta(seconds=0.5)
    payload = asyncio.run(first_trigger_event(make_trigger(sync_id, deadline=deadline), 10))
    assert payload["status"] == "timeout" and sync_id in payload["message"]


@pytest.mark.parametrize("soft_fail", [False, True])
def test_airflow_deferral_timeout_honours_soft_fail(soft_fail):
    method, timeout_reason = trigger_failure_resume()
    sensor = PolytomicSyncSensor(task_id="w", sync_id="s", deferrable=True, soft_fail=soft_fail, timeout=5)
    # Airflow 2 fails a timed-out deferral with TaskDeferralError, an AirflowException.
    expected = (
        AirflowSkipException if soft_fail else AirflowSensorTimeout if AIRFLOW_V_3 else AirflowException
    )
    with pytest.raises(expected):
        sensor.resume_execution(method, {"error": timeout_reason}, context_for(FakeTI()))


def test_sensor_defers_with_its_own_timeout_and_baseline(polytomic_conn: FakePolytomic):
    ti = FakeTI(start_date=datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc))
    sensor = PolytomicSyncSensor(task_id="w", sync_id="s", deferrable=True, timeout=321, poke_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_for(ti))
    assert deferred.value.timeout == timedelta(seconds=321)
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["baseline"] == "2026-05-01T12:00:00+00:00"
    assert kwargs["poll_interval"] == 7.0
    deadline = datetime.fromisoformat(kwargs["deadline"])
    assert abs((deadline - datetime.now(timezone.utc)).total_seconds() - 321) < 5


def test_many_triggers_share_one_poll(polytomic_conn: FakePolytomic):
    """N triggers, one events poll, run as the installed Airflow's triggerer runs them: Airflow
    3.3's SharedStreamManager, or ``run()`` with the in-process fan-out before 3.3."""
    n, interval = 300, 0.5
    sync_ids = [polytomic_conn.add_sync(f"s{i}") for i in range(n)]
    # Started a while ago: their sync.running events lie before the poll's re-read window,
    # so what is measured is the cost of the waiting triggers, not of the org's event volume.
    polytomic_conn.clock.advance(-300)
    executions = {s: polytomic_conn.start_execution(s) for s in sync_ids}
    polytomic_conn.clock.advance(300)

    async def scenario() -> tuple[list[dict], list[float], int]:
        manager = triggerer_stream_manager()
        triggers = [make_trigger(s, execution_id=executions[s], poll_interval=interval) for s in sync_ids]
        keys = {t.shared_stream_key() for t in triggers}
        assert len(keys) == 1

        fired: dict[int, float] = {}

        tasks = [
            asyncio.create_task(first_event_via_shared_stream(manager, i, t, fired))
            for i, t in enumerate(triggers)
        ]
        # Let every trigger finish its start-up status check, then watch a few intervals.
        while len([r for r in polytomic_conn.requests if "/executions/" in r.path]) < n:
            await asyncio.sleep(0.05)
        first = len(events_requests(polytomic_conn))
        await asyncio.sleep(interval * 4)
        steady = len(events_requests(polytomic_conn)) - first
        finished_at: dict[int, float] = {}
        for i, trigger in enumerate(triggers):
            polytomic_conn.complete_execution(trigger.sync_id, executions[trigger.sync_id])
            finished_at[i] = time.monotonic()
            # Syncs finish over a few seconds, as they would in an organization (not a sync point).
            await asyncio.sleep(0.01)
        payloads = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        if manager is not None:
            await manager.stop_all()
        return payloads, sorted(fired[i] - finished_at[i] for i in fired), steady

    payloads, latencies, steady = asyncio.run(scenario())
    assert all(p["status"] == "finished" for p in payloads)
    assert {p["result"]["execution_id"] for p in payloads} == set(executions.values())
    # At most 3 events requests per poll interval for all 300 triggers.
    assert steady <= 3 * 4 + 1
    # Each fires within one poll interval plus one second of its sync finishing: the median here,
    # and every one within a few seconds even on a loaded 2-core machine running the fake server
    # in this very process (benchmarks/sensor_shared_poll.py measures p99 in a quiet run).
    assert latencies[len(latencies) // 2] <= interval + 1.0, latencies[len(latencies) // 2]
    assert latencies[-1] <= interval + 4.0, latencies[-10:]


def test_the_event_trigger_is_still_importable_from_the_sync_trigger_module_with_a_warning() -> None:
    from airflow_provider_polytomic import triggers
    from airflow_provider_polytomic.triggers import polytomic
    from airflow_provider_polytomic.triggers.events import PolytomicEventTrigger

    with pytest.warns(DeprecationWarning, match="triggers.events"):
        assert polytomic.PolytomicEventTrigger is PolytomicEventTrigger
    with pytest.raises(AttributeError):
        _ = polytomic.NoSuchTrigger
    assert triggers.polytomic is polytomic
