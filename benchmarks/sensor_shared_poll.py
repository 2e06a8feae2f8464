"""Benchmark: N waiting sensors in deferrable mode, this provider's shared poll vs naive polling.

Part 1. For N = 1, 10, 100, 1000 sensors waiting on N different executions, it runs in one
process:

* **provider**: N ``PolytomicSyncTrigger`` on Airflow 3.3's own ``SharedStreamManager`` (as the
  triggerer runs them): one events poll per interval for all, status read on nomination;
* **naive**: N loops each reading its execution's status every interval (what the dbt Cloud,
  Airbyte and Census triggers do).

and prints API requests per poll interval while waiting, detection latency (sync finished ->
trigger fired) p50/p99, and peak Python memory of the waiting side, with ratios naive/provider.

Part 2, a busy organization: N = 1,000 deferred sensors while unrelated syncs emit 2,000
events a minute, once per order in which the fake serves event pages (oldest first, newest
first, shuffled). It prints events and status requests per interval, the target
``3 + ceil(new events per interval / 100)``, detection p50/p99 and peak memory. The emitter
runs for one visibility lag (60 s) before the sensors start, and the measured window (90 s)
holds at least one whole late-visibility re-read of a full minute of events, so its pages
count.

The fake Polytomic server (and the event emitter) run in separate processes so they do not
share the GIL.

    python benchmarks/sensor_shared_poll.py [--sizes 1,10,100,1000] [--interval 1.0]
    python benchmarks/sensor_shared_poll.py --sizes '' --busy-orders oldest_first,newest_first,shuffled
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def start_fake(events_order: str = "oldest_first") -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_polytomic.testing",
            "serve",
            "--port",
            "0",
            "--events-order",
            events_order,
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=100, method="inclusive")[q - 1]


async def api_requests(control: httpx.AsyncClient, prefix: str = "/api/") -> int:
    answer = await control.get("/_fake/requests", params={"path_prefix": prefix})
    return int(answer.json()["matching"])


async def until_quiet(control: httpx.AsyncClient, interval: float) -> None:
    """Wait until start-up status checks are over: no status read during one whole interval."""
    previous = -1
    while True:
        current = await api_requests(control, "/api/syncs/")
        if current == previous:
            return
        previous = current
        await asyncio.sleep(interval * 1.5)


async def make_executions(control: httpx.AsyncClient, n: int) -> list[tuple[str, str]]:
    # Started "a while ago", so their running events lie outside the poll's re-read window.
    await control.post("/_fake/clock/advance", json={"seconds": -300})
    pairs = []
    for i in range(n):
        sync_id = (await control.post("/_fake/syncs", json={"name": f"s{i}", "kind": "model"})).json()["id"]
        execution_id = (await control.post(f"/_fake/syncs/{sync_id}/executions", json={})).json()["id"]
        pairs.append((sync_id, execution_id))
    await control.post("/_fake/clock/advance", json={"seconds": 300})
    return pairs


async def run_provider(
    pairs: list[tuple[str, str]], interval: float, waiting: dict[str, float]
) -> dict[str, float]:
    from airflow_provider_polytomic._compat import shared_stream_manager_class
    from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger

    manager_class = shared_stream_manager_class()
    if manager_class is None:
        raise SystemExit("This benchmark runs Airflow 3.3's shared trigger streams: it needs Airflow 3.3+.")
    manager = manager_class()
    fired: dict[str, float] = {}

    async def one(i: int, sync_id: str, execution_id: str) -> None:
        trigger = PolytomicSyncTrigger(
            polytomic_conn_id="polytomic_default",
            sync_id=sync_id,
            execution_id=execution_id,
            baseline="2020-01-01T00:00:00Z",
            poll_interval=interval,
        )
        key = trigger.shared_stream_key()
        stream = manager.subscribe(trigger_id=i, trigger=trigger, key=key)
        try:
            async for _ in trigger.filter_shared_stream(stream):
                fired[execution_id] = time.monotonic()
                return
        finally:
            await manager.unsubscribe(i, key)

    tasks = [asyncio.create_task(one(i, s, e)) for i, (s, e) in enumerate(pairs)]
    waiting["ready"] = 1
    await asyncio.gather(*tasks)
    await manager.stop_all()
    return fired


async def run_naive(
    pairs: list[tuple[str, str]], interval: float, waiting: dict[str, float]
) -> dict[str, float]:
    from airflow_provider_polytomic.exceptions import PolytomicAPIError
    from airflow_provider_polytomic.hooks.polytomic import PolytomicHook

    hook = PolytomicHook()
    fired: dict[str, float] = {}

    async def one(sync_id: str, execution_id: str) -> None:
        while True:
            try:
                execution = await hook.aget_execution(sync_id, execution_id)
            except PolytomicAPIError:
                # An overloaded server: a naive trigger would fail or retry; keep polling.
                await asyncio.sleep(interval)
                continue
            if execution.outcome.is_terminal:
                fired[execution_id] = time.monotonic()
                return
            await asyncio.sleep(interval)

    waiting["ready"] = 1
    await asyncio.gather(*(one(s, e) for s, e in pairs))
    await hook.aclose()
    return fired


def measure_fresh(kind: str, n: int, interval: float) -> dict[str, float]:
    """One measurement against a fresh fake server, so earlier runs' events cannot weigh on it."""
    proc, info = start_fake()
    try:
        os.environ["AIRFLOW_CONN_POLYTOMIC_DEFAULT"] = json.dumps(
            {"conn_type": "polytomic", "host": info["url"], "password": info["api_key"]}
        )
        return asyncio.run(measure(kind, n, interval, info))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


