"""Record-log files: writing them, signing their URLs, serving them, indexing and exporting them."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import secrets
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..records import MODEL_LOG_TYPES, FakeApiError, format_time
from .context import Org
from .executions import Execution

__all__ = ["LOG_TYPE_ALIASES", "FileResponse", "RecordLogsBackend"]

LOG_TYPE_ALIASES = {
    "records": "records",
    "total": "records",
    "total_records": "records",
    "inserts": "inserts",
    "inserted": "inserts",
    "inserted_records": "inserts",
    "updates": "updates",
    "updated": "updates",
    "updated_records": "updates",
    "deletes": "deletes",
    "deleted": "deletes",
    "deleted_records": "deletes",
    "errors": "errors",
    "errored": "errors",
    "errored_records": "errors",
    "warnings": "warnings",
}
"""Names accepted for a log type by :meth:`RecordLogsBackend.records`."""


@dataclass
class _LogFile:
    token: str
    filename: str
    record_type: str
    index: int
    records: list[dict[str, Any]]
    sync_id: str
    execution_id: str
    archive: bytes | None = None
    """Pre-built bytes (a log export's zip archive) instead of records."""


@dataclass(frozen=True)
class FileResponse:
    """What a file URL answers (computed by :meth:`RecordLogsBackend.file_response`)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class RecordLogsBackend:
    """The record-log files of every execution, served at signed URLs.

    Signed URLs carry ``expires`` (Unix time) and an HMAC ``sig``; they are served by the API
    origin or, with ``storage_origin``, by a second server that never sees the API key.
    """

    def __init__(self, org: Org) -> None:
        """No files yet; URLs are signed with a fresh random key."""
        self._org = org
        self._files: dict[str, _LogFile] = {}
        self._signing_key = secrets.token_bytes(32)

    # -- writing -------------------------------------------------------------------------------

    def write(self, execution: Execution, by_type: dict[str, list[dict[str, Any]]], per_file: int) -> None:
        """Write ``execution``'s records in files of ``per_file`` records, per log type."""
        settings = self._org.settings
        ext = ".jsonl" if settings.record_log_format == "jsonl" else ".json"
        if settings.gzip_record_logs:
            ext += ".gz"
        with self._org.lock:
            for record_type, records in by_type.items():
                tokens = []
                for index, start in enumerate(range(0, len(records), per_file), start=1):
                    token = uuid.uuid4().hex
                    self._files[token] = _LogFile(
                        token,
                        f"{record_type}-{index:04d}{ext}",
                        record_type,
                        index,
                        records[start : start + per_file],
                        execution.sync_id,
                        execution.id,
                    )
                    tokens.append(token)
                execution.logs[record_type] = tokens

    def records(self, execution: Execution, record_type: str) -> list[dict[str, Any]]:
        """The records in ``execution``'s files of ``record_type`` (aliases accepted)."""
        kind = LOG_TYPE_ALIASES.get(record_type)
        if kind is None:
            raise ValueError(f"unknown record type {record_type!r}")
        with self._org.lock:
            return [r for token in execution.logs.get(kind, []) for r in self._files[token].records]

    # -- URLs ----------------------------------------------------------------------------------

    def expires_at(self, *, expired: bool = False) -> datetime:
        """When a URL signed now expires (or expired a minute ago)."""
        seconds = -60 if expired else self._org.settings.signed_url_ttl
        return (self._org.now() + timedelta(seconds=seconds)).replace(microsecond=0)

    def _signature(self, token: str, filename: str, expires: int) -> str:
        msg = f"{token}/{filename}:{expires}".encode()
        return hmac.new(self._signing_key, msg, hashlib.sha256).hexdigest()[:40]

    def signed_url(self, token: str, *, expired: bool = False) -> str:
        """A signed URL of one file (already expired with ``expired``)."""
        org = self._org
        log = self._files[token]
        expires = int(self.expires_at(expired=expired).timestamp())
        base = org.storage_url if (org.storage_origin and org.storage_url) else org.url
        sig = self._signature(token, log.filename, expires)
        return f"{base}/files/{token}/{log.filename}?expires={expires}&sig={sig}"

    def urls(self, execution: Execution, log_type: str, *, expired: bool = False) -> list[str]:
        """Signed URLs of ``execution``'s files of ``log_type``."""
        with self._org.lock:
            return [self.signed_url(t, expired=expired) for t in execution.logs.get(log_type, [])]

    def url_set(self, execution: Execution, log_type: str) -> dict[str, Any]:
        """``{"urls": [...], "expires": ...}``: fresh URLs of one log type."""
        return {"urls": self.urls(execution, log_type), "expires": format_time(self.expires_at())}

    def endpoint(self, sync_id: str, execution_id: str, tail: str) -> str | None:
        """The API endpoint ``.../executions/{id}/{tail}`` written as ``logs_index_urls`` says."""
        path = f"/api/syncs/{sync_id}/executions/{execution_id}/{tail}"
        style = self._org.settings.logs_index_urls
        if style == "omitted":
            return None
        if style == "path":
            return path
        if style == "foreign":
            return f"http://logs.invalid{path}"
        return f"{self._org.url}{path}"

    def index(self, sync_id: str, execution: Execution) -> dict[str, Any]:
        """A model execution's logs index: per log type ``{"count", "url"}``."""
        if not self._org.settings.logs_index_available:
            raise FakeApiError(404, "not found")
        index: dict[str, Any] = {}
        with self._org.lock:
            for log_type in MODEL_LOG_TYPES:
                count = sum(len(self._files[t].records) for t in execution.logs.get(log_type, []))
                entry: dict[str, Any] = {"count": count}
                url = self.endpoint(sync_id, execution.id, log_type)
                if url is not None:
                    entry["url"] = url
                index[log_type] = entry
        return index

    def file_url(self, execution: Execution, log_type: str, filename: str) -> str:
        """A fresh signed URL of one file by name (with or without extension); 404 when unknown."""
        with self._org.lock:
            for token in execution.logs.get(log_type, []):
                name = self._files[token].filename
                if filename in (name, name.split(".", 1)[0]):
                    return self.signed_url(token)
        raise FakeApiError(404, f"log file {filename} not found")

    def export(self, execution: Execution) -> str:
        """Package ``execution``'s log files in a zip archive; return the archive's signed URL."""
        with self._org.lock:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for tokens in execution.logs.values():
                    for token in tokens:
                        log = self._files[token]
                        archive.writestr(log.filename.removesuffix(".gz"), self._render(log)[0])
            token = uuid.uuid4().hex
            self._files[token] = _LogFile(
                token,
                f"logs-{execution.id}.zip",
                "export",
                0,
                [],
                execution.sync_id,
                execution.id,
                buffer.getvalue(),
            )
            return self.signed_url(token)

    # -- serving -------------------------------------------------------------------------------

    def _render(self, log: _LogFile) -> tuple[bytes, str]:
        if log.archive is not None:
            return log.archive, "application/zip"
        if self._org.settings.record_log_format == "jsonl":
            return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in log.records).encode(), (
                "application/x-ndjson"
            )
        return json.dumps(log.records, separators=(",", ":")).encode(), "application/json"

    def file_response(self, token: str, filename: str, query: dict[str, str]) -> FileResponse:
        """Serve a signed file URL (403 when expired or badly signed, 404 when unknown)."""
        with self._org.lock:
            log = self._files.get(token)
        if log is None or log.filename != filename:
            return _error_file(404, "NoSuchKey", "the specified key does not exist")
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            return _error_file(403, "AccessDenied", "missing or malformed expires")
        if not hmac.compare_digest(self._signature(token, filename, expires), query.get("sig", "")):
            return _error_file(403, "SignatureDoesNotMatch", "the request signature does not match")
        if self._org.clock.timestamp() > expires:
            return _error_file(403, "AccessDenied", "request has expired")
        raw, content_type = self._render(log)
        headers = [("content-type", content_type)]
        if log.archive is None and filename.endswith(".gz"):
            raw = gzip.compress(raw, mtime=0)
            if log.index % 2 == 1:
                headers.append(("content-encoding", "gzip"))
            else:
                headers = [("content-type", "application/gzip")]
        headers.append(("content-length", str(len(raw))))
        return FileResponse(200, headers, raw)


def _error_file(status: int, code: str, message: str) -> FileResponse:
    body = json.dumps({"code": code, "message": message}).encode()
    return FileResponse(
        status, [("content-type", "application/json"), ("content-length", str(len(body)))], body
    )
