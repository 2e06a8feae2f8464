"""``python -m airflow_provider_polytomic.webhook``: manage the receiver from a shell.

Commands:

* ``ensure --endpoint URL [--conn-id ID]`` - point the organization's webhook at the
  receiver (secret from the connection's ``webhook_secret``); prints id and endpoint.
* ``serve [--host 127.0.0.1] [--port 8090] [--conn-id ID]`` - run the receiver alone
  with uvicorn (behind your own ingress).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_polytomic.webhook")
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure", help="point the organization's webhook at the receiver")
    ensure.add_argument("--endpoint", required=True, help="the receiver's public URL")
    ensure.add_argument("--conn-id", default="polytomic_default", help="the polytomic connection id")
    serve = sub.add_parser("serve", help="run the receiver with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--conn-id", default="polytomic_default", help="the polytomic connection id")
    serve.add_argument("--airflow-api-conn-id", default="polytomic_airflow_api")
    args = parser.parse_args(argv)

    if args.command == "ensure":
        from airflow_provider_polytomic.operators.webhook import ensure_receiver_webhook

        try:
            # Some Airflow versions log to stdout; keep stdout for the JSON answer alone.
            with contextlib.redirect_stdout(sys.stderr):
                result = ensure_receiver_webhook(args.endpoint, args.conn_id)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result))
        return 0

    import uvicorn

    from airflow_provider_polytomic.webhook.receiver import create_app
    from airflow_provider_polytomic.webhook.recorder import AirflowApiRecorder

    app = create_app(
        polytomic_conn_id=args.conn_id,
        recorder=AirflowApiRecorder(airflow_api_conn_id=args.airflow_api_conn_id),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
