"""The execution logs index (``GET /api/syncs/{sync_id}/executions/{id}/logs``): the hook's
typed call, the model's tolerance, and the fake's route and ``logs_url``, over real HTTP.

How the record-log operator uses the index is tested in ``test_record_logs.py``.
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.models import (
    ExecutionLogsIndex,
    LogsIndexEntry,
    SyncCompletedPayload,
    parse_event,
)
from airflow_provider_polytomic.testing import FakePolytomic

LOG_TYPES = ("records", "errors", "warnings", "inserts", "updates", "deletes")


def _completed(fake: FakePolytomic) -> tuple[str, str, dict]:
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    event = fake.complete_execution(
        sync_id,
        execution_id,
        inserted=[{"id": i} for i in range(5)],
        updated=[{"id": i} for i in range(3)],
        deleted=[{"id": 9}],
        records_per_file=2,
    )
    return sync_id, execution_id, event


def test_hook_reads_the_index_as_a_typed_model(polytomic_conn: FakePolytomic) -> None:
    fake = polytomic_conn
    sync_id, execution_id, _ = _completed(fake)
    hook = PolytomicHook()

    index = hook.get_execution_logs_index(sync_id, execution_id)

    assert isinstance(index, ExecutionLogsIndex)
    counts = {t: index.entry(t).count for t in LOG_TYPES}  # type: ignore[union-attr]
    assert counts == {"records": 9, "errors": 0, "warnings": 0, "inserts": 5, "updates": 3, "deletes": 1}
    path = f"/api/syncs/{sync_id}/executions/{execution_id}"
    assert index.entry("inserts") == LogsIndexEntry(count=5, url=f"{fake.url}{path}/inserts")
    assert [r.path for r in fake.requests if r.path.startswith("/api/")] == [f"{path}/logs"]


@pytest.mark.parametrize("style", ["absolute", "path"])
def test_hook_follows_an_index_endpoint_on_the_api(polytomic_conn: FakePolytomic, style: str) -> None:
    fake = polytomic_conn
    fake.logs_index_urls = style  # type: ignore[assignment]
    sync_id, execution_id, event = _completed(fake)
    hook = PolytomicHook()
    entry = hook.get_execution_logs_index(sync_id, execution_id).entry("inserts")
    assert entry is not None and entry.url is not None
    assert entry.url.startswith("/api/" if style == "path" else fake.url)

    urls = hook.get_log_urls_at(entry.url).urls

    assert len(urls) == len(event["event"]["inserted_records"]) == 3
    assert fake.requests[-1].path == f"/api/syncs/{sync_id}/executions/{execution_id}/inserts"
    assert fake.requests[-1].has_authorization


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://logs.invalid/api/syncs/s/executions/e/inserts",  # another host
        "https://127.0.0.1/api/syncs/s/executions/e/inserts",  # another scheme and port
        "/files/x/inserts-0001.json",  # on the API host, outside /api/
        "//logs.invalid/api/x",  # scheme-relative: another host
        "",
    ],
)
def test_hook_refuses_an_index_endpoint_outside_the_api(polytomic_conn: FakePolytomic, endpoint: str) -> None:
    hook = PolytomicHook()
    before = len(polytomic_conn.requests)
    with pytest.raises(ValueError, match="endpoint"):
        hook.get_log_urls_at(endpoint)
    assert len(polytomic_conn.requests) == before  # nothing was sent, the key went nowhere


def test_index_model_tolerates_missing_null_and_unknown_types() -> None:
    index = ExecutionLogsIndex.model_validate(
        {
            "inserts": {"count": 3, "url": "/api/x", "segments": 2},
            "deletes": None,
            "upserts": {"count": 1},
        }
    )
    assert index.entry("inserts") == LogsIndexEntry(count=3, url="/api/x", segments=2)
    assert index.entry("deletes") is None and index.entry("records") is None
    assert index.entry("upserts") is None  # not a documented type: kept, but not an entry
    assert index.model_extra == {"upserts": {"count": 1}}
    assert ExecutionLogsIndex.model_validate({}).entry("errors") is None
    assert LogsIndexEntry.model_validate({}) == LogsIndexEntry(count=None, url=None)


def test_fake_serves_the_index_before_the_log_type_route(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    sync_id, execution_id, _ = _completed(fake)
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    base = f"{fake.url}/api/syncs/{sync_id}/executions/{execution_id}"

    index = requests.get(f"{base}/logs", headers=headers, timeout=10)
    assert index.status_code == 200
    assert set(index.json()["data"]) == set(LOG_TYPES)
    assert requests.get(f"{base}/inserts", headers=headers, timeout=10).json()["data"]["urls"]
    assert requests.get(f"{base}/bogus", headers=headers, timeout=10).status_code == 400
    assert requests.get(f"{base}/logs", timeout=10).status_code == 401
    assert (
        requests.get(
            f"{fake.url}/api/syncs/{sync_id}/executions/nope/logs", headers=headers, timeout=10
        ).status_code
        == 404
    )

    fake.logs_index_available = False
    assert requests.get(f"{base}/logs", headers=headers, timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("absolute", "{url}{path}"),
        ("path", "{path}"),
        ("foreign", "http://logs.invalid{path}"),
        ("omitted", None),
    ],
)
def test_sync_completed_carries_logs_url(
    fake_polytomic: FakePolytomic, style: str, expected: str | None
) -> None:
    fake = fake_polytomic
    fake.logs_index_urls = style  # type: ignore[assignment]
    sync_id, execution_id, event = _completed(fake)
    payload = parse_event(event).payload
    assert isinstance(payload, SyncCompletedPayload)
    path = f"/api/syncs/{sync_id}/executions/{execution_id}/logs"
    assert payload.logs_url == (expected.format(url=fake.url, path=path) if expected else None)
    answer = requests.get(fake.url + path, headers={"Authorization": f"Bearer {fake.api_key}"}, timeout=30)
    index = answer.json()["data"]
    assert ("url" in index["inserts"]) is (expected is not None)


def test_the_official_sdk_reads_the_fakes_index_and_follows_its_endpoint(
    fake_polytomic: FakePolytomic,
) -> None:
    from polytomic import Polytomic

    fake = fake_polytomic
    sync_id, execution_id, event = _completed(fake)
    client = Polytomic(base_url=fake.url, token=fake.api_key, max_retries=0)

    index = client.model_sync.executions.get_logs_index(sync_id=sync_id, id=execution_id).data

    assert index is not None and index.inserts is not None and index.deletes is not None
    assert (index.inserts.count, index.deletes.count) == (5, 1)
    assert not index.model_extra and not index.inserts.model_extra
    assert event["event"]["logs_url"] == f"{fake.url}/api/syncs/{sync_id}/executions/{execution_id}/logs"
    logs = client.model_sync.executions.get_log_urls(sync_id=sync_id, id=execution_id, type="inserts").data
    assert logs is not None and logs.urls is not None and len(logs.urls) == 3
    assert index.inserts.url is not None and index.inserts.url.endswith("/inserts")
