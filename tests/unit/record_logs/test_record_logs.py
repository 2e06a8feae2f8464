"""PolytomicDownloadRecordLogsOperator and its engine, over real HTTP against the fake Polytomic.

Every download test goes through the fake's API origin (events, logs index, log-URL endpoints)
and its separate storage origin (signed record-log files), so links, redirects, gzip,
truncation and header hygiene are exercised on real sockets. The logs index path has its own
module, ``test_logs_index.py``.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_polytomic._compat import Asset, ObjectStoragePath, attach_filesystem
from airflow_provider_polytomic.client import RetryableAPIError
from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.record_logs import (
    MARKER_DIR,
    RecordCounter,
    RecordCountMismatchError,
    RecordLogError,
    count_records,
    safe_file_name,
)
from airflow_provider_polytomic.record_logs.transfer import BodyReader, Decoder
from airflow_provider_polytomic.testing import FakePolytomic

# ------------------------------------------------------------------------------ fixtures


def _records(prefix: str, n: int) -> list[dict[str, Any]]:
    # Strings with structure characters, escapes and non-ASCII keep the counter honest.
    return [
        {"id": f"{prefix}-{i}", "name": f'he said "hi, [{i}]" \\ {{ok}}', "tags": ["a", {"b": i}], "ü": None}
        for i in range(n)
    ]


def _connect(fake: FakePolytomic, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        # Tiny backoff: retries are exercised, not waited for.
        "extra": {"max_retries": 3, "retry_base_wait": 0.01, "retry_max_wait": 0.05, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POLYTOMIC_DEFAULT", json.dumps(conn))


@pytest.fixture
def make_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start a fake with a storage origin, configured per test; stopped afterwards."""
    started: list[FakePolytomic] = []

    def make(**kwargs: Any) -> FakePolytomic:
        fake = FakePolytomic(storage_origin=True, **kwargs).start()
        started.append(fake)
        _connect(fake, monkeypatch)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    attach_filesystem("memory", fs)
    yield fs
    fs.store.clear()


def _run(fake: FakePolytomic, sync_id: str, execution_id: str, destination: Any, **kwargs: Any) -> dict:
    op = PolytomicDownloadRecordLogsOperator(
        task_id="record_logs",
        sync_id=sync_id,
        execution_id=execution_id,
        destination=destination,
        **kwargs,
    )
    return op.execute(context={})  # type: ignore[arg-type]


def _finished(fake: FakePolytomic, inserted: int = 5, updated: int = 3, per_file: int = 2) -> tuple:
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    ins, upd = _records("ins", inserted), _records("upd", updated)
    event = fake.complete_execution(
        sync_id, execution_id, inserted=ins, updated=upd, records_per_file=per_file
    )
    return sync_id, execution_id, ins, upd, event


def _read_records(data: bytes) -> list[dict[str, Any]]:
    text = data.decode()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------ happy paths


