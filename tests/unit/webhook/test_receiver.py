"""The webhook receiver under real uvicorn on loopback, fed signed deliveries by the fake server.

Two recorders are exercised:

* a :class:`MemoryRecorder` test double, to pin the HTTP protocol (signature, size, JSON,
  retries, de-duplication) independently of Airflow;
* the real :class:`AirflowApiRecorder`, against a stand-in of the Airflow REST endpoints
  it calls (``/auth/token``, ``/api/v2/assets``, ``/api/v2/assets/events``, the asset state
  store). The end-to-end test (tests/e2e/test_e2e_events.py) runs it against a real
  Airflow API server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_polytomic._compat import AIRFLOW_V_3
from airflow_provider_polytomic.operators.webhook import (
    PolytomicEnsureWebhookOperator,
    ensure_receiver_webhook,
)
from airflow_provider_polytomic.signature import SIGNATURE_HEADER, sign
from airflow_provider_polytomic.testing import FakePolytomic
from airflow_provider_polytomic.webhook.receiver import create_app
from airflow_provider_polytomic.webhook.recorder import (
    AirflowApiConfig,
    AirflowApiRecorder,
    ReceivedEvent,
    RecordResult,
)

SECRET = "s3cr3t-webhook-value"
CAP = 4096
# The receiver records asset events through the Airflow 3 REST API; the ensure command and
# the connection settings work on every supported Airflow.
needs_airflow_3 = pytest.mark.skipif(
    not AIRFLOW_V_3, reason="the webhook receiver records asset events through the Airflow 3 REST API"
)


# ------------------------------------------------------------------------------ helpers


class Server:
    """An ASGI app under uvicorn on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self._thread.start()
        with httpx.Client(trust_env=False) as client:
            for _ in range(500):  # wait until it accepts connections (bounded, event-driven by connect)
                try:
                    client.get(self.url + "/health", timeout=0.2)
                    return self
                except httpx.TransportError:
                    self._thread.join(0.01)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


class MemoryRecorder:
    """Records into a list; optionally fails the first ``fail_first`` calls."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.recorded: list[ReceivedEvent] = []
        self.calls = 0
        self.fail_first = fail_first
        self.delay = delay
        self.lock = threading.Lock()

    async def record(self, received: ReceivedEvent) -> RecordResult:
        with self.lock:
            self.calls += 1
            fail = self.calls <= self.fail_first
        if self.delay:
            await asyncio.sleep(self.delay)  # simulates a slow Airflow, not synchronisation
        if fail:
            raise RuntimeError("Airflow is unavailable")
        self.recorded.append(received)
        return RecordResult.RECORDED


@pytest.fixture
def conn(polytomic_conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> FakePolytomic:
    """The fake, with the polytomic_default connection carrying the webhook secret."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_DEFAULT",
        json.dumps(
            {
                "conn_type": "polytomic",
                "host": polytomic_conn.url,
                "password": polytomic_conn.api_key,
                "extra": {"max_retries": 3, "webhook_secret": SECRET},
            }
        ),
    )
    return polytomic_conn


@contextmanager
def receiver(recorder: Any, **kwargs: Any) -> Iterator[Server]:
    kwargs.setdefault("max_body_bytes", CAP)
    with Server(create_app(recorder=recorder, **kwargs)) as server:
        yield server


def post(url: str, body: bytes, signature: str | None = "auto", **headers: str) -> httpx.Response:
    if signature == "auto":
        signature = sign(body, SECRET)
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    headers.setdefault("Content-Type", "application/json")
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.post(url, content=body, headers=headers)


def event_body(sync_id: str = "9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d", **over: Any) -> bytes:
    event = {
        "id": "e5a7c7e2-1111-4222-8333-944455556666",
        "organization_id": "org",
        "type": "sync.completed",
        "created_at": "2026-01-01T00:00:00Z",
        "event": {"sync_id": sync_id, "execution_id": "x1"},
    }
    event.update(over)
    return json.dumps(event).encode()


