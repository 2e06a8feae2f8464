"""Push vs poll: how fast a Polytomic event becomes an Airflow asset event.

One run measures each metadata database given to ``--db`` back to back, each on a fresh real
Airflow 3 with the fake Polytomic server (loopback only):

* ``sqlite``: api-server, scheduler, dag-processor and one triggerer on a SQLite file
  (tests/e2e/harness.py, one process group);
* ``postgres``: the production topology of tests/e2e/test_e2e_production.py - a throwaway
  PostgreSQL server (tests/e2e/postgres.py, durable settings: fsync and synchronous commit
  on), api-server, scheduler, dag-processor and two triggerers, each in its own process
  group (tests/e2e/topology.py).

On each:

* **webhook**: the fake POSTs each event, signed, to the receiver the plugin mounts on the
  API server, which records it through ``POST /api/v2/assets/events``. Events are sent one
  at a time (the next after the previous delivery was answered), so each figure is one
  delivery's latency, not queueing.
* **polling**: the same number of events for a sync watched by ``PolytomicEventTrigger``
  (``--poll-interval``, default 1 s) in the real triggerer, created in small bursts at
  random offsets so they land anywhere in the poll cycle.

Latency = the asset event's ``timestamp`` in Airflow's database (when it was recorded)
minus the Polytomic event's ``created_at`` (when the fake emitted it; same host clock).
Printed: p50 / p99 / max per path and the polling/webhook ratios, per database, then the
postgres/sqlite ratios. Polling latency scales with the poll interval (about interval/2 +
one triggerer sync round at p50); the default ``PolytomicEventTrigger`` interval is 30 s.

Usage::

    .venv/bin/python benchmarks/webhook_latency.py [--events 200] [--poll-interval 1] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_polytomic.testing import FakePolytomic  # noqa: E402
from tests.e2e.harness import AirflowHome, wait_until  # noqa: E402
from tests.e2e.postgres import PostgresCluster  # noqa: E402
from tests.e2e.topology import Topology, triggerer_settings  # noqa: E402

DAGS = ROOT / "tests" / "e2e" / "dags_events"
POLL_SYNC_ID = "0f8b6c1e-5d2a-4c3b-9e7f-1a2b3c4d5e6f"  # watched (poll_interval=1) in that folder
WEBHOOK_SYNC_ID = "7c9d0e1f-2a3b-4c5d-8e6f-a1b2c3d4e5f6"  # not watched: only the webhook records it
SECRET = "bench-webhook-secret"


def _recorded_all(home: AirflowHome) -> list[tuple[str, datetime]]:
    """(Polytomic event id, when Airflow recorded an asset event for it), every asset event."""
    out: list[tuple[str, datetime]] = []
    for extra, stamp in home.query("SELECT extra, timestamp FROM asset_event ORDER BY id"):
        data = json.loads(extra) if isinstance(extra, str) else (extra or {})
        event_id = data.get("polytomic_event_id") or (data.get("payload") or {}).get("id")
        if event_id:
            when = (
                stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp).replace(" ", "T"))
            )
            out.append((str(event_id), when if when.tzinfo else when.replace(tzinfo=timezone.utc)))
    return out


def _recorded(home: AirflowHome) -> dict[str, datetime]:
    """Polytomic event id -> when Airflow first recorded an asset event for it."""
    out: dict[str, datetime] = {}
    for event_id, when in _recorded_all(home):
        out.setdefault(event_id, when)
    return out


def _slowest_requests(log: str, n: int = 6) -> None:
    """Print the API server's slowest requests (its access log), to explain the tail."""
    found: list[tuple[int, str]] = []
    for line in log.splitlines():
        match = re.search(r"duration_us=(\d+).*method=(\w+) path=(\S+).*status_code=(\d+)", line)
        if match:
            path = re.sub(r"[0-9a-f-]{36}", "<id>", match.group(3))
            found.append((int(match.group(1)), f"{match.group(2)} {path} -> {match.group(4)}"))
    for micros, what in sorted(found, reverse=True)[:n]:
        print(f"  slow: {micros / 1000:8.1f} ms  {what}")