def test_local_destination_plain_json_array(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake(record_log_format="json")
    sync_id, execution_id, ins, _upd, _ = _finished(fake)
    dest = tmp_path / "out"

    xcom = _run(fake, sync_id, execution_id, str(dest))  # a plain local folder

    assert xcom["sync_id"] == sync_id and xcom["execution_id"] == execution_id
    assert xcom["counts"] == {"inserted": 5, "updated": 3}  # Polytomic's, from the event
    assert "counted" not in xcom  # counting is off by default
    assert [(f["record_type"], f["records"]) for f in xcom["files"]] == [
        ("inserted", None),
        ("inserted", None),
        ("inserted", None),
        ("updated", None),
        ("updated", None),
    ]
    got_ins: list[dict[str, Any]] = []
    for f in xcom["files"]:
        assert f["uri"].startswith("file://")
        path = Path(urlsplit(f["uri"]).path)
        assert path.is_relative_to(dest / f["record_type"])
        assert path.stat().st_size == f["bytes"]
        if f["record_type"] == "inserted":
            got_ins += _read_records(path.read_bytes())
    assert got_ins == ins
    # XCom holds URIs and numbers only: no record data, no signed links.
    blob = json.dumps(xcom)
    assert "ins-0" not in blob and "sig=" not in blob and fake.storage_url not in blob
    assert not [p for p in _all_files(dest) if ".partial-" in p.name]
    assert len(list((dest / MARKER_DIR).rglob("*.done"))) == 5


def test_memory_object_storage_gzip_json_lines(make_fake: Any, memory_fs: Any) -> None:
    fake = make_fake(record_log_format="jsonl", gzip_record_logs=True)
    sync_id, execution_id, _ins, upd, event = _finished(fake, inserted=4, updated=4)
    # The fake gzips odd files with Content-Encoding and serves even ones as raw .gz bytes.
    assert all(u.split("?")[0].endswith(".jsonl.gz") for u in event["event"]["inserted_records"])

    xcom = _run(fake, sync_id, execution_id, "memory://bucket/runs/1")

    assert xcom["counts"] == {"inserted": 4, "updated": 4}
    uris = [f["uri"] for f in xcom["files"]]
    # As the installed universal-pathlib spells them (0.2 writes memory:///bucket/...).
    assert uris == [
        str(ObjectStoragePath(uri))
        for uri in (
            "memory://bucket/runs/1/inserted/inserts-0001.jsonl",
            "memory://bucket/runs/1/inserted/inserts-0002.jsonl",
            "memory://bucket/runs/1/updated/updates-0001.jsonl",
            "memory://bucket/runs/1/updated/updates-0002.jsonl",
        )
    ]
    got = [r for uri in uris[2:] for r in _read_records(ObjectStoragePath(uri).read_bytes())]
    assert got == upd
    assert not [k for k in memory_fs.store if ".partial-" in k]


def test_gzip_json_array_and_plain_json_lines(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake(record_log_format="json", gzip_record_logs=True)
    sync_id, execution_id, ins, _, _ = _finished(fake, inserted=3, updated=0, per_file=3)
    xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"], count_records=True)
    (only,) = xcom["files"]
    data = Path(urlsplit(only["uri"]).path).read_bytes()
    assert not data.startswith(b"\x1f\x8b")  # stored decompressed
    assert json.loads(data) == ins and only["records"] == 3

    fake2 = make_fake(record_log_format="jsonl")
    sync_id, execution_id, ins, _, _ = _finished(fake2, inserted=3, updated=0, per_file=3)
    xcom = _run(fake2, sync_id, execution_id, tmp_path / "lines")
    assert xcom["counts"] == {"inserted": 3, "updated": 0}
    assert _read_records(Path(urlsplit(xcom["files"][0]["uri"]).path).read_bytes()) == ins


def test_sync_without_updates_gives_zero_files_and_counts(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, _, _, event = _finished(fake, inserted=2, updated=0)
    assert event["event"]["updated_records"] is None
    xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=("inserted", "updated", "deleted"))
    assert xcom["counts"] == {"inserted": 2, "updated": 0, "deleted": 0}
    assert {f["record_type"] for f in xcom["files"]} == {"inserted"}


# ------------------------------------------------------------------------ link problems


def test_expired_links_are_refreshed_through_the_api(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    fake.faults.expire_record_links = True
    sync_id, execution_id, _ins, _upd, _ = _finished(fake)

    xcom = _run(fake, sync_id, execution_id, tmp_path)

    assert xcom["counts"] == {"inserted": 5, "updated": 3}
    refused = [r for r in fake.storage_requests if r.query.get("expires")]
    assert len(refused) == 10  # 5 expired answers (403), 5 fresh links that worked
    log_calls = [
        r.path for r in fake.requests if r.path.startswith("/api/syncs/") and "/executions/" in r.path
    ]
    # One refresh per record type, not one per file.
    assert sorted(log_calls) == sorted(
        [
            f"/api/syncs/{sync_id}/executions/{execution_id}/inserts",
            f"/api/syncs/{sync_id}/executions/{execution_id}/updates",
        ]
    )


def test_refused_fresh_link_fails_after_one_refresh(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake(signed_url_ttl=-120)  # every minted link is already expired
    sync_id, execution_id, *_ = _finished(fake, inserted=1, updated=0)
    with pytest.raises(RecordLogError, match="fresh link from Polytomic was also refused"):
        _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])
    assert len(fake.storage_requests) == 2
    assert not (tmp_path / "inserted" / "inserts-0001.json").exists()


def test_event_past_retention_falls_back_to_the_log_endpoints(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, _ins, _upd, _ = _finished(fake)
    fake.clock.advance(49 * 3600)  # the event (and its links) are gone

    xcom = _run(fake, sync_id, execution_id, tmp_path, count_records=True, strict=True)

    assert xcom["counts"] == {"inserted": 5, "updated": 3}
    assert xcom["counted"] == {"inserted": 5, "updated": 3}
    paths = {r.path for r in fake.requests}
    assert f"/api/syncs/{sync_id}/executions/{execution_id}/logs" in paths  # counts and endpoints
    assert f"/api/syncs/{sync_id}/executions/{execution_id}/inserts" in paths


def test_dropped_event_falls_back_to_log_endpoint(make_fake: Any, memory_fs: Any) -> None:
    fake = make_fake()
    fake.faults.drop_events = {"sync.completed"}
    sync_id, execution_id, *_ = _finished(fake, inserted=3, updated=1)
    xcom = _run(fake, sync_id, execution_id, "memory://drop/x")
    assert xcom["counts"] == {"inserted": 3, "updated": 1}


# ------------------------------------------------------------------------- logs index


def _download(fake: FakePolytomic, sync_id: str, execution_id: str, dest: Path, **kwargs: Any) -> Any:
    from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
    from airflow_provider_polytomic.record_logs import RecordLogDownloader

    return RecordLogDownloader(PolytomicHook(), dest).download(sync_id, execution_id, **kwargs)


def _execution_calls(fake: FakePolytomic, sync_id: str, execution_id: str) -> list[str]:
    """The API paths under the execution, in the order they were requested ("" for the execution)."""
    base = f"/api/syncs/{sync_id}/executions/{execution_id}"
    return [r.path[len(base) :] or "" for r in fake.requests if r.path.startswith(base)]


@pytest.mark.parametrize(
    ("style", "link_source"),
    [("absolute", "logs_index"), ("path", "logs_index"), ("omitted", "api"), ("foreign", "api")],
)
def test_event_gone_the_logs_index_comes_before_the_per_type_endpoints(
    make_fake: Any, tmp_path: Path, style: str, link_source: str
) -> None:
    fake = make_fake()
    fake.logs_index_urls = style  # how the index writes its endpoints is not documented
    fake.faults.drop_events = {"sync.completed"}
    sync_id, execution_id, ins, upd, _ = _finished(fake)

    result = _download(fake, sync_id, execution_id, tmp_path)

    assert result.counts == {"inserted": 5, "updated": 3}
    assert result.count_sources == {"inserted": "logs_index", "updated": "logs_index"}
    # One index request, then one link request per type (the index's endpoint when it is on
    # the API, else the documented one: the same path on this fake); the execution itself is
    # not needed since the index has the counts. A foreign endpoint was never contacted.
    assert _execution_calls(fake, sync_id, execution_id) == ["/logs", "/inserts", "/updates"]
    assert result.link_source == link_source
    got = [r for f in result.files for r in _read_records(Path(urlsplit(f.uri).path).read_bytes())]
    assert got == ins + upd


def test_without_a_logs_index_links_and_counts_come_from_the_endpoints_and_execution(
    make_fake: Any, tmp_path: Path
) -> None:
    fake = make_fake()
    fake.logs_index_available = False  # a deployment without the index answers 404
    fake.faults.drop_events = {"sync.completed"}
    sync_id, execution_id, *_ = _finished(fake)

    result = _download(fake, sync_id, execution_id, tmp_path)

    assert result.counts == {"inserted": 5, "updated": 3} and result.link_source == "api"
    assert result.count_sources == {"inserted": "execution", "updated": "execution"}
    assert _execution_calls(fake, sync_id, execution_id) == ["/logs", "/inserts", "/updates", ""]
    assert len(result.files) == 5


def test_counts_the_event_lacks_come_from_the_index_only_when_needed(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id = fake.add_sync("contacts")
    execution_id = fake.start_execution(sync_id)
    fake.complete_execution(
        sync_id, execution_id, inserted=_records("i", 3), deleted=_records("d", 2), records_per_file=2
    )

    default = _download(fake, sync_id, execution_id, tmp_path / "a")  # inserted, updated
    assert default.count_sources == {"inserted": "event", "updated": "event"}
    assert _execution_calls(fake, sync_id, execution_id) == []  # the event had everything

    # sync.completed has no deleted count: the index gives it, in one request.
    result = _download(fake, sync_id, execution_id, tmp_path / "b", record_types=("inserted", "deleted"))
    assert result.counts == {"inserted": 3, "deleted": 2} and result.link_source == "event"
    assert result.count_sources == {"inserted": "event", "deleted": "logs_index"}
    assert _execution_calls(fake, sync_id, execution_id) == ["/logs"]


def test_bulk_sync_logs_come_from_its_log_endpoint_and_the_count_from_the_execution(
    make_fake: Any, tmp_path: Path
) -> None:
    fake = make_fake()
    sync_id = fake.add_sync("warehouse", kind="bulk")
    execution_id = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, execution_id, inserted=_records("b", 5), records_per_file=2)

    result = _download(fake, sync_id, execution_id, tmp_path, record_types=("total",), sync_kind="bulk")

    assert result.counts == {"total": 5} and result.count_sources == {"total": "execution"}
    assert result.link_source == "api" and len(result.files) == 3
    base = f"/api/bulk/syncs/{sync_id}/executions/{execution_id}"
    assert [r.path for r in fake.requests if r.path.startswith(base)] == [f"{base}/logs", base]
    assert not [r for r in fake.requests if r.path.startswith("/api/events")]  # bulk events have no links


def test_missing_execution_is_named_clearly_when_the_event_is_gone(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id = fake.add_sync("contacts")
    with pytest.raises(RecordLogError, match="no execution 'nope'"):
        _run(fake, sync_id, "nope", tmp_path)


def test_truncated_body_is_retried_and_never_left_at_the_final_path(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, ins, _, _ = _finished(fake, inserted=4, updated=0, per_file=4)
    fake.faults.truncate_record_logs(1)

    xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])

    assert xcom["counts"] == {"inserted": 4}
    assert len(fake.storage_requests) == 2
    assert json.loads((tmp_path / "inserted" / "inserts-0001.json").read_bytes()) == ins


@pytest.mark.parametrize(
    ("fault", "gzipped", "reason"),
    [
        ("truncate_record_logs", False, "truncated"),
        ("truncate_record_logs", True, ""),
        ("corrupt_gzip_record_logs", True, "gzip check failed"),
    ],
)
def test_a_broken_body_every_time_fails_clearly_and_leaves_nothing(
    make_fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, gzipped: bool, reason: str
) -> None:
    fake = make_fake(gzip_record_logs=gzipped)
    _connect(fake, monkeypatch, max_retries=1)
    sync_id, execution_id, *_ = _finished(fake, inserted=4, updated=0, per_file=4)
    getattr(fake.faults, fault)(10)

    with pytest.raises(RecordLogError, match=f"could not be downloaded after 1 retries: .*{reason}"):
        _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])

    assert len(fake.storage_requests) == 2
    assert [p.name for p in _all_files(tmp_path / "inserted")] == []  # no final file, no partial


def test_rerun_skips_complete_files_unless_overwrite(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, *_ = _finished(fake)
    first = _run(fake, sync_id, execution_id, tmp_path)
    downloads = len(fake.storage_requests)
    assert downloads == 5

    assert _run(fake, sync_id, execution_id, tmp_path) == first
    assert len(fake.storage_requests) == downloads  # nothing fetched again

    # A file whose size no longer matches its marker is not complete: only it is fetched again.
    victim = tmp_path / "updated" / "updates-0002.json"
    victim.write_bytes(b"[")
    assert _run(fake, sync_id, execution_id, tmp_path) == first
    assert len(fake.storage_requests) == downloads + 1
    assert fake.storage_requests[-1].path.endswith("/updates-0002.json")

    assert _run(fake, sync_id, execution_id, tmp_path, overwrite=True) == first
    assert len(fake.storage_requests) == downloads + 6


def test_destination_of_another_execution_is_refused(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, first_execution, *_ = _finished(fake)
    _run(fake, sync_id, first_execution, tmp_path)
    second_execution = fake.start_execution(sync_id)
    fake.complete_execution(sync_id, second_execution, inserted=_records("x", 1), records_per_file=2)
    with pytest.raises(RecordLogError, match="another execution"):
        _run(fake, sync_id, second_execution, tmp_path)


# ------------------------------------------------------------------------- security


def _crafted_event(fake: FakePolytomic, event: dict[str, Any], links: list[str], **changes: Any) -> None:
    payload = dict(event["event"], inserted_records=links, updated_records=None, **changes)
    fake.add_event("sync.completed", payload)


def test_links_cannot_escape_the_destination(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, _ins, _, event = _finished(fake, inserted=3, updated=0, per_file=1)
    real = event["event"]["inserted_records"]
    evil_names = ["..%2F..%2F..%2Fescaped.json", "%2e%2e%5c%2e%2e%5cescaped2.json", "%252e%252e%252fx.json"]
    crafted = []
    for url, name in zip(real, evil_names, strict=True):
        parts = urlsplit(url)
        base = parts.path.rsplit("/", 1)[0]
        crafted.append(f"{parts.scheme}://{parts.netloc}{base}/{name}?{parts.query}")
    _crafted_event(fake, event, crafted, inserted_count=3)
    dest = tmp_path / "a" / "b" / "dest"

    xcom = _run(fake, sync_id, execution_id, dest, record_types=["inserted"])

    # The storage answered 404 for the crafted names; the fresh links from the API were used,
    # and every file landed inside the destination under a sanitised name.
    assert xcom["counts"] == {"inserted": 3}
    names = sorted(Path(urlsplit(f["uri"]).path).name for f in xcom["files"])
    assert names == ["2e_2e_2fx.json", "escaped.json", "escaped2.json"]
    outside = [p for p in _all_files(tmp_path) if not p.is_relative_to(dest)]
    assert outside == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s/x/../../etc/passwd", "passwd"),
        ("https://s/a/..%2F..%2Fevil.json?sig=1", "evil.json"),
        ("https://s/a/..%5C..%5Cevil.json", "evil.json"),
        ("https://s/a/%2Fetc%2Fpasswd", "passwd"),
        ("https://s/a/..", "inserted-0007.json"),
        ("https://s/a/.hidden.json", "hidden.json"),
        ("https://s/a/", "inserted-0007.json"),
        ("https://s/a/records%00.json.gz", "records_.json"),
        ("https://s/a/C:%5CWindows%5Cx.json", "x.json"),
        ("https://s/a/%252e%252e%252f", "2e_2e_2f"),
    ],
)
def test_safe_file_name(url: str, expected: str) -> None:
    name = safe_file_name(url, "inserted", 7)
    assert name == expected
    assert "/" not in name and "\\" not in name and not name.startswith(".")


@pytest.mark.parametrize("link", ["file:///etc/passwd", "ftp://example.com/x.json", "//no-scheme/x.json"])
def test_non_http_links_are_refused(make_fake: Any, tmp_path: Path, link: str) -> None:
    fake = make_fake()
    sync_id, execution_id, _, _, event = _finished(fake, inserted=1, updated=0)
    _crafted_event(fake, event, [link])
    with pytest.raises(RecordLogError, match=r"only http and https|scheme"):
        _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])
    assert fake.storage_requests == []


