"""Contract: the official ``polytomic`` SDK client, sync and async, drives the fake for every call
a provider user makes, and every field of the SDK's response models gets filled.

Each call goes over real HTTP (``polytomic.Polytomic(base_url=fake.url, token=fake.api_key)``)
and must not raise. Then every response model is walked: a field that no response of the run
ever filled, where Polytomic would fill it, fails the run. The allow-list below names the
fields Polytomic itself leaves empty in the situations the fake models, or that are out of the
fake's scope, each with the reason. An allow-listed field that does get filled fails too, so
the list cannot go stale.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import polytomic
import pydantic
import pytest
from polytomic.core.api_error import ApiError as SdkApiError

from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.testing.routers import ROUTERS, build_api
from tests.webhook_endpoint import PAYLOAD_MODELS, Endpoint

# SDK model fields no response fills, and why that is right. Keyed "ModelClass.field".
ALLOWED_EMPTY: dict[str, str] = {
    # -- identity: the fake's key is a user's plain organization key.
    "IdentityCredentialSchema.api_key_profile": "only scoped API keys have a profile",
    "IdentityCredentialSchema.harbor": "only MCP harbor credentials",
    "IdentityCredentialSchema.oauth_client_id": "only OAuth credentials",
    "IdentityCredentialSchema.oauth_resource": "only OAuth credentials",
    # -- model syncs: the fake's syncs write existing objects, with no filters or overrides.
    "ModelSyncV5Response.encryption_passphrase": "a secret; Polytomic does not return it",
    "ModelSyncV5Target.create": "only when the sync creates its target object",
    "ModelSyncV5Target.new_name": "only when the sync creates its target object",
    "ModelSyncV5Target.filter_logic": "deprecated (target_filters.logic)",
    "SyncField.override_value": "only for overridden fields",
    "Schedule.connection_id": "only dbt Cloud schedules",
    "Schedule.job_id": "only dbt Cloud schedules",
    "Schedule.run_after": "only run-after schedules",
    "Schedule.run_after_success_only": "only run-after schedules",
    "Schedule.day_of_month": "only monthly (custom) schedules",
    "Schedule.month": "only custom schedules",
    "Schedule.day_of_week": "only weekly schedules; the world's schedules are daily and hourly",
    # -- bulk syncs
    "BulkSyncResponse.data_cutoff_timestamp": "only when a data cutoff is set",
    "BulkSyncDefaultScheduleResponse.day_of_month": "only monthly (custom) schedules",
    "BulkSyncDefaultScheduleResponse.day_of_week": "only weekly schedules",
    "BulkSyncDefaultScheduleResponse.hour": "hourly schedules have no hour",
    "BulkSyncDefaultScheduleResponse.month": "only custom schedules",
    "BulkSyncIngestionStatus.position_time": "continuous ingestion (CDC) is off in the fake",
    "BulkSchemaListItem.data_cutoff_timestamp": "only when a data cutoff is set",
    "BulkSchemaListItem.destination_history_output_name": "only with history mode",
    "BulkSchemaListItem.partition_key": "only partitioned destinations",
    "BulkSchemaListItem.user_output_name": "only when a user renames the output",
    "BulkSchema.data_cutoff_timestamp": "only when a data cutoff is set",
    "BulkSchema.destination_history_output_name": "only with history mode",
    "BulkSchema.partition_key": "only partitioned destinations",
    "BulkSchema.user_output_name": "only when a user renames the output",
    "BulkField.user_output_name": "only when a user renames the field",
    # -- events: with failed records the fake emits sync.completed_with_errors (whether
    # Polytomic also sends sync.completed with errored records is not documented).
    "EventingSyncCompletedEvent.errored_records": "sync.completed is only emitted without errors",
    # -- models and connections
    "ModelResponseEnvelope.job": "only asynchronous model operations (async=true) return a job",
    "ModelResponse.enricher": "only enrichment models",
    "ModelField.updated_by": "the fake's fields were never edited after creation",
    "ConnectionResponseSchema.parent_connection_id": "only shared connections",
    "ConnectionResponseSchemaRateLimit.expires_at": "only while the connection is seen rate-limited",
    "ConnectionResponseSchemaRateLimit.limited_since": "only while the connection is seen rate-limited",
    "ConnectionTypeSchema.logo_url": "cosmetic; out of scope",
    "ConnectionTypeSchema.logo_dark_url": "cosmetic; out of scope",
    "ConnectionTypeSchema.operations": "values undocumented; out of scope",
    # -- jobs
    "JobResponse.error": "only failed jobs",
}


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    fake: FakePolytomic
    ids: dict[str, str] = field(default_factory=dict)
    times: dict[str, datetime] = field(default_factory=dict)


def build_world(fake: FakePolytomic, endpoint: Endpoint) -> World:
    """Connections of every type, models, syncs with executions in every state, a webhook
    Polytomic disabled after failed deliveries."""
    w = World(fake)
    ids = w.ids
    for kind in ("snowflake", "bigquery", "redshift", "postgresql", "databricks", "salesforce", "hubspot"):
        ids[kind] = fake.add_connection(kind)
    ids["broken"] = fake.add_connection(
        "postgresql", name="Old replica", status="unhealthy", status_error="timeout"
    )
    ids["table_model"] = fake.add_model(ids["snowflake"], name="Users", table="PUBLIC.USERS")
    ids["query_model"] = fake.add_model(ids["bigquery"], query="select id, email from analytics.users")
    ids["object_model"] = fake.add_model(ids["hubspot"], object="contacts")
    ids["model"] = fake.add_sync(
        "users to salesforce",
        models=[ids["table_model"]],
        target=ids["salesforce"],
        schedule={"frequency": "daily", "hour": "6", "minute": "30"},
    )
    ids["idle_model"] = fake.add_sync("bigquery to hubspot", models=[ids["query_model"]], target="hubspot")
    model = ids["model"]
    ids["model_done"] = fake.start_execution(model)
    fake.complete_execution(
        model, ids["model_done"], inserted=[{"id": 1}], updated=[{"id": 2}], deleted=[{"id": 3}], warnings=1
    )
    fake.run_execution(model, outcome="completed_with_errors", errored=[{"id": 4}])
    fake.run_execution(model, outcome="failed", error="boom")
    ids["model_running"] = fake.start_execution(model)
    ids["bulk"] = fake.add_sync(
        "salesforce to snowflake",
        kind="bulk",
        source=ids["salesforce"],
        target=ids["snowflake"],
        schedule={"frequency": "hourly", "minute": "15"},
    )
    ids["idle_bulk"] = fake.add_sync("hubspot to bigquery", kind="bulk", source="hubspot", target="bigquery")
    bulk = ids["bulk"]
    ids["bulk_done"] = fake.start_execution(bulk)
    fake.complete_execution(bulk, ids["bulk_done"], inserted=[{"Id": "001"}], warnings=1)
    fake.run_execution(bulk, outcome="completed_with_errors", errors=2)
    fake.run_execution(bulk, outcome="failed", error="bulk boom")
    fake.run_execution(bulk, outcome="canceled")
    ids["bulk_running"] = fake.start_execution(bulk)
    # The webhook: one delivered event, then one failing every attempt, which disables it.
    fake.webhook_retry_base_delay = 0.001
    fake.webhook_disable_after = 1
    fake.webhook_deliveries_page_size = 3
    ids["webhook"] = fake.create_webhook({"endpoint": endpoint.url, "secret": "contract-secret"})["id"]
    w.times["first"] = datetime.now(timezone.utc) - timedelta(seconds=1)
    ids["delivered_event"] = fake.add_event("sync.running", {"sync_id": model})["id"]
    assert fake.wait_for_deliveries(10)
    endpoint.default = 500
    ids["failed_event"] = fake.add_event("sync.running", {"sync_id": model})["id"]
    assert fake.wait_for_deliveries(10)
    assert fake.get_webhook(ids["webhook"])["disabled"] is True
    return w


# ----------------------------------------------------------------------------- the calls


@dataclass(frozen=True)
class SdkCall:
    name: str
    run: Callable[[Any, World], Awaitable[Any]]
    error: type[Exception] | None = None
    """The SDK error the call must raise (for calls checking error bodies)."""


async def maybe(value: Any) -> Any:
    """The value of a sync SDK call, or the awaited value of an async one."""
    return await value if inspect.isawaitable(value) else value


def _calls() -> list[SdkCall]:
    out: list[SdkCall] = []

    def call(name: str, error: type[Exception] | None = None) -> Callable[[Any], Any]:
        def register(fn: Callable[[Any, World], Awaitable[Any]]) -> Any:
            out.append(SdkCall(name, fn, error))
            return fn

        return register

    @call("identity.get")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.identity.get())

    @call("events.list")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.events.list(limit=100))

    @call("events.list(type, window)")
    async def _(c: Any, w: World) -> Any:
        now = datetime.now(timezone.utc)
        return await maybe(
            c.events.list(
                type="sync.completed", starting_after=now - timedelta(hours=1), ending_before=now, limit=10
            )
        )

    @call("events.list(limit=0) -> 422", polytomic.UnprocessableEntityError)
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.events.list(limit=0))

    @call("events.get_types")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.events.get_types())

    @call("webhooks.list")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.webhooks.list())

    @call("webhooks.get (disabled by Polytomic)")
    async def _(c: Any, w: World) -> Any:
        hook = await maybe(c.webhooks.get(id=w.ids["webhook"]))
        assert (
            hook.data.disabled and hook.data.disabled_at and "consecutive failed" in hook.data.disabled_reason
        )
        return hook

    @call("webhooks.list_deliveries")
    async def _(c: Any, w: World) -> Any:
        first = await maybe(c.webhooks.list_deliveries(id=w.ids["webhook"]))
        assert len(first.data) == 3 and first.pagination.next_page_token
        second = await maybe(
            c.webhooks.list_deliveries(id=w.ids["webhook"], page_token=first.pagination.next_page_token)
        )
        assert {d.id for d in first.data}.isdisjoint(d.id for d in second.data)
        return [first, second]

    @call("webhooks.list_deliveries(success, event_id, start, end)")
    async def _(c: Any, w: World) -> Any:
        hook_id = w.ids["webhook"]
        failed = await maybe(
            c.webhooks.list_deliveries(id=hook_id, success=False, event_id=w.ids["failed_event"])
        )
        delivered = await maybe(c.webhooks.list_deliveries(id=hook_id, success=True))
        window = await maybe(
            c.webhooks.list_deliveries(id=hook_id, start=w.times["first"], end=datetime.now(timezone.utc))
        )
        assert [d.success for d in failed.data] == [False] * 3 and failed.data[0].status_code == 500
        assert [d.event_id for d in delivered.data] == [w.ids["delivered_event"]]
        assert len(window.data) == 3
        return [failed, delivered, window]

    @call("webhooks.update")
    async def _(c: Any, w: World) -> Any:
        return await maybe(
            c.webhooks.update(id=w.ids["webhook"], endpoint="https://example.com/new", secret="secret-456")
        )

    @call("webhooks.enable")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.webhooks.enable(id=w.ids["webhook"]))

    @call("webhooks.disable")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.webhooks.disable(id=w.ids["webhook"]))

    @call("webhooks.delete")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.webhooks.delete(id=w.ids["webhook"]))

    @call("webhooks.create")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.webhooks.create(endpoint="https://example.com/hook", secret="secret-789"))

    @call("model_sync.list")
    async def _(c: Any, w: World) -> Any:
        first = await maybe(c.model_sync.list(limit=1))
        second = await maybe(c.model_sync.list(limit=1, page_token=first.pagination.next_page_token))
        only = await maybe(
            c.model_sync.list(active=True, mode="updateOrCreate", target_connection_id=w.ids["salesforce"])
        )
        assert [s.id for s in only.data] == [w.ids["model"]]
        return [first, second, only]

    @call("model_sync.get")
    async def _(c: Any, w: World) -> Any:
        got = await maybe(c.model_sync.get(id=w.ids["model"]))
        assert (
            got.data.model_ids == [w.ids["table_model"]]
            and got.data.target.connection_id == w.ids["salesforce"]
        )
        return got

    @call("model_sync.get(unknown) -> 404", polytomic.NotFoundError)
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.model_sync.get(id="no-such-sync"))

    @call("model_sync.activate")
    async def _(c: Any, w: World) -> Any:
        paused = await maybe(c.model_sync.activate(id=w.ids["idle_model"], active=False))
        return [paused, await maybe(c.model_sync.activate(id=w.ids["idle_model"], active=True))]

    @call("model_sync.get_status")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.model_sync.get_status(id=w.ids["model"]))

    @call("model_sync.start")
    async def _(c: Any, w: World) -> Any:
        started = await maybe(
            c.model_sync.start(id=w.ids["idle_model"], test=False, identities=["a@example.com"])
        )
        w.ids["model_started"] = started.data.id
        return started

    @call("model_sync.cancel")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.model_sync.cancel(id=w.ids["idle_model"]))

    @call("model_sync.executions.list")
    async def _(c: Any, w: World) -> Any:
        w.fake.model_executions_page_size = 3
        newest = await maybe(c.model_sync.executions.list(sync_id=w.ids["model"]))
        rest = await maybe(
            c.model_sync.executions.list(sync_id=w.ids["model"], page_token=newest.pagination.next_page_token)
        )
        oldest = await maybe(
            c.model_sync.executions.list(sync_id=w.ids["model"], only_completed=True, ascending=True)
        )
        assert len(newest.data) == 3 and len(rest.data) == 1 and rest.pagination is None
        return [newest, rest, oldest]

    @call("model_sync.executions.get")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.model_sync.executions.get(sync_id=w.ids["model"], id=w.ids["model_done"]))

    @call("model_sync.executions.get_log_urls")
    async def _(c: Any, w: World) -> Any:
        urls = await maybe(
            c.model_sync.executions.get_log_urls(
                sync_id=w.ids["model"], id=w.ids["model_done"], type="inserts"
            )
        )
        assert len(urls.data.urls) == 1
        return urls

    @call("model_sync.executions.get_logs_index")
    async def _(c: Any, w: World) -> Any:
        index = await maybe(
            c.model_sync.executions.get_logs_index(sync_id=w.ids["model"], id=w.ids["model_done"])
        )
        assert index.data.inserts.count == 1 and index.data.inserts.url.endswith("/inserts")
        return index

    @call("model_sync.executions.get_logs (302 to the file)")
    async def _(c: Any, w: World) -> Any:
        return await maybe(
            c.model_sync.executions.get_logs(
                sync_id=w.ids["model"], id=w.ids["model_done"], type="inserts", filename="inserts-0001"
            )
        )

    @call("model_sync.executions.get_console_logs")
    async def _(c: Any, w: World) -> Any:
        latest = await maybe(
            c.model_sync.executions.get_console_logs(sync_id=w.ids["model"], id=w.ids["model_done"])
        )
        first = latest.data.entries[0].id
        newer = await maybe(
            c.model_sync.executions.get_console_logs(
                sync_id=w.ids["model"], id=w.ids["model_done"], limit=1, after=first
            )
        )
        assert len(newer.data.entries) == 1 and newer.data.entries[0].id > first
        return [latest, newer]

    @call("model_sync.executions.cancel")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.model_sync.executions.cancel(sync_id=w.ids["model"], id=w.ids["model_running"]))

    @call("models.list")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.models.list())

    @call("models.get")
    async def _(c: Any, w: World) -> Any:
        got = [
            await maybe(c.models.get(id=w.ids[name]))
            for name in ("table_model", "query_model", "object_model")
        ]
        assert got[0].data.configuration == {"table": "PUBLIC.USERS"} and "query" in got[1].data.configuration
        return got

    @call("connections.list")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.connections.list())

    @call("connections.get")
    async def _(c: Any, w: World) -> Any:
        got = await maybe(c.connections.get(id=w.ids["snowflake"]))
        assert got.data.type.id == "snowflake" and got.data.configuration["account"]
        return [got, await maybe(c.connections.get(id=w.ids["broken"]))]

    @call("bulk_sync.list")
    async def _(c: Any, w: World) -> Any:
        return [await maybe(c.bulk_sync.list()), await maybe(c.bulk_sync.list(active=True))]

    @call("bulk_sync.get")
    async def _(c: Any, w: World) -> Any:
        got = await maybe(c.bulk_sync.get(id=w.ids["bulk"]))
        assert got.data.source_connection_id == w.ids["salesforce"]
        assert got.data.destination_connection_id == w.ids["snowflake"]
        return got

    @call("bulk_sync.activate")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.activate(id=w.ids["idle_bulk"], active=True))

    @call("bulk_sync.get_status")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.get_status(id=w.ids["bulk"]))

    @call("bulk_sync.start")
    async def _(c: Any, w: World) -> Any:
        started = await maybe(
            c.bulk_sync.start(id=w.ids["idle_bulk"], fetch_mode="full", schemas=["Account"])
        )
        assert [s.schema_ for s in started.data.schemas] == ["Account"]
        return started

    @call("bulk_sync.cancel")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.cancel(id=w.ids["idle_bulk"]))

    @call("bulk_sync.schemas.list")
    async def _(c: Any, w: World) -> Any:
        every = await maybe(c.bulk_sync.schemas.list(id=w.ids["bulk"]))
        enabled = await maybe(c.bulk_sync.schemas.list(id=w.ids["bulk"], filters={"enabled": "true"}))
        assert [s.id for s in every.data] == [s.id for s in enabled.data] == ["Account", "Contact"]
        return [every, enabled]

    @call("bulk_sync.schemas.get")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.schemas.get(id=w.ids["bulk"], schema_id="Contact"))

    @call("bulk_sync.executions.list_status")
    async def _(c: Any, w: World) -> Any:
        every = await maybe(c.bulk_sync.executions.list_status(all_=True))
        one = await maybe(c.bulk_sync.executions.list_status(sync_id=[w.ids["bulk"]]))
        active = await maybe(c.bulk_sync.executions.list_status(active=True, sync_id=[w.ids["bulk"]]))
        assert (
            len(every.data) == 2
            and [s.sync_id for s in one.data] == [w.ids["bulk"]]
            and len(active.data) == 2
        )
        return [every, one, active]

    @call("bulk_sync.executions.list")
    async def _(c: Any, w: World) -> Any:
        newest = await maybe(c.bulk_sync.executions.list(id=w.ids["bulk"]))
        page = await maybe(
            c.bulk_sync.executions.list(id=w.ids["bulk"], only_terminal=True, ascending=True, limit=2)
        )
        rest = await maybe(
            c.bulk_sync.executions.list(id=w.ids["bulk"], page_token=page.pagination.next_page_token, limit=2)
        )
        return [newest, page, rest]

    @call("bulk_sync.executions.get")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.executions.get(id=w.ids["bulk"], exec_id=w.ids["bulk_done"]))

    @call("bulk_sync.executions.get_logs")
    async def _(c: Any, w: World) -> Any:
        return await maybe(
            c.bulk_sync.executions.get_logs(sync_id=w.ids["bulk"], execution_id=w.ids["bulk_done"])
        )

    @call("bulk_sync.executions.export_logs + jobs.get")
    async def _(c: Any, w: World) -> Any:
        w.fake.export_job_polls = 1
        export = await maybe(
            c.bulk_sync.executions.export_logs(
                sync_id=w.ids["bulk"], execution_id=w.ids["bulk_done"], notify=False
            )
        )
        assert export.job.status == "running" and export.data.url is None
        polls = [await maybe(c.jobs.get(type="exportlogs", id=export.job.job_id)) for _ in range(2)]
        assert [p.data.status for p in polls] == ["running", "done"] and polls[1].data.result["url"]
        w.fake.export_job_polls = 0
        done = await maybe(
            c.bulk_sync.executions.export_logs(sync_id=w.ids["bulk"], execution_id=w.ids["bulk_done"])
        )
        assert done.job.status == "done" and done.data.url
        return [export, *polls, done]

    @call("jobs.get(unknown type) -> 400", polytomic.BadRequestError)
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.jobs.get(type="nosuchjob", id="x"))

    @call("bulk_sync.executions.get_console_logs")
    async def _(c: Any, w: World) -> Any:
        return await maybe(
            c.bulk_sync.executions.get_console_logs(
                sync_id=w.ids["bulk"], execution_id=w.ids["bulk_done"], limit=100
            )
        )

    @call("bulk_sync.executions.get_schema_console_logs")
    async def _(c: Any, w: World) -> Any:
        logs = await maybe(
            c.bulk_sync.executions.get_schema_console_logs(
                sync_id=w.ids["bulk"], execution_id=w.ids["bulk_done"], schema_id="Account"
            )
        )
        assert any("Account" in e.message for e in logs.data.entries)
        return logs

    @call("bulk_sync.executions.cancel")
    async def _(c: Any, w: World) -> Any:
        return await maybe(c.bulk_sync.executions.cancel(id=w.ids["bulk"], exec_id=w.ids["bulk_running"]))

    return out


CALLS = _calls()


# ----------------------------------------------------------------------------- running and walking


@dataclass
class Run:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    seen: dict[str, type[pydantic.BaseModel]] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    """Fields the fake sent that the SDK's models do not have."""