def _created(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created_at"].replace("Z", "+00:00"))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _summary(name: str, values: list[float]) -> dict[str, float]:
    stats = {
        "p50": _pct(values, 50),
        "p99": _pct(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }
    print(
        f"{name:<9} n={len(values):<4} p50={stats['p50'] * 1000:8.1f} ms  p99={stats['p99'] * 1000:8.1f} ms"
        f"  max={stats['max'] * 1000:8.1f} ms  mean={stats['mean'] * 1000:8.1f} ms"
    )
    return stats


@contextlib.contextmanager
def _airflow(db: str, tmp_path: Path, fake: FakePolytomic) -> Iterator[tuple[AirflowHome, Any]]:
    """A migrated home and its running stack: SQLite with one triggerer, or PostgreSQL with two."""
    conn = {
        "conn_type": "polytomic",
        "host": fake.url,
        "password": fake.api_key,
        "extra": {"webhook_secret": SECRET},
    }
    if db == "sqlite":
        home = AirflowHome(tmp_path / "airflow-sqlite", dags_folder=DAGS)
        home.enable_webhook_receiver(conn)
        print("migrating the metadata database (SQLite) ...", flush=True)
        home.migrate()
        print("starting Airflow (api-server, scheduler, dag-processor, triggerer) ...", flush=True)
        with home.stack(timeout=1800, ready_timeout=400) as stack:
            yield home, stack
        return
    with PostgresCluster(durable=True) as pg:
        home = AirflowHome(
            tmp_path / "airflow-postgres", dags_folder=DAGS, database_url=pg.url, env=triggerer_settings()
        )
        home.enable_webhook_receiver(conn)
        print("migrating the metadata database (PostgreSQL) ...", flush=True)
        home.migrate()
        print("starting Airflow (api-server, scheduler, dag-processor, two triggerers) ...", flush=True)
        with Topology(home, triggerers=2, timeout=1800) as top:
            top.wait_healthy()
            yield home, top
        slow = [line for line in pg.server_log().splitlines() if "duration:" in line or "lock" in line]
        print(f"  PostgreSQL log: {len(slow)} statements over 1 s or lock waits")
        for line in slow[:5]:
            print(f"    {line[:200]}")


def measure(db: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both paths on one fresh Airflow with metadata database ``db``; their summaries."""
    print(f"\n=== {db} ===", flush=True)
    with tempfile.TemporaryDirectory(prefix="polytomic-latency-") as tmp, FakePolytomic() as fake:
        fake.add_sync("polled", sync_id=POLL_SYNC_ID)
        fake.add_sync("pushed", sync_id=WEBHOOK_SYNC_ID)
        with _airflow(db, Path(tmp), fake) as (home, stack):
            home.wait_for_dag("e2e_polytomic_poll", timeout=300)
            home.wait_for_dag("e2e_polytomic_webhook", timeout=300)
            wait_until(
                "the assets to be active",
                lambda: len(home.query("SELECT 1 FROM asset_active WHERE uri LIKE 'polytomic://%'")) >= 2,
                120,
            )
            fake.create_webhook({"endpoint": f"{stack.api_url}/polytomic/events", "secret": SECRET})

            # Warm-up: token, asset lookup and first-request costs are not what we measure.
            warm = fake.add_event("sync.completed", {"sync_id": WEBHOOK_SYNC_ID})
            fake.wait_for_deliveries(120)
            wait_until("the warm-up event", lambda: warm["id"] in _recorded(home), 120)

            print(f"webhook: {args.events} deliveries, one at a time ...", flush=True)
            pushed: list[dict[str, Any]] = []
            for _ in range(args.events):
                pushed.append(fake.add_event("sync.completed", {"sync_id": WEBHOOK_SYNC_ID}))
                if not fake.wait_for_deliveries(60):
                    raise RuntimeError("a webhook delivery did not finish")
            failed = [d for d in fake.webhook_deliveries if not d.ok]
            reasons = Counter(d.status_code or (d.error or "").split(":")[0] for d in failed)
            print(f"  attempts not answered 2xx (retried by the fake, as Polytomic does): {dict(reasons)}")
            _slowest_requests(stack.log("api-server"))

            # The watcher has been polling since the DAG was parsed.
            print(f"polling: {args.events} events in bursts of {args.burst} ...", flush=True)
            fake.delete_webhook(fake.webhooks()[0]["id"])  # polling path only from here
            polled: list[dict[str, Any]] = []
            rng = random.Random(7)
            while len(polled) < args.events:
                for _ in range(min(args.burst, args.events - len(polled))):
                    polled.append(fake.add_event("sync.completed", {"sync_id": POLL_SYNC_ID}))
                # Pacing of the workload (not synchronisation): land bursts anywhere in a poll cycle.
                time.sleep(rng.uniform(0.2, 1.5) * args.poll_interval)
            wanted = {e["id"] for e in pushed + polled}

            def all_recorded() -> dict[str, datetime] | None:
                found = _recorded(home)
                return found if wanted <= set(found) else None

            recorded = wait_until("every asset event", all_recorded, 300, interval=1.0)
            ids = [event_id for event_id, _ in _recorded_all(home) if event_id in wanted]
            print(f"  asset events recorded more than once: {len(ids) - len(set(ids))} (of {len(wanted)})")

    webhook = [(recorded[e["id"]] - _created(e)).total_seconds() for e in pushed]
    polling = [(recorded[e["id"]] - _created(e)).total_seconds() for e in polled]
    print()
    print(f"[{db}] Polytomic event created -> Airflow asset event recorded")
    w = _summary("webhook", webhook)
    p = _summary(f"polling@{args.poll_interval:g}s", polling)
    print(
        f"ratio polling/webhook: p50 x{p['p50'] / w['p50']:.1f}, p99 x{p['p99'] / w['p99']:.1f}, "
        f"mean x{p['mean'] / w['mean']:.1f}"
    )
    print(
        f"(with the trigger's default 30 s interval, polling p50 is about 15 s + "
        f"{(p['p50'] - args.poll_interval / 2) * 1000:.0f} ms: "
        f"x{(15 + max(0.0, p['p50'] - args.poll_interval / 2)) / w['p50']:.0f} the webhook's)"
    )
    return {"webhook": w, "polling": p}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=1.0, help="informational: set in the DAG file")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument(
        "--db", default="sqlite,postgres", help="metadata databases to measure, in order: sqlite, postgres"
    )
    args = parser.parse_args()
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = [d for d in dbs if d not in ("sqlite", "postgres")]
    if unknown or not dbs:
        parser.error(f"--db must list sqlite and/or postgres, got {args.db!r}")
    results = {db: measure(db, args) for db in dbs}
    if len(results) == 2:
        print("\nratio postgres/sqlite (same run):")
        for path in ("webhook", "polling"):
            pg, lite = results["postgres"][path], results["sqlite"][path]
            print(
                f"  {path:<8} p50 x{pg['p50'] / lite['p50']:.2f}  p99 x{pg['p99'] / lite['p99']:.2f}"
                f"  max x{pg['max'] / lite['max']:.2f}  mean x{pg['mean'] / lite['mean']:.2f}"
            )
    goal = {db: r["webhook"]["p99"] <= 1.0 for db, r in results.items()}
    print(f"webhook p99 <= 1 s: {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