def test_api_key_never_reaches_the_storage_origin(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake(gzip_record_logs=True)
    fake.faults.expire_record_links = True
    sync_id, execution_id, _, _, event = _finished(fake, inserted=2, updated=2)
    # One more link, on the API origin's own file endpoint: it needs the key and redirects
    # to storage, so the key must go to the API hop and not follow the redirect.
    api_file = f"{fake.url}/api/syncs/{sync_id}/executions/{execution_id}/inserts/inserts-0001"
    _crafted_event(fake, event, [api_file], inserted_count=2)

    xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])

    assert xcom["counts"] == {"inserted": 2}
    assert fake.storage_requests, "nothing was fetched from storage"
    for request in fake.storage_requests:
        assert not request.has_authorization
        assert all(fake.api_key not in value for value in request.headers.values())
        assert all(fake.api_key not in value for _, value in request.query_list)
    api_hop = [r for r in fake.requests if r.path.endswith("/inserts/inserts-0001")]
    assert api_hop and all(r.has_authorization for r in api_hop)


def test_secrets_and_signatures_stay_out_of_errors_and_logs(
    make_fake: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake(signed_url_ttl=-120)
    sync_id, execution_id, *_ = _finished(fake, inserted=1, updated=0)
    # Our own loggers at DEBUG. (urllib3's DEBUG log prints request lines with their query, as
    # for any requests user; Airflow task logs run at INFO.)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_polytomic")
    with pytest.raises(RecordLogError) as info:
        _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])
    text = str(info.value) + caplog.text
    assert "sig=" not in text and "expires=" not in text and fake.api_key not in text