def complete(fake: FakePolytomic, sync_id: str) -> dict[str, Any]:
    return fake.complete_execution(sync_id, fake.start_execution(sync_id))


# ------------------------------------------------------------------------ from the fake


@needs_airflow_3
def test_signed_deliveries_from_the_fake_are_recorded(conn: FakePolytomic) -> None:
    fake = conn
    recorder = MemoryRecorder()
    sync_id, bulk_id = fake.add_sync("contacts"), fake.add_sync("warehouse", kind="bulk")
    with receiver(recorder) as server:
        result = PolytomicEnsureWebhookOperator(task_id="ensure", endpoint=server.url + "/events").execute({})
        assert result["endpoint"] == server.url + "/events" and "secret" not in json.dumps(result)
        done = complete(fake, sync_id)
        fake.start_execution(sync_id)  # sync.running: verified, acknowledged, not recorded
        bulk_done = complete(fake, bulk_id)
        assert fake.wait_for_deliveries(10)
    by_id = {r.event.id: r for r in recorder.recorded}
    assert set(by_id) == {done["id"], bulk_done["id"]}
    assert by_id[done["id"]].asset_uri == f"polytomic://{sync_id}"
    assert by_id[bulk_done["id"]].asset_uri == f"polytomic://bulk/{bulk_id}"
    extra = by_id[done["id"]].extra
    assert extra["polytomic_event_id"] == done["id"] and extra["source"] == "webhook"
    assert extra["payload"]["payload"] == done["event"] and extra["payload"]["type"] == "sync.completed"
    assert all(d.status_code == 200 for d in fake.webhook_deliveries)
    assert len(fake.webhook_deliveries) == 5  # the three sync(s).running too, each acknowledged once


@needs_airflow_3
def test_failed_first_attempt_is_retried_by_polytomic_and_recorded_once(conn: FakePolytomic) -> None:
    fake = conn
    recorder = MemoryRecorder(fail_first=1)
    sync_id = fake.add_sync("contacts")
    with receiver(recorder) as server:
        ensure_receiver_webhook(server.url + "/events")
        done = fake.add_event("sync.completed", {"sync_id": sync_id})
        assert fake.wait_for_deliveries(10)
    attempts = [d for d in fake.webhook_deliveries if d.event_id == done["id"]]
    assert [d.status_code for d in attempts] == [503, 200]
    assert [r.event.id for r in recorder.recorded] == [done["id"]]


@needs_airflow_3
def test_wrong_secret_is_refused_every_retry(conn: FakePolytomic) -> None:
    fake = conn
    recorder = MemoryRecorder()
    sync_id = fake.add_sync("contacts")
    with receiver(recorder) as server:
        fake.create_webhook({"endpoint": server.url + "/events", "secret": "another-secret"})
        fake.add_event("sync.completed", {"sync_id": sync_id})
        assert fake.wait_for_deliveries(20)
    assert [d.status_code for d in fake.webhook_deliveries] == [401] * 6  # first attempt + 5 retries
    assert recorder.recorded == []


# --------------------------------------------------------------------- protocol details


