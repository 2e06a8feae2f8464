"""PolytomicEventTrigger against the fake Polytomic server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_polytomic._compat import (
    AIRFLOW_V_3,
    AIRFLOW_V_3_3,
    Asset,
    BaseEventTrigger,
    TriggerEvent,
    asset_state_store_accessors,
)
from airflow_provider_polytomic.asset_events import CursorState
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.triggers.events import DEFAULT_EVENT_TYPES, PolytomicEventTrigger
from airflow_provider_polytomic.triggers.shared_poll import EventTick, subscribe_in_process

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not AIRFLOW_V_3, reason="PolytomicEventTrigger backs asset watchers, which need Airflow 3.0"
    ),
]

WAIT = 15.0  # generous upper bound for one expected event; never a synchronisation sleep
FAST = 0.05


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeStateStore:
    """The part of Airflow's ``AssetStateStoreAccessors`` a trigger uses (single asset)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.writes = 0
        self._changed = asyncio.Condition()

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        async with self._changed:
            self.values[key] = value
            self.writes += 1
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.values)), WAIT)


class Runner:
    """Drives one trigger's ``run()`` and hands out its events one by one."""

    def __init__(self, trigger: PolytomicEventTrigger) -> None:
        self.trigger = trigger
        self.gen: AsyncIterator[TriggerEvent] = trigger.run()
        self._pending: asyncio.Task[TriggerEvent] | None = None

    async def next(self) -> dict[str, Any]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.gen.__anext__())
        try:
            event = await asyncio.wait_for(asyncio.shield(self._pending), WAIT)
        finally:
            if self._pending.done():
                self._pending = None
        assert isinstance(event.payload, dict)
        return event.payload

    def advance_in_background(self) -> None:
        """Let the trigger run past its last yield (to its commit) while nobody reads."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.gen.__anext__())

    async def start(self) -> Runner:
        """Start the trigger; returns once it has fixed its starting cursor.

        The trigger sets its cursor before its first network read, but on Airflow < 3.3 it
        first sets up its own event stream, which may take several turns of the event loop:
        wait for the cursor itself, not for a number of turns.
        """
        self.advance_in_background()
        assert self._pending is not None
        deadline = asyncio.get_running_loop().time() + WAIT
        while self.trigger._state is None and not self._pending.done():
            assert asyncio.get_running_loop().time() < deadline, "the trigger never fixed its cursor"
            await asyncio.sleep(0.001)
        return self

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await self._pending
        await self.gen.aclose()  # type: ignore[attr-defined]


def attach(t: PolytomicEventTrigger, store: FakeStateStore) -> None:
    """What the triggerer does before running a watcher's trigger."""
    t.asset_state_store = store  # type: ignore[assignment]


def trigger(**kwargs: Any) -> PolytomicEventTrigger:
    kwargs.setdefault("poll_interval", FAST)
    return PolytomicEventTrigger(**kwargs)


def complete(fake: FakePolytomic, sync_id: str) -> dict[str, Any]:
    execution_id = fake.start_execution(sync_id)
    return fake.complete_execution(sync_id, execution_id)


def fail(fake: FakePolytomic, sync_id: str) -> dict[str, Any]:
    execution_id = fake.start_execution(sync_id)
    return fake.fail_execution(sync_id, execution_id)


def events_requests(fake: FakePolytomic) -> list[Any]:
    return [r for r in fake.requests if r.path == "/api/events"]


# --------------------------------------------------------------------------- basics


