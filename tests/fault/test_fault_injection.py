"""Randomized fault injection: the sensor, the run-sync operator and the record-log operator
against the fake Polytomic server, over real HTTP, under mixed schedules of faults.

Hypothesis draws a :class:`Schedule` (executions of one sync that start and finish before
or after the wait's baseline, possibly overlapping, with any outcome; events dropped,
duplicated or expired past 48 hours, pages served oldest first, newest first or shuffled;
429 with Retry-After, 5xx bursts, connection resets and slow responses, upfront or injected
mid-wait; a deferred trigger serialized and resumed mid-wait). Every example checks:

* the sensor (poke, reschedule, deferrable) and the run-sync operator (worker, deferrable)
  end with the outcome the server reached for the right execution: success only for a
  completed execution, a failure for failed/canceled/interrupted ones, a timeout only when
  nothing finished, and never later than their timeout;
* the record-log operator leaves complete files whose records match the server's, or fails
  with a clear error and nothing partial at the final paths.

Knobs (environment variables):

* ``POLYTOMIC_FUZZ_EXAMPLES``: examples per property test (default 12: this file runs in
  about 2 minutes on 2 busy cores).
* ``POLYTOMIC_FUZZ_OVERLAP=0``: executions of one sync never overlap.
* ``POLYTOMIC_FUZZ_SHRINK=1``: let Hypothesis shrink a failure (can take many minutes).

The long run (1,000 examples per property test, about an hour on 2 busy cores)::

    POLYTOMIC_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/fault/test_fault_injection.py \
        -q -p no:logging --timeout=0 --hypothesis-show-statistics

A failure prints the falsifying ``Schedule`` (``note``), Hypothesis' ``@reproduce_failure``
blob and the seed (``--hypothesis-seed=N`` replays the whole run).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, note, settings
from hypothesis import given as hgiven
from hypothesis import strategies as st

from airflow_provider_polytomic._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_polytomic.exceptions import PolytomicAPIError, PolytomicSyncFailedError
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.testing import EVENTS_ORDERS, EventsOrder, FakePolytomic
from tests.modes import FakeTI, context_for, first_trigger_event, rebuild, run_sensor

EXAMPLES = int(os.environ.get("POLYTOMIC_FUZZ_EXAMPLES", "12"))
# 0: executions of one sync never overlap (each starts after the previous one finished).
OVERLAP = os.environ.get("POLYTOMIC_FUZZ_OVERLAP", "1") != "0"
# The pytest-timeout of one test grows with the number of examples.
TEST_TIMEOUT = max(300, EXAMPLES * 40)
POKE = 0.1
STATUS_CHECK = 0.5
# A wait that should end: its timeout, far above the detection latency.
LONG_TIMEOUT = 30.0
# A wait that must time out.
SHORT_TIMEOUT = 2.5
# Above a timeout: one slow poke (retries, slow responses) plus a busy machine.
TIMEOUT_SLACK = 6.0
CONN_EXTRA = {
    "max_retries": 2,
    "retry_base_wait": 0.01,
    "retry_max_wait": 0.05,
    "timeout": 1.0,
    "connect_timeout": 1.0,
}

# Shrinking a failure of this suite can take many minutes; the unshrunk example is printed anyway.
SHRINK = os.environ.get("POLYTOMIC_FUZZ_SHRINK", "0") == "1"
FUZZ = settings(
    max_examples=EXAMPLES,
    phases=list(Phase) if SHRINK else [Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

TERMINAL_EVENTS = {
    "model": {"sync.completed", "sync.completed_with_errors", "sync.failed", "sync.canceled"},
    "bulk": {
        "bulk_sync.completed",
        "bulk_sync.completed_with_error",
        "bulk_sync.failed",
        "bulk_sync.canceled",
    },
}
FAILED_STATUSES = {"failed", "canceled", "interrupted"}
TERMINAL_STATUSES = {"completed", "errors", *FAILED_STATUSES}


# ----------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class ExecPlan:
    """One execution: start/finish in seconds relative to the baseline (None: never finishes)."""

    start: float
    finish: float | None
    outcome: str
    records: int = 1


@dataclass(frozen=True)
class FaultPlan:
    drop_terminal: bool = False
    drop_next: int = 0
    duplicate: bool = False
    events_order: EventsOrder = "oldest_first"
    # ("rate_limit", n, retry_after) | ("server_errors", n, status) | ("reset", n, None) | ("slow", n, s)
    bursts: tuple[tuple[str, int, Any], ...] = ()
    # Seconds after the wait began when the bursts are injected (0: before it begins).
    burst_at: float = 0.0


@dataclass(frozen=True)
class Schedule:
    kind: str
    expired: bool
    executions: tuple[ExecPlan, ...]
    faults: FaultPlan
    mode: str = "poke"
    by_execution_id: bool = True
    fail_on_errors: bool = False
    soft_fail: bool = False
    restart_after: float | None = None


OUTCOMES = ("completed", "completed_with_errors", "failed", "canceled", "interrupted")

offsets = st.integers(-40, 8).map(lambda x: x / 10)
durations = st.one_of(st.integers(1, 8).map(lambda x: x / 10), st.none())


@st.composite
def exec_plans(draw: st.DrawFn, index: int) -> ExecPlan:
    start = draw(offsets) + index / 1000  # distinct instants: no ties between executions
    duration = draw(durations)
    return ExecPlan(
        start=start,
        finish=None if duration is None else round(start + duration, 4),
        outcome=draw(st.sampled_from(OUTCOMES)),
        records=draw(st.integers(0, 3)),
    )


bursts = st.tuples(
    st.sampled_from(["rate_limit", "server_errors", "reset", "slow"]),
    st.integers(1, 4),
    st.sampled_from([0, 0.05, 0.2, 0.6, 1.3]),
).map(
    lambda b: (
        b[0],
        b[1],
        {
            "rate_limit": b[2],
            "server_errors": [500, 502, 503, 504][int(b[2] * 10) % 4],
            "reset": None,
            "slow": max(0.05, b[2]),
        }[b[0]],
    )
)

fault_plans = st.builds(
    FaultPlan,
    drop_terminal=st.booleans(),
    drop_next=st.integers(0, 3),
    duplicate=st.booleans(),
    events_order=st.sampled_from(EVENTS_ORDERS),
    bursts=st.lists(bursts, max_size=3).map(tuple),
    burst_at=st.sampled_from([0.0, 0.0, 0.3, 0.8]),
)


@st.composite
def schedules(draw: st.DrawFn, modes: tuple[str, ...]) -> Schedule:
    n = draw(st.integers(1, 3))
    plans = [draw(exec_plans(i)) for i in range(n)]
    if not OVERLAP:
        sequential: list[ExecPlan] = []
        for plan in sorted(plans, key=lambda p: p.start):
            if sequential:
                last = sequential[-1]
                if last.finish is None:
                    break
                if plan.start <= last.finish:
                    shift = last.finish + 0.05 - plan.start
                    finish_at = None if plan.finish is None else round(plan.finish + shift, 4)
                    plan = replace(plan, start=round(plan.start + shift, 4), finish=finish_at)
            sequential.append(plan)
        plans = sequential
    return Schedule(
        kind=draw(st.sampled_from(["model", "model", "bulk"])),
        expired=draw(st.booleans().map(lambda b: b and draw(st.booleans()))),
        executions=tuple(plans),
        faults=draw(fault_plans),
        mode=draw(st.sampled_from(modes)),
        by_execution_id=draw(st.booleans()),
        fail_on_errors=draw(st.booleans()),
        soft_fail=draw(st.booleans()),
        restart_after=draw(st.sampled_from([None, 0.2, 0.7, 1.5])),
    )


# --------------------------------------------------------------------------------- world


def _note(text: str) -> None:
    """Hypothesis' note (printed with the falsifying example), or print when replayed by hand."""
    try:
        note(text)
    except Exception:
        print(text)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def connected(fake: FakePolytomic, **extra: Any) -> Iterator[None]:
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        "extra": {**CONN_EXTRA, **extra},
    }
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps(conn)}):
        yield


