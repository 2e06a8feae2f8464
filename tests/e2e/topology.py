"""Airflow as production runs it, for end-to-end tests: every component its own process.

:class:`AirflowHome.stack <tests.e2e.harness.AirflowHome.stack>` runs one of each component
under one shell. :class:`Topology` runs each component (api-server, scheduler,
dag-processor, and any number of triggerers) in its **own process group**, so a test can
``SIGKILL`` one triggerer (its supervisor and trigger-runner subprocess at once, as when
its machine dies) or restart the api-server while the others keep running.

Usage::

    home = AirflowHome(root, dags_folder=..., database_url=pg.url)
    home.migrate()
    with Topology(home, triggerers=2) as top:
        top.wait_healthy()
        job = top.triggerer_jobs()["triggerer-1"]     # its row in the job table
        top.kill("triggerer-1")                       # SIGKILL its process group
        top.start("triggerer-1")                      # a new triggerer (a new job)
        top.restart("api-server")                     # SIGTERM, wait, start again

Each component's ``[core] hostname_callable`` returns its name (``triggerer-1``...), so the
job table (``job.hostname``) tells which process owns which triggers. Output goes to
``<home>/component-logs/<name>.log`` (appended across restarts). Everything listens on
127.0.0.1; the log servers are off (``--skip-serve-logs``; logs are read from disk). A
watchdog kills every group ``timeout`` seconds after the start, and :meth:`Topology.stop`
(also at exit of the ``with`` block, whatever happened) SIGTERMs then SIGKILLs each group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from tests.e2e.harness import AirflowHome, _group_alive, airflow_executable, wait_until

_HOSTNAME_MODULE = '''"""Written by tests/e2e/topology.py: each component reports its own name as hostname."""
import os


def hostname() -> str:
    return os.environ.get("POLYTOMIC_E2E_COMPONENT") or "unnamed-component"
'''
_ARGS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def triggerer_settings(*, heartbeat: float = 1.0, threshold: int = 10, per_loop: int = 50) -> dict[str, str]:
    """Environment that makes a dead triggerer's triggers move within seconds.

    A triggerer heartbeats every ``[triggerer] job_heartbeat_sec``; the others take over the
    triggers of one whose last heartbeat is older than ``[triggerer]
    triggerer_health_check_threshold`` (read with ``getint``: whole seconds). Defaults are 5
    and 30 s. ``max_trigger_to_select_per_loop`` bounds how many unassigned triggers one
    triggerer claims per loop (Airflow's default, 50, here too). Each batch a triggerer
    claims starts together, so a taken-over batch of sensors costs one backfill read of the
    events API; a low value spreads a takeover over more loops and more reads.
    """
    return {
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(heartbeat),
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(int(threshold)),
        "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": str(per_loop),
    }


class Topology:
    """api-server, scheduler, dag-processor and ``triggerers`` triggerers, one process group each.

    :param home: the Airflow home (its ``env`` is what every component gets).
    :param triggerers: how many triggerers (named ``triggerer-1``, ``triggerer-2``...).
    :param timeout: the watchdog: every component is killed this many seconds after the start.
    """

    def __init__(self, home: AirflowHome, *, triggerers: int = 2, timeout: float = 1800) -> None:
        self.home = home
        self.api_url = f"http://127.0.0.1:{home.api_port}"
        self.logs_dir = home.root / "component-logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.names = ["api-server", "scheduler", "dag-processor"] + [
            f"triggerer-{i}" for i in range(1, triggerers + 1)
        ]
        self.timeout = timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._watchdog: threading.Timer | None = None
        pythonpath = home.root / "component-pythonpath"
        pythonpath.mkdir(exist_ok=True)
        (pythonpath / "polytomic_e2e_hostname.py").write_text(_HOSTNAME_MODULE)
        self._pythonpath = str(pythonpath)

    # ---------------------------------------------------------------- processes

    def start(self, name: str) -> None:
        """Start one component (again, after :meth:`kill`), in a new process group."""
        if name not in self.names:
            raise ValueError(f"unknown component {name!r}; this topology has {self.names}")
        with self._lock:
            old = self._procs.get(name)
            if old is not None and old.poll() is None:
                raise RuntimeError(f"{name} is already running (pid {old.pid})")
            env = dict(self.home.env)
            env["POLYTOMIC_E2E_COMPONENT"] = name
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "polytomic_e2e_hostname.hostname"
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self._pythonpath, env.get("PYTHONPATH")) if p)
            kind = "triggerer" if name.startswith("triggerer-") else name
            with (self.logs_dir / f"{name}.log").open("ab") as log:
                log.write(f"\n==== starting {name} at {time.time():.3f}\n".encode())
                log.flush()
                self._procs[name] = subprocess.Popen(
                    [airflow_executable(), *_ARGS[kind]],
                    env=env,
                    cwd=self.home.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def start_all(self) -> None:
        """Start every component not running, and arm the watchdog."""
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.timeout, self.stop)
            self._watchdog.daemon = True
            self._watchdog.start()
        for name in self.names:
            if not self.alive(name):
                self.start(name)

    def alive(self, name: str = "api-server") -> bool:
        """Whether the component's main process runs (by default: the api-server)."""
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def pid(self, name: str) -> int:
        """The component's main process id (its process group id too)."""
        return self._procs[name].pid

    def kill(self, name: str, sig: int = signal.SIGKILL, *, grace: float = 30.0) -> None:
        """Send ``sig`` to the component's whole process group; wait for the group to end.

        After ``grace`` seconds the group gets SIGKILL. SIGKILL is a crash: no shutdown code
        runs, the triggerer's job row keeps its last heartbeat.
        """
        proc = self._procs.get(name)
        if proc is None:
            return
        _kill_group(proc, sig, grace)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop the component with ``sig`` (graceful by default), then start it again."""
        self.kill(name, sig)
        self.start(name)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, every component's process group."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            _kill_group(proc, signal.SIGTERM, 15.0)

    def __enter__(self) -> Topology:
        self.start_all()
        self.home._stack = self  # type: ignore[assignment]  # trigger() uses the REST API then
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.home._stack = None
        self.stop()

    def log(self, name: str) -> str:
        """Output of one component (every run of it)."""
        path = self.logs_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, size: int = 1500) -> str:
        """The end of every component's log, for failure messages."""
        return "\n".join(f"--- {name}\n{self.log(name)[-size:]}" for name in self.names)

    # ------------------------------------------------------------------- state

    def health(self) -> dict[str, Any]:
        """The api-server's ``/api/v2/monitor/health`` answer ({} when it does not answer)."""
        try:
            with urllib.request.urlopen(self.api_url + "/api/v2/monitor/health", timeout=5) as resp:
                return dict(json.load(resp))
        except (urllib.error.URLError, OSError, ValueError):
            return {}

    def api_ready(self) -> bool:
        """Whether the api-server answers its health endpoint."""
        return bool(self.health())

    def triggerer_jobs(self, *, alive_within: float | None = None) -> dict[str, int]:
        """``{component name: job id}`` of each running triggerer's newest job.

        ``alive_within``: only jobs that heartbeat in the last that many seconds.
        """
        rows = self.home.query(
            "SELECT id, hostname, latest_heartbeat FROM job WHERE job_type = 'TriggererJob'"
            " AND end_date IS NULL ORDER BY id"
        )
        found: dict[str, int] = {}
        now = time.time()
        for job_id, hostname, beat in rows:
            if alive_within is not None and (beat is None or now - _epoch(beat) > alive_within):
                continue
            found[str(hostname)] = int(job_id)
        return found

    def wait_healthy(self, timeout: float = 400) -> None:
        """Wait until the api-server, scheduler and dag-processor report healthy and every
        running triggerer heartbeats."""
        running = [n for n in self.names if n.startswith("triggerer-") and self.alive(n)]

        def ready() -> bool:
            for name in self.names:
                if name in self._procs and not self.alive(name) and not name.startswith("triggerer-"):
                    raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            health = self.health()
            if not all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
            ):
                return False
            return set(running) <= set(self.triggerer_jobs(alive_within=10))

        try:
            wait_until("the Airflow topology to be healthy", ready, timeout, interval=1.0)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.tails()}") from None


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        from datetime import datetime, timezone

        parsed = datetime.fromisoformat(value.replace(" ", "T"))
        value = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return float(value.timestamp())


def _kill_group(proc: subprocess.Popen[bytes], sig: int, grace: float) -> None:
    pgid = proc.pid  # start_new_session: the main process leads its group
    for signum, wait in ((sig, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
            if proc.poll() is not None and not _group_alive(pgid):
                break
        if not _group_alive(pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


__all__ = ["Topology", "triggerer_settings"]
