"""Throughput and memory of PolytomicDownloadRecordLogsOperator against curl, on loopback.

Run::

    .venv/bin/python benchmarks/record_logs_throughput.py            # 1 GiB in 32 files, both formats
    .venv/bin/python benchmarks/record_logs_throughput.py --size-mib 64 --files 8 --format jsonl

What it does, in one run, per format (JSON array, then JSON lines):

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
3. One untimed warm-up of each side on the first file (``--no-warmup`` skips it): the
   operator's first call in a process pays lazy imports and the connection lookup once, as a
   worker does when the task starts.
4. ``--repeat`` times, alternating which goes first:

   * the operator with **default settings** into a temporary local folder (wall time; peak
     RSS growth from ``VmHWM`` after resetting it through ``/proc/self/clear_refs``);
   * the operator again with ``count_records=True, strict=True`` (every byte counted in
     Python, and the count checked against the event's);
   * **curl to disk**, the baseline the target is measured against: one
     ``curl -s -o <file> <url> -o <file> <url> ...`` process fetching the same files one
     after another into the same file system (bytes land in files, as with the operator;
     one process and one reused connection, so no per-file process start is charged to curl);
   * curl to ``/dev/null`` (same, bytes discarded): a second, network-only reference.

   ``sync`` runs before each timed step so no one pays for another's write-back, and every
   step writes into the same kind of page-cache pages (``--pages``, see ``_prepare_pages``).
5. Prints each repeat's figures and ratios (measured in the same run, back to back), the
   median ratios and their range.

Goals: with default settings, operator throughput >= curl's (to disk) and peak memory growth
<= 64 MB, in pure Python. ``count_records=True`` has no throughput goal; its figures show what
counting costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Keeps the operator's per-run INFO lines (Airflow's structlog output) out of the table.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
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


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), load average {load}"


def _prepare_pages(args: argparse.Namespace, workdir: Path, size: int) -> None:
    """Give every timed step the same kind of page-cache pages to write into.

    On VMs with free page reporting (virtio-balloon; this machine's kernel logs "Free page
    reporting enabled") pages free for about 2 s are handed back to the host, and the next
    write into them pays a host fault per page, the more so the larger the ``write()``
    (``record_counting.py --part writes`` measures it). Left alone, that cost lands on
    whichever side happens to run after a pause. ``recycled`` (default) writes and deletes a
    scratch file of the same size right before each step, so both sides write into just-freed
    pages; ``cold`` waits until freed pages have been reported, so both write into those.
    """
    if args.pages == "cold":
        time.sleep(5)
        return
    scratch = workdir / "scratch.bin"
    block = b"\0" * (1 << 20)
    with open(scratch, "wb") as f:
        for _ in range(max(1, size >> 20)):
            f.write(block)
    scratch.unlink()


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _curl(curl: str, urls: list[str], outdir: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds of one curl process fetching ``urls`` one after another (to files
    or /dev/null)."""
    args = [curl, "-s", "--fail"]
    for i, url in enumerate(urls):
        args += ["-o", str(outdir / f"{i:04d}") if outdir is not None else os.devnull, url]
    if outdir is not None:
        outdir.mkdir(parents=True)
    os.sync()
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu


def _operator(sync_id: str, execution_id: str, dest: Path, concurrency: int, count: bool) -> tuple:
    from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator

    op = PolytomicDownloadRecordLogsOperator(
        task_id="bench",
        sync_id=sync_id,
        execution_id=execution_id,
        destination=str(dest),
        record_types=["inserted"],
        max_concurrency=concurrency,
        count_records=count,
        strict=count,
    )
    os.sync()
    rss_before = _status_kib("VmRSS")
    peak_reset = _reset_peak_rss()
    cpu = _cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    xcom = op.execute(context={})  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    cpu = _cpu(resource.RUSAGE_SELF) - cpu
    growth_mb = (_status_kib("VmHWM") - rss_before) * 1024 / 1e6
    return seconds, cpu, growth_mb, peak_reset, xcom


def run_format(args: argparse.Namespace, fmt: str, curl: str) -> bool:
    from airflow_provider_polytomic.testing import FakePolytomic

    # Keep the per-file INFO lines of the operator out of the table.
    # (and the "outside of the Task Runner" warning of calling execute() directly).
    for name in ("airflow", "airflow_provider_polytomic", "airflow.task"):
        logging.getLogger(name).setLevel(logging.ERROR)

    size = args.size_mib * 1024 * 1024
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(size), str(args.files), fmt],
        stdout=subprocess.PIPE,
        text=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="polytomic-bench-", dir=args.workdir))
    ok = True
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        ext = "json" if fmt == "json" else "jsonl"
        base = f"http://127.0.0.1:{info['port']}/files"
        urls = [f"{base}/t{i}/inserts-{i:04d}.{ext}" for i in range(args.files)]
        total_bytes = info["length"] * args.files
        expected_records = info["records_per_file"] * args.files
        mib = total_bytes / 1024 / 1024
        print(f"\n== format: {'JSON array' if fmt == 'json' else 'JSON lines'}  files: {args.files}  "
              f"total: {mib:.0f} MiB  operator max_concurrency: {args.concurrency}  pages: {args.pages}",
              flush=True)
        print(f"{'':3}{'operator':>14}{'op, counting':>14}{'curl to disk':>14}{'curl /dev/null':>16}"
              f"{'op / disk':>11}{'counting / disk':>17}{'op / null':>11}{'peak RSS: op, counting':>24}")

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
            if args.warmup:
                # One untimed run of each side on the first file: the operator's first call pays
                # one-time costs (lazy imports, the connection lookup, the first HTTP pool) that
                # a worker pays when the task starts, not per byte; curl's binary gets cached.
                warm_execution = fake.start_execution(sync_id)
                fake.add_event(
                    "sync.completed",
                    {
                        "sync_id": sync_id,
                        "execution_id": warm_execution,
                        "status": "completed",
                        "inserted_count": info["records_per_file"],
                        "inserted_records": urls[:1],
                        "updated_records": None,
                    },
                )
                for count in (False, True):
                    _operator(sync_id, warm_execution, workdir / "warm-op", args.concurrency, count)
                    shutil.rmtree(workdir / "warm-op", ignore_errors=True)
                _curl(curl, urls[:1], workdir / "warm-curl")
                shutil.rmtree(workdir / "warm-curl", ignore_errors=True)
            ratios: dict[str, list[float]] = {"operator": [], "counting": [], "null": []}
            growths: dict[str, list[float]] = {"operator": [], "counting": []}
            cpu_ms: dict[str, list[float]] = {}
            for rep in range(args.repeat):
                steps = ["operator", "counting", "disk", "null"]
                if rep % 2:
                    steps.reverse()
                times: dict[str, float] = {}
                cpus: dict[str, float] = {}
                notes = set()
                for step in steps:
                    if step != "null":  # /dev/null needs no page-cache pages
                        _prepare_pages(args, workdir, total_bytes)
                    if step in ("operator", "counting"):
                        dest = workdir / f"{step}-{rep}"
                        count = step == "counting"
                        times[step], cpus[step], growth, peak_reset, xcom = _operator(
                            sync_id, execution_id, dest, args.concurrency, count
                        )
                        growths[step].append(growth)
                        if not peak_reset:
                            notes.add(" (VmHWM not reset: includes start-up)")
                        reported = xcom["counts"]["inserted"]
                        counted = xcom.get("counted", {}).get("inserted") if count else reported
                        written = sum(f["bytes"] for f in xcom["files"])
                        if {reported, counted} != {expected_records} or written != total_bytes:
                            print(f"   WRONG ({step}): reported {reported}, counted {counted} records "
                                  f"(expected {expected_records}), wrote {written} bytes "
                                  f"(expected {total_bytes})")
                            ok = False
                        shutil.rmtree(dest, ignore_errors=True)
                    elif step == "disk":
                        disk = workdir / f"curl-{rep}"
                        times[step], cpus[step] = _curl(curl, urls, disk)
                        shutil.rmtree(disk, ignore_errors=True)
                    else:
                        times[step], cpus[step] = _curl(curl, urls, None)
                rates = {k: mib / v for k, v in times.items()}
                ratios["operator"].append(rates["operator"] / rates["disk"])
                ratios["counting"].append(rates["counting"] / rates["disk"])
                ratios["null"].append(rates["operator"] / rates["null"])
                for key, value in cpus.items():
                    cpu_ms.setdefault(key, []).append(value * 1000 / mib)
                print(f"{rep + 1:>2} {rates['operator']:>8.1f} MiB/s{rates['counting']:>8.1f} MiB/s"
                      f"{rates['disk']:>8.1f} MiB/s{rates['null']:>10.1f} MiB/s"
                      f"{ratios['operator'][-1]:>11.2f}{ratios['counting'][-1]:>17.2f}{ratios['null'][-1]:>11.2f}"
                      f"{growths['operator'][-1]:>13.1f} MB, {growths['counting'][-1]:.1f} MB"
                      f"{''.join(notes)}", flush=True)

        def spread(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        print(f"records: {expected_records}; reported and (count_records=True) counted exactly "
              f"in every run: {ok}")
        print(f"operator (default settings) / curl-to-disk: median {spread(ratios['operator'])} "
              "(goal >= 1.0)")
        print(f"operator (count_records=True) / curl-to-disk: median {spread(ratios['counting'])}")
        print(f"operator (default settings) / curl-to-/dev/null: median {spread(ratios['null'])}")
        print(f"peak RSS growth: default max {max(growths['operator']):.1f} MB (goal <= 64 MB), "
              f"count_records=True max {max(growths['counting']):.1f} MB")
        cpu = {k: statistics.median(v) for k, v in cpu_ms.items()}
        print(f"CPU time per MiB (median; load-independent): operator {cpu['operator']:.2f} ms, "
              f"with counting {cpu['counting']:.2f} ms, curl to disk {cpu['disk']:.2f} ms, "
              f"curl to /dev/null {cpu['null']:.2f} ms "
              "(the origin server's CPU, the same for all, not included)")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="total size of all files (MiB)")
    parser.add_argument("--files", type=int, default=32, help="number of files")
    parser.add_argument("--format", choices=("both", "json", "jsonl"), default="both", help="file format")
    parser.add_argument("--concurrency", type=int, default=4, help="operator max_concurrency")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per format (median reported)")
    parser.add_argument("--workdir", default=None, help="where files are written (default: system temp)")
    parser.add_argument(
        "--pages",
        choices=("recycled", "cold"),
        default="recycled",
        help="page-cache pages each timed step writes into (see _prepare_pages)",
    )
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed first run of each side on one file",
    )
    args = parser.parse_args()
    if args.size_mib < 1 or args.files < 1 or args.repeat < 1:
        parser.error("--size-mib, --files and --repeat must be >= 1")
    curl = shutil.which("curl")
    if curl is None:
        parser.error("curl is not installed")
    print(f"machine: {_machine()}")
    formats = ("json", "jsonl") if args.format == "both" else (args.format,)
    ok = all([run_format(args, fmt, curl) for fmt in formats])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