@needs_airflow_3
def test_signature_checks(conn: FakePolytomic, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = MemoryRecorder()
    body = event_body()
    with receiver(recorder) as server:
        missing = post(server.url + "/events", body, signature=None)
        wrong = post(server.url + "/events", body, signature=sign(body, "not-the-secret"))
        garbage = post(server.url + "/events", body, signature="zz-not-hex")
        tampered = post(server.url + "/events", body.replace(b"x1", b"x2"), signature=sign(body, SECRET))
        good = post(server.url + "/events", body)
    assert [r.status_code for r in (missing, wrong, garbage, tampered)] == [401] * 4
    assert good.status_code == 200 and good.json()["result"] == "recorded"
    assert len(recorder.recorded) == 1
    everything = caplog.text + "".join(r.text for r in (missing, wrong, garbage, tampered, good))
    assert SECRET not in everything and sign(body, SECRET) not in everything


@needs_airflow_3
def test_size_cap_by_header_and_by_stream(conn: FakePolytomic) -> None:
    recorder = MemoryRecorder()
    big = event_body(padding="x" * (CAP + 1))
    with receiver(recorder) as server:
        declared = post(server.url + "/events", big)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        with httpx.Client(trust_env=False) as client:  # chunked: no Content-Length to trust
            streamed = client.post(
                server.url + "/events", content=chunks(), headers={SIGNATURE_HEADER: sign(big, SECRET)}
            )
        assert "content-length" not in streamed.request.headers
        fits = post(server.url + "/events", event_body(padding="x" * 100))
    assert declared.status_code == 413 and streamed.status_code == 413
    assert fits.status_code == 200
    assert len(recorder.recorded) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b'{"event": {}}',
        b"\xff\xfe",
        b'{"type": 5, "event": {}}',
    ],
)
@needs_airflow_3
def test_malformed_bodies_are_400(conn: FakePolytomic, body: bytes) -> None:
    recorder = MemoryRecorder()
    with receiver(recorder) as server:
        response = post(server.url + "/events", body)
    assert response.status_code == 400
    assert recorder.recorded == []


@needs_airflow_3
def test_duplicates_by_event_id_and_without_id(conn: FakePolytomic) -> None:
    recorder = MemoryRecorder()
    no_id = json.dumps({"type": "sync.failed", "event": {"sync_id": "9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d"}})
    with receiver(recorder) as server:
        url = server.url + "/events"
        results = [post(url, event_body()).json()["result"] for _ in range(3)]
        results += [post(url, no_id.encode()).json()["result"] for _ in range(2)]
    assert results == ["recorded", "duplicate", "duplicate", "recorded", "duplicate"]
    assert len(recorder.recorded) == 2


@needs_airflow_3
def test_concurrent_retries_record_once(conn: FakePolytomic) -> None:
    recorder = MemoryRecorder(delay=0.3)
    body = event_body()

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            headers = {SIGNATURE_HEADER: sign(body, SECRET)}
            responses = await asyncio.gather(
                *(client.post(url, content=body, headers=headers) for _ in range(5))
            )
        return [r.status_code for r in responses]

    with receiver(recorder) as server:
        statuses = asyncio.run(burst(server.url + "/events"))
    assert statuses == [200] * 5
    assert len(recorder.recorded) == 1