def finish(fake: FakePolytomic, sync_id: str, execution_id: str, plan: ExecPlan) -> None:
    records = [{"id": f"{execution_id[:8]}-{i}"} for i in range(plan.records)]
    if plan.outcome == "completed":
        fake.complete_execution(sync_id, execution_id, inserted=records, records_per_file=2)
    elif plan.outcome == "completed_with_errors":
        fake.complete_execution(sync_id, execution_id, inserted=records, errored=[{"id": "bad"}], errors=1)
    elif plan.outcome == "failed":
        fake.fail_execution(sync_id, execution_id, error="warehouse unreachable")
    elif plan.outcome == "canceled":
        fake.cancel_execution(sync_id, execution_id)
    elif plan.outcome == "interrupted":
        fake.set_execution_status(sync_id, execution_id, "interrupted")
    else:  # pragma: no cover
        raise ValueError(plan.outcome)


def inject(fake: FakePolytomic, bursts_: tuple[tuple[str, int, Any], ...]) -> None:
    for kind, n, param in bursts_:
        if kind == "rate_limit":
            fake.faults.rate_limit(n, retry_after=param)
        elif kind == "server_errors":
            fake.faults.server_errors(n, status=param)
        elif kind == "reset":
            fake.faults.reset_connections(n)
        elif kind == "slow":
            fake.faults.slow(param, n)


