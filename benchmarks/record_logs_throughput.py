"""Throughput and memory of PolytomicDownloadRecordLogsOperator against curl, on loopback.

Run::

    .venv/bin/python benchmarks/record_logs_throughput.py                 # 1 GiB in 32 files
    .venv/bin/python benchmarks/record_logs_throughput.py --size-mib 64 --files 8 --format jsonl

What it does, in one run:

1. Starts a tiny HTTP "storage origin" in a **separate process** on 127.0.0.1 that serves
   ``--files`` record-log files totalling ``--size-mib`` MiB (a JSON array or JSON lines of
   ~520-byte records built by repeating one pre-rendered block, so generating them costs
   nothing). The fake Polytomic's own storage origin is not used for the bytes: it keeps
   records as Python dicts and renders each file with ``json.dumps`` per request, which for
   1 GiB would need several GiB of RAM and measure the fake rather than the operator. A
   separate process also keeps the server off the operator's GIL.
2. Starts the fake Polytomic API (in-process) and records a ``sync.completed`` event whose
   ``inserted_records`` link to those files, through its public ``add_event`` API, so the
   operator runs exactly as in production: event lookup, streaming, counting, atomic moves.
3. Runs the operator into a temporary local folder and measures wall time and peak RSS
   growth (``VmHWM`` from /proc after resetting it through ``/proc/self/clear_refs``).
4. Fetches the same files one after another with ``curl -s -o /dev/null``.
5. Prints both throughputs, their ratio, the memory growth and the record counts.

Goals (issue 4): operator throughput >= curl's; peak memory growth < 64 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="polytomic-bench-home-"))

_SERVER = textwrap.dedent(
    """
    import json, sys
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    size, files, fmt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    record = json.dumps({
        "id": 1234567, "email": "someone@example.com", "name": "Jane \\"JJ\\" Doe, [VIP]",
        "tags": ["a", "b"], "nested": {"x": 1.5, "y": None}, "note": "x" * 400,
    }).encode()
    sep = b"," if fmt == "json" else b"\\n"
    block = (record + sep) * 2000
    per_file = size // files
    reps = max(1, per_file // len(block))
    head, tail = (b"[", record + b"]") if fmt == "json" else (b"", record + b"\\n")
    length = len(head) + reps * len(block) + len(tail)
    records_per_file = reps * 2000 + 1

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            ctype = "application/json" if fmt == "json" else "application/x-ndjson"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            out = self.wfile
            out.write(head)
            view = memoryview(block)
            for _ in range(reps):
                out.write(view)
            out.write(tail)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": server.server_address[1], "length": length,
                      "records_per_file": records_per_file}), flush=True)
    server.serve_forever()
    """
)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="total size of all files (MiB)")
    parser.add_argument("--files", type=int, default=32, help="number of files")
    parser.add_argument("--format", choices=("json", "jsonl"), default="json", help="file format")
    parser.add_argument("--concurrency", type=int, default=4, help="operator max_concurrency")
    args = parser.parse_args()
    if args.size_mib < 1 or args.files < 1:
        parser.error("--size-mib and --files must be >= 1")
    curl = shutil.which("curl")
    if curl is None:
        parser.error("curl is not installed")

    from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
    from airflow_provider_polytomic.testing import FakePolytomic

    size = args.size_mib * 1024 * 1024
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(size), str(args.files), args.format],
        stdout=subprocess.PIPE,
        text=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="polytomic-bench-"))
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        ext = "json" if args.format == "json" else "jsonl"
        base = f"http://127.0.0.1:{info['port']}/files"
        urls = [f"{base}/t{i}/inserts-{i:04d}.{ext}" for i in range(args.files)]
        total_bytes = info["length"] * args.files
        expected_records = info["records_per_file"] * args.files

        with FakePolytomic() as fake:
            sync_id = fake.add_sync("bench")
            execution_id = fake.start_execution(sync_id)
            fake.add_event(
                "sync.completed",
                {
                    "sync_id": sync_id,
                    "execution_id": execution_id,
                    "status": "completed",
                    "record_count": expected_records,
                    "inserted_count": expected_records,
                    "updated_count": 0,
                    "inserted_records": urls,
                    "updated_records": None,
                },
            )
            os.environ["AIRFLOW_CONN_POLYTOMIC_DEFAULT"] = json.dumps(
                {"conn_type": "polytomic", "host": fake.url, "password": fake.api_key}
            )
            op = PolytomicDownloadRecordLogsOperator(
                task_id="bench",
                sync_id=sync_id,
                execution_id=execution_id,
                destination=str(workdir / "out"),
                record_types=["inserted"],
                max_concurrency=args.concurrency,
                strict=True,
            )
            rss_before = _status_kib("VmRSS")
            peak_reset = _reset_peak_rss()
            start = time.perf_counter()
            xcom = op.execute(context={})  # type: ignore[arg-type]
            op_seconds = time.perf_counter() - start
            peak = _status_kib("VmHWM")

        written = sum(f["bytes"] for f in xcom["files"])
        shutil.rmtree(workdir / "out", ignore_errors=True)

        start = time.perf_counter()
        for url in urls:
            subprocess.run([curl, "-s", "-o", "/dev/null", url], check=True)
        curl_seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    mib = total_bytes / 1024 / 1024
    op_rate = mib / op_seconds
    curl_rate = mib / curl_seconds
    growth_mb = (peak - rss_before) * 1024 / 1e6
    print(f"files: {args.files}  total: {mib:.0f} MiB  format: {args.format}  "
          f"concurrency: {args.concurrency}")
    print(f"records: counted {xcom['counts']['inserted']}, expected {expected_records}; "
          f"bytes written {written}")
    print(f"operator: {op_seconds:6.2f} s  {op_rate:8.1f} MiB/s")
    print(f"curl    : {curl_seconds:6.2f} s  {curl_rate:8.1f} MiB/s  (sequential, -o /dev/null)")
    print(f"ratio   : operator / curl = {op_rate / curl_rate:.2f}  (goal >= 1.0)")
    note = "" if peak_reset else " (VmHWM could not be reset: includes start-up)"
    print(f"memory  : peak RSS growth {growth_mb:.1f} MB (goal < 64 MB){note}")
    return 0 if xcom["counts"]["inserted"] == expected_records else 1


if __name__ == "__main__":
    sys.exit(main())
