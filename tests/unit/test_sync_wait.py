"""The wait engine's parts on their own: WaitDecider (the decision), StatusCheckPlan (the
requests of one status check) and PokeDriver (one check per poke, over real HTTP)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_polytomic.api import ExecutionsPage
from airflow_provider_polytomic.exceptions import PolytomicNotFoundError
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.models import BulkExecution, Event, Execution
from airflow_provider_polytomic.sync_wait import (
    MAX_EXECUTION_PAGES,
    PokeDriver,
    StatusCheckPlan,
    WaitDecider,
    WaitTarget,
)
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.vocabulary import Outcome

BASELINE = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
SYNC = "9a4e1c2d-3b4a-4f5e-8d7c-6b5a4f3e2d1c"


def _event(event_id: str, event_type: str, execution_id: str, *, at: datetime, sync_id: str = SYNC) -> Event:
    return Event(
        id=event_id,
        type=event_type,
        created_at=at,
        event={"sync_id": sync_id, "execution_id": execution_id},
    )


def _execution(execution_id: str, status: str, *, finished: datetime | None = None) -> Execution:
    return Execution(
        id=execution_id, status=status, created_at=BASELINE - timedelta(hours=1), completed_at=finished
    )


# ------------------------------------------------------------------------ WaitDecider


def test_only_events_of_the_sync_kind_and_sync_after_the_baseline_are_relevant() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, baseline=BASELINE))
    later = BASELINE + timedelta(seconds=1)
    assert decider.relevant(_event("1", "sync.completed", "x", at=later))
    assert not decider.relevant(_event("2", "bulk_sync.completed", "x", at=later))
    assert not decider.relevant(_event("3", "sync.completed", "x", at=later, sync_id="other"))
    assert not decider.relevant(_event("4", "sync.completed", "x", at=BASELINE))
    pinned = WaitDecider(WaitTarget(sync_id=SYNC, execution_id="x", baseline=BASELINE))
    assert pinned.relevant(_event("5", "sync.completed", "x", at=BASELINE - timedelta(hours=1)))
    assert not pinned.relevant(_event("6", "sync.completed", "y", at=later))


def test_a_terminal_event_nominates_but_only_the_status_decides() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, baseline=BASELINE), status_check_interval=3600)
    decider.observe_executions([], now=BASELINE)
    assert not decider.status_check_due(BASELINE + timedelta(seconds=1))
    decider.observe_events([_event("e1", "sync.completed", "x1", at=BASELINE + timedelta(seconds=5))])
    assert decider.result is None and decider.unconfirmed and decider.nominated() == ("x1",)
    assert decider.status_check_due(BASELINE + timedelta(seconds=6))  # at once, not after the interval
    # The status still says running: no decision, and the nomination stays unconfirmed.
    assert decider.observe_executions([_execution("x1", "running")]) is None
    assert decider.unconfirmed


def test_the_worse_of_event_and_status_wins() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, baseline=BASELINE))
    decider.observe_events([_event("e1", "sync.completed", "x1", at=BASELINE + timedelta(seconds=5))])
    result = decider.observe_executions(
        [_execution("x1", "failed", finished=BASELINE + timedelta(seconds=5))]
    )
    assert result is not None and result.outcome is Outcome.FAILED
    assert result.event_id == "e1" and result.event_type == "sync.completed"
    assert not decider.status_check_due()  # decided: nothing more to read


def test_without_an_event_the_result_names_the_type_polytomic_would_have_sent() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, sync_kind="bulk", baseline=BASELINE))
    finished = BASELINE + timedelta(minutes=1)
    bulk = BulkExecution(id="b1", status="errors", completed_at=finished, error_count=2)
    result = decider.observe_executions([bulk])
    assert result is not None and result.outcome is Outcome.SUCCEEDED_WITH_ERRORS
    assert (result.event_type, result.event_id) == ("bulk_sync.completed_with_error", None)
    assert result.counts["error"] == 2


def test_the_first_execution_to_finish_after_the_baseline_is_chosen() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, baseline=BASELINE))
    executions = [
        _execution("late", "completed", finished=BASELINE + timedelta(minutes=9)),
        _execution("first", "canceled", finished=BASELINE + timedelta(minutes=2)),
        _execution("before", "completed", finished=BASELINE - timedelta(minutes=1)),
    ]
    result = decider.observe_executions(executions)
    assert result is not None and result.execution_id == "first" and result.outcome is Outcome.CANCELED


def test_status_checks_follow_the_interval_once_nothing_is_unconfirmed() -> None:
    decider = WaitDecider(WaitTarget(sync_id=SYNC, baseline=BASELINE), status_check_interval=60)
    assert decider.status_check_due(BASELINE)  # the first check is always due
    decider.observe_executions([], now=BASELINE)
    assert not decider.status_check_due(BASELINE + timedelta(seconds=59))
    assert decider.status_check_due(BASELINE + timedelta(seconds=60))


# -------------------------------------------------------------------- StatusCheckPlan


def _drive(plan: StatusCheckPlan, answers: list[Any]) -> list[str]:
    paths = []
    for answer in answers:
        call = plan.next_call()
        assert call is not None
        paths.append(call.path)
        plan.feed(answer)
    assert plan.next_call() is None
    return paths


def test_a_known_execution_costs_one_read() -> None:
    plan = StatusCheckPlan(
        WaitTarget(sync_id=SYNC, execution_id="x1", baseline=BASELINE), nominated=["other"]
    )
    paths = _drive(plan, [_execution("x1", "running")])
    assert paths == [f"/api/syncs/{SYNC}/executions/x1"]
    assert [e.id for e in plan.executions] == ["x1"]


def test_the_listing_stops_at_the_baseline_then_reads_nominated_executions_it_missed() -> None:
    target = WaitTarget(sync_id=SYNC, baseline=BASELINE)
    plan = StatusCheckPlan(target, nominated=["listed", "unlisted"])
    first_page = ExecutionsPage(
        [
            _execution("listed", "completed", finished=BASELINE + timedelta(minutes=1)),
            _execution("older", "completed", finished=BASELINE - timedelta(minutes=1)),
            _execution("never-read", "completed", finished=BASELINE - timedelta(minutes=2)),
        ],
        next_page_token="page-2",
    )
    paths = _drive(
        plan, [first_page, _execution("unlisted", "failed", finished=BASELINE + timedelta(minutes=3))]
    )
    assert paths == [f"/api/syncs/{SYNC}/executions", f"/api/syncs/{SYNC}/executions/unlisted"]
    assert [e.id for e in plan.executions] == ["listed", "older", "unlisted"]


def test_the_listing_reads_at_most_a_few_pages() -> None:
    plan = StatusCheckPlan(WaitTarget(sync_id=SYNC, sync_kind="bulk", baseline=BASELINE))
    running = [_execution(f"r{i}", "running") for i in range(MAX_EXECUTION_PAGES)]
    # Runs created before the baseline that are still going end the listing; these are not.
    for execution in running:
        execution.created_at = BASELINE + timedelta(seconds=1)
    pages = [ExecutionsPage([execution], next_page_token=f"t{i}") for i, execution in enumerate(running)]
    paths = _drive(plan, pages)
    assert paths == [f"/api/bulk/syncs/{SYNC}/executions"] * MAX_EXECUTION_PAGES


# ------------------------------------------------------------------------- PokeDriver


def _api_paths(fake: FakePolytomic) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/api/")]


def test_a_poke_costs_one_events_page_and_one_status_read(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync()
    execution_id = fake.start_execution(sync_id)
    driver = PokeDriver(PolytomicHook(), WaitDecider(WaitTarget(sync_id=sync_id, execution_id=execution_id)))
    assert driver.check() is None
    assert _api_paths(fake) == ["/api/events", f"/api/syncs/{sync_id}/executions/{execution_id}"]
    fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}])
    result = driver.check()
    assert (
        result is not None and result.outcome is Outcome.SUCCEEDED and result.event_type == "sync.completed"
    )
    assert len(_api_paths(fake)) == 4


def test_a_failing_events_read_leaves_the_decision_to_the_status(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id = fake.add_sync()
    execution_id = fake.start_execution(sync_id)
    fake.fail_execution(sync_id, execution_id, error="boom")
    fake.faults.fail_route(r"^/api/events$", 503)
    driver = PokeDriver(PolytomicHook(), WaitDecider(WaitTarget(sync_id=sync_id, execution_id=execution_id)))
    result = driver.check()
    assert result is not None and result.outcome is Outcome.FAILED and result.event_id is None
    assert "boom" in (result.error or "")


def test_a_fatal_status_error_is_raised(polytomic_conn: FakePolytomic) -> None:
    sync_id = polytomic_conn.add_sync()
    driver = PokeDriver(PolytomicHook(), WaitDecider(WaitTarget(sync_id=sync_id, execution_id="missing")))
    with pytest.raises(PolytomicNotFoundError):
        driver.check()