class World:
    """Plays a schedule on the fake: the past at once (moving the fake clock), the future live."""

    def __init__(self, fake: FakePolytomic, schedule: Schedule, sync_id: str) -> None:
        self.fake = fake
        self.schedule = schedule
        self.sync_id = sync_id
        now = utcnow()
        self.baseline = now - timedelta(hours=49) if schedule.expired else now
        self.ids: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        actions: list[tuple[datetime, int, str, int]] = []
        for i, plan in enumerate(schedule.executions):
            actions.append((self.baseline + timedelta(seconds=plan.start), 0, "start", i))
            if plan.finish is not None:
                actions.append((self.baseline + timedelta(seconds=plan.finish), 1, "finish", i))
        actions.sort()
        self._past = [a for a in actions if a[0] <= now]
        self._future = [a for a in actions if a[0] > now]

    def _do(self, what: str, i: int) -> None:
        if what == "start":
            self.ids[i] = self.fake.start_execution(self.sync_id)
        elif i in self.ids:
            finish(self.fake, self.sync_id, self.ids[i], self.schedule.executions[i])

    def setup(self) -> None:
        faults = self.fake.faults
        for when, _, what, i in self._past:
            self.fake.clock.set(when)
            self._do(what, i)
        self.fake.clock.set(utcnow())
        # Event faults apply to what happens from now on (the past's events are already stored).
        plan = self.schedule.faults
        if plan.drop_terminal:
            faults.drop_events = set(TERMINAL_EVENTS[self.schedule.kind])
        faults.drop_next_events = plan.drop_next
        faults.duplicate_events = plan.duplicate
        self.fake.events_order = plan.events_order
        if plan.burst_at == 0:
            inject(self.fake, plan.bursts)

    def start(self) -> None:
        began = utcnow()
        steps: list[tuple[datetime, int, str, int]] = list(self._future)
        if self.schedule.faults.burst_at > 0 and self.schedule.faults.bursts:
            steps.append((began + timedelta(seconds=self.schedule.faults.burst_at), 2, "faults", -1))
        steps.sort()

        def play() -> None:
            for when, _, what, i in steps:
                # The simulated world's own timeline, not a synchronisation point of the test.
                if self._stop.wait(max(0.0, (when - utcnow()).total_seconds())):
                    return
                if what == "faults":
                    inject(self.fake, self.schedule.faults.bursts)
                else:
                    self._do(what, i)

        self._thread = threading.Thread(target=play, name="fuzz-world", daemon=True)
        self._thread.start()

    def finish_playing(self) -> None:
        """Let the remaining world actions happen (they are at most ~1.3 s away), then stop."""
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "the world thread did not finish"

    # -- what the server reached -------------------------------------------------------------

    def execution(self, i: int) -> dict[str, Any] | None:
        if i not in self.ids:
            return None
        return self.fake.execution(self.sync_id, self.ids[i])

    def first_finished_after_baseline(self) -> dict[str, Any] | None:
        best: tuple[datetime, dict[str, Any]] | None = None
        for execution in self.fake.executions(self.sync_id):
            if execution["status"] not in TERMINAL_STATUSES or not execution["completed_at"]:
                continue
            done = datetime.fromisoformat(execution["completed_at"].replace("Z", "+00:00"))
            if done > self.baseline and (best is None or done < best[0]):
                best = (done, execution)
        return best[1] if best else None

    def expects_finish(self) -> bool:
        """Does the schedule make an execution the wait counts finish (so no timeout)?"""
        plans = self.schedule.executions
        if self.schedule.by_execution_id:
            return plans[0].finish is not None
        return any(p.finish is not None and p.finish > 0 for p in plans)


