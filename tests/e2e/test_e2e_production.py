"""End to end on Airflow's production topology: PostgreSQL, two triggerers, and their faults.

One stack for the module (tests/e2e/topology.py): a throwaway PostgreSQL server
(tests/e2e/postgres.py, Debian's package, loopback), api-server, scheduler, dag-processor,
LocalExecutor and **two triggerers**, each in its own process group, against the fake
Polytomic in this process. Triggerers heartbeat every second and take over a silent one's
triggers after 10 s (see :func:`tests.e2e.topology.triggerer_settings`).

1. **Sensors**: N deferred ``PolytomicSyncSensor`` spread over both triggerers; one triggerer
   is SIGKILLed mid-wait and some executions finish while it is dead. Every sensor succeeds
   in its first and only try, with its own execution, within its timeout; the events
   requests of every poll interval stay within ``3 + ceil(new events / 100)`` per running
   triggerer (the shared poll's bound).
2. **Asset watcher**: the triggerer running the ``PolytomicEventTrigger`` is SIGKILLed
   between two events, after the cursor of the first was committed to the asset state
   store; each event becomes exactly one asset event.
3. **Webhook receiver**: N deliveries while the api-server is restarted once; the fake's
   retries (5, exponential backoff) deliver every event and each becomes exactly one
   asset event.

Sizes: ``POLYTOMIC_E2E_SCALE=full`` (``make test-prod``) runs 200 sensors and 200
deliveries; the default (CI, ``make test``) 40 of each.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from airflow_provider_polytomic._compat import airflow_version
from airflow_provider_polytomic.testing import FakePolytomic
from tests.e2e.harness import AirflowHome, wait_until
from tests.e2e.postgres import PostgresCluster
from tests.e2e.topology import Topology, triggerer_settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.production,
    # The watcher's cursor lives in the asset state store and triggers share streams: 3.3+.
    pytest.mark.skipif(
        Version(airflow_version()) < Version("3.3"), reason="the production topology suite needs Airflow 3.3+"
    ),
]

DAGS = Path(__file__).resolve().parent / "dags_production"
WATCH_SYNC_ID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"  # as in that folder's DAG file
WEBHOOK_SYNC_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
SENSOR_TIMEOUT = 1200
SECRET = "production-e2e-webhook-secret"
FULL = os.environ.get("POLYTOMIC_E2E_SCALE", "").lower() == "full"
SENSORS = 200 if FULL else 40
DELIVERIES = 200 if FULL else 40
HEALTH_THRESHOLD = 10
# First retry after 4 s, doubling: the fifth retry comes 124 s after the first attempt,
# longer than an api-server restart takes on a loaded two-core machine.
RETRY_BASE_DELAY = 4.0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePolytomic]:
    with FakePolytomic(webhook_retry_base_delay=RETRY_BASE_DELAY) as server:
        server.add_sync("watched", sync_id=WATCH_SYNC_ID)
        server.add_sync("pushed", sync_id=WEBHOOK_SYNC_ID)
        yield server


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def home(
    tmp_path_factory: pytest.TempPathFactory, fake: FakePolytomic, postgres: PostgresCluster
) -> AirflowHome:
    home = AirflowHome(
        tmp_path_factory.mktemp("production"),
        dags_folder=DAGS,
        database_url=postgres.url,
        parallelism=4,
        env={
            **triggerer_settings(heartbeat=1, threshold=HEALTH_THRESHOLD),
            # Deferred sensors hold no slot, but mapped instances count against these.
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1000",
            "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "1000",
        },
    )
    home.enable_webhook_receiver(
        {
            "conn_type": "polytomic",
            "host": fake.url,
            "password": fake.api_key,
            "extra": {"max_retries": 3, "webhook_secret": SECRET},
        }
    )
    home.migrate()
    return home


@pytest.fixture(scope="module")
def topology(home: AirflowHome) -> Iterator[Topology]:
    with Topology(home, triggerers=2, timeout=3600) as top:
        top.wait_healthy()
        for dag_id in ("e2e_prod_sensors", "e2e_prod_watch", "e2e_prod_webhook"):
            home.wait_for_dag(dag_id, timeout=300)
        yield top


@pytest.fixture
def stack(topology: Topology) -> Topology:
    """The module's topology with every component running (a test may have killed one)."""
    topology.start_all()
    topology.wait_healthy()
    return topology


