"""Security properties: webhook signatures, hostile payloads, and where the API key may go.

* ``verify_signature`` rejects tampered bodies and every malformed signature, and accepts
  exactly what ``sign`` produced (Hypothesis properties).
* Arbitrary JSON through ``parse_event`` / ``Event.payload`` / the events pager /
  ``WaitDecider.observe_events`` never raises and never decides a wait on its own.
* The API key only ever travels to the API host: not to the storage origin, not across
  redirects, not to look-alike hosts (real HTTP, recording servers on 127.0.0.1).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_polytomic.event_pager import EventPager
from airflow_provider_polytomic.exceptions import PolytomicAPIError
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.models import (
    Event,
    EventType,
    Execution,
    Outcome,
    classify,
    parse_event,
    parse_events,
)
from airflow_provider_polytomic.record_logs import LinkSet, RecordLogDownloader, RecordLogError
from airflow_provider_polytomic.signature import sign, verify_signature
from airflow_provider_polytomic.sync_wait import WaitDecider, WaitTarget
from airflow_provider_polytomic.testing import FakePolytomic

pytest_plugins = ["pytester"]

BODY = b'{"id":"e1","type":"sync.completed","event":{"sync_id":"s1","execution_id":"x1"}}'
SECRET = "webhook-secret-abc123"

# ------------------------------------------------------------------------------ signatures


def test_valid_signature_is_accepted_in_both_encodings_and_with_a_prefix() -> None:
    hex_sig = sign(BODY, SECRET)
    assert hex_sig == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert verify_signature(BODY, hex_sig, SECRET)
    assert verify_signature(BODY, f"sha256={hex_sig}", SECRET)
    assert verify_signature(BODY, f"  {hex_sig.upper()}  ", SECRET)
    b64 = sign(BODY, SECRET, encoding="base64")
    assert verify_signature(BODY, b64, SECRET, encoding="base64")
    assert not verify_signature(BODY, b64, SECRET)  # base64 is not hex
    assert not verify_signature(BODY, hex_sig, SECRET, encoding="base64")


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b"completed", b"failed\x00\x00\x00"),
        BODY.replace(b"x1", b"x2"),
        BODY + b" ",
        b" " + BODY,
        BODY[:-1],
        b"",
        BODY.upper(),
    ],
    ids=["type", "execution", "trailing-space", "leading-space", "truncated", "empty", "case"],
)
def test_tampered_body_is_rejected(body: bytes) -> None:
    assert not verify_signature(body, sign(BODY, SECRET), SECRET)


GOOD = sign(BODY, SECRET)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "   ",
        GOOD[:-1],
        GOOD[:-2],
        GOOD[:32],
        GOOD + "00",
        GOOD + "0",
        "0" * 64,
        "g" * 64,
        GOOD[:-1] + "z",
        "sha256=",
        "sha512=" + GOOD,
        GOOD.replace(GOOD[0], "x", 1),
        "😀" * 32,
        sign(BODY, SECRET, algorithm="sha1"),
        sign(BODY, SECRET, algorithm="sha512"),
        base64.b64encode(bytes.fromhex(GOOD)).decode(),
    ],
    ids=lambda s: repr(s)[:24],
)
def test_malformed_signature_is_rejected(signature: str | None) -> None:
    if signature == "sha512=" + GOOD:
        # The prefix is tolerated but the digest is still HMAC-SHA256: this one is valid.
        assert verify_signature(BODY, signature, SECRET)
        return
    assert not verify_signature(BODY, signature, SECRET)


@pytest.mark.parametrize(
    "secret", ["", "webhook-secret-abc12", "webhook-secret-abc1234", "WEBHOOK-SECRET-ABC123"]
)
def test_other_secrets_are_rejected(secret: str) -> None:
    assert not verify_signature(BODY, GOOD, secret)


def test_empty_secret_never_verifies_even_its_own_signature() -> None:
    assert not verify_signature(BODY, sign(BODY, ""), "")


def test_unknown_encoding_or_algorithm_is_refused() -> None:
    assert not verify_signature(BODY, GOOD, SECRET, encoding="b32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a hashlib algorithm"):
        sign(BODY, SECRET, algorithm="nope")


secrets_ = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=2048)


@settings(max_examples=300, deadline=None)
@given(body=bodies, secret=secrets_, encoding=st.sampled_from(["hex", "base64"]))
def test_property_sign_then_verify_holds(body: bytes, secret: str, encoding: str) -> None:
    assert verify_signature(body, sign(body, secret, encoding=encoding), secret, encoding=encoding)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(body=bodies.filter(bool), secret=secrets_, data=st.data())
def test_property_any_single_byte_change_fails(body: bytes, secret: str, data: st.DataObject) -> None:
    signature = sign(body, secret)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    tampered = body[:index] + bytes([new]) + body[index + 1 :]
    assert not verify_signature(tampered, signature, secret)
    # Dropping or adding one byte is a change too.
    assert not verify_signature(body[:index] + body[index + 1 :], signature, secret)
    assert not verify_signature(body + bytes([new]), signature, secret)


@settings(max_examples=200, deadline=None)
@given(body=bodies, secret=secrets_, other=secrets_, data=st.data())
def test_property_other_secret_or_mangled_signature_fails(
    body: bytes, secret: str, other: str, data: st.DataObject
) -> None:
    signature = sign(body, secret)
    if other != secret:
        assert not verify_signature(body, signature, other)
    cut = data.draw(st.integers(0, len(signature) - 1), label="cut")
    assert not verify_signature(body, signature[:cut], secret)
    assert not verify_signature(body, signature + "00", secret)
    assert not verify_signature(body, "00" + signature[2:], secret) or signature.startswith("00")


# ------------------------------------------------------------------------ hostile payloads

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
WATCHED_SYNC, WATCHED_EXECUTION = "sync-1", "exec-1"
BASELINE = datetime(2026, 1, 1, tzinfo=timezone.utc)


@st.composite
def event_like(draw: st.DrawFn) -> Any:
    """Arbitrary JSON, or an event-shaped object with hostile field values."""
    if draw(st.booleans()):
        return draw(json_values)
    payload: dict[str, Any] = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5))
    for key, value in (
        ("sync_id", st.sampled_from([WATCHED_SYNC, None, 7, [WATCHED_SYNC], {"id": WATCHED_SYNC}])),
        ("execution_id", st.sampled_from([WATCHED_EXECUTION, None, 3.5, "", [WATCHED_EXECUTION]])),
        ("status", json_values),
        ("inserted_count", json_values),
        ("inserted_records", json_values),
        ("error", json_values),
    ):
        if draw(st.booleans()):
            payload[key] = draw(value)
    item: dict[str, Any] = {
        "id": draw(st.one_of(st.text(max_size=8), json_values)),
        "type": draw(st.one_of(st.sampled_from(EventType.ALL), json_values)),
        "created_at": draw(
            st.one_of(
                st.sampled_from(["2026-01-02T00:00:00Z", "2025-12-31T00:00:00Z", "not a date", "", 0, None]),
                json_values,
            )
        ),
        "event": draw(st.one_of(st.just(payload), json_values)),
    }
    for key in list(item):
        if draw(st.integers(0, 5)) == 0:
            del item[key]
    return item


def _running_execution() -> Execution:
    return Execution(id=WATCHED_EXECUTION, status="running", completed_at=None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(event_like(), max_size=6), by_id=st.booleans())
def test_property_hostile_events_never_raise_nor_decide(items: list[Any], by_id: bool) -> None:
    events = [e for e in (parse_event(item) for item in items) if e is not None]
    assert parse_events(items) == events
    for event in events:
        assert isinstance(event, Event)
        event.payload  # noqa: B018 - must not raise
        assert isinstance(event.outcome, Outcome)
        event.sync_id, event.execution_id  # noqa: B018
    target = WaitTarget(
        sync_id=WATCHED_SYNC, execution_id=WATCHED_EXECUTION if by_id else None, baseline=BASELINE
    )
    watch = WaitDecider(target, status_check_interval=60)
    watch.observe_events(events)
    # Events alone never decide, whatever they claim...
    assert watch.result is None
    # ...and while the execution is running, a status check keeps the wait going.
    assert watch.observe_executions([_running_execution()]) is None
    assert watch.result is None


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(json_values, st.dictionaries(st.sampled_from(["data", "pagination", "x"]), json_values))
)
def test_property_events_pager_survives_any_body(body: Any) -> None:
    pager = EventPager(starting_after=BASELINE, limit=2)
    call = pager.next_call()
    assert call is not None
    wrapped = call.parse(body)  # the Call's own parse turns any JSON into the page dict
    out = pager.feed(wrapped)
    assert all(isinstance(e, Event) for e in out)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_property_classify_unknown_values_are_running(value: Any) -> None:
    outcome = classify(value)  # type: ignore[arg-type]
    known = {t.lower() for t in EventType.ALL} | {
        "completed",
        "errors",
        "failed",
        "interrupted",
        "canceled",
    }
    if not (isinstance(value, str) and value.strip().lower() in known):
        assert outcome is Outcome.RUNNING


def test_a_terminal_event_needs_the_status_endpoint_to_agree() -> None:
    """A ``sync.completed`` for a running execution (forged, or out of order) changes nothing."""
    forged = parse_event(
        {
            "id": "ev",
            "type": "sync.completed",
            "created_at": "2026-01-02T00:00:00Z",
            "event": {"sync_id": WATCHED_SYNC, "execution_id": WATCHED_EXECUTION, "status": "completed"},
        }
    )
    assert forged is not None
    watch = WaitDecider(WaitTarget(sync_id=WATCHED_SYNC, execution_id=WATCHED_EXECUTION, baseline=BASELINE))
    watch.observe_events([forged])
    assert watch.unconfirmed and watch.status_check_due()
    assert watch.observe_executions([_running_execution()]) is None
    # A failed execution stays failed even with a completed event in hand.
    failed = Execution(id=WATCHED_EXECUTION, status="failed", completed_at=BASELINE + timedelta(hours=1))
    result = watch.observe_executions([failed])
    assert result is not None and result.outcome is Outcome.FAILED


# ------------------------------------------------------------------------- where the key goes


class Recorder(ThreadingHTTPServer):
    """A third-party host on 127.0.0.1 recording every request's headers."""

    daemon_threads = True

    def __init__(self, redirect_to: str | None = None) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to = redirect_to
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if recorder.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", recorder.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'[{"id": 1}]'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def _connect(fake: FakePolytomic, host: str | None = None) -> Any:
    conn = {
        "conn_type": "polytomic",
        "host": host or fake.url,
        "password": fake.api_key,
        "extra": {"max_retries": 1, "retry_base_wait": 0.01, "retry_max_wait": 0.02},
    }
    return mock.patch.dict(os.environ, {"AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps(conn)})


def _carries_key(headers: dict[str, str], key: str) -> bool:
    """Does any header carry the key, raw or inside a Basic credential? (A link's own userinfo
    becomes a Basic header of its own: that is not our key.)"""
    for value in headers.values():
        if key in value:
            return True
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "basic":
            try:
                if key in base64.b64decode(token).decode("utf-8", "replace"):
                    return True
            except ValueError:
                continue
    return False


def _download(fake: FakePolytomic, links: list[str], dest: Path) -> Any:
    hook = PolytomicHook()
    downloader = RecordLogDownloader(hook, str(dest), count_records=True)
    link_set = LinkSet({"inserted": links}, {"inserted": None}, "event")
    return downloader.download("s", "x", ("inserted",), links=link_set)


def test_api_key_never_reaches_the_storage_origin_even_through_api_redirects(tmp_path: Path) -> None:
    with FakePolytomic(storage_origin=True) as fake, _connect(fake):
        sync_id = fake.add_sync("contacts")
        execution_id = fake.start_execution(sync_id)
        event = fake.complete_execution(
            sync_id, execution_id, inserted=[{"id": i} for i in range(4)], records_per_file=2
        )
        signed = event["event"]["inserted_records"]
        # The API's own file endpoint answers 302 to the storage origin: the key goes to the
        # API hop only.
        via_api = [
            f"{fake.url}/api/syncs/{sync_id}/executions/{execution_id}/inserts/inserts-0001",
            f"{fake.url}/api/syncs/{sync_id}/executions/{execution_id}/inserts/inserts-0002",
        ]
        result = _download(fake, via_api, tmp_path / "a")
        assert sum(f.records for f in result.files) == 4
        result = _download(fake, signed, tmp_path / "b")
        assert sum(f.records for f in result.files) == 4
        assert fake.storage_requests, "the storage origin was not used"
        for request in fake.storage_requests:
            assert not _carries_key(request.headers, fake.api_key), request
        api_hops = [r for r in fake.requests if "/inserts/" in r.path]
        assert api_hops and all(r.headers.get("authorization") for r in api_hops)


def test_api_key_never_sent_to_files_on_the_api_host_outside_api(tmp_path: Path) -> None:
    """Without a storage origin the fake serves signed links from the API host under /files/:
    same host, but not the API, so no key."""
    with FakePolytomic() as fake, _connect(fake):
        sync_id = fake.add_sync("contacts")
        execution_id = fake.start_execution(sync_id)
        event = fake.complete_execution(sync_id, execution_id, inserted=[{"id": 1}])
        _download(fake, event["event"]["inserted_records"], tmp_path)
        files = [r for r in fake.requests if r.path.startswith("/files/")]
        assert files and not any(_carries_key(r.headers, fake.api_key) for r in files)


@pytest.mark.parametrize("trick", ["redirect-from-storage", "userinfo-lookalike", "other-port"])
def test_api_key_never_sent_to_a_third_party_host(trick: str, recorder: Recorder, tmp_path: Path) -> None:
    with FakePolytomic() as fake, _connect(fake):
        api_port = fake.url.rsplit(":", 1)[1]
        if trick == "redirect-from-storage":
            bouncer = Recorder(redirect_to=f"{recorder.url}/api/stolen")
            links = [f"{bouncer.url}/api/inserts-0001.json"]
        elif trick == "userinfo-lookalike":
            bouncer = None
            links = [f"http://127.0.0.1:{api_port}@127.0.0.1:{recorder.url.rsplit(':', 1)[1]}/api/x.json"]
        else:
            bouncer = None
            links = [f"{recorder.url}/api/syncs/s/executions/x/inserts/f.json"]
        try:
            with contextlib.suppress(RecordLogError):
                _download(fake, links, tmp_path)
        finally:
            if bouncer is not None:
                bouncer.close()
        assert recorder.seen, "the third-party host was never contacted: the test proves nothing"
        for _path, headers in recorder.seen + (bouncer.seen if bouncer else []):
            assert not _carries_key(headers, fake.api_key), headers


def test_api_calls_do_not_follow_redirects_off_the_api_host(recorder: Recorder) -> None:
    """An API answer redirecting elsewhere is an error, never a second request with the key."""
    bouncer = Recorder(redirect_to=f"{recorder.url}/api/me")
    try:
        with FakePolytomic() as fake, _connect(fake, host=bouncer.url):
            with pytest.raises(PolytomicAPIError) as err:
                PolytomicHook().get_identity()
            assert fake.api_key not in str(err.value)
    finally:
        bouncer.close()
    assert bouncer.seen and not recorder.seen


# ----------------------------------------------------------------- the secret-audit plugin

_AUDITED_TESTS = """
import json, logging
from airflow_provider_polytomic.testing.state import PolytomicState

def test_clean():
    print("nothing to see")

def test_leaks_the_fake_key_on_stdout():
    print("calling with fake-api-key-0123456789")

def test_leaks_a_connection_password_in_logs(monkeypatch):
    conn = {"conn_type": "polytomic", "password": "conn-secret-4242"}
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", json.dumps(conn))
    logging.getLogger("x").warning("sending conn-secret-4242")

def test_leaks_a_webhook_secret_in_an_exception():
    PolytomicState().create_webhook({"endpoint": "http://127.0.0.1:1/hook", "secret": "hook-secret-9876"})
    raise RuntimeError("signature check with hook-secret-9876 failed")

def test_mentions_a_secret_in_its_own_assertion():
    key = "fake-api-key-0123456789"
    assert key == "something else"
"""


def _run_audited(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.secret_audit"]')
    pytester.makepyfile(test_audited=source)
    root = str(Path(__file__).resolve().parents[2])
    pytester._monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")


def test_secret_audit_fails_the_session_and_names_each_leak(pytester: pytest.Pytester) -> None:
    result = _run_audited(pytester, _AUDITED_TESTS)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "SECRET LEAKS" in out and "3 leak(s)" in out, out
    leak_lines = [line for line in out.splitlines() if "test_audited.py::" in line and " in " in line]
    assert any("test_leaks_the_fake_key_on_stdout: in Captured stdout call" in line for line in leak_lines)
    assert any(
        "test_leaks_a_connection_password_in_logs: in Captured log call" in line for line in leak_lines
    )
    assert any(
        "test_leaks_a_webhook_secret_in_an_exception: in exception (call)" in line for line in leak_lines
    )
    assert not any("test_clean" in line or "own_assertion" in line for line in leak_lines), leak_lines
    # The report masks what leaked.
    assert not any("conn-secret-4242" in line or "hook-secret-9876" in line for line in leak_lines)


def test_secret_audit_passes_a_clean_session(pytester: pytest.Pytester) -> None:
    result = _run_audited(pytester, "def test_ok():\n    print('hello')\n")
    assert result.ret == pytest.ExitCode.OK
    assert "no leak" in result.stdout.str()
