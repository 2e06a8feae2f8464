"""PolytomicRunSyncOperator against the fake Polytomic server over real HTTP.

Only the task instance is faked (a server cannot produce one): :class:`FakeTI` records
XCom pushes, and lets a test observe the moment the execution id is published.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import threading
import time
from typing import Any

import pytest

from airflow_provider_polytomic._compat import (
    AIRFLOW_V_3,
    AirflowException,
    AirflowSkipException,
    TaskDeferred,
    link_xcom_key,
)
from airflow_provider_polytomic.exceptions import PolytomicSyncFailedError
from airflow_provider_polytomic.links.polytomic import PolytomicExecutionLink
from airflow_provider_polytomic.operators.sync import (
    PolytomicRunSyncOperator,
    PolytomicSyncTimeoutError,
    idempotency_key_for,
)
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger

FAST = {"poll_interval": 0.05, "status_check_interval": 0.5}
TERMINAL = {"completed", "failed", "canceled", "errors", "interrupted"}


class FakeTI:
    """The slice of a runtime task instance the operator uses."""

    def __init__(self, *, try_number: int = 1, map_index: int = -1, run_id: str = "manual__1") -> None:
        self.dag_id = "dag"
        self.task_id = "run_sync"
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = try_number
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []
        self.on_push: Any = None
        self.execution_pushed = threading.Event()

    def xcom_push(self, key: str, value: Any) -> None:
        if self.on_push is not None:
            self.on_push(key, value)
        self.pushes.append((key, value))
        self.xcoms[key] = value
        if key == "execution_id":
            self.execution_pushed.set()

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)


def ctx(ti: FakeTI) -> Any:
    """A task context holding only the fake task instance."""
    return {"ti": ti}


def make_op(sync_id: str, **kwargs: Any) -> PolytomicRunSyncOperator:
    params: dict[str, Any] = {"task_id": "run_sync", "sync_id": sync_id, "deferrable": False, **FAST}
    params.update(kwargs)
    return PolytomicRunSyncOperator(**params)


def start_requests(fake: FakePolytomic, sync_id: str) -> list[Any]:
    return [
        r for r in fake.requests if r.method == "POST" and r.path.endswith(f"/syncs/{sync_id}/executions")
    ]


def first_event(trigger: Any) -> Any:
    """Rebuild a trigger from its serialized form and run it to its first event."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def run() -> Any:
        agen = rebuilt.run()
        try:
            return await asyncio.wait_for(agen.__anext__(), timeout=30)
        finally:
            await agen.aclose()

    return asyncio.run(run())


def defer(op: PolytomicRunSyncOperator, ti: FakeTI) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti))
    return info.value


# ------------------------------------------------------------------------- start + wait


