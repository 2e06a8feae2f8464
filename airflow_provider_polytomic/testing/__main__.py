"""Command line: ``python -m airflow_provider_polytomic.testing serve [options]``.

Runs the fake Polytomic API in the foreground until SIGINT/SIGTERM and prints one JSON line
on stdout, e.g.::

    {"url": "http://127.0.0.1:8900", "api_key": "...", "organization_id": "...", "syncs": {"name": "id"}}

Scripts in another process drive it through the unauthenticated ``/_fake/*`` routes:
``POST /_fake/connections`` ``{"type", ...}``, ``POST /_fake/models`` ``{"connection", ...}`` and
``POST /_fake/syncs`` ``{"name", "kind", "source", "models", "target", ...}`` -> ``{"id"}``;
``POST /_fake/syncs/{sync_id}/executions`` ``{"status"?}`` -> ``{"id"}``;
``POST /_fake/syncs/{sync_id}/run`` ``{"outcome", "after", ...}`` -> ``{"id"}``;
``POST /_fake/syncs/{sync_id}/executions/{execution_id}/complete|fail|cancel|status`` with the
keyword arguments of the Python methods; ``POST /_fake/syncs/{sync_id|*}/auto_outcome``;
``POST /_fake/clock/advance`` ``{"seconds"}``; ``POST /_fake/events``; ``GET /_fake/state``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .server import FakePolytomic
from .state import EVENTS_ORDERS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_polytomic.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the fake Polytomic API until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8900, help="port (default 8900; 0 picks a free port)")
    serve.add_argument("--api-key", default="fake-api-key-0123456789", help="API key to accept")
    serve.add_argument("--organization-id", default=None, help="organization id (default: random)")
    serve.add_argument(
        "--sync",
        action="append",
        default=[],
        metavar="NAME",
        help="create a model sync NAME (repeatable); 'bulk:NAME' creates a bulk sync",
    )
    serve.add_argument(
        "--auto-complete-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="executions started through the API complete after SECONDS",
    )
    serve.add_argument("--storage-origin", action="store_true", help="serve record logs from a second port")
    serve.add_argument("--gzip-record-logs", action="store_true", help="gzip record-log files")
    serve.add_argument(
        "--webhook-disable-after",
        type=int,
        default=None,
        metavar="N",
        help="disable the webhook after N consecutive events whose every delivery failed",
    )
    serve.add_argument(
        "--events-order",
        choices=EVENTS_ORDERS,
        default="oldest_first",
        help="how GET /api/events orders a page (default oldest_first)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    fake = FakePolytomic(
        api_key=args.api_key,
        organization_id=args.organization_id,
        host=args.host,
        port=args.port,
        storage_origin=args.storage_origin,
        gzip_record_logs=args.gzip_record_logs,
        webhook_disable_after=args.webhook_disable_after,
        events_order=args.events_order,
    )
    syncs: dict[str, str] = {}
    for name in args.sync:
        if name.startswith("bulk:"):
            syncs[name[5:]] = fake.add_sync(name[5:], kind="bulk")
        else:
            syncs[name] = fake.add_sync(name)
    if args.auto_complete_after is not None:
        fake.set_auto_outcome(None, "completed", args.auto_complete_after)
    with fake:
        line = {
            "url": fake.url,
            "api_key": fake.api_key,
            "organization_id": fake.organization_id,
            "syncs": syncs,
        }
        if fake.storage_url:
            line["storage_url"] = fake.storage_url
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