# ------------------------------------------------------------------------------ counts


def test_counts_come_from_polytomic_and_counting_is_opt_in(
    make_fake: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake()
    sync_id, execution_id, _, _, event = _finished(fake, inserted=2, updated=0)
    # Polytomic says 5; the files hold 2.
    _crafted_event(fake, event, event["event"]["inserted_records"], inserted_count=5)

    with caplog.at_level(logging.WARNING):
        xcom = _run(fake, sync_id, execution_id, tmp_path / "off", record_types=["inserted"])
    assert xcom["counts"] == {"inserted": 5} and "counted" not in xcom
    assert [f["records"] for f in xcom["files"]] == [None]
    assert "do not match" not in caplog.text  # nothing was counted, so nothing to compare

    with caplog.at_level(logging.WARNING):
        xcom = _run(
            fake, sync_id, execution_id, tmp_path / "warn", record_types=["inserted"], count_records=True
        )
    assert xcom["counts"] == {"inserted": 5} and xcom["counted"] == {"inserted": 2}
    assert [f["records"] for f in xcom["files"]] == [2]
    assert "inserted: counted 2, Polytomic reported 5" in caplog.text

    with pytest.raises(RecordCountMismatchError, match="counted 2, Polytomic reported 5"):
        _run(
            fake,
            sync_id,
            execution_id,
            tmp_path / "strict",
            record_types=["inserted"],
            count_records=True,
            strict=True,
        )
    # strict without counting has nothing to compare: refused when the task is defined.
    with pytest.raises(ValueError, match=r"strict=True .* needs count_records=True"):
        _run(fake, sync_id, execution_id, tmp_path / "x", strict=True)


def test_rerun_with_counting_counts_files_an_uncounted_run_kept(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    sync_id, execution_id, *_ = _finished(fake, inserted=3, updated=0, per_file=2)
    first = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"])
    assert len(fake.storage_requests) == 2 and [f["records"] for f in first["files"]] == [None, None]

    counted = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"], count_records=True)
    assert len(fake.storage_requests) == 4  # the uncounted files were fetched again to count them
    assert counted["counted"] == {"inserted": 3} and [f["records"] for f in counted["files"]] == [2, 1]

    assert (
        _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"], count_records=True) == counted
    )
    assert _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"]) == first
    assert len(fake.storage_requests) == 4  # counted markers serve both


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=120, deadline=None)
@given(
    values=st.lists(JSON_VALUES, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 1]),
)
def test_counter_counts_any_json_array_split_anywhere(
    values: list[Any], cuts: list[int], ascii_only: bool, indent: int | None
) -> None:
    doc = json.dumps(values, ensure_ascii=ascii_only, indent=indent).encode()
    chunks, i, k = [], 0, 0
    while i < len(doc):
        step = cuts[k % len(cuts)]
        chunks.append(doc[i : i + step])
        i, k = i + step, k + 1
    assert count_records(chunks) == len(values)
    lines = b"".join(json.dumps(v).encode() + b"\n" for v in values if not isinstance(v, list))
    expected = sum(1 for v in values if not isinstance(v, list))
    assert count_records([lines[j : j + 3] for j in range(0, len(lines), 3)], "jsonl") == expected
    if len(doc) > 2:
        truncated = RecordCounter()
        truncated.feed(doc[:-1])
        assert truncated.finish() is None