async def measure(kind: str, n: int, interval: float, info: dict[str, Any]) -> dict[str, float]:
    # No keep-alive: a control call must not race the server closing an idle connection.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=info["url"], timeout=60, limits=limits) as control:
        pairs = await make_executions(control, n)
        runner = run_provider if kind == "provider" else run_naive
        tracemalloc.start()
        waiting: dict[str, float] = {}
        task = asyncio.create_task(runner(pairs, interval, waiting))
        # Start-up (first status checks) is excluded: measure the steady state while waiting.
        if kind == "provider":
            while await api_requests(control, "/api/syncs/") < n:
                await asyncio.sleep(interval / 4)
            await until_quiet(control, interval)
        else:
            await asyncio.sleep(interval * 3)
        before, before_events = await api_requests(control), await api_requests(control, "/api/events")
        window = 5
        await asyncio.sleep(interval * window)
        per_interval = (await api_requests(control) - before) / window
        events_per_interval = (await api_requests(control, "/api/events") - before_events) / window
        finished: dict[str, float] = {}
        for sync_id, execution_id in pairs:
            await control.post(f"/_fake/syncs/{sync_id}/executions/{execution_id}/complete", json={})
            finished[execution_id] = time.monotonic()
            await asyncio.sleep(2.0 / n)  # completions spread over two seconds
        fired = await asyncio.wait_for(task, 600)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        latencies = sorted(fired[e] - finished[e] for e in finished)
        return {
            "requests_per_interval": per_interval,
            "events_requests_per_interval": events_per_interval,
            "p50": pct(latencies, 50),
            "p99": pct(latencies, 99),
            "peak_mib": peak / 2**20,
        }


# ------------------------------------------------------------------ a busy organization


