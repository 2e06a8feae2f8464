"""EventPager on its own: the requests it describes and what it makes of each answer.

The pager does no I/O, so these tests answer its calls from a list of events held here; the
end-to-end behaviour against the fake server's three page orders is in the event-reading
tests of the hook.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_polytomic.client import Call
from airflow_provider_polytomic.event_pager import EventPager

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


def _event(i: int, at: datetime) -> dict[str, Any]:
    return {
        "id": f"e{i:05d}",
        "type": "sync.running",
        "created_at": at.isoformat(),
        "event": {"sync_id": "s"},
    }


def _bounds(call: Call[Any]) -> tuple[datetime | None, datetime | None, int]:
    params = dict(call.query())
    after = params.get("starting_after")
    before = params.get("ending_before")
    parse = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None  # noqa: E731
    return parse(after), parse(before), int(params["limit"])


class Server:
    """Answers a pager's calls from ``events``: strict bounds, oldest or newest first."""

    def __init__(self, events: list[dict[str, Any]], *, newest_first: bool = False, inclusive: bool = False):
        self.events = events
        self.newest_first = newest_first
        self.inclusive = inclusive
        self.calls: list[Call[Any]] = []

    def answer(self, call: Call[Any]) -> dict[str, Any]:
        self.calls.append(call)
        after, before, limit = _bounds(call)

        def inside(e: dict[str, Any]) -> bool:
            at = datetime.fromisoformat(e["created_at"])
            if self.inclusive:
                return (after is None or at >= after) and (before is None or at <= before)
            return (after is None or at > after) and (before is None or at < before)

        rows = sorted((e for e in self.events if inside(e)), key=lambda e: e["created_at"])
        if self.newest_first:
            rows.reverse()
        return {"data": rows[:limit]}


def _read_all(pager: EventPager, server: Server) -> list[str]:
    out: list[str] = []
    while (call := pager.next_call()) is not None:
        out.extend(e.id for e in pager.feed(server.answer(call)))
    return out


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest_first", "newest_first"])
def test_every_event_once_oldest_first_within_the_documented_request_bound(newest_first: bool) -> None:
    events = [_event(i, T0 + timedelta(milliseconds=10 * i)) for i in range(250)]
    server = Server(events, newest_first=newest_first)
    pager = EventPager(starting_after=T0 - US, ending_before=T0 + timedelta(hours=1), limit=50)
    got = _read_all(pager, server)
    assert got == [e["id"] for e in events]
    assert pager.done and pager.side == ("newest" if newest_first else "oldest")
    assert len(server.calls) <= math.ceil(250 / 50) + 2
    assert pager.requests == len(server.calls)


def test_the_first_request_sends_the_window_as_strict_bounds() -> None:
    pager = EventPager(
        starting_after=T0, ending_before=T0 + timedelta(seconds=5), event_type="sync.completed"
    )
    call = pager.next_call()
    assert call is not None and call.method == "GET" and call.path == "/api/events"
    after, before, limit = _bounds(call)
    assert (after, before, limit) == (T0, T0 + timedelta(seconds=5), 100)
    assert dict(call.query())["type"] == "sync.completed"


def test_events_sharing_a_page_boundary_are_not_lost() -> None:
    # Four events at the instant where the first full page ends.
    events = [_event(i, T0 + timedelta(seconds=1 + i)) for i in range(3)]
    events += [_event(10 + i, T0 + timedelta(seconds=4)) for i in range(4)]
    events += [_event(20 + i, T0 + timedelta(seconds=5 + i)) for i in range(3)]
    got = _read_all(EventPager(starting_after=T0, limit=4), Server(events))
    assert sorted(got) == sorted(e["id"] for e in events)
    assert len(got) == len(set(got))


def test_a_server_that_includes_its_bounds_is_detected_and_nothing_repeats() -> None:
    events = [_event(i, T0 + timedelta(seconds=i)) for i in range(30)]
    server = Server(events, inclusive=True)
    got = _read_all(EventPager(starting_after=T0, ending_before=T0 + timedelta(seconds=29), limit=10), server)
    # Strictly inside (T0, T0 + 29 s): events 1..28, each once.
    assert got == [f"e{i:05d}" for i in range(1, 29)]


def test_a_next_page_token_is_followed() -> None:
    pager = EventPager(starting_after=T0, limit=2)
    first = pager.next_call()
    assert first is not None
    page = [_event(1, T0 + timedelta(seconds=1)), _event(2, T0 + timedelta(seconds=2))]
    pager.feed({"data": page, "pagination": {"next_page_token": "tok-2"}})
    second = pager.next_call()
    assert second is not None and dict(second.query())["page_token"] == "tok-2"
    got = pager.feed({"data": [_event(3, T0 + timedelta(seconds=3))]})
    assert [e.id for e in got] == ["e00001", "e00002", "e00003"]
    assert pager.next_call() is None


def test_unordered_mode_hands_out_each_pages_new_events_at_once() -> None:
    pager = EventPager(starting_after=T0, limit=100, ordered=False)
    assert pager.next_call() is not None
    page = [
        _event(2, T0 + timedelta(seconds=2)),
        _event(1, T0 + timedelta(seconds=1)),
        _event(2, T0 + timedelta(seconds=2)),
    ]
    assert [e.id for e in pager.feed({"data": page})] == ["e00002", "e00001"]
    assert pager.done


def test_malformed_items_and_events_outside_the_window_are_dropped() -> None:
    pager = EventPager(starting_after=T0, ending_before=T0 + timedelta(seconds=10))
    assert pager.next_call() is not None
    body = {
        "data": [
            {"id": "x"},
            "junk",
            _event(1, T0 + timedelta(seconds=20)),
            _event(2, T0 + timedelta(seconds=2)),
        ]
    }
    assert [e.id for e in pager.feed(body)] == ["e00002"]


def test_calls_and_answers_must_alternate() -> None:
    pager = EventPager(starting_after=T0)
    with pytest.raises(RuntimeError, match="without next_call"):
        pager.feed({"data": []})
    pager.next_call()
    with pytest.raises(RuntimeError, match="again before feed"):
        pager.next_call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": 50, "max_buffered": 99}, "max_buffered")],
)
def test_bad_settings_are_refused_naming_the_field(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventPager(starting_after=T0, **kwargs)


def test_without_a_start_it_covers_the_whole_retention() -> None:
    now = T0 + timedelta(days=3)
    call = EventPager(now=now).next_call()
    assert call is not None
    after, _before, _limit = _bounds(call)
    assert after is not None and after <= now - timedelta(hours=48)