def test_is_an_event_trigger_and_serializes_round_trip() -> None:
    t = PolytomicEventTrigger(sync_ids=["B", "a", "a"], event_types=["sync.failed", "sync.completed"])
    assert isinstance(t, BaseEventTrigger)
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_polytomic.triggers.events.PolytomicEventTrigger"
    assert kwargs["sync_ids"] == ["a", "b"]  # sorted, lowercased, de-duplicated: stable trigger hash
    assert kwargs["event_types"] == ["sync.completed", "sync.failed"]
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.cursor_key == t.cursor_key
    assert PolytomicEventTrigger().event_types == sorted(DEFAULT_EVENT_TYPES)
    assert (
        "sync.running" not in DEFAULT_EVENT_TYPES and "bulk_sync.completed_with_error" in DEFAULT_EVENT_TYPES
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event_types": ["sync.complete"]},  # typo
        {"event_types": "sync.completed"},  # a string, not a list
        {"event_types": []},
        {"sync_ids": "abc"},
        {"sync_ids": [""]},
        {"poll_interval": 0},
        {"lookback": -1},
        {"lookback": 49 * 3600},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PolytomicEventTrigger(**kwargs)


def test_shared_stream_key_groups_one_connection() -> None:
    a = trigger(sync_ids=["a"])
    b = trigger(sync_ids=["b"], event_types=["sync.failed"])
    other_conn = trigger(polytomic_conn_id="other", sync_ids=["a"])
    assert a.shared_stream_key() == b.shared_stream_key() is not None
    assert other_conn.shared_stream_key() != a.shared_stream_key()
    assert trigger(shared=False).shared_stream_key() is None


# --------------------------------------------------------------------------- matching


async def test_yields_matching_events_only_with_payload(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    b = fake.add_sync("b")
    bulk = fake.add_sync("bulk", kind="bulk")
    before = complete(fake, a)  # created before the trigger starts: found by the lookback read
    runner = Runner(trigger(sync_ids=[a, bulk], lookback=60))
    try:
        first = await runner.next()
        assert first["id"] == before["id"]
        complete(fake, b)  # another sync: ignored
        fake.start_execution(a)  # sync.running: not a default type
        failed = fail(fake, a)
        bulk_done = complete(fake, bulk)
        second, third = await runner.next(), await runner.next()
    finally:
        await runner.close()
    assert [second["id"], third["id"]] == [failed["id"], bulk_done["id"]]
    assert first["type"] == "sync.completed" and first["sync_id"] == a and first["sync_kind"] == "model"
    assert first["execution_id"] == before["event"]["execution_id"]
    assert first["payload"] == before["event"]
    assert first["outcome"] == "succeeded" and second["outcome"] == "failed"
    assert third["type"] == "bulk_sync.completed" and third["sync_kind"] == "bulk"
    assert datetime.fromisoformat(first["created_at"]) == datetime.fromisoformat(
        before["created_at"].replace("Z", "+00:00")
    )


async def test_all_syncs_and_custom_types(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a, b = fake.add_sync("a"), fake.add_sync("b")
    runner = await Runner(trigger(event_types=["sync.running"])).start()
    try:
        execution = fake.start_execution(a)
        fake.complete_execution(a, execution)  # completed is not asked for
        fake.start_execution(b)
        got = [await runner.next(), await runner.next()]
    finally:
        await runner.close()
    assert [(e["type"], e["sync_id"]) for e in got] == [("sync.running", a), ("sync.running", b)]


# --------------------------------------------------------------------------- cursor


async def test_cursor_survives_a_restart_without_replay_or_gap(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a, other = fake.add_sync("a"), fake.add_sync("other")
    store = FakeStateStore()
    first = trigger(sync_ids=[a], commit_delay=0)
    attach(first, store)
    runner = await Runner(first).start()
    try:
        e1, e2 = complete(fake, a), fail(fake, a)
        assert [(await runner.next())["id"], (await runner.next())["id"]] == [e1["id"], e2["id"]]
        runner.advance_in_background()  # the trigger commits right after its last yield
        await store.wait_for(lambda v: any(e2["id"] in (s.get("ids") or {}) for s in v.values()))
    finally:
        await runner.close()

    # While the triggerer is down.
    e3 = complete(fake, a)
    complete(fake, other)

    classpath, kwargs = first.serialize()
    module, _, name = classpath.rpartition(".")
    second: PolytomicEventTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    attach(second, store)
    runner = await Runner(second).start()
    try:
        assert (await runner.next())["id"] == e3["id"]  # not e1/e2 again, and e3 not skipped
        e4 = complete(fake, a)
        assert (await runner.next())["id"] == e4["id"]
    finally:
        await runner.close()
    (stored,) = store.values.values()
    assert CursorState.from_json(stored) is not None


async def test_an_unclean_stop_replays_only_the_uncommitted_tick(polytomic_conn: FakePolytomic) -> None:
    """Killed after yielding but before committing: that event comes again (at-least-once), older ones not."""
    fake = polytomic_conn
    a = fake.add_sync("a")
    store = FakeStateStore()
    first = trigger(sync_ids=[a], commit_delay=0)
    attach(first, store)
    runner = await Runner(first).start()
    try:
        e1 = complete(fake, a)
        assert (await runner.next())["id"] == e1["id"]
        runner.advance_in_background()
        await store.wait_for(lambda v: any(e1["id"] in (s.get("ids") or {}) for s in v.values()))
        e2 = complete(fake, a)
        assert (await runner.next())["id"] == e2["id"]
    finally:
        await runner.close()  # before the tick that yielded e2 was committed
    second = PolytomicEventTrigger(**first.serialize()[1])
    attach(second, store)
    runner = await Runner(second).start()
    try:
        assert (await runner.next())["id"] == e2["id"]
        e3 = complete(fake, a)
        assert (await runner.next())["id"] == e3["id"]
    finally:
        await runner.close()


async def test_commit_waits_for_commit_delay(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    store = FakeStateStore()
    t = trigger(sync_ids=[a], commit_delay=3600)
    attach(t, store)
    runner = await Runner(t).start()
    try:
        e1 = complete(fake, a)
        assert (await runner.next())["id"] == e1["id"]
        e2 = complete(fake, a)
        assert (await runner.next())["id"] == e2["id"]
    finally:
        await runner.close()
    assert store.writes == 0  # several ticks went by, none was old enough to commit


async def test_new_watcher_starts_now_unless_lookback(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    old = complete(fake, a)
    runner = await Runner(trigger(sync_ids=[a])).start()  # lookback 0: the old event is history
    try:
        new = complete(fake, a)
        assert (await runner.next())["id"] == new["id"]
    finally:
        await runner.close()
    runner = Runner(trigger(sync_ids=[a], lookback=300))
    try:
        assert [(await runner.next())["id"], (await runner.next())["id"]] == [old["id"], new["id"]]
    finally:
        await runner.close()


# --------------------------------------------------------------------------- duplicates, order


async def test_duplicates_and_reordering(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    fake.faults.duplicate_events = True  # every event stored twice, same id
    fake.events_order = "shuffled"  # pages answered in a random order
    base = fake.clock.now() - timedelta(seconds=30)
    expected = []
    for i in range(25):  # more than one page of the fake's default limit, out of order
        created = base + timedelta(seconds=(i * 7) % 25)
        ev = fake.add_event("sync.completed", {"sync_id": a, "execution_id": f"x{i}"}, created_at=created)
        expected.append(ev)
    expected.sort(key=lambda e: e["created_at"])
    runner = Runner(trigger(sync_ids=[a], lookback=120))
    try:
        got = [(await runner.next())["id"] for _ in expected]
        later = complete(fake, a)  # anything duplicated would come before this one
        assert (await runner.next())["id"] == later["id"]
    finally:
        await runner.close()
    assert got == [e["id"] for e in expected]  # each once, oldest first
    assert len(set(got)) == len(got)


async def test_an_event_that_shows_up_late_is_still_yielded(
    polytomic_conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that appears in the API almost a minute after its created_at, long after the
    shared poll read past it, comes through the poll's late-visibility re-read, once."""
    fake = polytomic_conn
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        "extra": {"event_recheck_interval": 0.2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))
    a = fake.add_sync("a")
    runner = await Runner(trigger(sync_ids=[a], lookback=120)).start()
    try:
        first = complete(fake, a)
        assert (await runner.next())["id"] == first["id"]
        late = fake.add_event(
            "sync.completed",
            {"sync_id": a, "execution_id": "late"},
            created_at=fake.clock.now() - timedelta(seconds=59.5),
        )
        assert (await runner.next())["id"] == late["id"]
        after = complete(fake, a)
        assert (await runner.next())["id"] == after["id"]  # and not the late one again
    finally:
        await runner.close()


# --------------------------------------------------------------------------- 48 hours


async def test_cursor_older_than_retention(
    polytomic_conn: FakePolytomic, caplog: pytest.LogCaptureFixture
) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    now = datetime.now(timezone.utc)
    # Past retention: the fake no longer returns it.
    fake.add_event("sync.completed", {"sync_id": a}, created_at=fake.clock.now() - timedelta(hours=49))
    kept = fake.add_event("sync.failed", {"sync_id": a}, created_at=fake.clock.now() - timedelta(hours=47))
    t = trigger(sync_ids=[a])
    store = FakeStateStore({t.cursor_key: CursorState(now - timedelta(hours=50)).to_json()})
    attach(t, store)
    runner = Runner(t)
    caplog.set_level(logging.WARNING, logger="airflow_provider_polytomic.triggers.events")
    try:
        assert (await runner.next())["id"] == kept["id"]
        newest = complete(fake, a)
        assert (await runner.next())["id"] == newest["id"]
    finally:
        await runner.close()
    assert "older than Polytomic's 48-hour retention" in caplog.text


async def test_clock_jump_past_retention_expires_history(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    complete(fake, a)
    fake.clock.advance(49 * 3600)  # every stored event is now past retention
    runner = await Runner(trigger(sync_ids=[a], lookback=48 * 3600)).start()
    try:
        fresh = fake.add_event("sync.completed", {"sync_id": a}, created_at=fake.clock.now())
        assert (await runner.next())["id"] == fresh["id"]
    finally:
        await runner.close()


# --------------------------------------------------------------------------- shared poll


async def test_watchers_share_one_poll(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    interval = 0.1
    syncs = [fake.add_sync(f"s{i}") for i in range(6)]
    runners = [Runner(trigger(sync_ids=[s], poll_interval=interval)) for s in syncs]
    ticks: list[EventTick] = []
    counting = True
    for r in runners:
        await r.start()

    async def count_ticks() -> None:
        # A subscriber of the same in-process shared stream sees every poll the watchers see.
        key = runners[0].trigger.shared_stream_key()
        kwargs = runners[0].trigger.serialize()[1]
        sub = subscribe_in_process(key, lambda: PolytomicEventTrigger.open_shared_stream(kwargs))
        try:
            async for tick in sub:
                if counting:
                    ticks.append(tick)
        finally:
            await sub.aclose()

    try:
        # Round 0 gets every watcher running (backfills done, subscribed).
        for s in syncs:
            complete(fake, s)
        for r in runners:
            await r.next()
        counter = asyncio.ensure_future(count_ticks())
        before = len(events_requests(fake))
        ticks_before = len(ticks)
        for _ in range(4):
            for s in syncs:
                complete(fake, s)
            for r in runners:
                await r.next()
        made = len(events_requests(fake)) - before
        seen_ticks = len(ticks) - ticks_before
        counting = False
        counter.cancel()
    finally:
        for r in runners:
            await r.close()
    assert seen_ticks >= 4
    # One request per poll for all six watchers (+2: a poll in flight at either edge).
    assert made <= seen_ticks + 2, (made, seen_ticks)


async def test_unshared_watchers_poll_separately(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    syncs = [fake.add_sync(f"s{i}") for i in range(4)]
    runners = [Runner(trigger(sync_ids=[s], shared=False)) for s in syncs]
    for r in runners:
        await r.start()
    try:
        for s in syncs:
            complete(fake, s)
        for r in runners:
            await r.next()
        before = len(events_requests(fake))
        for s in syncs:
            complete(fake, s)
        for r in runners:
            await r.next()
        made = len(events_requests(fake)) - before
    finally:
        for r in runners:
            await r.close()
    assert made >= len(syncs)  # every watcher had to poll at least once itself


async def test_filter_shared_stream_as_the_triggerer_drives_it(polytomic_conn: FakePolytomic) -> None:
    """Airflow 3.3's triggerer opens the stream once and calls filter_shared_stream per watcher."""
    fake = polytomic_conn
    a, b = fake.add_sync("a"), fake.add_sync("b")
    ta, tb = trigger(sync_ids=[a], lookback=60), trigger(sync_ids=[b], lookback=60)
    key = ta.shared_stream_key()
    assert key == tb.shared_stream_key()
    kwargs = ta.serialize()[1]
    subs = [subscribe_in_process(("test", key), lambda: PolytomicEventTrigger.open_shared_stream(kwargs))]
    subs.append(subscribe_in_process(("test", key), lambda: PolytomicEventTrigger.open_shared_stream(kwargs)))
    gens = [ta.filter_shared_stream(subs[0]), tb.filter_shared_stream(subs[1])]
    try:
        ea, eb = complete(fake, a), complete(fake, b)
        got_a = await asyncio.wait_for(gens[0].__anext__(), WAIT)
        got_b = await asyncio.wait_for(gens[1].__anext__(), WAIT)
    finally:
        for g in gens:
            await g.aclose()  # type: ignore[attr-defined]
        for s in subs:
            await s.aclose()
    assert got_a.payload["id"] == ea["id"] and got_b.payload["id"] == eb["id"]


# --------------------------------------------------------------------------- webhook pairing


@pytest.mark.parametrize("entry", ["complete", "pending"])
async def test_webhook_dedupe_skips_ledgered_events_and_marks_its_own(
    polytomic_conn: FakePolytomic, entry: str
) -> None:
    """A complete ledger entry hides an event from the watcher; a pending one (the receiver
    died before it knew whether the asset event exists) does not."""
    fake = polytomic_conn
    a = fake.add_sync("a")
    t = trigger(sync_ids=[a], webhook_dedupe=True, webhook_grace=0)
    store = FakeStateStore()
    attach(t, store)
    runner = await Runner(t).start()
    try:
        by_webhook = fake.add_event("sync.completed", {"sync_id": a}, created_at=datetime.now(timezone.utc))
        ledgered = {"source": "webhook", **({"pending": True} if entry == "pending" else {})}
        await store.aset(f"polytomic.event.{by_webhook['id']}", ledgered)
        polled = complete(fake, a)
        if entry == "pending":
            assert (await runner.next())["id"] == by_webhook["id"]
        assert (await runner.next())["id"] == polled["id"]
        runner.advance_in_background()
        await store.wait_for(lambda v: f"polytomic.event.{polled['id']}" in v)
    finally:
        await runner.close()
    assert store.values[f"polytomic.event.{polled['id']}"]["source"] == "poll"


@pytest.mark.skipif(not AIRFLOW_V_3_3, reason="the asset state store is new in Airflow 3.3")
async def test_a_trigger_feeding_several_assets_keeps_the_most_conservative_cursor(
    polytomic_conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow runs one trigger for identical watchers on several assets; each asset stores the cursor.

    The accessors object is Airflow's own, built as the triggerer builds it; only where each
    per-asset accessor keeps its values (the API server, normally) is replaced by a store here.
    """
    fake = polytomic_conn
    a = fake.add_sync("a")

    t = trigger(sync_ids=[a], commit_delay=0)
    now = datetime.now(timezone.utc)
    behind = FakeStateStore({t.cursor_key: CursorState(now - timedelta(minutes=10)).to_json()})
    ahead = FakeStateStore({t.cursor_key: CursorState(now).to_json()})
    missed_by_ahead = fake.add_event("sync.completed", {"sync_id": a}, created_at=now - timedelta(minutes=5))
    assets = [Asset(name=f"asset{i}", uri=f"s3://bucket/asset{i}") for i in range(2)]
    accessors = asset_state_store_accessors([Asset(name=x.name, uri=x.uri) for x in assets])
    stores = {accessors[assets[0]]: behind, accessors[assets[1]]: ahead}

    async def aget(self: Any, key: str, default: Any = None) -> Any:
        return await stores[self].aget(key, default)

    async def aset(self: Any, key: str, value: Any) -> None:
        await stores[self].aset(key, value)

    monkeypatch.setattr(type(accessors[assets[0]]), "aget", aget)
    monkeypatch.setattr(type(accessors[assets[0]]), "aset", aset)
    t.asset_state_store = accessors
    runner = await Runner(t).start()
    try:
        assert (await runner.next())["id"] == missed_by_ahead["id"]  # read from the older cursor
        runner.advance_in_background()
        event_time = datetime.fromisoformat(missed_by_ahead["created_at"].replace("Z", "+00:00"))

        def covers(values: dict[str, Any]) -> bool:
            state = CursorState.from_json(values[t.cursor_key])
            return state is not None and (state.cursor >= event_time or missed_by_ahead["id"] in state.ids)

        await behind.wait_for(covers)
        await ahead.wait_for(lambda v: v == behind.values)
    finally:
        await runner.close()
    assert behind.values[t.cursor_key] == ahead.values[t.cursor_key]