def outcome_of(execution: dict[str, Any], kind: str) -> str:
    status = execution["status"]
    if status in FAILED_STATUSES:
        return "failed"
    if status == "errors" or (kind == "model" and (execution.get("counts") or {}).get("error")):
        return "succeeded_with_errors"
    assert status == "completed", execution
    return "succeeded"


def first_event_across_restart(trigger: Any, restart_after: float | None, wall: float) -> dict[str, Any]:
    """The trigger's first event, as the triggerer delivers it when it dies ``restart_after`` s
    into the wait (None: never) and a new one rebuilds the trigger from its serialized kwargs."""
    if restart_after is not None:
        try:
            return asyncio.run(first_trigger_event(rebuild(trigger), restart_after))
        except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11 on
            pass
    return asyncio.run(first_trigger_event(rebuild(trigger), wall))


# ------------------------------------------------------------------------------- sensor


def run_deferrable_with_restart(make: Callable[[str], Any], restart_after: float, wall: float) -> Any:
    """Deferrable mode where the triggerer dies ``restart_after`` s into the wait and a new one
    rebuilds the trigger from its serialized kwargs."""
    ti = FakeTI()
    sensor = make("deferrable")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_for(ti))
    payload = first_event_across_restart(deferred.value.trigger, restart_after, wall)
    resumed = make("deferrable")
    return resumed.resume_execution(deferred.value.method_name, {"event": payload}, context_for(ti))


def check_sensor_outcome(world: World, schedule: Schedule, run: Callable[[], Any], timeout: float) -> None:
    began = time.monotonic()
    error: BaseException | None = None
    summary: Any = None
    try:
        summary = run()
    except (AirflowException, PolytomicSyncFailedError, AirflowSensorTimeout, AirflowSkipException) as exc:
        error = exc
    elapsed = time.monotonic() - began
    world.finish_playing()
    _note(f"elapsed={elapsed:.2f}s summary={summary!r} error={error!r}")
    assert elapsed <= timeout + TIMEOUT_SLACK, f"the wait overran its timeout {timeout}s: {elapsed:.1f}s"

    if schedule.by_execution_id:
        expected = world.execution(0)
        if expected is not None and expected["status"] not in TERMINAL_STATUSES:
            expected = None
    else:
        expected = world.first_finished_after_baseline()
    _note(f"server: expected={expected!r} all={world.fake.executions(world.sync_id)!r}")

    if expected is None:
        want = AirflowSkipException if schedule.soft_fail else AirflowSensorTimeout
        got = summary or error
        assert isinstance(error, want), f"nothing finished: expected {want.__name__}, got {got!r}"
        return
    outcome = outcome_of(expected, schedule.kind)
    fails = outcome == "failed" or (outcome == "succeeded_with_errors" and schedule.fail_on_errors)
    if not fails:
        assert error is None, f"{expected['id']} reached {expected['status']}, the sensor raised {error!r}"
        assert summary["execution_id"] == expected["id"], (summary, expected)
        assert summary["status"] == expected["status"], (summary, expected)
        assert summary["outcome"] == outcome, (summary, expected)
        json.dumps(summary)
        return
    assert summary is None, f"{expected['id']} reached {expected['status']}: must not succeed ({summary})"
    if schedule.soft_fail:
        assert isinstance(error, AirflowSkipException), error
    elif schedule.by_execution_id:
        assert isinstance(error, AirflowFailException), error
    else:
        assert isinstance(error, PolytomicSyncFailedError), error
    # Airflow's deferrable soft_fail path re-raises a generic skip from the sensor's error.
    text = " ".join(str(e) for e in (error, error.__cause__, error.__context__) if e is not None)
    assert expected["id"] in text and world.sync_id in text, text