@needs_airflow_3
def test_ignored_and_unconfigured(conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = MemoryRecorder()
    with receiver(recorder) as server:
        running = post(server.url + "/events", event_body(type="sync.running"))
        no_sync = post(server.url + "/events", event_body(event={"execution_id": "x"}))
    assert running.json()["result"] == "ignored" and no_sync.json()["result"] == "ignored"
    assert recorder.recorded == []
    with receiver(recorder, secret_loader=lambda: None) as server:
        response = post(server.url + "/events", event_body())
    assert response.status_code == 503 and recorder.recorded == []


# ------------------------------------------------------------ the Airflow REST recorder


class AirflowApiStandIn:
    """The Airflow 3.3 REST endpoints the recorder uses, with their real shapes and auth."""

    def __init__(self) -> None:
        self.assets = {
            7: "polytomic://9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d/",
            8: "polytomic://bulk-lookalike",
        }
        self.events: list[dict[str, Any]] = []
        # (asset id, key) -> (value, updated_at); one stale ledger entry from long ago.
        self.store: dict[tuple[int, str], tuple[Any, str]] = {
            (7, "polytomic.event.ancient"): ({"source": "poll"}, "2020-01-01T00:00:00Z"),
            (7, "polytomic.consumer.dag.task"): ({"cursor": "x"}, "2020-01-01T00:00:00Z"),
        }
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.fail_posts = 0
        self.slow_posts = 0.0  # seconds a create takes to answer *after* committing
        # Awaited, before answering, once a pending ledger entry is stored ("pending-written")
        # and once an asset event is committed ("created"): where a test makes the receiving
        # process die.
        self.on_step: Callable[[str], Awaitable[None]] | None = None
        self.fail_completing_writes = False  # a ledger write that is not "pending" answers 500
        self.app = FastAPI()
        app = self.app

        def authorized(request: Request) -> bool:
            return request.headers.get("authorization", "").removeprefix("Bearer ") in self.valid_tokens

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/auth/token", status_code=201)
        async def token(request: Request) -> Any:
            body = await request.json()
            if body != {"username": "admin", "password": "pw"}:
                return JSONResponse({"detail": "bad"}, status_code=401)
            self.tokens_issued += 1
            value = f"token-{self.tokens_issued}"
            self.valid_tokens = {value}  # earlier tokens "expire"
            return {"access_token": value}

        @app.get("/api/v2/assets")
        async def assets(request: Request, uri_prefix_pattern: str = "", limit: int = 50) -> Any:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            found = [{"id": i, "uri": u} for i, u in self.assets.items() if u.startswith(uri_prefix_pattern)]
            return {"assets": found[:limit], "total_entries": len(found)}

        @app.post("/api/v2/assets/events")
        async def create_event(request: Request) -> Any:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            if self.fail_posts:
                self.fail_posts -= 1
                return JSONResponse({"detail": "db down"}, status_code=500)
            body = await request.json()
            event = {"id": len(self.events) + 1, "asset_id": body["asset_id"], "extra": body["extra"]}
            event["extra"]["from_rest_api"] = True
            self.events.append(event)
            if self.on_step is not None:
                await self.on_step("created")
            if self.slow_posts:
                await asyncio.sleep(self.slow_posts)  # a slow database: committed, answer late
            return event

        @app.get("/api/v2/assets/events")
        async def list_events(request: Request, asset_id: int, limit: int = 50) -> Any:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            found = [e for e in reversed(self.events) if e["asset_id"] == asset_id]
            return {"asset_events": found[:limit], "total_entries": len(found)}

        @app.get("/api/v2/assets/{asset_id}/state-store/{key:path}")
        async def get_state(asset_id: int, key: str, request: Request) -> Any:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            if (asset_id, key) not in self.store:
                return JSONResponse({"detail": "not found"}, status_code=404)
            value, updated_at = self.store[(asset_id, key)]
            return {"key": key, "value": value, "updated_at": updated_at}

        @app.put("/api/v2/assets/{asset_id}/state-store/{key:path}", status_code=204)
        async def set_state(asset_id: int, key: str, request: Request) -> Response:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            now = datetime.now(timezone.utc).isoformat()
            value = (await request.json())["value"]
            if self.fail_completing_writes and not (isinstance(value, dict) and value.get("pending")):
                return JSONResponse({"detail": "db down"}, status_code=500)
            self.store[(asset_id, key)] = (value, now)
            if self.on_step is not None and isinstance(value, dict) and value.get("pending"):
                await self.on_step("pending-written")
            return Response(status_code=204)

        @app.get("/api/v2/assets/{asset_id}/state-store")
        async def list_state(asset_id: int, request: Request) -> Any:
            if not authorized(request):
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            rows = [
                {"key": k, "value": v, "updated_at": at}
                for (a, k), (v, at) in self.store.items()
                if a == asset_id
            ]
            return {"asset_state_store": rows, "total_entries": len(rows)}

        @app.delete("/api/v2/assets/{asset_id}/state-store/{key:path}", status_code=204)
        async def delete_state(asset_id: int, key: str) -> Response:
            self.store.pop((asset_id, key), None)
            return Response(status_code=204)


@needs_airflow_3
def test_airflow_api_recorder_end_to_end_over_http(conn: FakePolytomic) -> None:
    fake = conn
    api = AirflowApiStandIn()
    sync_id = fake.add_sync("contacts", sync_id="9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d")
    unknown_sync = fake.add_sync("no-dag-uses-it")
    with Server(api.app) as airflow:
        config = AirflowApiConfig(base_url=airflow.url, username="admin", password="pw")
        api.fail_posts = 1  # Airflow fails once: the receiver answers 503, Polytomic retries
        with receiver(AirflowApiRecorder(config, prune_every=3600)) as server:
            ensure_receiver_webhook(server.url + "/events")
            done = complete(fake, sync_id)
            complete(fake, unknown_sync)  # no asset in Airflow: acknowledged, nothing recorded
            assert fake.wait_for_deliveries(10)
            # Another API-server worker (fresh process state) receiving a retry of the same event:
            api.valid_tokens = set()  # and its token has expired
        with receiver(AirflowApiRecorder(config)) as other_worker:
            body = json.dumps(next(e for e in fake.events() if e["id"] == done["id"])).encode()
            again = post(other_worker.url + "/events", body)
            api.valid_tokens = set()  # its token expires too: refreshed once, then accepted
            later = post(other_worker.url + "/events", event_body(sync_id=sync_id, id="later-event"))
    assert [e["extra"]["polytomic_event_id"] for e in api.events] == [done["id"], "later-event"]
    event = api.events[0]
    assert event["asset_id"] == 7 and event["extra"]["from_rest_api"] is True
    assert event["extra"]["payload"]["payload"] == done["event"]
    assert api.store[(7, f"polytomic.event.{done['id']}")][0]["source"] == "webhook"
    assert (7, "polytomic.event.ancient") not in api.store  # pruned: past retention
    assert (7, "polytomic.consumer.dag.task") in api.store  # not a ledger entry: left alone
    assert again.json()["result"] == "duplicate"  # found in the ledger, across processes
    statuses = [d.status_code for d in fake.webhook_deliveries if d.event_id == done["id"]]
    assert statuses == [503, 200]
    assert later.json()["result"] == "recorded"
    assert api.tokens_issued == 3  # one per worker, plus one refresh after expiry


@needs_airflow_3
def test_a_create_that_times_out_but_committed_is_not_repeated(conn: FakePolytomic) -> None:
    """Airflow stored the event but answered after the recorder gave up: the retry finds it."""
    fake = conn
    api = AirflowApiStandIn()
    sync_id = fake.add_sync("contacts", sync_id="9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d")
    api.slow_posts = 1.0
    with Server(api.app) as airflow:
        config = AirflowApiConfig(base_url=airflow.url, username="admin", password="pw", timeout=0.3)
        with receiver(AirflowApiRecorder(config)) as server:
            ensure_receiver_webhook(server.url + "/events")
            done = fake.add_event("sync.completed", {"sync_id": sync_id})
            assert fake.wait_for_deliveries(15)
    statuses = [d.status_code for d in fake.webhook_deliveries if d.event_id == done["id"]]
    assert statuses[0] == 503 and statuses[-1] == 200
    assert [e["extra"]["polytomic_event_id"] for e in api.events] == [done["id"]]
    assert (7, f"polytomic.event.{done['id']}") in api.store


def test_config_from_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_AIRFLOW_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": "airflow.internal",
                "port": 8080,
                "login": "u",
                "password": "pw-123",
            }
        ),
    )
    config = AirflowApiConfig.from_connection()
    assert config.base_url == "http://airflow.internal:8080" and config.username == "u"
    assert config.password == "pw-123" and "pw-123" not in repr(config)
    monkeypatch.delenv("AIRFLOW_CONN_POLYTOMIC_AIRFLOW_API")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://localhost:9999/airflow/")
    assert AirflowApiConfig.from_connection().base_url == "http://localhost:9999/airflow"


