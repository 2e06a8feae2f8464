"""Helpers shared by the webhook tests: a local webhook endpoint and the SDK's payload models."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic
from polytomic.types import (
    EventingBulkSyncCanceledEvent,
    EventingBulkSyncCompletedEvent,
    EventingBulkSyncCompletedWithErrorEvent,
    EventingBulkSyncFailedEvent,
    EventingBulkSyncRunningEvent,
    EventingSyncCanceledEvent,
    EventingSyncCompletedEvent,
    EventingSyncCompletedWithErrorsEvent,
    EventingSyncFailedEvent,
    EventingSyncRunningEvent,
)

PAYLOAD_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "sync.running": EventingSyncRunningEvent,
    "sync.completed": EventingSyncCompletedEvent,
    "sync.completed_with_errors": EventingSyncCompletedWithErrorsEvent,
    "sync.failed": EventingSyncFailedEvent,
    "sync.canceled": EventingSyncCanceledEvent,
    "bulk_sync.running": EventingBulkSyncRunningEvent,
    "bulk_sync.completed": EventingBulkSyncCompletedEvent,
    "bulk_sync.completed_with_error": EventingBulkSyncCompletedWithErrorEvent,
    "bulk_sync.failed": EventingBulkSyncFailedEvent,
    "bulk_sync.canceled": EventingBulkSyncCanceledEvent,
}
"""The official SDK's payload model of each event type."""


class Endpoint:
    """A webhook endpoint on 127.0.0.1: answers the queued ``statuses``, then ``default`` (which
    a test may change), with a short body, and counts every POST."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.hits = 0
        self.cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint.cond:
                    status = endpoint.statuses.pop(0) if endpoint.statuses else endpoint.default
                    endpoint.hits += 1
                    endpoint.cond.notify_all()
                body = f"answer {status}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_hits(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` POSTs arrived; False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: self.hits >= n, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
