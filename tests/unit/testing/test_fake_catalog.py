"""The fake's syncs, models and connections: what a sync reads and writes, as the API shows it,
plus console logs and log exports (over real HTTP)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_polytomic.testing import FakeClock, FakePolytomic

TIMEOUT = 5


def get(fake: FakePolytomic, path: str, status: int = 200, **params: Any) -> Any:
    response = requests.get(
        fake.url + path, params=params, headers={"Authorization": f"Bearer {fake.api_key}"}, timeout=TIMEOUT
    )
    assert response.status_code == status, (path, response.text)
    return response.json()


def post(fake: FakePolytomic, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
    response = requests.post(
        fake.url + path,
        json=body if body is not None else {},
        params=params,
        headers={"Authorization": f"Bearer {fake.api_key}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == status, (path, response.text)
    return response.json()


def lineage(fake: FakePolytomic, sync_id: str) -> tuple[list[tuple[str, dict[str, Any]]], tuple[str, Any]]:
    """What a lineage reader does: GET the sync, its models and their connections, its target."""
    sync = get(fake, f"/api/syncs/{sync_id}")["data"]
    inputs = []
    for model_id in sync["model_ids"]:
        model = get(fake, f"/api/models/{model_id}")["data"]
        connection = get(fake, f"/api/connections/{model['connection_id']}")["data"]
        inputs.append((connection["type"]["id"], {**connection["configuration"], **model["configuration"]}))
    target = get(fake, f"/api/connections/{sync['target']['connection_id']}")["data"]
    return inputs, (target["type"]["id"], sync["target"]["object"])


def test_default_model_sync_reads_a_snowflake_table_and_writes_salesforce(
    fake_polytomic: FakePolytomic,
) -> None:
    fake = fake_polytomic
    sync_id = fake.add_sync("Daily users")
    inputs, output = lineage(fake, sync_id)
    assert inputs == [
        (
            "snowflake",
            {
                "account": "acme-xy12345",
                "dbname": "ANALYTICS",
                "warehouse": "COMPUTE_WH",
                "username": "POLYTOMIC",
                "table": "PUBLIC.DAILY_USERS",
            },
        )
    ]
    assert output == ("salesforce", "Contact")
    other = fake.add_sync("other")  # default connections are shared, models are not
    sync, second = (get(fake, f"/api/syncs/{s}")["data"] for s in (sync_id, other))
    assert sync["target"]["connection_id"] == second["target"]["connection_id"]
    assert sync["model_ids"] != second["model_ids"]
    assert len(get(fake, "/api/connections")["data"]) == 2 and len(get(fake, "/api/models")["data"]) == 2


def test_declared_sources_and_targets(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    bq = fake.add_connection(
        "bigquery", name="Warehouse", configuration={"project_id": "p1", "location": "EU"}
    )
    users = fake.add_model(bq, name="Users", query="select * from analytics.users", fields=["id", "email"])
    events = fake.add_model("databricks", table="main.analytics.events")
    crm = fake.add_connection("hubspot")
    sync_id = fake.add_sync(
        "to hubspot", models=[users, events], target=crm, target_object="contacts", mode="update"
    )
    inputs, output = lineage(fake, sync_id)
    assert inputs[0] == (
        "bigquery",
        {"project_id": "p1", "location": "EU", "query": "select * from analytics.users"},
    )
    assert inputs[1][0] == "databricks" and inputs[1][1]["table"] == "main.analytics.events"
    assert inputs[1][1]["server_hostname"].endswith(".cloud.databricks.com")
    assert output == ("hubspot", "contacts")
    sync = get(fake, f"/api/syncs/{sync_id}")["data"]
    assert sync["mode"] == "update" and sync["identity"]["source"] == {"field": "email", "model_id": users}
    assert sync["identity"]["target"] == "Email"
    model = get(fake, f"/api/models/{users}")["data"]
    assert [f["name"] for f in model["fields"]] == ["id", "email"] and model["type"] == "bigquery"
    warehouse = fake.add_sync("into postgres", source="redshift", target="postgresql")
    inputs, output = lineage(fake, warehouse)
    assert inputs[0][0] == "redshift" and inputs[0][1]["table"] == "public.into_postgres"
    assert output == ("postgresql", "public.into_postgres")
    events_sync = get(fake, "/api/events")["data"]
    assert events_sync == []  # declaring things records no events


def test_bulk_sync_source_destination_and_schemas(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    pg = fake.add_connection("postgresql")
    sync_id = fake.add_sync(
        "replica", kind="bulk", source=pg, target="bigquery", schemas=["public.orders", "public.users"]
    )
    sync = get(fake, f"/api/bulk/syncs/{sync_id}")["data"]
    assert sync["source_connection_id"] == pg and sync["mode"] == "replicate"
    assert (
        get(fake, f"/api/connections/{sync['destination_connection_id']}")["data"]["type"]["id"] == "bigquery"
    )
    schemas = get(fake, f"/api/bulk/syncs/{sync_id}/schemas")["data"]
    assert [(s["id"], s["output_name"], s["enabled"]) for s in schemas] == [
        ("public.orders", "public.orders", True),
        ("public.users", "public.users", True),
    ]
    assert [
        f["id"] for f in get(fake, f"/api/bulk/syncs/{sync_id}/schemas/public.users")["data"]["fields"]
    ] == [
        "id",
        "name",
        "created_at",
        "updated_at",
    ]
    get(fake, f"/api/bulk/syncs/{sync_id}/schemas/nope", status=404)
    started = post(fake, f"/api/bulk/syncs/{sync_id}/executions", {"schemas": ["public.users"]})["data"]
    assert [s["schema"] for s in started["schemas"]] == ["public.users"]
    post(
        fake,
        f"/api/bulk/syncs/{fake.add_sync('x', kind='bulk')}/executions",
        {"schemas": ["nope"]},
        status=400,
    )
    fake.complete_execution(sync_id, started["id"], inserted=[{"id": 1}, {"id": 2}])
    event = fake.events()[-1]
    assert event["type"] == "bulk_sync.completed" and event["event"]["schedule"]["frequency"] == "manual"
    assert event["event"]["destination_connection_id"] == sync["destination_connection_id"]


def test_bulk_status_all_active_and_sync_id(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    running = fake.add_sync("running", kind="bulk")
    paused = fake.add_sync("paused", kind="bulk", active=False)
    execution = fake.start_execution(running)
    one = get(fake, "/api/bulk/syncs/status", sync_id=[paused])["data"]
    assert [s["sync_id"] for s in one] == [paused] and one[0]["status"] is None and one[0]["schemas"] == []
    every = get(fake, "/api/bulk/syncs/status", all="true", sync_id=[paused])["data"]  # all overrides sync_id
    assert {s["sync_id"] for s in every} == {running, paused}
    active = get(fake, "/api/bulk/syncs/status", active="true")["data"]
    assert [s["sync_id"] for s in active] == [running]
    assert [(s["schema"], s["execution_id"], s["status"]) for s in active[0]["schemas"]] == [
        ("Account", execution, "running"),
        ("Contact", execution, "running"),
    ]
    get(fake, "/api/bulk/syncs/status", all="sometimes", status=400)
    # Pausing a bulk sync cancels its running execution, as Polytomic documents.
    assert post(fake, f"/api/bulk/syncs/{running}/activate", {"active": False})["data"]["active"] is False
    assert fake.execution(running, execution)["status"] == "canceled"


def test_model_sync_listing_activation_and_schedule(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.clock.freeze()
    fake.clock.set(datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc))
    daily = fake.add_sync("daily", schedule={"frequency": "daily", "hour": "6", "minute": "30"})
    fake.clock.advance(1)
    hourly = fake.add_sync("hourly", schedule={"frequency": "hourly", "minute": "15"}, target="hubspot")
    status = get(fake, f"/api/syncs/{daily}/status")["data"]
    assert status["next_execution_time"] == "2026-03-03T06:30:00.000000Z"
    assert (
        get(fake, f"/api/syncs/{hourly}/status")["data"]["next_execution_time"]
        == "2026-03-02T07:15:00.000000Z"
    )
    page = get(fake, "/api/syncs", limit=1)
    assert [s["id"] for s in page["data"]] == [hourly]  # most recently updated first
    rest = get(fake, "/api/syncs", limit=1, page_token=page["pagination"]["next_page_token"])
    assert [s["id"] for s in rest["data"]] == [daily] and "pagination" not in rest
    assert post(fake, f"/api/syncs/{daily}/activate", {"active": False})["data"] == {
        "id": daily,
        "active": False,
    }
    assert get(fake, f"/api/syncs/{daily}/status")["data"]["next_execution_time"] is None  # paused
    assert [s["id"] for s in get(fake, "/api/syncs", active="true")["data"]] == [hourly]
    target = get(fake, f"/api/syncs/{hourly}")["data"]["target"]["connection_id"]
    assert [s["id"] for s in get(fake, "/api/syncs", target_connection_id=target)["data"]] == [hourly]
    post(fake, f"/api/syncs/{daily}/activate", {"active": "no"}, status=400)


def test_builder_errors_name_the_argument_and_value(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    with pytest.raises(ValueError, match=r"source must be a connection id or a connection type .*'oracle'"):
        fake.add_sync("x", source="oracle")
    with pytest.raises(ValueError, match=r"target must be .*'nowhere'"):
        fake.add_sync("x", kind="bulk", target="nowhere")
    with pytest.raises(ValueError, match="at most one of table, query and object"):
        fake.add_model("snowflake", table="A", query="select 1")
    with pytest.raises(ValueError, match="schemas belong to bulk syncs"):
        fake.add_sync("x", schemas=["A"])
    with pytest.raises(ValueError, match="models and target_object belong to model syncs"):
        fake.add_sync("x", kind="bulk", target_object="T")
    with pytest.raises(ValueError, match=r"source .* or models, not both"):
        fake.add_sync("x", source="snowflake", models=[fake.add_model("snowflake")])
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        fake.add_sync("x", models=["nope"])
    with pytest.raises(ValueError, match=r"schedule frequency must be one of .*'sometimes'"):
        fake.add_sync("x", schedule="sometimes")
    with pytest.raises(ValueError, match=r"unknown keys \['hours'\]"):
        fake.add_sync("x", schedule={"frequency": "daily", "hours": "6"})
    with pytest.raises(ValueError, match=r"mode of a model sync must be one of .*'replicate'"):
        fake.add_sync("x", mode="replicate")
    with pytest.raises(ValueError, match=r"type 'oracle' is not one the fake knows"):
        fake.add_connection("oracle")
    with pytest.raises(
        ValueError, match=r"identifier must be one of the model's fields \['id'\], got 'email'"
    ):
        fake.add_model("snowflake", fields=["id"], identifier="email")
    oracle = fake.add_connection("oracle", configuration={"host": "db.acme.internal", "service_name": "ORCL"})
    assert get(fake, f"/api/connections/{oracle}")["data"]["configuration"]["host"] == "db.acme.internal"
    get(fake, "/api/connections/nope", status=404)
    get(fake, "/api/models/nope", status=404)


def test_control_routes_declare_connections_models_and_syncs(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    control = fake.url + "/_fake"
    conn = requests.post(control + "/connections", json={"type": "redshift"}, timeout=TIMEOUT).json()["id"]
    model = requests.post(
        control + "/models", json={"connection": conn, "table": "public.users"}, timeout=TIMEOUT
    ).json()["id"]
    sync_id = requests.post(
        control + "/syncs", json={"name": "s", "models": [model], "target": "hubspot"}, timeout=TIMEOUT
    ).json()["id"]
    assert lineage(fake, sync_id)[0][0][1]["table"] == "public.users"
    bad = requests.post(control + "/syncs", json={"name": "s", "source": "oracle"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "oracle" in bad.json()["error"]
    state = requests.get(control + "/state", timeout=TIMEOUT).json()
    assert {c["type"] for c in state["connections"]} == {"redshift", "hubspot"}


def test_console_logs_follow_the_execution(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.console_log_limit = 3
    sync_id = fake.add_sync("s")
    execution = post(fake, f"/api/syncs/{sync_id}/executions")["data"]["id"]
    base = f"/api/syncs/{sync_id}/executions/{execution}/consolelog"
    start = get(fake, base)["data"]
    assert [e["message"] for e in start["entries"]] == ["Execution created", "Sync started"]
    fake.complete_execution(sync_id, execution, inserted=[{"id": 1}], errored=[{"id": 2}])
    newer = get(fake, base, after=start["next_cursor"])["data"]
    assert [(e["level"], e["message"]) for e in newer["entries"]] == [("warn", "Wrote 1 of 2 records")]
    assert newer["entries"][0]["payload"] == {"inserted": 1, "updated": 0, "deleted": 0, "errored": 1}
    assert get(fake, base, after=newer["next_cursor"])["data"] == {
        "entries": [],
        "next_cursor": newer["next_cursor"],
    }
    assert len(get(fake, base, limit=500)["data"]["entries"]) == 3  # capped
    get(fake, base, limit=0, status=400)
    get(fake, base, after="not-a-cursor", status=400)


def test_bulk_console_logs_per_schema_and_log_export(fake_polytomic: FakePolytomic) -> None:
    fake = fake_polytomic
    fake.export_job_polls = 2
    sync_id = fake.add_sync("b", kind="bulk")
    execution = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, execution, inserted=[{"Id": "1"}, {"Id": "2"}], records_per_file=1)
    base = f"/api/bulk/syncs/{sync_id}/executions/{execution}"
    account = get(fake, f"{base}/schemas/Account/consolelog")["data"]["entries"]
    assert "Copying Account" in [e["message"] for e in account]
    assert "Copying Contact" not in [e["message"] for e in account]
    get(fake, f"{base}/schemas/Nope/consolelog", status=404)
    export = post(fake, f"{base}/logs/export", notify="true")
    assert (
        export["data"]["url"] is None
        and export["job"]["status"] == "running"
        and export["job"]["type"] == "exportlogs"
    )
    job = export["job"]["job_id"]
    polls = [get(fake, f"/api/jobs/exportlogs/{job}")["data"] for _ in range(3)]
    assert [p["status"] for p in polls] == ["running", "running", "done"]
    archive = requests.get(polls[-1]["result"]["url"], timeout=TIMEOUT)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        names = zipped.namelist()
        assert sorted(n for n in names if n.startswith("inserts")) == [
            "inserts-0001.json",
            "inserts-0002.json",
        ]
        assert json.loads(zipped.read("inserts-0002.json")) == [{"Id": "2"}]
    get(fake, "/api/jobs/exportlogs/nope", status=404)
    get(fake, f"/api/jobs/bogus/{job}", status=400)


def test_fake_clock_dates_everything() -> None:
    """Created and updated times come from the fake clock, like events do."""
    fake = FakePolytomic(clock=FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc), frozen=True))
    with fake:
        sync_id = fake.add_sync("s")
        sync = get(fake, f"/api/syncs/{sync_id}")["data"]
        assert sync["created_at"] == sync["updated_at"] == "2026-01-01T00:00:00.000000Z"
        fake.clock.advance(timedelta(minutes=5).total_seconds())
        post(fake, f"/api/syncs/{sync_id}/activate", {"active": True})
        assert get(fake, f"/api/syncs/{sync_id}")["data"]["updated_at"] == "2026-01-01T00:05:00.000000Z"