def sensor_example(schedule: Schedule, *, timeout: float | None = None) -> None:
    _note(f"schedule={schedule!r}")
    with FakePolytomic() as fake, connected(fake):
        sync_id = fake.add_sync("contacts", kind=schedule.kind)
        first = schedule.executions[0]
        if schedule.by_execution_id and first.start > 0:
            # The awaited execution must exist (be known by id) before the wait begins.
            finish_at = None if first.finish is None else first.finish - 2 * first.start
            moved = replace(first, start=-first.start, finish=finish_at)
            schedule = replace(schedule, executions=(moved, *schedule.executions[1:]))
        world = World(fake, schedule, sync_id)
        world.setup()
        if timeout is None:
            timeout = LONG_TIMEOUT if world.expects_finish() else SHORT_TIMEOUT
        kwargs: dict[str, Any] = {
            "sync_id": sync_id,
            "sync_kind": schedule.kind,
            "completed_after": world.baseline.isoformat(),
            "fail_on_errors": schedule.fail_on_errors,
        }
        if schedule.by_execution_id:
            kwargs["execution_id"] = world.ids[0]

        def make(mode: str) -> PolytomicSyncSensor:
            return PolytomicSyncSensor(
                task_id="wait",
                poke_interval=POKE,
                timeout=timeout,
                soft_fail=schedule.soft_fail,
                status_check_interval=STATUS_CHECK,
                mode="reschedule" if mode == "reschedule" else "poke",
                deferrable=mode == "deferrable",
                **kwargs,
            )

        mode = schedule.mode
        world.start()
        if mode == "deferrable" and schedule.restart_after is not None:
            run = lambda: run_deferrable_with_restart(make, schedule.restart_after, timeout + 5)  # noqa: E731
        else:
            run = lambda: run_sensor(make, mode, wall_timeout=timeout + 5)  # noqa: E731
        check_sensor_outcome(world, schedule, run, timeout)


@pytest.mark.timeout(TEST_TIMEOUT)
@FUZZ
@hgiven(schedules(("poke", "reschedule", "deferrable")))
def test_sensor_ends_with_the_servers_outcome(schedule: Schedule) -> None:
    sensor_example(schedule)


# ---------------------------------------------------------------- regression: overlapping runs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_completion_of_an_execution_created_before_an_older_finished_one_is_seen(mode: str) -> None:
    """Found by this suite. Execution B starts, execution A starts and finishes, the baseline
    passes, then B completes. B is the first execution finishing after the baseline, but the
    status fallback lists executions newest *created* first and stops at A (finished before
    the baseline), and B's ``sync.completed`` event only nominates B for that listing: the
    sensor waited until its timeout."""
    schedule = Schedule(
        kind="model",
        expired=False,
        executions=(
            ExecPlan(start=-4.0, finish=0.3, outcome="completed"),
            ExecPlan(start=-3.0, finish=-1.0, outcome="completed"),
        ),
        faults=FaultPlan(),
        mode=mode,
        by_execution_id=False,
    )
    sensor_example(schedule, timeout=8.0)


# ------------------------------------------------------------------------ run-sync operator

AUTO_OUTCOMES = ("completed", "completed_with_errors", "failed", "canceled")


@dataclass(frozen=True)
class OperatorSchedule:
    kind: str
    outcome: str
    after: float | None  # None: the execution the operator starts never finishes
    already_running: ExecPlan | None  # an execution running when the operator starts (409 path)
    faults: FaultPlan
    deferrable: bool = False
    restart_after: float | None = None
    fail_on_errors: bool = False
    soft_fail: bool = False


operator_schedules = st.builds(
    OperatorSchedule,
    kind=st.sampled_from(["model", "model", "bulk"]),
    outcome=st.sampled_from(AUTO_OUTCOMES),
    after=st.one_of(st.sampled_from([0.0, 0.2, 0.6]), st.none()),
    already_running=st.one_of(
        st.none(),
        st.builds(
            ExecPlan,
            start=st.just(-1.0),
            finish=st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.9])),
            outcome=st.sampled_from(OUTCOMES),
        ),
    ),
    faults=fault_plans,
    deferrable=st.booleans(),
    restart_after=st.sampled_from([None, 0.3, 1.0]),
    fail_on_errors=st.booleans(),
    soft_fail=st.booleans(),
)


class OperatorTI(FakeTI):
    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcom.get(key)


def run_operator(op: Any, ti: OperatorTI, restart_after: float | None, wall: float) -> Any:
    try:
        return op.execute({"ti": ti})
    except TaskDeferred as deferred:
        payload = first_event_across_restart(deferred.trigger, restart_after, wall)
        return op.execute_complete({"ti": ti}, payload, **(deferred.kwargs or {}))