def emit(url: str, per_minute: int, count_file: str) -> None:
    """Emitter process: unrelated syncs start and complete (two events each) at ``per_minute``
    events a minute, until killed. Writes how many events it emitted to ``count_file``."""
    with httpx.Client(base_url=url, timeout=30) as client:
        syncs = [client.post("/_fake/syncs", json={"name": f"unrelated-{i}"}).json()["id"] for i in range(50)]
        began, emitted = time.monotonic(), 0
        while True:
            due = int((time.monotonic() - began) * per_minute / 60)
            while emitted + 2 <= due:
                sync_id = syncs[(emitted // 2) % len(syncs)]
                execution_id = client.post(f"/_fake/syncs/{sync_id}/executions", json={}).json()["id"]
                client.post(f"/_fake/syncs/{sync_id}/executions/{execution_id}/complete", json={})
                emitted += 2
            # Replaced whole, so a reader never sees a half-written count.
            Path(count_file + ".tmp").write_text(str(emitted))
            os.replace(count_file + ".tmp", count_file)
            time.sleep(0.05)


def emitted_events(count_file: str) -> int:
    try:
        return int(Path(count_file).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def measure_busy(
    order: str, n: int, interval: float, per_minute: int, window: float, warmup: float
) -> dict[str, float]:
    proc, info = start_fake(order)
    count_file = tempfile.mktemp(prefix="bench-emitted-")
    emitter = None
    try:
        os.environ["AIRFLOW_CONN_POLYTOMIC_DEFAULT"] = json.dumps(
            {"conn_type": "polytomic", "host": info["url"], "password": info["api_key"]}
        )
        emitter = subprocess.Popen(
            [sys.executable, __file__, "--emit", info["url"], str(per_minute), count_file],
            start_new_session=True,
        )
        return asyncio.run(busy(n, interval, window, warmup, info, count_file))
    finally:
        if emitter is not None:
            os.killpg(emitter.pid, signal.SIGTERM)
            emitter.wait(timeout=10)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        Path(count_file).unlink(missing_ok=True)


async def busy(
    n: int, interval: float, window: float, warmup: float, info: dict[str, Any], count_file: str
) -> dict[str, float]:
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=info["url"], timeout=60, limits=limits) as control:
        pairs = await make_executions(control, n)
        # The organization has been busy for a while before anyone waits, so the first
        # late-visibility re-read has a full lag window of events to read.
        while emitted_events(count_file) < 2:
            await asyncio.sleep(0.2)
        await asyncio.sleep(warmup)
        tracemalloc.start()
        task = asyncio.create_task(run_provider(pairs, interval, {}))
        while await api_requests(control, "/api/syncs/") < n:
            await asyncio.sleep(interval / 4)
        await until_quiet(control, interval)
        events_before = await api_requests(control, "/api/events")
        status_before = await api_requests(control, "/api/syncs/")
        emitted_before = emitted_events(count_file)
        samples = [events_before]
        began = time.monotonic()
        while time.monotonic() - began < window:
            await asyncio.sleep(interval)
            samples.append(await api_requests(control, "/api/events"))
        elapsed_intervals = (time.monotonic() - began) / interval
        status_after = await api_requests(control, "/api/syncs/")
        new_per_interval = (emitted_events(count_file) - emitted_before) / elapsed_intervals
        per_sample = [b - a for a, b in itertools.pairwise(samples)]
        finished: dict[str, float] = {}
        for sync_id, execution_id in pairs:
            await control.post(f"/_fake/syncs/{sync_id}/executions/{execution_id}/complete", json={})
            finished[execution_id] = time.monotonic()
            await asyncio.sleep(2.0 / n)
        fired = await asyncio.wait_for(task, 600)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        latencies = sorted(fired[e] - finished[e] for e in finished)
        return {
            "events_per_interval": (samples[-1] - events_before) / elapsed_intervals,
            "events_max_sample": float(max(per_sample)),
            "status_per_interval": (status_after - status_before) / elapsed_intervals,
            "new_per_interval": new_per_interval,
            "goal": 3 + math.ceil(new_per_interval / 100),
            "p50": pct(latencies, 50),
            "p99": pct(latencies, 99),
            "peak_mib": peak / 2**20,
        }


def print_busy(args: argparse.Namespace) -> None:
    from airflow_provider_polytomic.sync_wait import DEFAULT_STATUS_CHECK_INTERVAL

    orders = [o for o in args.busy_orders.split(",") if o]
    if not orders:
        return
    n, rate = args.busy_n, args.busy_rate
    print(
        f"\nbusy organization: {n} deferred sensors, unrelated syncs emitting {rate} events/min, "
        f"poll interval {args.interval:.1f} s, measured over {args.busy_window:.0f} s"
    )
    print(
        f"{'order':>13} | {'new events':>10} | {'events requests/interval':>27} | {'goal':>4} | "
        f"{'status req/interval':>19} | {'p50 s':>6} | {'p99 s':>6} | {'peak MiB':>8}"
    )
    print(f"{'':>13} | {'/interval':>10} | {'mean   max in a 1 s sample':>27} | {'':>4} | {'':>19} |")
    for order in orders:
        r = measure_busy(order, n, args.interval, rate, args.busy_window, args.busy_warmup)
        print(
            f"{order:>13} | {r['new_per_interval']:>10.1f} | {r['events_per_interval']:>8.2f} "
            f"{r['events_max_sample']:>18.0f} | {r['goal']:>4.0f} | {r['status_per_interval']:>19.2f} | "
            f"{r['p50']:>6.2f} | {r['p99']:>6.2f} | {r['peak_mib']:>8.1f}",
            flush=True,
        )
    print(
        f"status fallback: one read per waiting sensor per status_check_interval "
        f"({DEFAULT_STATUS_CHECK_INTERVAL:.0f} s by default), i.e. {n / DEFAULT_STATUS_CHECK_INTERVAL:.1f} "
        "requests/s on average for these sensors once their first interval has passed "
        "(the window above starts right after start-up, before any fallback is due)."
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--emit":
        emit(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    # Imported before tracemalloc starts, so module code is not counted as waiting memory.
    import airflow_provider_polytomic.hooks.polytomic
    import airflow_provider_polytomic.triggers.polytomic  # noqa: F401
    from airflow_provider_polytomic._compat import shared_stream_manager_class

    shared_stream_manager_class()  # imports Airflow's shared-stream module

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--naive-max",
        type=int,
        default=100,
        help="skip the naive side above this N: its N loops saturate a 2-core machine and the fake",
    )
    parser.add_argument(
        "--busy-orders",
        default="oldest_first,newest_first,shuffled",
        help="event page orders for the busy-organization part ('' skips it)",
    )
    parser.add_argument("--busy-n", type=int, default=1000, help="deferred sensors in the busy part")
    parser.add_argument(
        "--busy-rate", type=int, default=2000, help="unrelated events a minute in the busy part"
    )
    parser.add_argument(
        "--busy-window",
        type=float,
        default=90.0,
        help="seconds measured (default: long enough to hold a whole late-visibility re-read)",
    )
    parser.add_argument(
        "--busy-warmup",
        type=float,
        default=60.0,
        help="seconds the organization emits events before the sensors start (default: the lag)",
    )
    args = parser.parse_args()
    if args.sizes:
        print_sizes(args)
    print_busy(args)


def print_sizes(args: argparse.Namespace) -> None:
    print(f"poll interval {args.interval:.1f} s; fake Polytomic server in its own process, fresh per row")
    print(
        f"{'N':>5} | {'API requests/interval':>29} | {'latency p50 s':>15} | "
        f"{'latency p99 s':>15} | {'peak memory MiB':>15}"
    )
    print(
        f"{'':>5} | {'provider (events) naive ratio':>29} | {'provider naive':>15} | "
        f"{'provider naive':>15} | {'provider naive':>15}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        ours = measure_fresh("provider", n, args.interval)
        if n > args.naive_max:
            # What a naive design would send is known without running it: one read per sensor.
            naive = {
                "requests_per_interval": float(n),
                "p50": float("nan"),
                "p99": float("nan"),
                "peak_mib": float("nan"),
            }
        else:
            naive = measure_fresh("naive", n, args.interval)
        ratio = naive["requests_per_interval"] / max(ours["requests_per_interval"], 1e-9)
        print(
            f"{n:>5} | {ours['requests_per_interval']:>8.1f} ({ours['events_requests_per_interval']:>4.1f}) "
            f"{naive['requests_per_interval']:>6.1f} {ratio:>6.1f}x | "
            f"{ours['p50']:>7.2f} {naive['p50']:>7.2f} | {ours['p99']:>7.2f} {naive['p99']:>7.2f} | "
            f"{ours['peak_mib']:>7.1f} {naive['peak_mib']:>7.1f}",
            flush=True,
        )
    print(
        "naive = one status read per sensor per interval (what peer providers' triggers do). The fake "
        "server answers a few hundred requests/s at most, so naive requests/interval and latency "
        "are capped by it at large N."
    )


if __name__ == "__main__":
    main()
