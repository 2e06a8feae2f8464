"""The polytomic:// asset URI scheme, sync_asset and events_for_run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_polytomic._compat import AIRFLOW_V_3, AIRFLOW_V_3_3, Asset, asset_state_store_accessors
from airflow_provider_polytomic.assets import (
    SyncRef,
    events_for_run,
    normalize_uri,
    parse_sync_uri,
    sanitize_uri,
    sync_asset,
    sync_uri,
)
from airflow_provider_polytomic.get_provider_info import get_provider_info
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.triggers.events import PolytomicEventTrigger

SID = "9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d"


needs_airflow_3 = pytest.mark.skipif(
    not AIRFLOW_V_3, reason="polytomic:// assets and asset events need Airflow 3.0 (Airflow 2 has datasets)"
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"polytomic://{SID}", SyncRef(SID, "model")),
        (f"polytomic://{SID.upper()}", SyncRef(SID, "model")),
        (f"POLYTOMIC://{SID}/", SyncRef(SID, "model")),
        (f"polytomic://model/{SID}", SyncRef(SID, "model")),
        (f"polytomic://bulk/{SID}", SyncRef(SID, "bulk")),
        (f"polytomic://BULK/{SID.upper()}/", SyncRef(SID, "bulk")),
        (f"polytomic://{SID.replace('-', '')}", SyncRef(SID, "model")),
    ],
)
def test_parse_valid(uri: str, expected: SyncRef) -> None:
    assert parse_sync_uri(uri) == expected
    assert sanitize_uri(uri) == expected.uri


def test_canonical_forms() -> None:
    assert sync_uri(SID) == f"polytomic://{SID}"
    assert sync_uri(SID.upper(), "bulk") == f"polytomic://bulk/{SID}"
    with pytest.raises(ValueError, match="kind must be"):
        sync_uri(SID, "stream")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "non-empty"),
        (f"s3://{SID}", "scheme must be 'polytomic'"),
        ("polytomic://", "no sync id"),
        ("polytomic://contacts-sync", "not a sync id"),
        (f"polytomic://{SID}:443", "port"),
        (f"polytomic://user@{SID}", "user info"),
        (f"polytomic://{SID}?kind=bulk", "query"),
        (f"polytomic://{SID}#frag", "fragment"),
        (f"polytomic://{SID}/executions", "unexpected path"),
        ("polytomic://bulk/", "exactly one sync id"),
        (f"polytomic://bulk/{SID}/{SID}", "exactly one sync id"),
        ("polytomic://bulk/not-a-uuid", "not a sync id"),
    ],
)
def test_parse_invalid_says_why(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_sync_uri(uri)
    if uri:
        assert "polytomic://<sync_id>" in str(err.value)  # and says what is valid


@needs_airflow_3
def test_airflow_normalises_through_the_handler() -> None:
    """Through the provider's real registration: Airflow finds ``asset-uris`` in provider info."""
    assert Asset(f"polytomic://{SID.upper()}/").uri == f"polytomic://{SID}"
    assert Asset(f"polytomic://model/{SID}").uri == f"polytomic://{SID}"
    assert Asset(f"polytomic://bulk/{SID}").uri == f"polytomic://bulk/{SID}"
    assert Asset(name="n", uri=f"polytomic://{SID}") == Asset(name="n", uri=f"polytomic://{SID.upper()}")


@needs_airflow_3
def test_airflow_rejects_malformed_at_declaration() -> None:
    with pytest.raises(ValueError, match="not a sync id"):
        Asset("polytomic://contacts")
    with pytest.raises(ValueError, match="query"):
        Asset(f"polytomic://{SID}?kind=bulk")


def test_handler_sees_what_airflow_passes() -> None:
    # Airflow hands the handler an empty path as "/" and the query already sorted.
    assert normalize_uri(urlsplit(f"polytomic://{SID}/")).geturl() == f"polytomic://{SID}"
    with pytest.raises(ValueError):
        normalize_uri(urlsplit(f"polytomic://{SID}/?a=1"))


def test_provider_info_registers_the_scheme_on_airflow_3_only() -> None:
    entries = get_provider_info().get("asset-uris", [])
    entry = {"schemes": ["polytomic"], "handler": "airflow_provider_polytomic.assets.normalize_uri"}
    if AIRFLOW_V_3:
        assert entry in entries
    else:
        assert entries == []  # Airflow 2 has datasets, not assets


