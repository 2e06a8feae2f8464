"""PolytomicSyncSensor scenarios, each run in poke, reschedule and deferrable mode, against
the fake server answering event pages oldest first, newest first and shuffled.

Each scenario states one expected answer; every mode must give it in every ordering.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_polytomic._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_provider_polytomic.exceptions import PolytomicSyncFailedError
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.testing import EVENTS_ORDERS, EventsOrder, FakePolytomic
from tests.busy import Chatter
from tests.modes import MODES, run_sensor

POKE = 0.1


@dataclass
class Scenario:
    """Set-up returns the sensor kwargs; ``expect`` is a summary subset or an exception type."""

    name: str
    setup: Callable[[FakePolytomic], dict[str, Any]]
    expect: dict[str, Any] | type[BaseException]
    message: tuple[str, ...] = ()
    sensor: dict[str, Any] = field(default_factory=dict)


def later(seconds: float, fn: Callable[[], Any]) -> None:
    """Make something happen on the fake server ``seconds`` from now."""
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()


def once_waiting(fake: FakePolytomic, sync_id: str, fn: Callable[[], Any], polls: int = 3) -> None:
    """Make something happen on the fake server while the sensor waits, so that the events it
    polls are what see it first, however loaded the machine (a fixed delay from the set-up
    raced the sensor's start-up):

    * a sensor that reads the status at every poke (poke, reschedule): right after one of those
      reads, between two pokes - the next poke reads events before the status;
    * a deferred sensor (one status read at start-up): after ``polls`` event polls since it;
    * no status read at all (Polytomic failing the first pokes): after ``polls`` event polls.
    """

    def is_waiting() -> bool:
        requests = list(fake.requests)
        reads = [i for i, r in enumerate(requests) if sync_id in r.path and "/executions" in r.path]
        if reads and not requests[reads[-1]].answered.is_set():
            return False  # finishing now would show in that status read
        polled = [i for i, r in enumerate(requests) if r.path == "/api/events"]
        if len(reads) >= 2:
            return not any(i > reads[-1] for i in polled) and sum(i > reads[0] for i in polled) >= polls
        anchor = reads[-1] if reads else polled[0] if polled else None
        return anchor is not None and sum(i > anchor for i in polled) >= polls

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Under the fake's lock: a request that arrives meanwhile is served after fn(), and
            # one that arrived before is in fake.requests (so is_waiting sees it).
            with fake.org.lock:
                if is_waiting():
                    fn()
                    return
            time.sleep(0.01)  # polls a condition; nothing is assumed about timing
        fn()

    threading.Thread(target=run, daemon=True).start()


def _with_execution(outcome: str, **kw: Any) -> Callable[[FakePolytomic], dict[str, Any]]:
    def setup(fake: FakePolytomic) -> dict[str, Any]:
        sync_id = fake.add_sync("contacts")
        execution_id = fake.start_execution(sync_id)
        once_waiting(fake, sync_id, lambda: _finish(fake, sync_id, execution_id, outcome, **kw))
        return {"sync_id": sync_id, "execution_id": execution_id}

    return setup


def _finish(fake: FakePolytomic, sync_id: str, execution_id: str, outcome: str, **kw: Any) -> None:
    if outcome == "completed":
        fake.complete_execution(sync_id, execution_id, **kw)
    elif outcome == "completed_with_errors":
        fake.complete_execution(sync_id, execution_id, errored=[{"id": 9}], errors=1, **kw)
    elif outcome == "failed":
        fake.fail_execution(sync_id, execution_id, error="warehouse unreachable")
    elif outcome == "canceled":
        fake.cancel_execution(sync_id, execution_id)
    elif outcome == "interrupted":
        fake.set_execution_status(sync_id, execution_id, "interrupted")


def _without_execution(fake: FakePolytomic) -> dict[str, Any]:
    sync_id = fake.add_sync("contacts")
    # Finished before the baseline: must be ignored.
    old = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, old, inserted=[{"id": 0}])
    fake.clock.advance(1)

    def run() -> None:
        execution_id = fake.start_execution(sync_id)
        fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}, {"id": 2}])

    once_waiting(fake, sync_id, run)
    return {"sync_id": sync_id}


def _before_first_poke(fake: FakePolytomic) -> dict[str, Any]:
    sync_id = fake.add_sync("contacts")
    baseline = fake.clock.now()
    execution_id = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, execution_id, updated=[{"id": 1}])
    return {"sync_id": sync_id, "completed_after": baseline.isoformat()}


def _event_dropped(fake: FakePolytomic) -> dict[str, Any]:
    fake.faults.drop_events = {"sync.completed"}
    sync_id = fake.add_sync("contacts")
    once_waiting(
        fake,
        sync_id,
        lambda: fake.complete_execution(sync_id, fake.start_execution(sync_id), inserted=[{"id": 1}]),
    )
    return {"sync_id": sync_id}


def _duplicated(fake: FakePolytomic) -> dict[str, Any]:
    fake.faults.duplicate_events = True
    return _with_execution("completed", inserted=[{"id": 1}], updated=[{"id": 2}, {"id": 3}])(fake)


def _expired(fake: FakePolytomic) -> dict[str, Any]:
    real_now = fake.clock.now()
    fake.clock.set(real_now - timedelta(hours=49))
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}])
    fake.clock.set(real_now)
    assert not [e for e in fake.events() if e["event"].get("sync_id") == sync_id]
    return {"sync_id": sync_id, "completed_after": (real_now - timedelta(hours=50)).isoformat()}


def _throttled(fake: FakePolytomic) -> dict[str, Any]:
    fake.faults.rate_limit(2, retry_after=0.1)
    fake.faults.server_errors(3)
    fake.faults.reset_connections(1)
    return _with_execution("completed", inserted=[{"id": 1}])(fake)


def _unknown_status_first(fake: FakePolytomic) -> dict[str, Any]:
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    fake.set_execution_status(sync_id, execution_id, "mystery_new_status")
    once_waiting(fake, sync_id, lambda: fake.complete_execution(sync_id, execution_id))
    return {"sync_id": sync_id, "execution_id": execution_id}


def _bulk(fake: FakePolytomic) -> dict[str, Any]:
    sync_id = fake.add_sync("warehouse", kind="bulk")
    execution_id = fake.start_execution(sync_id)
    once_waiting(fake, sync_id, lambda: fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}]))
    return {"sync_id": sync_id, "execution_id": execution_id, "sync_kind": "bulk"}


def _never_finishes(fake: FakePolytomic) -> dict[str, Any]:
    sync_id = fake.add_sync("contacts")
    return {"sync_id": sync_id, "execution_id": fake.start_execution(sync_id)}


SCENARIOS = [
    Scenario(
        "completion with execution_id",
        _with_execution("completed", inserted=[{"id": 1}], updated=[{"id": 2}]),
        {
            "status": "completed",
            "outcome": "succeeded",
            "event_type": "sync.completed",
            "counts.inserted": 1,
            "counts.updated": 1,
            "event_id": "set",
        },
    ),
    Scenario(
        "completion without execution_id",
        _without_execution,
        {"status": "completed", "outcome": "succeeded", "counts.inserted": 2, "event_id": "set"},
    ),
    Scenario(
        "completion before the first poke",
        _before_first_poke,
        {"status": "completed", "event_type": "sync.completed", "counts.updated": 1, "event_id": "set"},
    ),
    Scenario(
        "completion event dropped",
        _event_dropped,
        {"status": "completed", "event_type": "sync.completed", "event_id": None, "counts.inserted": 1},
        sensor={"status_check_interval": 0.3},
    ),
    Scenario(
        "duplicated events",
        _duplicated,
        {"status": "completed", "counts.inserted": 1, "counts.updated": 2, "event_id": "set"},
    ),
    Scenario(
        "events expired past 48 hours",
        _expired,
        {"status": "completed", "event_id": None, "counts.inserted": 1},
    ),
    Scenario("429 and 5xx bursts", _throttled, {"status": "completed", "counts.inserted": 1}),
    Scenario(
        "failed",
        _with_execution("failed"),
        AirflowFailException,
        message=("failed", "warehouse unreachable"),
    ),
    Scenario("canceled", _with_execution("canceled"), AirflowFailException, message=("canceled",)),
    Scenario(
        "interrupted",
        _with_execution("interrupted"),
        AirflowFailException,
        message=("interrupted",),
        sensor={"status_check_interval": 0.3},
    ),
    Scenario(
        "completed with errors",
        _with_execution("completed_with_errors", inserted=[{"id": 1}]),
        {"outcome": "succeeded_with_errors", "event_type": "sync.completed_with_errors", "counts.error": 1},
    ),
    Scenario(
        "completed with errors, fail_on_errors",
        _with_execution("completed_with_errors"),
        AirflowFailException,
        message=("completed with errors",),
        sensor={"fail_on_errors": True},
    ),
    Scenario(
        "unknown status is still running",
        _unknown_status_first,
        {"status": "completed"},
        sensor={"status_check_interval": 0.2},
    ),
    Scenario("bulk sync", _bulk, {"status": "completed", "event_type": "bulk_sync.completed"}),
    Scenario("timeout", _never_finishes, AirflowSensorTimeout, sensor={"timeout": 1.0}),
    Scenario(
        "timeout with soft_fail",
        _never_finishes,
        AirflowSkipException,
        sensor={"timeout": 1.0, "soft_fail": True},
    ),
]


def _lookup(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("order", EVENTS_ORDERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(
    scenario: Scenario, mode: str, order: EventsOrder, polytomic_conn: FakePolytomic, caplog, capsys
) -> None:
    caplog.set_level(logging.INFO)
    polytomic_conn.events_order = order
    kwargs = scenario.setup(polytomic_conn)

    def make(m: str) -> PolytomicSyncSensor:
        options = {"timeout": 20.0, "status_check_interval": 60.0, **scenario.sensor}
        return PolytomicSyncSensor(
            task_id="wait",
            poke_interval=POKE,
            mode="reschedule" if m == "reschedule" else "poke",
            deferrable=m == "deferrable",
            **kwargs,
            **options,
        )

    if isinstance(scenario.expect, type):
        with pytest.raises(scenario.expect) as err:
            run_sensor(make, mode)
        text = str(err.value)
        for needle in scenario.message:
            assert needle in text
        if scenario.message:
            assert kwargs["sync_id"] in text and kwargs["execution_id"] in text
        return
    summary = run_sensor(make, mode)
    assert summary["sync_id"] == kwargs["sync_id"]
    if "execution_id" in kwargs:
        assert summary["execution_id"] == kwargs["execution_id"]
    for key, expected in scenario.expect.items():
        actual = _lookup(summary, key)
        if expected == "set":
            assert actual, (key, summary)
        else:
            assert actual == expected, (key, summary)
    json.dumps(summary)  # XCom-serialisable
    # The summary matches what the server says about that execution.
    execution = polytomic_conn.execution(kwargs["sync_id"], summary["execution_id"])
    assert execution["status"] == summary["status"]
    if summary["outcome"] == "succeeded_with_errors":
        # Operator logs go through Airflow's structlog to stdout.
        assert "completed with errors" in caplog.text + capsys.readouterr().out


@pytest.mark.parametrize("order", EVENTS_ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_failure_without_execution_id_can_be_retried(
    polytomic_conn: FakePolytomic, mode: str, order: EventsOrder
) -> None:
    polytomic_conn.events_order = order
    sync_id = polytomic_conn.add_sync()
    once_waiting(
        polytomic_conn,
        sync_id,
        lambda: polytomic_conn.fail_execution(sync_id, polytomic_conn.start_execution(sync_id), error="boom"),
    )

    def make(m: str) -> PolytomicSyncSensor:
        return PolytomicSyncSensor(
            task_id="w",
            sync_id=sync_id,
            poke_interval=POKE,
            timeout=10,
            mode="reschedule" if m == "reschedule" else "poke",
            deferrable=m == "deferrable",
        )

    with pytest.raises(PolytomicSyncFailedError, match="boom") as err:
        run_sensor(make, mode)
    # Not AirflowFailException: a retry waits for the next execution after its own baseline.
    assert not isinstance(err.value, AirflowFailException)


def test_event_ahead_of_status_is_rechecked_next_poll(polytomic_conn: FakePolytomic) -> None:
    """An event that says 'completed' while the status endpoint still says 'running' must not
    succeed yet, and must be re-checked on the next poll, not after status_check_interval."""
    from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
    from airflow_provider_polytomic.sync_wait import PokeDriver, WaitDecider, WaitTarget

    sync_id = polytomic_conn.add_sync()
    execution_id = polytomic_conn.start_execution(sync_id)
    polytomic_conn.add_event("sync.completed", {"sync_id": sync_id, "execution_id": execution_id})
    watch = WaitDecider(WaitTarget(sync_id=sync_id, execution_id=execution_id), status_check_interval=3600)
    waiter = PokeDriver(PolytomicHook(), watch)
    assert waiter.check() is None  # status says running: no decision from the event alone
    assert watch.unconfirmed
    polytomic_conn.complete_execution(sync_id, execution_id)
    result = waiter.check()
    assert result is not None and result.status == "completed"


# ------------------------------------------------------- a dropped completion, poke by poke


def _pokes(requests: list[Any]) -> list[list[str]]:
    """API requests grouped by poke: every poke starts with its one events request."""
    pokes: list[list[str]] = []
    for req in requests:
        if req.path == "/api/events":
            pokes.append([])
        if pokes:
            pokes[-1].append(req.path)
    return pokes


@pytest.mark.parametrize("order", EVENTS_ORDERS)
@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "busy"])
@pytest.mark.parametrize("known", [True, False], ids=["execution_id", "no_execution_id"])
@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_a_dropped_completion_is_found_by_the_next_poke(
    polytomic_conn: FakePolytomic, mode: str, known: bool, busy: bool, order: EventsOrder
) -> None:
    """Polytomic never shows the completion event. With the default status_check_interval
    (300 s) the sensor still finishes within one poke interval (+1 s) of the completion, and
    no poke costs more than two requests (one events page, one status read), even when the
    organization emits far more than a page of unrelated events per poke."""
    fake = polytomic_conn
    fake.events_order = order
    fake.faults.drop_events = {"sync.completed"}
    poke_interval = 1.0
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    chatter = Chatter(fake, events_per_second=300 if busy else 0)
    if known:
        kwargs: dict[str, Any] = {"execution_id": execution_id}
    else:
        # The first execution finishing after the baseline; no event ever names it.
        kwargs = {"completed_after": (fake.clock.now() - timedelta(milliseconds=1)).isoformat()}
    completed_at: list[float] = []

    def complete() -> None:
        fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}])
        completed_at.append(time.monotonic())

    def make(m: str) -> PolytomicSyncSensor:
        return PolytomicSyncSensor(
            task_id="wait",
            sync_id=sync_id,
            poke_interval=poke_interval,
            timeout=60,
            mode=m,
            **kwargs,
        )

    first = len(fake.requests)
    chatter.start()
    try:
        later(2.5, complete)
        summary = run_sensor(make, mode, wall_timeout=30)
        finished = time.monotonic()
    finally:
        chatter.stop()
    assert summary["execution_id"] == execution_id and summary["status"] == "completed"
    assert summary["event_id"] is None  # the status endpoint decided
    assert finished - completed_at[0] <= poke_interval + 1.0, finished - completed_at[0]
    mine = [r for r in fake.requests[first:] if r.path.startswith("/api/")]
    pokes = _pokes(mine)
    assert len(pokes) >= 3
    assert max(len(p) for p in pokes) <= 2, pokes
    assert all(p[0] == "/api/events" and p[1] != "/api/events" for p in pokes)
    if busy:
        # More than a page of unrelated events arrived per poke, yet each poke read one page.
        assert chatter.emitted > 100 * len(pokes), (chatter.emitted, len(pokes))
