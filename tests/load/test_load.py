"""Load: the hook's memory stays flat over a 48-hour window of 100,000 events, 1,000
waiting triggers share one events poll, and in a busy organization a poll costs its new
events, not its window, whatever the server's page order.

The 100,000-event window is served by the fake Polytomic in a child process, so tracemalloc
in this process measures the hook alone (the fake's own allocations would otherwise be
counted).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.testing import EVENTS_ORDERS, FakePolytomic
from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger
from tests.busy import Chatter
from tests.modes import first_event_via_shared_stream, triggerer_stream_manager

CHILD = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from airflow_provider_polytomic.testing import EVENTS_ORDERS, FakePolytomic

n = int(sys.argv[1])
fake = FakePolytomic().start()
now = fake.clock.now()
start = now - timedelta(hours=47)
step = timedelta(hours=47) / n
payload = {"sync_id": "s", "sync_name": "load", "target_connection_id": "t", "status": "running"}
for i in range(n):
    fake.add_event("sync.running", {**payload, "execution_id": f"e{i:06d}"},
                   created_at=start + step * i, event_id=f"ev{i:06d}")
print(json.dumps({"url": fake.url, "key": fake.api_key, "start": start.isoformat(),
                  "tenth": (start + step * (n // 10) - step / 2).isoformat()}), flush=True)
sys.stdin.read()
fake.stop()
"""


def _iterate(hook: PolytomicHook, since: datetime, until: datetime | None) -> tuple[int, int]:
    """Count the window's events; return (events, peak bytes allocated while iterating)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        count = 0
        for event in hook.iter_events(starting_after=since, ending_before=until):
            assert event.type == "sync.running"
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak - before


@pytest.mark.timeout(240)
def test_hook_memory_is_flat_over_100k_events_in_48_hours() -> None:
    n = 100_000
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        conn = {
            "conn_type": "polytomic",
            "host": info["url"],
            "password": info["key"],
            "extra": {"max_retries": 3, "retry_base_wait": 0.01},
        }
        since = datetime.fromisoformat(info["start"]) - timedelta(microseconds=1)
        tenth = datetime.fromisoformat(info["tenth"])
        with mock.patch.dict(os.environ, {"AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps(conn)}):
            hook = PolytomicHook()
            hook.get_identity()  # connection and HTTP session set up outside the measurement
            began = time.monotonic()
            small, small_peak = _iterate(hook, since, tenth)
            mid = time.monotonic()
            large, large_peak = _iterate(hook, since, None)
            done = time.monotonic()
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)
    print(
        f"\n10k events: {small_peak / 1024:.0f} KiB peak in {mid - began:.1f} s; "
        f"100k events: {large_peak / 1024:.0f} KiB peak in {done - mid:.1f} s"
    )
    assert small == n // 10 and large == n
    # Flat: ten times the events, not ten times the memory (one page of 100 is what is held).
    assert large_peak <= small_peak * 1.5 + 512 * 1024, (small_peak, large_peak)
    assert large_peak < 16 * 1024 * 1024


# ------------------------------------------------------------------- 1,000 triggers, one poll


def _waiting_triggers(fake: FakePolytomic, n: int, interval: float) -> list[PolytomicSyncTrigger]:
    """``n`` syncs each running an execution, and a trigger waiting on each. The executions
    started five minutes ago, so their sync.running events lie before the poll's re-read
    window: what is measured is the waiting, not the organization's past."""
    sync_ids = [fake.add_sync(f"s{i}") for i in range(n)]
    fake.clock.advance(-300)
    executions = {s: fake.start_execution(s) for s in sync_ids}
    fake.clock.advance(300)
    return [
        PolytomicSyncTrigger(
            polytomic_conn_id="polytomic_default",
            sync_id=s,
            execution_id=executions[s],
            baseline=datetime.now(timezone.utc),
            poll_interval=interval,
        )
        for s in sync_ids
    ]