def walk(value: Any, run: Run) -> None:
    """Record every SDK model met, which of its fields hold a value (not None), and any field
    the SDK does not know."""
    if isinstance(value, pydantic.BaseModel):
        cls = type(value)
        run.seen.setdefault(cls.__name__, cls)
        run.unknown.update(f"{cls.__name__}.{key}" for key in value.model_extra or {})
        payload = cls.__name__ == "Event" and value.event is not None
        for name in cls.model_fields:
            item = getattr(value, name)
            if item is not None:
                run.filled.add(f"{cls.__name__}.{name}")
                if not (payload and name == "event"):
                    walk(item, run)
        if payload:
            # The SDK parses a payload as an undiscriminated union (the first member wins, the
            # rest of the fields as extras): check it with the model of its type instead.
            walk(PAYLOAD_MODELS[value.type].model_validate(value.event.model_dump(by_alias=True)), run)
    elif isinstance(value, (list, tuple)):
        for item in value:
            walk(item, run)
    elif isinstance(value, dict):
        for item in value.values():
            walk(item, run)


def never_filled(run: Run) -> set[str]:
    return {f"{name}.{f}" for name, cls in run.seen.items() for f in cls.model_fields} - run.filled


async def drive(client: Any, world: World, calls: list[SdkCall]) -> Run:
    run = Run()
    for call in calls:
        try:
            result = await call.run(client, world)
        except Exception as exc:  # recorded, judged by the tests below
            if call.error is not None and isinstance(exc, call.error):
                assert isinstance(exc, SdkApiError)
                run.results[call.name] = exc
                walk(polytomic.types.ApiError.model_validate(exc.body), run)
            else:
                run.errors[call.name] = exc
            continue
        if call.error is not None:
            run.errors[call.name] = AssertionError(f"expected {call.error.__name__}, got {result!r}")
        run.results[call.name] = result
        walk(result, run)
    return run


