"""Reading the events endpoint whatever its order: costs and correctness.

Over real HTTP against the fake server in each of its three orderings (``oldest_first``,
``newest_first``, ``shuffled``): reading N events of a window costs at most
``ceil(N / 100) + 2`` requests when pages are ordered, every event comes out exactly once
sorted by ``(created_at, id)``, ties at page boundaries lose nothing, and the strict
``limit`` is respected. The shared poll's tail reads only what is new each round.

The last part drives the pager, which does no I/O, against simulated servers with
behaviours the fake does not have (newest events shuffled, arbitrary subsets, inclusive
bounds, tiny limits), as a property test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_polytomic.event_pager import EventPager
from airflow_provider_polytomic.event_tail import EventTail
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.testing import EVENTS_ORDERS, FakePolytomic

ORDERED = ("oldest_first", "newest_first")


def events_requests(fake: FakePolytomic) -> list[Any]:
    return [r for r in fake.requests if r.path == "/api/events"]


def add_events(
    fake: FakePolytomic, n: int, *, start: datetime, step: timedelta, per_instant: int = 1
) -> list[dict[str, Any]]:
    """``n`` events from ``start``, ``per_instant`` of them sharing each timestamp."""
    out = []
    for i in range(n):
        when = start + step * (i // per_instant)
        out.append(fake.add_event("sync.running", {"sync_id": "s", "execution_id": f"e{i}"}, created_at=when))
    return out


def expected_order(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in sorted(events, key=lambda e: (e["created_at"], e["id"]))]


@pytest.fixture(params=EVENTS_ORDERS)
def fake(request: pytest.FixtureRequest, polytomic_conn: FakePolytomic) -> FakePolytomic:
    """The fake, with the default connection pointing at it, serving pages in each order."""
    polytomic_conn.events_order = request.param
    return polytomic_conn


def bound(n: int) -> int:
    return math.ceil(n / 100) + 2


# ----------------------------------------------------------------------- paging a window


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 200, 250, 1000, 2500])
def test_reading_n_events_costs_at_most_ceil_n_over_100_plus_2(fake: FakePolytomic, n):
    order = fake.events_order
    start = fake.clock.now() - timedelta(minutes=30)
    made = add_events(fake, n, start=start, step=timedelta(milliseconds=7))
    # Unrelated events outside the window must cost nothing.
    add_events(fake, 150, start=start - timedelta(minutes=5), step=timedelta(milliseconds=3))
    before = len(events_requests(fake))
    got = PolytomicHook().list_events(
        starting_after=start - timedelta(microseconds=1), ending_before=start + timedelta(minutes=10)
    )
    requests = len(events_requests(fake)) - before
    assert [e.id for e in got] == expected_order(made)
    if order in ORDERED:
        assert requests <= bound(n), (order, n, requests)
    else:
        # Shuffled pages: the pager reads around the first full page once to learn which end
        # of a window the server keeps, then pages as for an ordered server.
        assert requests <= bound(n) + 3, (order, n, requests)
    for req in events_requests(fake)[before:]:
        assert req.query["limit"] == "100"


def test_async_reading_costs_the_same(fake: FakePolytomic):
    order = fake.events_order
    start = fake.clock.now() - timedelta(minutes=10)
    made = add_events(fake, 450, start=start, step=timedelta(milliseconds=11))
    hook = PolytomicHook()

    async def read() -> list[str]:
        try:
            return [e.id async for e in hook.aiter_events(starting_after=start - timedelta(microseconds=1))]
        finally:
            await hook.aclose()

    before = len(events_requests(fake))
    assert asyncio.run(read()) == expected_order(made)
    assert len(events_requests(fake)) - before <= bound(450) + (0 if order in ORDERED else 3)


@pytest.mark.parametrize("per_instant", [2, 7, 60])
def test_ties_at_page_boundaries_lose_nothing(fake: FakePolytomic, per_instant):
    """Several events share each timestamp, so pages end in the middle of a group of ties."""
    order = fake.events_order
    start = fake.clock.now() - timedelta(minutes=10)
    made = add_events(fake, 700, start=start, step=timedelta(milliseconds=5), per_instant=per_instant)
    before = len(events_requests(fake))
    got = PolytomicHook().list_events(starting_after=start - timedelta(microseconds=1))
    assert [e.id for e in got] == expected_order(made)
    # Each read re-reads the ties at its boundary: at most one group per page.
    requests = len(events_requests(fake)) - before
    assert requests <= math.ceil(700 / (100 - per_instant)) + 2 + (0 if order in ORDERED else 3)


def test_a_page_made_of_one_instant_does_not_stall(fake: FakePolytomic, caplog):
    """150 events at one instant cannot all be read through strict time filters; everything
    around the instant still is, nothing comes twice, and the reader says so."""
    start = fake.clock.now() - timedelta(minutes=10)
    before_instant = add_events(fake, 120, start=start, step=timedelta(milliseconds=3))
    instant = start + timedelta(seconds=5)
    crowd = add_events(fake, 150, start=instant, step=timedelta(0))
    after_instant = add_events(
        fake, 130, start=instant + timedelta(seconds=1), step=timedelta(milliseconds=3)
    )
    caplog.set_level(logging.WARNING)
    before = len(events_requests(fake))
    got = [e.id for e in PolytomicHook().list_events(starting_after=start - timedelta(microseconds=1))]
    assert len(got) == len(set(got))
    assert set(got) >= {e["id"] for e in before_instant + after_instant}
    crowd_ids = {e["id"] for e in crowd}
    assert len(crowd_ids & set(got)) >= 100  # one full page of them at least
    assert got == expected_order([e for e in before_instant + crowd + after_instant if e["id"] in got])
    assert "share the instant" in caplog.text
    assert len(events_requests(fake)) - before <= 12


@pytest.mark.parametrize("limit", [1, 2, 10])
def test_a_strict_limit_is_respected(fake: FakePolytomic, limit):
    order = fake.events_order
    start = fake.clock.now() - timedelta(minutes=10)
    made = add_events(fake, 40, start=start, step=timedelta(milliseconds=13))
    hook = PolytomicHook()
    pager = EventPager(starting_after=start - timedelta(microseconds=1), limit=limit)
    before = len(events_requests(fake))
    got = []
    while (call := pager.next_call()) is not None:
        got.extend(e.id for e in pager.feed(hook.run(call)))
    assert got == expected_order(made)
    sent = events_requests(fake)[before:]
    assert {r.query["limit"] for r in sent} == {str(limit)}
    if limit >= 10 and order in ORDERED:
        # Each page after the first brings limit - 1 new events (one is its boundary re-read).
        # (Pages of fewer than 10 events are too short to tell an order from chance.)
        assert len(sent) <= math.ceil(39 / (limit - 1)) + 1


def test_memory_stays_bounded_when_the_server_walks_back(fake: FakePolytomic):
    """Newest-first pages cannot be emitted before the walk reaches the window's start; past
    ``max_buffered`` held events the newest are dropped and read again, in order."""
    start = fake.clock.now() - timedelta(minutes=10)
    made = add_events(fake, 1000, start=start, step=timedelta(milliseconds=9))
    hook = PolytomicHook()
    pager = EventPager(starting_after=start - timedelta(microseconds=1), max_buffered=250)
    got, peak = [], 0
    while (call := pager.next_call()) is not None:
        got.extend(e.id for e in pager.feed(hook.run(call)))
        peak = max(peak, pager.held)
    assert got == expected_order(made)
    assert peak <= 250 + 100


# ----------------------------------------------------------------------- the tail


def run_round(tail: EventTail, hook: PolytomicHook, now: datetime | None = None) -> list[str]:
    tail.begin(now or datetime.now(timezone.utc))
    out = []
    while (call := tail.next_call()) is not None:
        out.extend(e.id for e in tail.feed(hook.run(call)))
    return out


def test_each_round_reads_only_what_is_new(fake: FakePolytomic):
    order = fake.events_order
    hook = PolytomicHook()
    # A busy past: 2,000 events in the last minute, which a round must not re-read. One "now"
    # for both: adding them takes long enough on a loaded machine to push the oldest out of
    # a window taken afterwards.
    now = fake.clock.now()
    add_events(fake, 2000, start=now - timedelta(seconds=59), step=timedelta(milliseconds=29))
    tail = EventTail(start=now - timedelta(seconds=60), recheck_interval=None)
    first = run_round(tail, hook)
    assert len(first) == 2000
    for new in (0, 1, 30, 99, 100, 101, 250, 640):
        made = add_events(fake, new, start=fake.clock.now(), step=timedelta(microseconds=50))
        before = len(events_requests(fake))
        got = run_round(tail, hook)
        requests = len(events_requests(fake)) - before
        assert sorted(got) == sorted(e["id"] for e in made)
        # The overlap re-reads at most 50 events already seen: at most one page more.
        assert requests <= math.ceil(new / 100) + 2 + (0 if order in ORDERED else 3), (new, requests)


def test_late_events_are_caught_by_the_re_read(fake: FakePolytomic):
    """An event that shows up after the incremental read has moved past its created_at is
    delivered by the next re-read of the lag window, once, and the horizon then passes it."""
    hook = PolytomicHook()
    lag = timedelta(seconds=2)
    t0 = datetime.now(timezone.utc)
    tail = EventTail(start=t0 - lag, lag=lag, recheck_interval=0.5)
    run_round(tail, hook, t0)
    add_events(fake, 20, start=fake.clock.now(), step=timedelta(milliseconds=1))
    assert len(run_round(tail, hook, t0 + timedelta(seconds=0.1))) == 20
    # Created 1 s ago, visible only now: behind the incremental read's overlap.
    late = fake.add_event(
        "sync.completed", {"sync_id": "s"}, created_at=fake.clock.now() - timedelta(seconds=1)
    )
    late_at = datetime.fromisoformat(late["created_at"].replace("Z", "+00:00"))
    seen: list[str] = []
    for i in range(2, 12):
        seen.extend(run_round(tail, hook, t0 + timedelta(seconds=0.5 * i)))
    assert seen.count(late["id"]) == 1
    assert tail.horizon > late_at


def test_a_failed_request_loses_nothing(fake: FakePolytomic, monkeypatch):
    conn = {"conn_type": "polytomic", "host": fake.url, "password": fake.api_key, "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_FLAKY", json.dumps(conn))
    hook = PolytomicHook("polytomic_flaky")
    tail = EventTail(start=fake.clock.now() - timedelta(seconds=1), recheck_interval=None)
    made = add_events(fake, 330, start=fake.clock.now(), step=timedelta(microseconds=100))
    got: list[str] = []
    tail.begin(datetime.now(timezone.utc))
    call = tail.next_call()
    assert call is not None
    got.extend(e.id for e in tail.feed(hook.run(call)))
    fake.faults.server_errors(1)
    call = tail.next_call()
    assert call is not None
    with pytest.raises(Exception, match="503"):
        hook.run(call)
    tail.fail()
    got.extend(run_round(tail, hook))
    assert sorted(got) == sorted(e["id"] for e in made)


def test_a_one_page_reader_that_falls_behind_skips_to_recent_events(fake: FakePolytomic):
    """A poke reads one page per round; a backlog bigger than that is given up for the last
    ``max_behind`` of events, so the poke sees what just happened."""
    hook = PolytomicHook()
    now = fake.clock.now()
    add_events(fake, 1500, start=now - timedelta(minutes=5), step=timedelta(milliseconds=40))
    recent = add_events(fake, 40, start=now - timedelta(seconds=20), step=timedelta(milliseconds=300))
    tail = EventTail(
        start=now - timedelta(minutes=6), recheck_interval=None, max_behind=timedelta(seconds=60)
    )
    seen: list[str] = []
    for _ in range(3):
        tail.begin(datetime.now(timezone.utc))
        call = tail.next_call()
        assert call is not None
        seen.extend(e.id for e in tail.feed(hook.run(call)))
    assert {e["id"] for e in recent} <= set(seen)


# ----------------------------------------------------- simulated servers (no I/O involved)

US = timedelta(microseconds=1)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SERVERS = ("oldest", "newest", "shuffled_oldest", "shuffled_newest", "subset", "by_id", "inclusive")


class SimulatedServer:
    """``GET /api/events`` semantics over a list of events, in one of several behaviours."""

    def __init__(self, events: list[dict[str, Any]], behaviour: str, seed: int) -> None:
        self.rows = sorted(events, key=lambda e: (e["_t"], e["_seq"]))
        self.behaviour = behaviour
        self.random = random.Random(seed)
        self.requests = 0

    def answer(self, call: Any) -> dict[str, Any]:
        self.requests += 1
        p = call.params
        after, before, limit = p["starting_after"], p["ending_before"], p["limit"]
        inclusive = self.behaviour == "inclusive"
        rows = [
            e
            for e in self.rows
            if (after is None or e["_t"] > after or (inclusive and e["_t"] == after))
            and (before is None or e["_t"] < before or (inclusive and e["_t"] == before))
        ]
        if self.behaviour in ("newest", "shuffled_newest"):
            page = rows[-limit:][::-1]
        elif self.behaviour == "subset":
            page = self.random.sample(rows, min(limit, len(rows)))
        elif self.behaviour == "by_id":
            page = sorted(rows, key=lambda e: e["id"])[:limit]
        else:
            page = rows[:limit]
        if self.behaviour.startswith("shuffled"):
            page = page[:]
            self.random.shuffle(page)
        return {"data": [{k: v for k, v in e.items() if not k.startswith("_")} for e in page]}


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], str, int, int]:
    n = draw(st.integers(0, 400))
    # Few distinct instants make ties likely; many make them rare.
    spread = draw(st.sampled_from([3, 40, 1000, 10**6]))
    stamps = sorted(draw(st.lists(st.integers(0, spread), min_size=n, max_size=n)))
    events = []
    for i, t in enumerate(stamps):
        when = T0 + t * US
        # Ids unrelated to time, as random UUIDs are: a server that pages by id then serves an
        # arbitrary subset in time. (Ids that sort almost, but not quite, like created_at make
        # an id-ordered page look oldest-first; no single page can tell the two apart.)
        salt = draw(st.integers(0, 10**6))
        events.append(
            {
                "id": f"{hashlib.sha256(f'{salt}-{i}'.encode()).hexdigest()[:12]}-{i:04d}",
                "type": "sync.running",
                "created_at": when.isoformat(),
                "event": {"sync_id": "s"},
                "_t": when,
                "_seq": i,
            }
        )
    return (
        events,
        draw(st.sampled_from(SERVERS)),
        draw(st.sampled_from([1, 2, 3, 10, 100])),
        draw(st.integers()),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_property_every_event_once_and_sorted_whatever_the_server(world) -> None:
    events, behaviour, limit, seed = world
    server = SimulatedServer(events, behaviour, seed)
    pager = EventPager(
        starting_after=T0 - US,
        ending_before=T0 + timedelta(days=1),
        limit=limit,
        max_buffered=max(200, 2 * limit),
    )
    got = []
    while (call := pager.next_call()) is not None:
        got.extend(pager.feed(server.answer(call)))
        assert server.requests < 20_000, "the pager does not terminate"
    # More events than `limit` at one instant cannot all be read through time filters.
    counts: dict[datetime, int] = {}
    for e in events:
        counts[e["_t"]] = counts.get(e["_t"], 0) + 1
    readable = [e for e in events if counts[e["_t"]] <= limit]
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids)), "an event came out twice"
    assert {e["id"] for e in readable} <= set(ids), "an event was missed"
    assert ids == [e.id for e in sorted(got, key=lambda e: (e.created_at, e.id))], "not sorted"
    if behaviour in ("oldest", "newest") and limit == 100 and len(counts) == len(events):
        assert server.requests <= bound(len(events))