# -------------------------------------------------------------------------- operator


def test_operator_validates_parameters() -> None:
    ok: dict[str, Any] = {"task_id": "t", "sync_id": "s", "execution_id": "e", "destination": "/tmp/x"}
    cases = [
        ({"sync_id": ""}, "sync_id"),
        ({"execution_id": None}, "execution_id"),
        ({"destination": 3}, "destination"),
        ({"destination": " "}, "destination"),
        ({"record_types": ["inserted", "upserted"]}, "'upserted'"),
        ({"record_types": []}, "record_types"),
        ({"record_types": ["inserted", "inserted"]}, "listed twice"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"overwrite": "yes"}, "overwrite"),
        ({"strict": 1, "count_records": True}, "strict"),
        ({"count_records": "yes"}, "count_records"),
        ({"strict": True}, "needs count_records=True"),
        ({"sync_kind": "stream"}, "sync_kind"),
        ({"sync_kind": "bulk"}, "bulk syncs"),
        ({"polytomic_conn_id": ""}, "polytomic_conn_id"),
        ({"destination": "s3://b/{{ run_id }}", "outlet_asset": True}, "outlet_asset"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            PolytomicDownloadRecordLogsOperator(**{**ok, **change})


def test_operator_template_fields_and_outlets(tmp_path: Path) -> None:
    op = PolytomicDownloadRecordLogsOperator(
        task_id="t", sync_id="s", execution_id="e", destination=str(tmp_path), outlet_asset=True
    )
    assert set(op.template_fields) == {"sync_id", "execution_id", "destination"}
    assert [a.uri for a in op.outlets] == [tmp_path.as_uri()]
    asset = Asset(uri="s3://bucket/polytomic")
    op = PolytomicDownloadRecordLogsOperator(
        task_id="t2", sync_id="s", execution_id="e", destination="s3://b/{{ run_id }}", outlet_asset=asset
    )
    assert op.outlets == [asset]


def test_operator_refuses_unrendered_ids(make_fake: Any, tmp_path: Path) -> None:
    fake = make_fake()
    with pytest.raises(ValueError, match="execution_id was not rendered"):
        _run(fake, "s", "{{ ti.xcom_pull(task_ids='wait')['execution_id'] }}", tmp_path)


def test_gzip_magic_is_detected_without_content_encoding() -> None:
    # Pure decoder check on a multi-member gzip body.
    body = gzip.compress(b'[{"a":1},') + gzip.compress(b'{"b":2}]')
    decoder = Decoder(None, 1024)
    out = b"".join(p for i in range(0, len(body), 5) for p in decoder.feed(body[i : i + 5]))
    out += b"".join(decoder.finish())
    assert out == b'[{"a":1},{"b":2}]'


# ------------------------------------------------------------ counting engine and I/O paths

# Strings and keys made of structure characters, quotes, backslashes and record-like keys:
# every shortcut of the counter (escape removal, quote parity, group erasure) is exercised.
_TRICKY_TEXT = st.text(alphabet='{}[],":\\ ab\nü', max_size=10)
_TRICKY_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["id", 'x":{"id', "id\\"]) | _TRICKY_TEXT, children, max_size=3)
    ),
    max_leaves=10,
)
_TRICKY_DOCS = st.one_of(
    st.lists(
        st.fixed_dictionaries({"id": st.integers(), "s": _TRICKY_TEXT}, optional={"n": _TRICKY_VALUES}),
        max_size=12,
    ),
    st.lists(_TRICKY_VALUES, max_size=10),
)