def operator_example(schedule: OperatorSchedule) -> None:
    from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator, PolytomicSyncTimeoutError

    _note(f"schedule={schedule!r}")
    with FakePolytomic() as fake, connected(fake):
        sync_id = fake.add_sync("contacts", kind=schedule.kind)
        pre = schedule.already_running
        world = World(
            fake,
            Schedule(schedule.kind, False, (pre,) if pre else (), schedule.faults, by_execution_id=False),
            sync_id,
        )
        world.setup()
        pre_id = world.ids.get(0)
        if schedule.after is not None:
            kwargs = {"inserted": [{"id": 1}]} if schedule.outcome.startswith("completed") else {}
            fake.set_auto_outcome(sync_id, schedule.outcome, after=schedule.after, **kwargs)
        pre_never = pre is not None and pre.finish is None
        finishes = schedule.after is not None and not pre_never
        timeout = LONG_TIMEOUT if finishes else SHORT_TIMEOUT
        op = PolytomicRunSyncOperator(
            task_id="run_sync",
            sync_id=sync_id,
            sync_kind=schedule.kind,
            deferrable=schedule.deferrable,
            poll_interval=POKE,
            status_check_interval=STATUS_CHECK,
            timeout=timeout,
            fail_on_errors=schedule.fail_on_errors,
            soft_fail=schedule.soft_fail,
        )
        ti = OperatorTI()
        world.start()
        began = time.monotonic()
        summary: Any = None
        error: BaseException | None = None
        try:
            summary = run_operator(op, ti, schedule.restart_after, timeout + 5)
        except (AirflowException, PolytomicSyncFailedError) as exc:
            error = exc
        elapsed = time.monotonic() - began
        world.finish_playing()
        executions = fake.executions(sync_id)
        _note(f"elapsed={elapsed:.2f}s summary={summary!r} error={error!r} server={executions!r}")
        assert elapsed <= timeout + TIMEOUT_SLACK, f"overran its timeout {timeout}s: {elapsed:.1f}s"
        started = [e for e in executions if e["id"] != pre_id]
        assert len(started) <= 1, f"started {len(started)} executions: {started}"
        awaited = ti.xcom.get("execution_id")
        if awaited is None:
            # The start itself failed: retries exhausted on 429/5xx/resets, or a 409 from a running
            # execution that finished before it could be attached to. A clear, retryable failure.
            assert isinstance(error, PolytomicAPIError | AirflowException), error
            assert not isinstance(error, AirflowFailException), error
            assert sync_id in str(error), error
            return
        assert awaited in {e["id"] for e in executions}
        execution = fake.execution(sync_id, awaited)
        if isinstance(error, PolytomicSyncTimeoutError):
            assert not finishes or awaited == pre_id, f"timed out although {awaited} was due to finish"
            if execution["status"] not in {"canceled", "canceling", *TERMINAL_STATUSES}:
                # Only when the injected faults outlast every cancel round, and then said so.
                assert "canceling the execution failed" in str(error), (execution, error)
            return
        assert execution["status"] in TERMINAL_STATUSES, (execution, summary, error)
        outcome = outcome_of(execution, schedule.kind)
        fails = outcome == "failed" or (outcome == "succeeded_with_errors" and schedule.fail_on_errors)
        if not fails:
            assert error is None, f"{awaited} reached {execution['status']} but the operator raised {error!r}"
            assert summary["execution_id"] == awaited and summary["status"] == execution["status"], summary
            assert summary["outcome"] == outcome, summary
            return
        assert summary is None, f"{awaited} reached {execution['status']}: must not succeed ({summary})"
        want = AirflowSkipException if schedule.soft_fail else PolytomicSyncFailedError
        assert isinstance(error, want), error
        text = " ".join(str(e) for e in (error, error.__cause__, error.__context__) if e is not None)
        assert awaited in text, text


@pytest.mark.timeout(TEST_TIMEOUT)
@FUZZ
@hgiven(operator_schedules)
def test_run_sync_operator_ends_with_the_servers_outcome(schedule: OperatorSchedule) -> None:
    operator_example(schedule)


# ------------------------------------------------------------------------ record-log operator


@dataclass(frozen=True)
class RecordLogSchedule:
    inserted: int
    updated: int
    per_file: int
    gzip: bool
    jsonl: bool
    expired_event: bool
    expire_links: bool
    truncate: int
    corrupt_gzip: int
    faults: FaultPlan
    rerun: bool
    count: bool


