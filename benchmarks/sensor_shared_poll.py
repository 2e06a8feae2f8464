"""Benchmark: N waiting sensors in deferrable mode, this provider's shared poll vs naive polling.

For N = 1, 10, 100, 1000 sensors waiting on N different executions, it runs in one process:

* **provider**: N ``PolytomicSyncTrigger`` on Airflow 3.3's own ``SharedStreamManager`` (as the
  triggerer runs them): one events poll per interval for all, status read on nomination;
* **naive**: N loops each reading its execution's status every interval (what the dbt Cloud,
  Airbyte and Census triggers do).

and prints API requests per poll interval while waiting, detection latency (sync finished ->
trigger fired) p50/p99, and peak Python memory of the waiting side, with ratios naive/provider.
The fake Polytomic server runs in a separate process so it does not share the GIL.

    python benchmarks/sensor_shared_poll.py [--sizes 1,10,100,1000] [--interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from statistics import quantiles
from typing import Any

import httpx

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def start_fake() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_polytomic.testing", "serve", "--port", "0"],
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
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_polytomic.triggers.polytomic import PolytomicSyncTrigger

    manager = SharedStreamManager()
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


def main() -> None:
    # Imported before tracemalloc starts, so module code is not counted as waiting memory.
    import airflow.triggers.shared_stream  # noqa: F401

    import airflow_provider_polytomic.hooks.polytomic
    import airflow_provider_polytomic.triggers.polytomic  # noqa: F401

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--naive-max",
        type=int,
        default=100,
        help="skip the naive side above this N: its N loops saturate a 2-core machine and the fake",
    )
    args = parser.parse_args()
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