def _split(doc: bytes, cuts: list[int]) -> list[bytes]:
    chunks, i, k = [], 0, 0
    while i < len(doc):
        step = cuts[k % len(cuts)]
        chunks.append(doc[i : i + step])
        i, k = i + step, k + 1
    return chunks


@settings(max_examples=300, deadline=None)
@given(
    values=_TRICKY_DOCS,
    cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
    indent=st.sampled_from([None, 1, 2]),
    ascii_only=st.booleans(),
)
def test_counter_agrees_with_json_loads_on_arrays(
    values: list[Any], cuts: list[int], indent: int | None, ascii_only: bool
) -> None:
    doc = json.dumps(values, indent=indent, ensure_ascii=ascii_only).encode()
    expected = len(json.loads(doc))
    counter = RecordCounter()
    for i, chunk in enumerate(_split(doc, cuts)):
        # Reused read buffers arrive as bytearrays: the counter must not keep them.
        counter.feed(bytearray(chunk) if i % 2 else chunk)
    assert counter.finish() == expected
    assert counter.complete
    if len(doc) > 2:
        truncated = RecordCounter()
        for chunk in _split(doc[:-1], cuts):
            truncated.feed(chunk)
        assert truncated.finish() is None and not truncated.complete
    for garbage in (b" [1]", b" 1", b' "x"', b",", b' "]'):
        counter = RecordCounter()
        for chunk in _split(doc + garbage, cuts):
            counter.feed(chunk)
        assert counter.finish() is None and counter.trailing_garbage, garbage