@needs_airflow_3
def test_sync_asset_plain_and_watched() -> None:
    plain = sync_asset(SID.upper())
    assert plain.uri.rstrip("/") == f"polytomic://{SID}" and plain.name == f"polytomic://{SID}"
    assert plain.group == "polytomic" and not plain.watchers

    watched = sync_asset(SID, "bulk", watch=True, poll_interval=10, lookback=60, webhook_dedupe=True)
    (watcher,) = watched.watchers
    trigger = watcher.trigger
    assert isinstance(trigger, PolytomicEventTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["sync_ids"] == [SID] and kwargs["poll_interval"] == 10.0 and kwargs["webhook_dedupe"]
    assert kwargs["event_types"] == sorted(
        ["bulk_sync.completed", "bulk_sync.completed_with_error", "bulk_sync.failed", "bulk_sync.canceled"]
    )
    assert watcher.name == f"polytomic_bulk_{SID}"
    with pytest.raises(ValueError, match="not a sync id"):
        sync_asset("contacts")


# ------------------------------------------------------------------------ events_for_run


@dataclass
class FakeAssetEvent:
    extra: dict[str, Any]


@dataclass
class FakeTI:
    dag_id: str = "consumer"
    task_id: str = "load"


@dataclass
class FakeAccessors:
    """``context["asset_state_store"]`` of a task with one inlet."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def _trigger_extra(event: dict[str, Any]) -> dict[str, Any]:
    """What the trigger path puts in an asset event's extra."""
    return {
        "from_trigger": True,
        "payload": {
            "id": event["id"],
            "type": event["type"],
            "created_at": event["created_at"],
            "sync_id": event["event"].get("sync_id"),
            "payload": event["event"],
        },
    }


def complete(fake: FakePolytomic, sync_id: str) -> dict[str, Any]:
    return fake.complete_execution(sync_id, fake.start_execution(sync_id))


@needs_airflow_3
def test_events_for_run_recovers_folded_events_and_commits(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a", sync_id=str(uuid.uuid4()))
    other = fake.add_sync("other")
    e1 = complete(fake, a)
    e2 = complete(fake, a)  # folded into the same run: not among its triggering events
    complete(fake, other)
    store = FakeAccessors()
    asset = sync_asset(a)
    context: dict[str, Any] = {
        "ti": FakeTI(),
        "asset_state_store": store,
        "triggering_asset_events": {asset.uri: [FakeAssetEvent(_trigger_extra(e1))]},
    }
    batch = events_for_run(context)
    assert [e["id"] for e in batch.events] == [e1["id"], e2["id"]]
    assert batch.events[0]["payload"] == e1["event"] and batch.events[0]["sync_kind"] == "model"
    assert store.values == {}  # nothing persisted before commit()
    batch.commit()
    assert list(store.values) == ["polytomic.consumer.consumer.load"]

    # The next run (triggered by e2, already handled) gets nothing old, only what is new.
    context["triggering_asset_events"] = {asset.uri: [FakeAssetEvent(_trigger_extra(e2))]}
    assert events_for_run(context).events == []
    e3 = fake.fail_execution(a, fake.start_execution(a))
    again = events_for_run(context)
    assert [e["id"] for e in again.events] == [e3["id"]]


@needs_airflow_3
def test_events_for_run_without_state_store_uses_triggering_window(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    a = fake.add_sync("a")
    complete(fake, a)  # before the triggering event: outside the window
    e1 = complete(fake, a)
    e2 = complete(fake, a)
    # A webhook-path event not yet visible in the events API still counts.
    invisible = {
        "id": "not-yet-listed",
        "type": "sync.failed",
        "created_at": (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat(),
        "event": {"sync_id": a},
    }
    context = {
        "ti": FakeTI(),
        "triggering_asset_events": {
            sync_asset(a).uri: [
                FakeAssetEvent(_trigger_extra(e1)),
                FakeAssetEvent(_trigger_extra(invisible)),
            ]
        },
    }
    batch = events_for_run(context)
    assert [e["id"] for e in batch.events] == [e1["id"], e2["id"], "not-yet-listed"]
    batch.commit()  # a no-op without a state store


@pytest.mark.skipif(not AIRFLOW_V_3_3, reason="the asset state store is new in Airflow 3.3")
def test_events_for_run_needs_an_asset_when_several(polytomic_conn: FakePolytomic) -> None:
    """With Airflow's own accessors object for a task with two inlets."""
    inlets = [Asset(name="a", uri=sync_uri(SID)), Asset(name="b", uri=sync_uri(SID, "bulk"))]
    several = asset_state_store_accessors(inlets)
    with pytest.raises(ValueError, match=r"2 asset inlets and outlets.*pass asset="):
        events_for_run({"ti": FakeTI(), "asset_state_store": several})
