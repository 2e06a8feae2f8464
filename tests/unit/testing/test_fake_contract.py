"""Contract test: the fake's response bodies parse with the official Polytomic SDK's pydantic models.

Every body the provider consumes is validated with ``model_validate`` and must not carry fields the
SDK does not know (``model_extra`` empty, recursively), so field names cannot drift from Polytomic's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import requests
from polytomic.types import (
    ApiError,
    BulkSyncExecutionEnvelope,
    BulkSyncExecutionLogsEnvelope,
    BulkSyncStatusEnvelope,
    CancelBulkSyncResponseEnvelope,
    CancelSyncExecutionResponseEnvelope,
    CancelSyncResponseEnvelope,
    EventsEnvelope,
    EventTypesEnvelope,
    ExecutionLogsResponseEnvelope,
    GetExecutionResponseEnvelope,
    GetIdentityResponseEnvelope,
    ListBulkSyncExecutionsEnvelope,
    ListBulkSyncExecutionsStatusEnvelope,
    ListExecutionResponseEnvelope,
    LogsIndexResponseEnvelope,
    StartSyncResponseEnvelope,
    SyncStatusEnvelope,
    WebhookEnvelope,
    WebhookListEnvelope,
)

from airflow_provider_polytomic.testing import EVENT_TYPES, FakePolytomic
from tests.webhook_endpoint import PAYLOAD_MODELS

# Fields each payload must carry (reference §4); the SDK models make everything optional.
REQUIRED_PAYLOAD_FIELDS: dict[str, set[str]] = {
    "sync.running": {"execution_id", "organization_id", "sync_id", "sync_name", "target_connection_id"},
    "sync.completed": {
        "execution_id",
        "organization_id",
        "sync_id",
        "sync_name",
        "target_connection_id",
        "status",
        "trigger",
        "record_count",
        "inserted_count",
        "updated_count",
        "upserted_count",
        "error_count",
        "warning_count",
        "warnings",
        "total_records",
        "inserted_records",
        "updated_records",
        "deleted_records",
        "errored_records",
        "logs_url",
    },
    "sync.completed_with_errors": {
        "execution_id",
        "organization_id",
        "sync_id",
        "sync_name",
        "target_connection_id",
        "error",
        "number_of_errors",
        "number_of_warnings",
    },
    "sync.failed": {
        "execution_id",
        "organization_id",
        "sync_id",
        "sync_name",
        "target_connection_id",
        "error",
    },
    "sync.canceled": {
        "execution_id",
        "organization_id",
        "sync_id",
        "sync_name",
        "target_connection_id",
        "status",
    },
}
_BULK = {
    "execution_id",
    "organization_id",
    "sync_id",
    "sync_name",
    "source_connection_id",
    "destination_connection_id",
}
REQUIRED_PAYLOAD_FIELDS.update(
    {
        "bulk_sync.running": _BULK,
        "bulk_sync.completed": _BULK | {"trigger_source"},
        "bulk_sync.completed_with_error": _BULK | {"trigger_source"},
        "bulk_sync.failed": _BULK | {"trigger_source", "error"},
        "bulk_sync.canceled": _BULK,
    }
)


def assert_no_extra(model: Any, where: str = "$") -> None:
    """Fail if ``model`` or any nested SDK model carries a field unknown to the SDK."""
    if isinstance(model, pydantic.BaseModel):
        assert not model.model_extra, f"{where}: unknown fields {sorted(model.model_extra or {})}"
        for name in type(model).model_fields:
            assert_no_extra(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, (list, tuple)):
        for i, item in enumerate(model):
            assert_no_extra(item, f"{where}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            assert_no_extra(item, f"{where}.{key}")


def check(model: type[pydantic.BaseModel], body: Any) -> Any:
    parsed = model.model_validate(body)
    assert_no_extra(parsed)
    return parsed


class Client:
    def __init__(self, fake: FakePolytomic) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {fake.api_key}"

    def __call__(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.session.request(method, self.fake.url + path, timeout=5, **kwargs)
        assert response.status_code == status, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[FakePolytomic, Client, dict[str, str]]]:
    """One fake in which every event type has been produced, model and bulk, through the API."""
    with FakePolytomic() as fake:
        call = Client(fake)
        ids: dict[str, str] = {}
        model = ids["model"] = fake.add_sync("model sync")
        bulk = ids["bulk"] = fake.add_sync("bulk sync", kind="bulk")
        ids["model_start"] = call("POST", f"/api/syncs/{model}/executions", json={"resync": False})["data"][
            "id"
        ]
        fake.complete_execution(
            model,
            ids["model_start"],
            inserted=[{"id": 1}],
            updated=[{"id": 2}],
            deleted=[{"id": 3}],
            warnings=1,
        )
        ids["model_errors"] = fake.run_execution(model, outcome="completed_with_errors", errored=[{"id": 4}])
        fake.run_execution(model, outcome="failed", error="boom")
        ids["model_running"] = call("POST", f"/api/syncs/{model}/executions", json={})["data"]["id"]
        ids["bulk_start"] = call("POST", f"/api/bulk/syncs/{bulk}/executions", json={"fetch_mode": "full"})[
            "data"
        ]["id"]
        fake.complete_execution(bulk, ids["bulk_start"], inserted=[{"id": 1}])
        fake.run_execution(bulk, outcome="completed_with_errors", errors=3)
        fake.run_execution(bulk, outcome="failed", error="bulk boom")
        ids["bulk_running"] = fake.start_execution(bulk)
        yield fake, call, ids


def test_every_event_type_matches_its_sdk_model(world: tuple[FakePolytomic, Client, dict[str, str]]) -> None:
    fake, call, ids = world
    call("POST", f"/api/syncs/{ids['model']}/executions/{ids['model_running']}/cancel")
    call("POST", f"/api/bulk/syncs/{ids['bulk']}/executions/{ids['bulk_running']}/cancel")
    body = call("GET", "/api/events", params={"limit": 100})
    envelope = EventsEnvelope.model_validate(body)
    assert envelope.data is not None
    seen = set()
    for raw, event in zip(body["data"], envelope.data, strict=True):
        assert not event.model_extra, event.model_extra
        assert event.id and event.organization_id == fake.organization_id and event.created_at is not None
        assert event.created_at.tzinfo is not None
        assert raw["created_at"].endswith("Z")
        payload_model = PAYLOAD_MODELS[raw["type"]]
        check(payload_model, raw["event"])
        missing = REQUIRED_PAYLOAD_FIELDS[raw["type"]] - set(raw["event"])
        assert not missing, (raw["type"], missing)
        seen.add(raw["type"])
    assert seen == set(EVENT_TYPES)
    types = check(EventTypesEnvelope, call("GET", "/api/events_types"))
    assert set(types.data) == set(EVENT_TYPES)


def test_identity(world: tuple[FakePolytomic, Client, dict[str, str]]) -> None:
    fake, call, _ = world
    me = check(GetIdentityResponseEnvelope, call("GET", "/api/me"))
    assert me.data.organization_id == fake.organization_id and me.data.is_user is True


def test_webhooks(world: tuple[FakePolytomic, Client, dict[str, str]]) -> None:
    _, call, _ = world
    created = check(
        WebhookEnvelope,
        call("POST", "/api/webhooks", json={"endpoint": "https://example.com/hook", "secret": "secret-123"}),
    )
    hook_id = created.data.id
    try:
        assert created.data.created_at is not None and created.data.disabled is False
        check(WebhookListEnvelope, call("GET", "/api/webhooks"))
        check(WebhookEnvelope, call("GET", f"/api/webhooks/{hook_id}"))
        check(
            WebhookEnvelope,
            call(
                "PUT",
                f"/api/webhooks/{hook_id}",
                json={"endpoint": "https://example.com/new", "secret": "secret-456"},
            ),
        )
        assert check(WebhookEnvelope, call("POST", f"/api/webhooks/{hook_id}/disable")).data.disabled is True
        assert check(WebhookEnvelope, call("POST", f"/api/webhooks/{hook_id}/enable")).data.disabled is False
    finally:
        fake_response = requests.delete(
            call.fake.url + f"/api/webhooks/{hook_id}", headers=dict(call.session.headers), timeout=5
        )
        assert fake_response.status_code == 200


def test_model_sync_endpoints(world: tuple[FakePolytomic, Client, dict[str, str]]) -> None:
    fake, call, ids = world
    model = ids["model"]
    execution = check(
        GetExecutionResponseEnvelope, call("GET", f"/api/syncs/{model}/executions/{ids['model_start']}")
    ).data
    assert execution.status == "completed" and execution.counts.insert == 1 and execution.counts.delete == 1
    with_errors = check(
        GetExecutionResponseEnvelope, call("GET", f"/api/syncs/{model}/executions/{ids['model_errors']}")
    ).data
    assert with_errors.status == "completed" and with_errors.counts.error == 1
    listing = check(ListExecutionResponseEnvelope, call("GET", f"/api/syncs/{model}/executions"))
    assert len(listing.data) == 4
    status = check(SyncStatusEnvelope, call("GET", f"/api/syncs/{model}/status")).data
    assert status.last_execution is not None
    for log_type in ("records", "errors", "warnings", "inserts", "updates", "deletes"):
        logs = check(
            ExecutionLogsResponseEnvelope,
            call("GET", f"/api/syncs/{model}/executions/{ids['model_start']}/{log_type}"),
        )
        assert logs.data.expires is not None and logs.data.urls is not None
    index = check(
        LogsIndexResponseEnvelope, call("GET", f"/api/syncs/{model}/executions/{ids['model_start']}/logs")
    ).data
    assert index is not None and index.inserts is not None and index.inserts.count == 1
    assert index.inserts.url == f"{fake.url}/api/syncs/{model}/executions/{ids['model_start']}/inserts"
    other = fake.add_sync("another")
    started = check(StartSyncResponseEnvelope, call("POST", f"/api/syncs/{other}/executions", json={}))
    assert started.data.status == "created" and started.data.id
    check(
        CancelSyncExecutionResponseEnvelope,
        call("POST", f"/api/syncs/{other}/executions/{started.data.id}/cancel"),
    )
    check(CancelSyncResponseEnvelope, call("POST", f"/api/syncs/{other}/cancel"))


def test_bulk_sync_endpoints(world: tuple[FakePolytomic, Client, dict[str, str]]) -> None:
    fake, call, ids = world
    bulk = ids["bulk"]
    execution = check(
        BulkSyncExecutionEnvelope, call("GET", f"/api/bulk/syncs/{bulk}/executions/{ids['bulk_start']}")
    ).data
    assert execution.status == "completed" and execution.record_count == 1
    listing = check(
        ListBulkSyncExecutionsEnvelope,
        call("GET", f"/api/bulk/syncs/{bulk}/executions", params={"only_terminal": "true", "limit": 100}),
    )
    assert len(listing.data) >= 3
    check(BulkSyncStatusEnvelope, call("GET", f"/api/bulk/syncs/{bulk}/status"))
    statuses = check(
        ListBulkSyncExecutionsStatusEnvelope, call("GET", "/api/bulk/syncs/status", params={"sync_id": bulk})
    )
    assert statuses.data[0].sync_id == bulk
    logs = check(
        BulkSyncExecutionLogsEnvelope,
        call("GET", f"/api/bulk/syncs/{bulk}/executions/{ids['bulk_start']}/logs"),
    )
    assert logs.data.ur_ls and logs.data.expires is not None
    other = fake.add_sync("another bulk", kind="bulk")
    started = check(BulkSyncExecutionEnvelope, call("POST", f"/api/bulk/syncs/{other}/executions", json={}))
    assert started.data.status == "created"
    check(
        CancelBulkSyncResponseEnvelope,
        call("POST", f"/api/bulk/syncs/{other}/executions/{started.data.id}/cancel"),
    )
    check(CancelBulkSyncResponseEnvelope, call("POST", f"/api/bulk/syncs/{other}/cancel"))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/syncs/unknown/status", 404),
        ("GET", "/api/events?limit=0", 422),
        ("POST", "/api/webhooks", 422),
    ],
)
def test_api_error(
    world: tuple[FakePolytomic, Client, dict[str, str]], method: str, path: str, status: int
) -> None:
    _, call, _ = world
    error = check(ApiError, call(method, path, status=status, json={}))
    assert error.status == status and error.key and error.message
    unauthorized = requests.get(call.fake.url + "/api/me", timeout=5)
    assert check(ApiError, unauthorized.json()).status == 401