# Long strings of quotes, backslashes and structure: runs of backslashes straddle chunks, and
# chunks are both shorter and longer than the strings.
_LONG_TEXT = st.text(alphabet='"\\\\,{}[]x \nü', min_size=0, max_size=150)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            _LONG_TEXT,
            st.lists(_LONG_TEXT, max_size=3),
            st.dictionaries(_LONG_TEXT, _LONG_TEXT | st.lists(_LONG_TEXT, max_size=2), max_size=3),
        ),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=10),
    shift=st.integers(min_value=0, max_value=63),
    ascii_only=st.booleans(),
)
def test_counter_agrees_with_json_loads_on_long_strings_split_anywhere(
    values: list[Any], cuts: list[int], shift: int, ascii_only: bool
) -> None:
    doc = b"[" + b" " * shift + json.dumps(values, ensure_ascii=ascii_only).encode()[1:]
    expected = len(json.loads(doc))
    for chunks in (_split(doc, cuts), [doc]):
        assert count_records(chunks) == expected


# JSON lines with blank, whitespace-only and whitespace-led lines and CRLF endings: only lines
# holding something other than whitespace count.
_LINE_BYTES = st.binary(min_size=0, max_size=50).map(
    lambda b: b.translate(bytes(range(256)), b"\n")
) | st.sampled_from([b"", b" ", b"\t\r", b"\x0b\x0c ", b'  {"a": 1}', b'{"a": "b"}\r', b"x" * 40])


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_LINE_BYTES, max_size=30),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=10),
)
def test_counter_agrees_with_line_splitting_on_json_lines(
    lines: list[bytes], final_newline: bool, cuts: list[int]
) -> None:
    doc = b"\n".join(lines) + (b"\n" if final_newline else b"")
    expected = sum(1 for line in doc.split(b"\n") if line.strip())
    counter = RecordCounter("jsonl")
    for i, chunk in enumerate(_split(doc, cuts)):
        counter.feed(bytearray(chunk) if i % 2 else chunk)
    assert counter.finish() == expected


def test_counter_counts_big_chunks_through_one_reused_buffer() -> None:
    records = [
        {"id": i, "text": f'x,{{"id": {i}}} "q" \\ [{i}]', "nested": [{"id": i}, {"id": -i}]}
        for i in range(5000)
    ]
    doc = json.dumps(records).encode()
    for size in (1024, 65536, 1 << 20):
        counter = RecordCounter("json")
        buffer = bytearray(size)
        for i in range(0, len(doc), size):
            piece = doc[i : i + size]
            if len(piece) == size:
                buffer[:] = piece
                counter.feed(buffer)  # the same object every time, as the reader passes it
            else:
                counter.feed(piece)
        assert counter.finish() == len(records)


def test_counter_counts_json_that_strict_parsers_refuse() -> None:
    doc = json.dumps([{"id": i, "v": float("inf") if i % 7 == 0 else i} for i in range(2000)]).encode()
    assert b"Infinity" in doc
    assert count_records(_split(doc, [777])) == 2000
    assert count_records([b"[NaN, -Infinity, 1]"]) == 3