def run_contract(
    mode: str, calls: list[SdkCall] = CALLS, build: Callable[[FakePolytomic, Endpoint], World] = build_world
) -> Run:
    """Build a world in a new fake and drive ``calls`` on it with the ``sync`` or ``async`` client."""
    endpoint = Endpoint()
    try:
        with FakePolytomic() as fake:
            world = build(fake, endpoint)
            if mode == "sync":
                client: Any = polytomic.Polytomic(base_url=fake.url, token=fake.api_key, max_retries=0)
            else:
                client = polytomic.AsyncPolytomic(base_url=fake.url, token=fake.api_key, max_retries=0)
            return asyncio.run(drive(client, world, calls))
    finally:
        endpoint.close()


@pytest.fixture(scope="module", params=["sync", "async"])
def contract(request: pytest.FixtureRequest) -> Iterator[tuple[str, Run]]:
    yield request.param, run_contract(request.param)


@pytest.mark.parametrize("name", [c.name for c in CALLS])
def test_sdk_call(contract: tuple[str, Run], name: str) -> None:
    mode, run = contract
    error = run.errors.get(name)
    assert error is None, f"{mode} client: {name} raised {type(error).__name__}: {error}"
    assert name in run.results


def test_every_sdk_field_is_filled(contract: tuple[str, Run]) -> None:
    mode, run = contract
    missing = sorted(never_filled(run) - set(ALLOWED_EMPTY))
    assert not missing, f"{mode} client: fields the fake never fills: {missing}"