def test_ensure_webhook_validates_secret(conn: FakePolytomic, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        ensure_receiver_webhook("ftp://x/events")
    monkeypatch.setenv(
        "AIRFLOW_CONN_POLYTOMIC_DEFAULT",
        json.dumps({"conn_type": "polytomic", "host": conn.url, "password": conn.api_key, "extra": {}}),
    )
    with pytest.raises(ValueError, match="no 'webhook_secret'"):
        ensure_receiver_webhook("https://airflow.example.com/polytomic/events")
    assert conn.webhooks() == []


def test_ensure_webhook_cli(conn: FakePolytomic, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_polytomic.webhook.__main__ import main

    assert main(["ensure", "--endpoint", "https://airflow.example.com/polytomic/events"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["endpoint"] == "https://airflow.example.com/polytomic/events" and SECRET not in json.dumps(out)
    (hook,) = conn.webhooks()
    assert hook["secret"] == SECRET and hook["endpoint"] == out["endpoint"]
    assert main(["ensure", "--endpoint", "https://airflow.example.com/polytomic/events"]) == 0  # idempotent
    assert len(conn.webhooks()) == 1


@needs_airflow_3
def test_plugin_mounts_the_receiver() -> None:
    from airflow_provider_polytomic.webhook.plugin import PolytomicWebhookPlugin

    (app,) = PolytomicWebhookPlugin.fastapi_apps
    assert app["url_prefix"] == "/polytomic" and isinstance(app["app"], FastAPI)
    routes = {getattr(r, "path", None) for r in app["app"].routes}
    assert "/events" in routes


@needs_airflow_3
def test_signature_scheme_is_configurable() -> None:
    """Polytomic has not published its HMAC scheme: base64 (or another hash) must be selectable."""
    import base64
    import hashlib
    import hmac

    from airflow_provider_polytomic.webhook.receiver import create_app

    class Sink:
        async def record(self, *args: object, **kwargs: object) -> str:
            return "recorded"

    secret = "abcdef123"
    body = b'{"type": "sync.running", "event": {}}'
    good = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()
    hex_sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    app = create_app(
        recorder=Sink(),  # type: ignore[arg-type]
        secret_loader=lambda: secret,
        signature_algorithm="sha512",
        signature_encoding="base64",
    )

    async def post(signature: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            answer = await client.post("/events", content=body, headers={"Polytomic-Signature": signature})
            return answer.status_code

    assert asyncio.run(post(good)) == 200
    assert asyncio.run(post(hex_sig)) == 401


# ------------------------------------------- the pending ledger entry across a restart


class Restartable:
    """The receiver's address with a replaceable process behind it, as behind a proxy.

    :meth:`crash` stands for a SIGKILL of the process serving now: its requests in flight
    stop where they are (their tasks are cancelled and awaited, so none of their code runs
    afterwards) and are answered 502, as a proxy answers for a dead upstream. Later requests
    go to a fresh process: a new app and recorder, with no memory of the dead one's.
    """

    def __init__(self, make_app: Callable[[], Any]) -> None:
        self._make_app = make_app
        self._app = make_app()
        self._inflight: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.crashes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self._loop = asyncio.get_running_loop()
        with self._lock:
            task = asyncio.ensure_future(self._app(scope, receive, send))
            self._inflight.add(task)
        try:
            await asyncio.wait({task})
        finally:
            self._inflight.discard(task)
        if not task.cancelled():
            return task.result()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 502, "headers": headers})
        await send({"type": "http.response.body", "body": b"the upstream process died"})

    def crash(self) -> None:
        """Kill the serving process (from any thread); returns once none of its code runs."""
        with self._lock:
            dead = list(self._inflight)
            self._app = self._make_app()
            self.crashes += 1
        assert self._loop is not None and dead, "nothing in flight to interrupt"

        async def kill() -> None:
            for task in dead:
                task.cancel()
            await asyncio.wait(dead)

        asyncio.run_coroutine_threadsafe(kill(), self._loop).result(10)


@needs_airflow_3
@pytest.mark.parametrize("dies_after", ["pending-written", "created"])
def test_a_retry_after_the_receiving_process_died_records_once(conn: FakePolytomic, dies_after: str) -> None:
    """The process recording an event dies (an API-server restart) after its durable pending
    ledger entry, before or after Airflow committed the asset event; Polytomic's retry,
    served by a fresh process, looks for the event before creating it: one asset event."""
    fake = conn
    api = AirflowApiStandIn()
    sync_id = fake.add_sync("contacts", sync_id="9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d")
    with Server(api.app) as airflow:
        config = AirflowApiConfig(base_url=airflow.url, username="admin", password="pw")
        front = Restartable(lambda: create_app(recorder=AirflowApiRecorder(config), max_body_bytes=CAP))

        async def on_step(step: str) -> None:
            if step == dies_after and not front.crashes:
                await asyncio.to_thread(front.crash)

        api.on_step = on_step
        with Server(front) as server:
            ensure_receiver_webhook(server.url + "/events")
            done = fake.add_event("sync.completed", {"sync_id": sync_id})
            assert fake.wait_for_deliveries(10)
    attempts = [d for d in fake.webhook_deliveries if d.event_id == done["id"]]
    assert [d.status_code for d in attempts] == [502, 200]
    assert json.loads(attempts[-1].response_body)["result"] == (
        "duplicate" if dies_after == "created" else "recorded"
    )
    assert [e["extra"]["polytomic_event_id"] for e in api.events] == [done["id"]]
    # Completed by the retry: the polling path may skip the event now.
    assert "pending" not in api.store[(7, f"polytomic.event.{done['id']}")][0]


class FailingLedgerCompletion(httpx.AsyncHTTPTransport):
    """Real HTTP, except that a ledger write completing an entry fails before it is sent."""

    armed = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.method == "PUT" and b'"pending"' not in request.content:
            raise httpx.ConnectError("connection reset", request=request)
        return await super().handle_async_request(request)


@needs_airflow_3
@pytest.mark.parametrize("failure", ["http-500", "connection"])
def test_a_failed_final_ledger_write_still_answers_200(conn: FakePolytomic, failure: str) -> None:
    """The asset event exists: a 503 would make Polytomic deliver it again. The entry stays
    pending, so a later delivery of the same event (another worker) looks instead of creating."""
    fake = conn
    api = AirflowApiStandIn()
    transport = FailingLedgerCompletion()
    transport.armed = failure == "connection"
    api.fail_completing_writes = failure == "http-500"
    sync_id = fake.add_sync("contacts", sync_id="9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d")
    with Server(api.app) as airflow:
        config = AirflowApiConfig(base_url=airflow.url, username="admin", password="pw")
        with receiver(AirflowApiRecorder(config, transport=transport)) as server:
            ensure_receiver_webhook(server.url + "/events")
            done = fake.add_event("sync.completed", {"sync_id": sync_id})
            assert fake.wait_for_deliveries(10)
        key = (7, f"polytomic.event.{done['id']}")
        left = api.store[key][0]
        transport.armed = api.fail_completing_writes = False
        with receiver(AirflowApiRecorder(config)) as other_worker:
            body = json.dumps(next(e for e in fake.events() if e["id"] == done["id"])).encode()
            again = post(other_worker.url + "/events", body)
    attempts = [d for d in fake.webhook_deliveries if d.event_id == done["id"]]
    assert [d.status_code for d in attempts] == [200]
    assert json.loads(attempts[0].response_body)["result"] == "recorded"
    assert left["pending"] is True
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    assert [e["extra"]["polytomic_event_id"] for e in api.events] == [done["id"]]
    assert "pending" not in api.store[key][0]