record_log_schedules = st.builds(
    RecordLogSchedule,
    inserted=st.integers(0, 7),
    updated=st.integers(0, 5),
    per_file=st.integers(1, 4),
    gzip=st.booleans(),
    jsonl=st.booleans(),
    expired_event=st.booleans(),
    expire_links=st.booleans(),
    truncate=st.sampled_from([0, 0, 1, 2, 8]),
    corrupt_gzip=st.sampled_from([0, 0, 1, 8]),
    faults=fault_plans.map(lambda f: replace(f, burst_at=0.0)),
    rerun=st.booleans(),
    count=st.booleans(),
)


def _parse_records(data: bytes) -> list[Any]:
    text = data.decode()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def record_log_example(schedule: RecordLogSchedule, root: Path) -> None:
    from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator

    _note(f"schedule={schedule!r}")
    fake = FakePolytomic(
        storage_origin=True,
        gzip_record_logs=schedule.gzip,
        record_log_format="jsonl" if schedule.jsonl else "json",
    )
    with fake, connected(fake):
        sync_id = fake.add_sync("contacts")
        if schedule.expired_event:
            fake.clock.set(utcnow() - timedelta(hours=49))
        execution_id = fake.start_execution(sync_id)
        fake.faults.drop_events = {"sync.completed"} if schedule.faults.drop_terminal else set()
        fake.faults.duplicate_events = schedule.faults.duplicate
        fake.faults.expire_record_links = schedule.expire_links
        records = {
            "inserted": [{"id": f"ins-{i}", "text": f'"[{i}]" \\ ü'} for i in range(schedule.inserted)],
            "updated": [{"id": f"upd-{i}", "nested": [{"a": i}]} for i in range(schedule.updated)],
        }
        fake.complete_execution(
            sync_id,
            execution_id,
            inserted=records["inserted"],
            updated=records["updated"],
            records_per_file=schedule.per_file,
        )
        fake.clock.set(utcnow())
        fake.events_order = schedule.faults.events_order
        inject(fake, schedule.faults.bursts)
        fake.faults.truncate_record_logs(schedule.truncate)
        fake.faults.corrupt_gzip_record_logs(schedule.corrupt_gzip)
        destination = root / "out"
        for attempt in range(2 if schedule.rerun else 1):
            op = PolytomicDownloadRecordLogsOperator(
                task_id="record_logs",
                sync_id=sync_id,
                execution_id=execution_id,
                destination=str(destination),
                # Without counting, integrity rests on Content-Length and gzip checks alone.
                count_records=schedule.count,
                strict=schedule.count,
            )
            xcom: Any = None
            error: BaseException | None = None
            try:
                xcom = op.execute(context={})  # type: ignore[arg-type]
            except AirflowException as exc:
                error = exc
            _note(f"attempt {attempt}: xcom={xcom!r} error={error!r}")
            finals = [
                p for p in sorted(destination.rglob("*")) if p.is_file() and "_polytomic" not in p.parts
            ]
            assert not [p for p in finals if ".partial-" in p.name], finals
            for path in finals:
                # Nothing partial at a final path: every file there is a whole, parseable document.
                got = _parse_records(path.read_bytes())
                rtype = path.parent.name
                assert got and all(r in records[rtype] for r in got), (path, got)
            if error is not None:
                # A clear failure: a message naming what failed, no key, no signed link.
                assert len(str(error)) > 20 and "sig=" not in str(error), error
                assert fake.api_key not in str(error)
                continue
            assert xcom["counts"] == {t: len(records[t]) for t in ("inserted", "updated")}, xcom
            for rtype in ("inserted", "updated"):
                got = [r for p in finals if p.parent.name == rtype for r in _parse_records(p.read_bytes())]
                assert got == records[rtype], (rtype, got)
            if schedule.count:
                assert xcom["counted"] == xcom["counts"], xcom
                assert sum(f["records"] for f in xcom["files"]) == schedule.inserted + schedule.updated
            else:
                assert "counted" not in xcom and all(f["records"] is None for f in xcom["files"]), xcom
        # The API key never went to the storage origin.
        assert all("authorization" not in r.headers for r in fake.storage_requests)


@pytest.mark.timeout(TEST_TIMEOUT)
@FUZZ
@hgiven(record_log_schedules)
def test_record_log_operator_is_complete_or_fails_clearly(schedule: RecordLogSchedule) -> None:
    with tempfile.TemporaryDirectory(prefix="polytomic-fuzz-") as root:
        record_log_example(schedule, Path(root))