def test_start_and_wait_in_worker(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed", after=0.3, inserted=[{"id": 1}], updated=[{"id": 2}])
    ti = FakeTI()
    seen_at_push: dict[str, Any] = {}

    def on_push(key: str, value: Any) -> None:
        if key == "execution_id":
            seen_at_push["status"] = fake.execution(sync_id, value)["status"]
            seen_at_push["gets"] = sum(1 for r in fake.requests if r.method == "GET" and value in r.path)

    ti.on_push = on_push
    result = make_op(sync_id).execute(ctx(ti))

    assert result["outcome"] == "succeeded"
    assert result["status"] == "completed"
    assert result["counts"]["inserted"] == 1 and result["counts"]["updated"] == 1
    execution_id = result["execution_id"]
    assert [e["id"] for e in fake.executions(sync_id)] == [execution_id]
    # Pushed before waiting: the execution was still running and nobody had polled it.
    assert seen_at_push == {"status": "running", "gets": 0}
    assert ti.xcoms["execution_id"] == execution_id
    url = f"{fake.url}/syncs/{sync_id}/executions/{execution_id}"
    assert ti.xcoms["execution_url"] == url
    link_key = link_xcom_key(PolytomicExecutionLink())
    if AIRFLOW_V_3:
        assert ti.xcoms[link_key] == url  # what the UI shows while the task still waits
    else:
        assert link_key is None  # Airflow 2 builds links on demand from the XComs above
    # No secret anywhere in XCom.
    assert fake.api_key not in repr(ti.pushes) + repr(result)


def test_start_and_wait_deferred(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed", after=0.3, inserted=[{"id": 1}])
    ti = FakeTI()
    op = make_op(sync_id, deferrable=True, timeout=600)

    deferred = defer(op, ti)

    # Published before deferring.
    execution_id = ti.xcoms["execution_id"]
    assert fake.execution(sync_id, execution_id)["status"] == "running"
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is None
    assert isinstance(deferred.trigger, PolytomicSyncTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_provider_polytomic.triggers.polytomic.PolytomicSyncTrigger"
    assert kwargs["execution_id"] == execution_id
    assert kwargs["cancel_on_kill"] is True
    assert kwargs["deadline"] is not None and kwargs["deadline"] > kwargs["baseline"]

    event = first_event(deferred.trigger)
    assert event.payload["status"] == "finished"
    # A new operator instance resumes, as in Airflow.
    result = make_op(sync_id, deferrable=True).execute_complete(ctx(ti), event=event.payload)
    assert result["execution_id"] == execution_id
    assert result["outcome"] == "succeeded"
    assert result["counts"]["inserted"] == 1


def test_bulk_sync(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("warehouse", kind="bulk")
    fake.set_auto_outcome(sync_id, "completed", after=0.2, inserted=[{"id": 1}, {"id": 2}])
    ti = FakeTI()
    result = make_op(sync_id, sync_kind="bulk", resync=True).execute(ctx(ti))
    assert result["outcome"] == "succeeded"
    assert result["counts"]["record"] == 2
    assert ti.xcoms["execution_url"] == f"{fake.url}/bulk/syncs/{sync_id}/executions/{result['execution_id']}"
    (start,) = [
        r for r in fake.requests if r.method == "POST" and r.path == f"/api/bulk/syncs/{sync_id}/executions"
    ]
    assert b'"resync_mode": "rebuild"' in start.body


def test_not_waiting(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    result = make_op(sync_id, wait_for_completion=False).execute(ctx(ti))
    assert set(result) == {"sync_id", "execution_id", "status"}
    assert result["sync_id"] == sync_id
    assert result["execution_id"] == ti.xcoms["execution_id"]
    assert fake.execution(sync_id, result["execution_id"])["status"] == "running"
    assert not [r for r in fake.requests if r.method == "GET" and "/executions/" in r.path]


# ---------------------------------------------------------------------------------- 409


def test_409_attaches_to_running_execution(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    running = fake.start_execution(sync_id)
    ti = FakeTI()

    # It finishes once the operator has attached (not after a fixed delay, which a slow start
    # could outlast: the operator would then start a second execution, which never finishes).
    def finish_once_attached(key: str, value: Any) -> None:
        if key == "execution_id":
            fake.complete_execution(sync_id, running, inserted=[{"id": 1}])

    ti.on_push = finish_once_attached
    result = make_op(sync_id).execute(ctx(ti))
    assert result["execution_id"] == running
    assert ti.xcoms["execution_id"] == running
    assert len(fake.executions(sync_id)) == 1
    assert [r.headers.get("idempotency-key") is not None for r in start_requests(fake, sync_id)] == [True]


def test_409_refused_when_reuse_disabled(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    running = fake.start_execution(sync_id)
    ti = FakeTI()
    with pytest.raises(AirflowException, match="already running") as info:
        make_op(sync_id, reuse_running_execution=False).execute(ctx(ti))
    assert running in str(info.value)
    assert "reuse_running_execution" in str(info.value)
    assert "execution_id" not in ti.xcoms
    assert fake.execution(sync_id, running)["status"] == "running"


# -------------------------------------------------------------------------- idempotency


def test_idempotency_key_shape_and_inputs() -> None:
    base = FakeTI()
    key = idempotency_key_for(base, "sync-1")
    assert key is not None and re.fullmatch(r"[A-Za-z0-9_-]{8,255}", key)
    assert idempotency_key_for(FakeTI(), "sync-1") == key
    others = {
        idempotency_key_for(FakeTI(try_number=2), "sync-1"),
        idempotency_key_for(FakeTI(map_index=0), "sync-1"),
        idempotency_key_for(FakeTI(run_id="manual__2"), "sync-1"),
        idempotency_key_for(base, "sync-2"),
        idempotency_key_for(base, "sync-1", "bulk"),
    }
    assert key not in others and len(others) == 5
    assert idempotency_key_for(None, "sync-1") is None


def test_same_try_replays_instead_of_starting_twice(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed", after=0)
    first = make_op(sync_id, wait_for_completion=False).execute(ctx(FakeTI()))
    # The same try again (e.g. the request was retried after a lost response): same key.
    again = make_op(sync_id, wait_for_completion=False).execute(ctx(FakeTI()))
    assert again["execution_id"] == first["execution_id"]
    assert len(fake.executions(sync_id)) == 1
    keys = [r.headers["idempotency-key"] for r in start_requests(fake, sync_id)]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_new_try_sends_new_key_and_starts_new_execution(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed", after=0)
    first = make_op(sync_id, wait_for_completion=False).execute(ctx(FakeTI(try_number=1)))
    second = make_op(sync_id, wait_for_completion=False).execute(ctx(FakeTI(try_number=2)))
    assert second["execution_id"] != first["execution_id"]
    assert len(fake.executions(sync_id)) == 2
    keys = [r.headers["idempotency-key"] for r in start_requests(fake, sync_id)]
    assert len(set(keys)) == 2


# --------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize(
    ("outcome", "kwargs", "match"),
    [
        ("failed", {"error": "destination rejected the batch"}, "failed.*destination rejected the batch"),
        ("canceled", {}, "was canceled"),
    ],
)
def test_failed_and_canceled_fail_the_task(
    polytomic_conn: FakePolytomic, deferrable: bool, outcome: str, kwargs: dict[str, Any], match: str
) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, outcome, after=0.2, **kwargs)  # type: ignore[arg-type]
    ti = FakeTI()
    op = make_op(sync_id, deferrable=deferrable)
    with pytest.raises(PolytomicSyncFailedError, match=match):
        if deferrable:
            event = first_event(defer(op, ti).trigger)
            op.execute_complete(ctx(ti), event=event.payload)
        else:
            op.execute(ctx(ti))


def test_soft_fail_skips_a_failed_execution(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "failed", after=0.1)
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        make_op(sync_id, soft_fail=True).execute(ctx(FakeTI()))


def test_completed_with_errors_warns_by_default(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(
        sync_id, "completed_with_errors", after=0.2, inserted=[{"id": 1}], errored=[{"id": 2}]
    )
    result = make_op(sync_id).execute(ctx(FakeTI()))
    assert result["outcome"] == "succeeded_with_errors"
    assert result["counts"]["error"] == 1


def test_completed_with_errors_fails_with_fail_on_errors(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    fake.set_auto_outcome(sync_id, "completed_with_errors", after=0.2, errored=[{"id": 2}])
    with pytest.raises(PolytomicSyncFailedError, match="completed with errors"):
        make_op(sync_id, fail_on_errors=True).execute(ctx(FakeTI()))


# ------------------------------------------------------------------------ cancellation


def kill_while_waiting(op: Any, ti: FakeTI) -> BaseException | None:
    """Run ``op`` (in this thread, as a worker does: Airflow 2 refuses ``execute`` elsewhere),
    call ``on_kill`` from another thread once it has pushed its execution id (as the worker's
    SIGTERM handler does) and return what ``execute`` raised; the wait must end within 10 s."""
    killed: dict[str, float] = {}

    def kill() -> None:
        if ti.execution_pushed.wait(20):
            killed["at"] = time.monotonic()
            op.on_kill()

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    error: BaseException | None = None
    try:
        op.execute(ctx(ti))
    except BaseException as exc:
        error = exc
    ended = time.monotonic()
    killer.join(1)
    assert "at" in killed, f"the operator never pushed its execution id: {error!r}"
    assert ended - killed["at"] < 10
    return error


def test_on_kill_cancels_the_execution_and_stops_waiting(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")  # no outcome: runs until canceled
    ti = FakeTI()
    op = make_op(sync_id, poll_interval=30)  # a long pause: only on_kill can end the wait quickly
    assert isinstance(kill_while_waiting(op, ti), AirflowException)
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "canceled"


def test_on_kill_without_cancel_leaves_execution_running(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    op = make_op(sync_id, cancel_on_kill=False, poll_interval=30)
    assert isinstance(kill_while_waiting(op, ti), AirflowException)
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "running"
    assert not [r for r in fake.requests if r.path.endswith("/cancel")]


def test_deadline_cancels_in_worker(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    with pytest.raises(PolytomicSyncTimeoutError, match="was canceled"):
        make_op(sync_id, timeout=0.3).execute(ctx(ti))
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "canceled"


def test_deadline_cancel_outlasts_one_round_of_retries(
    polytomic_conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (fault-injection run): a burst of 5xx at the deadline used up the cancel's
    retries and left the execution running after the task had timed out."""
    fake = polytomic_conn
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        "extra": {"max_retries": 3, "retry_base_wait": 0.01, "retry_max_wait": 0.05},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    outcome: dict[str, BaseException] = {}
    # More failures than one round of retries (1 + 3 attempts) can absorb, once the wait began.
    ti.on_push = lambda key, _value: (
        fake.faults.server_errors(14, status=503) if key == "execution_id" else None
    )
    try:
        make_op(sync_id, timeout=0.5, poll_interval=30).execute(ctx(ti))
    except BaseException as exc:
        outcome["error"] = exc
    assert isinstance(outcome.get("error"), PolytomicSyncTimeoutError), outcome
    assert "was canceled" in str(outcome["error"])
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "canceled"


def test_deadline_without_cancel_keeps_execution(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    with pytest.raises(PolytomicSyncTimeoutError, match="keeps running"):
        make_op(sync_id, timeout=0.3, cancel_on_kill=False).execute(ctx(ti))
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "running"


def test_deadline_cancels_when_deferred(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    op = make_op(sync_id, deferrable=True, timeout=0.3)
    event = first_event(defer(op, ti).trigger)
    execution_id = ti.xcoms["execution_id"]
    assert event.payload["status"] == "timeout"
    assert event.payload["execution_id"] == execution_id
    with pytest.raises(PolytomicSyncTimeoutError, match="was canceled"):
        make_op(sync_id, deferrable=True, timeout=0.3).execute_complete(ctx(ti), event=event.payload)
    assert fake.execution(sync_id, execution_id)["status"] == "canceled"


def test_deadline_event_without_ids_uses_xcom(polytomic_conn: FakePolytomic) -> None:
    """Under dag.test defer kwargs are dropped; the ids still come from the XCom pushed before waiting."""
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    ti = FakeTI()
    ti.xcoms["execution_id"] = execution_id
    with pytest.raises(PolytomicSyncTimeoutError):
        make_op(sync_id, deferrable=True).execute_complete(ctx(ti), event={"status": "timeout"})
    assert fake.execution(sync_id, execution_id)["status"] == "canceled"


def test_trigger_on_kill_cancels(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    trigger = defer(make_op(sync_id, deferrable=True), ti).trigger
    asyncio.run(trigger.on_kill())
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "canceled"


def test_trigger_on_kill_respects_cancel_on_kill(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync("contacts")
    ti = FakeTI()
    trigger = defer(make_op(sync_id, deferrable=True, cancel_on_kill=False), ti).trigger
    asyncio.run(trigger.on_kill())
    assert fake.execution(sync_id, ti.xcoms["execution_id"])["status"] == "running"
    assert not [r for r in fake.requests if r.path.endswith("/cancel")]


# ------------------------------------------------------------------------- validation


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="sync_kind"):
        PolytomicRunSyncOperator(task_id="t", sync_id="s", sync_kind="nope")
    with pytest.raises(ValueError, match="poll_interval"):
        PolytomicRunSyncOperator(task_id="t", sync_id="s", poll_interval=0)
    with pytest.raises(ValueError, match="timeout"):
        PolytomicRunSyncOperator(task_id="t", sync_id="s", timeout=-1)
    with pytest.raises(ValueError, match="execution_id"):
        PolytomicSyncTrigger(
            polytomic_conn_id="c", sync_id="s", baseline="2026-01-01T00:00:00Z", cancel_on_kill=True
        )
    op = PolytomicRunSyncOperator(task_id="t", sync_id="s")
    assert "sync_id" in op.template_fields
    assert [link.name for link in op.operator_extra_links] == ["Polytomic execution"]