def test_counter_edge_cases() -> None:
    assert count_records([b""]) == 0
    assert count_records([b"  [ ", b" ] \n"]) == 0
    assert count_records([b'["a\\', b'"]", "b"]']) == 2  # escaped quote split across chunks
    assert count_records([b'{"a": 1}\n\n{"b": 2}']) == 2  # JSON lines sniffed
    assert count_records([b"[1,2] [3]"]) is None  # two documents: not one array
    assert count_records([b"[1,2] x"]) is None
    assert count_records([b"[1,2] 3 "]) is None
    assert count_records([b"[1,2]", b" \n "]) == 2
    assert count_records([b"[1,2]", b" x"]) is None
    assert count_records([b'[1] "]']) is None  # a string opened after the close
    assert count_records([b'[{"a":[1,2,{"b":"]"}]},', b' {"a":2}', b"]"]) == 2
    assert count_records([b"[" + b" " * 3000 + b"1, 2]"]) == 2


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("count", [False, True])
def test_small_read_buffer_streams_many_chunks_through_one_buffer(
    make_fake: Any, tmp_path: Path, fmt: str, gzipped: bool, count: bool
) -> None:
    from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
    from airflow_provider_polytomic.record_logs import RecordLogDownloader

    fake = make_fake(record_log_format=fmt, gzip_record_logs=gzipped)
    sync_id, execution_id, ins, upd, _ = _finished(fake, inserted=120, updated=70, per_file=50)
    downloader = RecordLogDownloader(
        PolytomicHook(), tmp_path, chunk_size=1024, max_concurrency=2, count_records=count
    )

    result = downloader.download(sync_id, execution_id)

    assert result.counts == {"inserted": 120, "updated": 70} and not result.mismatches
    assert result.count_sources == {"inserted": "event", "updated": "event"}
    assert result.counted == ({"inserted": 120, "updated": 70} if count else None)
    got: dict[str, list[Any]] = {"inserted": [], "updated": []}
    for f in result.files:
        data = Path(urlsplit(f.uri).path).read_bytes()
        assert len(data) == f.bytes and len(data) > 1024  # several full buffers per file
        got[f.record_type] += _read_records(data)
    assert got == {"inserted": ins, "updated": upd}
    assert not [p for p in _all_files(tmp_path) if ".partial-" in p.name]


def test_connections_are_reused_across_files(make_fake: Any, tmp_path: Path) -> None:
    import urllib3

    fake = make_fake()
    sync_id, execution_id, *_ = _finished(fake, inserted=8, updated=0, per_file=1)
    opened: list[int] = []
    original = urllib3.connectionpool.HTTPConnectionPool._new_conn

    def counting(self: Any) -> Any:
        opened.append(1)
        return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(urllib3.connectionpool.HTTPConnectionPool, "_new_conn", counting)
        xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"], max_concurrency=1)
    assert xcom["counts"] == {"inserted": 8}
    # One connection to the storage origin for all eight files (plus the API's own).
    assert len(fake.storage_requests) == 8 and len(opened) <= 3


def test_body_reader_without_http_client_underneath() -> None:
    # Adapters or mocks whose raw response is not http.client's: read() is used instead.
    import io

    import requests
    import urllib3

    body = b"[" + b",".join(b'{"id": %d}' % i for i in range(500)) + b"]"
    response = requests.Response()
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False)
    reader = BodyReader(response, 1024, "https://storage/x.json")
    counter = RecordCounter()
    got = b""
    while chunk := reader.read():
        got += chunk
        counter.feed(chunk)
    assert got == body and reader.received == len(body)
    assert counter.finish() == 500
    reader.release()  # nothing to release: must not fail


# ------------------------------------------------------------- integrity without parsing


@pytest.mark.parametrize("count", [False, True])
def test_gzip_with_a_bad_crc_is_fetched_again(make_fake: Any, tmp_path: Path, count: bool) -> None:
    fake = make_fake(gzip_record_logs=True)
    sync_id, execution_id, ins, _, _ = _finished(fake, inserted=4, updated=0, per_file=2)
    fake.faults.corrupt_gzip_record_logs(2)  # both files: one with Content-Encoding, one raw .gz

    xcom = _run(fake, sync_id, execution_id, tmp_path, record_types=["inserted"], count_records=count)

    assert xcom["counts"] == {"inserted": 4}
    assert len(fake.storage_requests) == 4  # two refused for their CRC, two whole
    got = [r for f in xcom["files"] for r in json.loads(Path(urlsplit(f["uri"]).path).read_bytes())]
    assert got == ins


def test_gzip_length_check_and_a_stream_cut_before_its_trailer() -> None:
    body = bytearray(gzip.compress(b'[{"a": 1}]' * 50))
    body[-1] ^= 0xFF  # ISIZE, the uncompressed length, no longer matches
    with pytest.raises(RetryableAPIError, match="gzip check failed"):
        decoder = Decoder("gzip", 1024)
        for _ in decoder.feed(bytes(body)):
            pass
        list(decoder.finish())
    decoder = Decoder(None, 1024)  # sniffed by magic bytes, no trailer at all
    assert b"".join(decoder.feed(gzip.compress(b"[1, 2]")[:-8]))
    with pytest.raises(RetryableAPIError, match="ended before its gzip trailer"):
        list(decoder.finish())