def test_no_field_unknown_to_the_sdk(contract: tuple[str, Run]) -> None:
    """Field names cannot drift from Polytomic's: the fake sends nothing the SDK lacks."""
    mode, run = contract
    assert not run.unknown, f"{mode} client: fields the SDK does not know: {sorted(run.unknown)}"


def test_allow_list_is_not_stale(contract: tuple[str, Run]) -> None:
    _, run = contract
    filled_anyway = sorted(set(ALLOWED_EMPTY) & run.filled)
    assert not filled_anyway, f"allow-listed but filled, drop them from ALLOWED_EMPTY: {filled_anyway}"
    unknown = sorted(k for k in ALLOWED_EMPTY if k.split(".")[0] not in run.seen)
    assert not unknown, f"allow-listed fields of models no response contains: {unknown}"


# ----------------------------------------------------------------------------- the contract can fail


def test_contract_fails_when_a_route_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the webhooks router, every webhook call fails, and only those."""
    from airflow_provider_polytomic.testing import server
    from airflow_provider_polytomic.testing.routers import webhooks

    without = tuple(r for r in ROUTERS if r is not webhooks.router)
    monkeypatch.setattr(server, "build_api", lambda state: build_api(state, without))
    run = run_contract("sync")
    assert set(run.errors) == {c.name for c in CALLS if c.name.startswith("webhooks.")}
    assert all(isinstance(e, SdkApiError) and e.status_code == 404 for e in run.errors.values()), run.errors


def test_contract_fails_when_a_field_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake that stops sending an execution's ``version`` is caught by the field walk."""
    from airflow_provider_polytomic.testing.responses import executions
    from airflow_provider_polytomic.testing.routers import _syncs

    original = executions.execution_json

    def without_version(*args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(*args, **kwargs)
        data.pop("version")
        return data

    monkeypatch.setattr(executions, "execution_json", without_version)
    monkeypatch.setattr(_syncs, "execution_json", without_version)
    calls = [c for c in CALLS if c.name in ("model_sync.executions.get", "model_sync.get_status")]
    run = run_contract("sync", calls)
    assert not run.errors
    assert "GetExecutionResponseSchema.version" in never_filled(run) - set(ALLOWED_EMPTY)
