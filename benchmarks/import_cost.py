"""What importing the provider adds to parsing a DAG file.

Airflow's DAG processor imports every DAG file again and again, so a provider's import time
is paid on every parse. This measures, in fresh interpreters:

* **Airflow alone**: what a DAG file that uses only Airflow's own operators imports
  (``from airflow.sdk import DAG, BaseOperator, BaseSensorOperator``; on Airflow 2 the same
  names from ``airflow``, ``airflow.models.baseoperator`` and ``airflow.sensors.base``: a
  bare ``import airflow`` loads none of them there);
* **with the provider**: the same, then ``PolytomicSyncSensor``, ``PolytomicRunSyncOperator``,
  ``PolytomicDownloadRecordLogsOperator`` and the hook's module.

The two kinds of interpreter alternate (A B, B A, A B...), ``--runs`` of each. The provider's
share is the median time of its own imports (timed inside the "with the provider"
interpreters, after Airflow's) over the median time of Airflow's imports in the "Airflow
alone" interpreters. Also printed: the median of the same ratio taken inside each "with the
provider" interpreter (both parts timed under the same load, so the machine's noise mostly
cancels). The two kinds' whole-import medians are printed too, but on a shared machine they
differ by more than the provider's share from one interpreter to the next.

Two bytecode modes, each its own set of runs:

* **cached**: compiled modules are read from a bytecode cache written by a discarded warm-up
  run, as in a DAG processor that has parsed its files before;
* **compiled**: every module is compiled from source on every import (an empty cache that is
  never written), as in an environment with ``PYTHONDONTWRITEBYTECODE`` and no cache.

Both use a private cache folder (``PYTHONPYCACHEPREFIX``), so nothing is written next to the
sources and no earlier cache skews a mode. The exit status is 1 when the provider's share
exceeds ``--goal`` (default 3 %) in a mode.

Usage::

    .venv/bin/python benchmarks/import_cost.py [--runs 9] [--modes cached,compiled] [--top 10]
    .venv/bin/python benchmarks/import_cost.py --python .matrix/airflow-2.11/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

AIRFLOW_ONLY = """
try:
    from airflow.sdk import DAG, BaseOperator, BaseSensorOperator
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.baseoperator import BaseOperator
    from airflow.sensors.base import BaseSensorOperator
"""

PROVIDER = """
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.operators.record_logs import PolytomicDownloadRecordLogsOperator
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
"""

TIMED = """
import json, time
t0 = time.perf_counter()
{airflow}
t1 = time.perf_counter()
{provider}
t2 = time.perf_counter()
import airflow
print(json.dumps({{"airflow": t1 - t0, "provider": t2 - t1, "version": airflow.__version__}}))
"""

MODES = ("cached", "compiled")


def environment(mode: str, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    env["PYTHONWARNINGS"] = "ignore"
    if mode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(python: str, env: dict[str, str], with_provider: bool) -> dict[str, float | str]:
    code = TIMED.format(airflow=AIRFLOW_ONLY, provider=PROVIDER if with_provider else "")
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"the timed interpreter failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _importtime(python: str, env: dict[str, str], provider: str) -> dict[str, float]:
    """Own import time (ms) of every module one interpreter loads, from ``-X importtime``."""
    code = TIMED.format(airflow=AIRFLOW_ONLY, provider=provider)
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    own: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            own[match.group(2)] = int(match.group(1)) / 1000
    return own


def heaviest(python: str, env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """The modules the provider adds to Airflow's, heaviest first (own time, ms)."""
    airflow = _importtime(python, env, "")
    added = {name: ms for name, ms in _importtime(python, env, PROVIDER).items() if name not in airflow}
    return sorted(added.items(), key=lambda item: -item[1])[:top]


def measure(python: str, mode: str, runs: int, top: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="import-cost-pycache-") as cache:
        env = environment(mode, Path(cache))
        if mode == "cached":
            for with_provider in (False, True):  # writes the cache; not counted
                run_once(python, env, with_provider)
        alone: list[float] = []
        provider_runs: list[float] = []
        provider_own: list[float] = []
        version = ""
        for i in range(runs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for with_provider in order:
                result = run_once(python, env, with_provider)
                version = str(result["version"])
                if with_provider:
                    provider_runs.append(float(result["airflow"]) + float(result["provider"]))
                    provider_own.append(float(result["provider"]))
                else:
                    alone.append(float(result["airflow"]))
        base = statistics.median(alone)
        own = statistics.median(provider_own)
        share = own / base
        paired = statistics.median([o / (t - o) for o, t in zip(provider_own, provider_runs, strict=True)])
        print(f"\n[{mode}] Airflow {version}, {runs} interpreters of each kind, alternating")
        print(f"  {'':44} {'median':>8} {'min':>8} {'max':>8}")
        for label, values in (
            ("Airflow alone (s)", alone),
            ("Airflow + provider, whole import (s)", provider_runs),
            ("provider's own imports (s)", provider_own),
        ):
            print(f"  {label:44} {statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}")
        print(f"  provider's share: {own * 1000:.1f} ms / {base * 1000:.0f} ms = {share:.1%}")
        print(f"  same ratio inside each interpreter with the provider, median: {paired:.1%}")
        if top:
            print("  heaviest modules the provider adds (own time, one -X importtime run):")
            for name, ms in heaviest(python, env, top):
                print(f"    {ms:7.1f} ms  {name}")
        return share, version


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters of each kind per mode (>= 5)")
    parser.add_argument("--modes", default=",".join(MODES), help="cached and/or compiled")
    parser.add_argument("--goal", type=float, default=0.03, help="largest acceptable share (default 0.03)")
    parser.add_argument(
        "--top", type=int, default=10, help="list the provider's N heaviest modules (0: none)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter to measure (default: this one)"
    )
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes must name some of {', '.join(MODES)}")
    print(f"import_cost: {args.python}; load average {os.getloadavg()[0]:.1f}")
    failed = []
    for mode in modes:
        share, _ = measure(args.python, mode, args.runs, args.top)
        if share > args.goal:
            failed.append(f"{mode}: {share:.1%}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if failed:
        print(f"\nThe provider's share exceeds the goal of {args.goal:.0%}: {'; '.join(failed)}")
        return 1
    print(f"\nThe provider's share is within the goal of {args.goal:.0%} in every mode.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