# ------------------------------------------------------------------------ state reads


def trigger_owners(home: AirflowHome, classpath_like: str) -> dict[int, int | None]:
    """``{trigger id: triggerer job id}`` of the triggers whose classpath matches."""
    rows = home.query("SELECT id, triggerer_id FROM trigger WHERE classpath LIKE ?", (classpath_like,))
    return {int(tid): (int(owner) if owner is not None else None) for tid, owner in rows}


def asset_event_ids(home: AirflowHome, sync_id: str) -> list[str]:
    """The Polytomic event id of every asset event of a sync's asset, oldest first."""
    rows = home.query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
        " WHERE a.uri LIKE ? ORDER BY e.id",
        (f"polytomic://{sync_id}%",),
    )
    out = []
    for (extra,) in rows:
        data = json.loads(extra) if isinstance(extra, str) else (extra or {})
        event_id = data.get("polytomic_event_id") or (data.get("payload") or {}).get("id")
        out.append(str(event_id))
    return out


def watcher_cursor(home: AirflowHome) -> dict[str, Any] | None:
    rows = home.query(
        "SELECT s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id"
        " WHERE a.uri LIKE ? AND s.key LIKE 'polytomic.events.cursor.%'",
        (f"polytomic://{WATCH_SYNC_ID}%",),
    )
    if not rows:
        return None
    value = rows[0][0]
    return dict(json.loads(value) if isinstance(value, str) else value)


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def events_requests_per_interval(
    fake: FakePolytomic, start: datetime, end: datetime, interval: float = 1.0
) -> list[tuple[datetime, int, int]]:
    """``(interval start, GET /api/events requests, events created)`` per poll interval in [start, end)."""
    windows = int((end - start).total_seconds() // interval)
    requests = Counter(
        int((r.time - start).total_seconds() // interval)
        for r in list(fake.requests)
        if r.path == "/api/events" and start <= r.time < end
    )
    created = Counter(
        int((_utc(e["created_at"]) - start).total_seconds() // interval)
        for e in fake.events()
        if start <= _utc(e["created_at"]) < end
    )
    return [(start + timedelta(seconds=w * interval), requests[w], created[w]) for w in range(windows)]


def shared_poll_bound(new_events: int) -> int:
    """Events requests one triggerer may make per poll interval: ``3 + ceil(new / 100)``."""
    return 3 + math.ceil(new_events / 100)


def now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------------- tests


def test_sensors_survive_a_triggerer_crash(stack: Topology, home: AirflowHome, fake: FakePolytomic) -> None:
    waits = []
    for i in range(SENSORS):
        sync_id = fake.add_sync(f"sensor-{i}")
        waits.append({"sync_id": sync_id, "execution_id": fake.start_execution(sync_id)})
    triggered_at = now()
    run_id = home.trigger("e2e_prod_sensors", conf={"waits": waits})
    jobs = stack.triggerer_jobs()
    names = {job: name for name, job in jobs.items()}

    def all_deferred() -> dict[int, set[int]] | None:
        rows = home.query(
            "SELECT ti.map_index, t.id, t.triggerer_id FROM task_instance ti"
            " JOIN trigger t ON ti.trigger_id = t.id"
            " WHERE ti.dag_id = 'e2e_prod_sensors' AND ti.run_id = ? AND ti.task_id = 'wait'"
            " AND ti.state = 'deferred'",
            (run_id,),
        )
        if len(rows) < SENSORS or any(owner is None for _, _, owner in rows):
            return None
        by_owner: dict[int, set[int]] = {}
        for _, trigger_id, owner in rows:
            by_owner.setdefault(int(owner), set()).add(int(trigger_id))
        return by_owner

    by_owner = wait_until(f"{SENSORS} sensors deferred and assigned", all_deferred, 900, interval=2)
    assert set(by_owner) == set(jobs.values()), f"triggers not spread over both triggerers: {by_owner} {jobs}"
    waiting_since = now()

    # Kill the busier triggerer, then let a third of its sensors' executions finish while it is dead.
    victim_job = max(by_owner, key=lambda job: len(by_owner[job]))
    survivor_job = next(job for job in by_owner if job != victim_job)
    victim_triggers = by_owner[victim_job]
    stack.kill(names[victim_job], signal.SIGKILL)
    killed_at = now()
    trigger_of = {
        int(m): int(t)
        for m, t in home.query(
            "SELECT map_index, trigger_id FROM task_instance WHERE dag_id = 'e2e_prod_sensors'"
            " AND run_id = ? AND task_id = 'wait'",
            (run_id,),
        )
    }
    on_victim = [i for i in range(SENSORS) if trigger_of[i] in victim_triggers]
    early = set(on_victim[: len(on_victim) // 3])
    for i in sorted(early):
        fake.complete_execution(waits[i]["sync_id"], waits[i]["execution_id"])

    def taken_over() -> bool:
        owners = trigger_owners(home, "%PolytomicSyncTrigger%")
        # Triggers of sensors that already finished are deleted; the rest must sit on the survivor.
        return all(owners.get(t, survivor_job) == survivor_job for t in victim_triggers)

    wait_until("the survivor to take the dead triggerer's triggers", taken_over, 180)
    taken_at = now()
    for i in range(SENSORS):
        if i not in early:
            fake.complete_execution(waits[i]["sync_id"], waits[i]["execution_id"])

    assert home.wait_for_run("e2e_prod_sensors", run_id, timeout=1200) == "success", stack.tails()
    finished_at = now()

    rows = home.query(
        "SELECT map_index, state, try_number, start_date, end_date FROM task_instance"
        " WHERE dag_id = 'e2e_prod_sensors' AND run_id = ? AND task_id = 'wait' ORDER BY map_index",
        (run_id,),
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [(i, "success", 1) for i in range(SENSORS)]
    for map_index, _, _, started, ended in rows:
        assert (ended - started).total_seconds() < SENSOR_TIMEOUT, map_index
        summary = home.xcom("e2e_prod_sensors", run_id, "wait", map_index=map_index)
        assert summary["execution_id"] == waits[map_index]["execution_id"], (map_index, summary)
        assert summary["sync_id"] == waits[map_index]["sync_id"]
        assert summary["status"] == "completed"
    # A sensor only waits: no execution was started by Airflow.
    assert not [r for r in fake.requests if r.method == "POST" and r.path.endswith("/executions")]

    # Outside the takeover, every interval is within the shared poll's bound per running
    # triggerer. During it, the survivor restarts the dead one's triggers in batches of at
    # most max_trigger_to_select_per_loop (50); each batch reads the events since its oldest
    # sensor's start once (the backfill), in pages of 100, on top of the bound.
    takeover = (killed_at, taken_at + timedelta(seconds=3))
    counts = events_requests_per_interval(fake, waiting_since, finished_at)
    over, extra = [], 0
    for at, requests, created in counts:
        bound = (2 if at < killed_at + timedelta(seconds=2) else 1) * shared_poll_bound(created)
        if takeover[0] <= at < takeover[1]:
            extra += max(0, requests - bound)
        elif requests > bound:
            over.append(f"{at.isoformat()}: {requests} events requests > {bound} ({created} new events)")
    assert not over, "\n".join(over)
    backfill_pages = 1 + math.ceil(
        len([e for e in fake.events() if _utc(e["created_at"]) >= triggered_at]) / 100
    )
    allowance = math.ceil(len(victim_triggers) / 50) * backfill_pages
    assert extra <= allowance, (extra, allowance, [c for c in counts if takeover[0] <= c[0] < takeover[1]])


def test_watcher_cursor_survives_a_triggerer_crash(
    stack: Topology, home: AirflowHome, fake: FakePolytomic
) -> None:
    jobs = stack.triggerer_jobs()
    names = {job: name for name, job in jobs.items()}

    def watcher_owner() -> int | None:
        owners = [o for o in trigger_owners(home, "%PolytomicEventTrigger%").values() if o in names]
        return owners[0] if len(owners) == 1 else None

    owner = wait_until("the watcher's trigger on a running triggerer", watcher_owner, 120)
    before = asset_event_ids(home, WATCH_SYNC_ID)

    first = fake.complete_execution(WATCH_SYNC_ID, fake.start_execution(WATCH_SYNC_ID))
    wait_until(
        "the first event's asset event", lambda: first["id"] in asset_event_ids(home, WATCH_SYNC_ID), 120
    )

    def first_committed() -> bool:
        cursor = watcher_cursor(home)
        if cursor is None:
            return False
        return first["id"] in cursor.get("ids", {}) or _utc(cursor["cursor"]) >= _utc(first["created_at"])

    # The cursor is committed once it is commit_delay (2 s) old: only then is "between two
    # events" a point where nothing is in flight.
    wait_until("the watcher's cursor to cover the first event", first_committed, 120)
    owner = wait_until("the watcher's owner", watcher_owner, 30)
    stack.kill(names[owner], signal.SIGKILL)

    second = fake.complete_execution(WATCH_SYNC_ID, fake.start_execution(WATCH_SYNC_ID))
    wait_until(
        "the second event's asset event (after the survivor took the watcher)",
        lambda: second["id"] in asset_event_ids(home, WATCH_SYNC_ID),
        180,
    )
    survivor = next(job for job in names if job != owner)
    wait_until("the watcher on the survivor", lambda: watcher_owner() == survivor, 60)
    # A few more polls of the survivor: a replay of the first event would show up here.
    polls = len([r for r in fake.requests if r.path == "/api/events"])
    wait_until(
        "five more event polls",
        lambda: len([r for r in fake.requests if r.path == "/api/events"]) >= polls + 5,
        60,
    )
    after = asset_event_ids(home, WATCH_SYNC_ID)[len(before) :]
    assert after == [first["id"], second["id"]]


def test_webhook_deliveries_survive_an_api_server_restart(
    stack: Topology, home: AirflowHome, fake: FakePolytomic
) -> None:
    fake.create_webhook({"endpoint": f"{stack.api_url}/polytomic/events", "secret": SECRET})
    try:
        wait_until(
            "the webhook sync's asset to be active",
            lambda: home.query(
                "SELECT 1 FROM asset_active WHERE uri LIKE ?", (f"polytomic://{WEBHOOK_SYNC_ID}%",)
            ),
            120,
        )
        start = len(fake.webhook_deliveries)
        events = [fake.add_event("sync.completed", {"sync_id": WEBHOOK_SYNC_ID}) for _ in range(DELIVERIES)]
        wanted = {e["id"] for e in events}

        def delivered() -> int:
            return len({d.event_id for d in fake.webhook_deliveries[start:] if d.ok and d.event_id in wanted})

        wait_until("a third of the deliveries", lambda: delivered() >= DELIVERIES // 3, 300)
        stack.restart("api-server", signal.SIGTERM)
        wait_until("the api-server back", stack.api_ready, 300)
        assert fake.wait_for_deliveries(600), f"{delivered()} of {DELIVERIES} delivered"

        attempts = fake.webhook_deliveries[start:]
        failed = [d for d in attempts if d.event_id in wanted and not d.ok]
        assert failed, "the restart interrupted no delivery: nothing was retried"
        assert delivered() == DELIVERIES, Counter((d.status_code, d.error_kind) for d in failed)
        recorded = Counter(e for e in asset_event_ids(home, WEBHOOK_SYNC_ID) if e in wanted)
        assert set(recorded) == wanted, f"{len(wanted - set(recorded))} events never became asset events"
        assert [e for e, n in recorded.items() if n > 1] == []
    finally:
        for hook in fake.webhooks():
            fake.delete_webhook(hook["id"])