@pytest.mark.timeout(180)
def test_a_thousand_triggers_share_one_events_poll(polytomic_conn: FakePolytomic) -> None:
    """1,000 waiting triggers, run as the installed Airflow's triggerer runs them (Airflow 3.3's
    SharedStreamManager, or ``run()`` with the in-process fan-out before 3.3), cost at most 3
    events requests per poll interval, and every one fires on its own execution."""
    fake = polytomic_conn
    n, interval, watched = 1000, 1.0, 4
    triggers = _waiting_triggers(fake, n, interval)

    def events_requests() -> int:
        return sum(1 for r in fake.requests if r.path == "/api/events")

    async def scenario() -> tuple[list[dict], list[float], int]:
        manager = triggerer_stream_manager()
        assert len({t.shared_stream_key() for t in triggers}) == 1
        fired: dict[int, float] = {}

        tasks = [
            asyncio.create_task(first_event_via_shared_stream(manager, i, t, fired))
            for i, t in enumerate(triggers)
        ]
        # Every trigger's start-up status check done: from here on only the shared poll runs.
        while sum(1 for r in fake.requests if "/executions/" in r.path) < n:
            await asyncio.sleep(0.05)
        first = events_requests()
        await asyncio.sleep(interval * watched)
        steady = events_requests() - first
        finished_at: dict[int, float] = {}
        for i, trigger in enumerate(triggers):
            fake.complete_execution(trigger.sync_id, trigger.execution_id)
            finished_at[i] = time.monotonic()
            await asyncio.sleep(0.002)  # syncs finish over a few seconds, as in an organization
        payloads = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        if manager is not None:
            await manager.stop_all()
        return payloads, sorted(fired[i] - finished_at[i] for i in fired), steady

    payloads, latencies, steady = asyncio.run(scenario())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"\n1000 triggers: {steady} events requests in {watched} intervals; p50 {p50:.2f}s p99 {p99:.2f}s")
    assert all(p["status"] == "finished" for p in payloads)
    assert [p["result"]["execution_id"] for p in payloads] == [t.execution_id for t in triggers]
    # At most 3 events requests per poll interval (+1: a poll in flight at either end).
    assert steady <= 3 * watched + 1, steady
    # Detection latency is the benchmark's business (benchmarks/README.md); here only a sanity
    # bound: on a busy 2-core machine running the fake and 1,000 triggers in one process,
    # half of them still fire within a few poll intervals of their sync finishing.
    assert p50 <= interval + 4.0, latencies[-20:]


# ------------------------------------------------------- a busy organization, every order


def _ticks(requests: list, gap: float) -> list[list]:
    """Events requests grouped by poll: a poll's requests follow each other closely."""
    groups: list[list] = []
    for req in requests:
        if groups and (req.time - groups[-1][-1].time).total_seconds() < gap:
            groups[-1].append(req)
        else:
            groups.append([req])
    return groups


@pytest.mark.timeout(300)
@pytest.mark.parametrize("order", EVENTS_ORDERS)
def test_a_busy_organization_costs_its_new_events_not_its_window(polytomic_conn: FakePolytomic, order):
    """200 deferred sensors while unrelated syncs emit about 250 events a second: each poll
    costs at most 3 + ceil(new events / 100) events requests (it used to re-read the whole
    60 s window: 150 requests a poll here), and every sensor fires once, on its execution."""
    fake = polytomic_conn
    fake.events_order = order
    n, interval, rate, watched = 200, 1.0, 250, 8
    triggers = _waiting_triggers(fake, n, interval)
    chatter = Chatter(fake, rate, syncs=50)

    def events_requests() -> list:
        return [r for r in list(fake.requests) if r.path == "/api/events"]

    async def scenario() -> tuple[list[dict], list[list], list[datetime]]:
        manager = triggerer_stream_manager()
        fired: dict[int, float] = {}
        chatter.start()
        await asyncio.sleep(2 * interval)  # the organization is busy before anyone waits
        tasks = [
            asyncio.create_task(first_event_via_shared_stream(manager, i, t, fired))
            for i, t in enumerate(triggers)
        ]
        while sum(1 for r in list(fake.requests) if "/executions/" in r.path) < n:
            await asyncio.sleep(0.05)
        await asyncio.sleep(interval)
        first = len(events_requests())
        await asyncio.sleep(interval * watched)
        polls = _ticks(events_requests()[first:], gap=interval / 2)
        for trigger in triggers:
            fake.complete_execution(trigger.sync_id, trigger.execution_id)
            await asyncio.sleep(0.005)
        payloads = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        if manager is not None:
            await manager.stop_all()
        chatter.stop()
        created = sorted(
            datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) for e in fake.events()
        )
        return payloads, polls, created

    try:
        payloads, polls, created = asyncio.run(scenario())
    finally:
        chatter.stop()
    assert all(p["status"] == "finished" for p in payloads)
    assert [p["result"]["execution_id"] for p in payloads] == [t.execution_id for t in triggers]
    # Whole polls only: the first and last groups may be cut by the watch window.
    polls = polls[1:-1]
    assert len(polls) >= watched - 3, [len(p) for p in polls]
    costs = []
    for previous, poll in itertools.pairwise(polls):
        # Everything this poll could have read that the previous one could not.
        new = bisect.bisect_right(created, poll[-1].time) - bisect.bisect_left(created, previous[0].time)
        costs.append((len(poll), new))
    print(f"\n{order}: (events requests, new events) per poll: {costs}")
    # A shuffled page costs up to three more reads (below, inside and above it) to learn
    # which end the server keeps (EventPager's docstring); ordered pages cost none.
    probes = 3 if order == "shuffled" else 0
    for requests, new in costs:
        assert requests <= 3 + probes + math.ceil(new / 100), costs
    assert sum(new for _, new in costs) >= 100 * len(costs), costs  # more than a page per poll
