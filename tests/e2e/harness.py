"""A small harness to run DAGs on a REAL Airflow 3 (SQLite, or PostgreSQL) from pytest, in subprocesses.

On Airflow 2.11 everything but :meth:`AirflowHome.stack` works too (``migrate``, ``cli``,
``dags_test`` and the state reads), with the SequentialExecutor Airflow 2 requires for SQLite.

Reused by several end-to-end test modules; the public API below is meant to stay stable.

Usage::

    from tests.e2e.harness import AirflowHome

    home = AirflowHome(tmp_path / "airflow", dags_folder=Path("example_dags"),
                       env={"AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps({...})})
    home.migrate()                                   # airflow db migrate
    result = home.dags_test("my_dag")                # airflow dags test (triggers run in-line)
    assert home.task_states("my_dag", result.run_id) == {"t1": "success"}
    home.xcom("my_dag", result.run_id, "t1")         # the return value, decoded

    with home.stack() as stack:                      # api-server + scheduler + dag-processor + triggerer
        home.wait_for_dag("my_dag")
        run_id = home.trigger("my_dag", conf={"x": 1})
        home.wait_for_task_states("my_dag", run_id, {"t1": {"deferred"}})
        assert home.wait_for_run("my_dag", run_id) == "success"
        print(stack.log("triggerer"))

Public API (all of it):

* :class:`AirflowHome` - ``migrate``, ``cli``, ``dags_test``, ``trigger``, ``wait_for_dag``,
  ``run_state``, ``wait_for_run``, ``latest_run_id``, ``task_states``, ``wait_for_task_states``,
  ``reschedule_count``, ``xcom``, ``task_log``, ``stack``, ``query`` (any SQL on the metadata
  database), ``uses_sqlite``; attributes ``root``, ``dags_folder``, ``env`` (a dict you may
  update before starting anything), ``db_path``, ``database_url``, ``api_port``.
* :func:`wait_until` - poll a condition with a deadline; :func:`free_port`;
  :func:`polytomic_conn_env` - the connection environment for a fake Polytomic;
  ``needs_airflow_3_stack`` - a pytest mark skipping tests that need Airflow 3 on Airflow 2.
* :class:`DagTestResult` - ``run_id``, ``returncode``, ``output``.
* :class:`Stack` - ``api_url``, ``log(component)``, ``pgid``, ``alive()``.

Design notes:

* Isolation: each :class:`AirflowHome` has its own directory, SQLite database and config
  (or, with ``database_url``, a PostgreSQL database such as :mod:`tests.e2e.postgres` makes;
  :mod:`tests.e2e.topology` runs every component in its own process group on it).
  Every ``AIRFLOW_*`` variable of the calling process (pytest's unit-test settings, for
  example) is dropped from the child environment; only the harness's settings and the
  ``env`` you pass reach Airflow.
* Everything binds to 127.0.0.1; ``[core] parallelism`` is 4 (LocalExecutor forks that
  many workers).
* :meth:`AirflowHome.stack` starts the four components under one shell in a NEW process
  group (``start_new_session``), and kills the whole group on exit - SIGTERM, then SIGKILL
  - and also from a watchdog after a hard timeout, so nothing outlives the test.
* State is read from the metadata database directly (SQLite, read-only): one ``airflow``
  CLI call costs several seconds of interpreter start-up on a small machine, which is too
  slow to poll. Triggering, migrating and ``dags test`` go through the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_polytomic._compat import AIRFLOW_V_3

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
_POLL = 0.5
# A migrated, never-used database of this process (see AirflowHome.migrate).
_MIGRATED_TEMPLATE: Path | None = None


needs_airflow_3_stack = pytest.mark.skipif(
    not AIRFLOW_V_3,
    reason="drives the Airflow 3 stack (api-server, dag-processor); "
    "test_e2e_every_airflow.py covers Airflow 2.11",
)
"""Marks a test that needs :meth:`AirflowHome.stack` (or other Airflow 3 parts)."""


def polytomic_conn_env(fake: Any) -> dict[str, str]:
    """The environment that points ``polytomic_default`` at a fake Polytomic (``FakePolytomic``)."""
    conn = {"conn_type": "polytomic", "host": fake.url, "password": fake.api_key, "extra": {"max_retries": 3}}
    return {"AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps(conn)}


def airflow_executable() -> str:
    """The ``airflow`` script next to the running interpreter (the test venv's)."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range.

    The port is only reserved again when the api-server binds it, seconds later. A port from
    the ephemeral range (what binding port 0 returns) can be handed meanwhile to any other
    socket bound to port 0 or any outgoing connection - a CI run lost its api-server that way
    ("address already in use"). Ports below the range are never handed out automatically.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found between 20000 and 32000 on 127.0.0.1")


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = _POLL) -> Any:
    """Call ``check`` until it returns something truthy; raise :class:`TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class DagTestResult:
    """What ``airflow dags test`` did: the run it created, its exit status and its output."""

    run_id: str | None
    returncode: int
    output: str


@dataclass
class Stack:
    """A running Airflow (api-server, scheduler, dag-processor, triggerer) in one process group."""

    process: subprocess.Popen[bytes]
    api_url: str
    logs_dir: Path
    pgid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pgid = os.getpgid(self.process.pid)

    def alive(self) -> bool:
        """Whether the supervising shell still runs."""
        return self.process.poll() is None

    def log(self, component: str) -> str:
        """Output of one component: ``api-server``, ``scheduler``, ``dag-processor`` or ``triggerer``."""
        path = self.logs_dir / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left."""
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.pgid):
                time.sleep(0.2)
            if not _group_alive(self.pgid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists but not ours
        return True
    return True


class AirflowHome:
    """An isolated ``AIRFLOW_HOME`` (SQLite) driven through the ``airflow`` CLI in subprocesses.

    :param root: directory for the home (created).
    :param dags_folder: the DAGs folder (the default bundle).
    :param env: extra environment for every Airflow process (connections, variables, settings).
    :param parallelism: ``[core] parallelism`` (LocalExecutor worker count).
    :param database_url: the metadata database's SQLAlchemy URL; default a SQLite file in
        ``root``. A ``postgresql`` URL (see :class:`tests.e2e.postgres.PostgresCluster`) makes
        the state reads go through psycopg2 instead.
    """

    def __init__(
        self,
        root: Path,
        *,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        parallelism: int = 4,
        database_url: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.dags_folder = Path(dags_folder).resolve()
        self.db_path = self.root / "airflow.db"
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self.api_port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        venv_bin = str(Path(sys.executable).parent)
        base["PATH"] = venv_bin + os.pathsep + base.get("PATH", "")
        self.env: dict[str, str] = {
            **base,
            "AIRFLOW_HOME": str(self.root),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # Airflow 2 refuses LocalExecutor on SQLite.
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if AIRFLOW_V_3 else "SequentialExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # Loopback-only throwaway instance: no login, so the harness can use the REST API.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update(env or {})
        self._stack: Stack | None = None

    def enable_webhook_receiver(self, polytomic_conn: Mapping[str, Any]) -> None:
        """Serve Polytomic's webhook from this home's API server: the receiver plugin in a
        plugins folder, ``polytomic_conn`` as ``polytomic_default`` (it carries the webhook
        secret), and a ``receiver`` user (password ``receiver-password``) that the receiver
        uses, through ``polytomic_airflow_api``, to record asset events over the REST API."""
        plugins = self.root / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "polytomic_webhook_plugin.py").write_text(
            "from airflow_provider_polytomic.webhook.plugin import PolytomicWebhookPlugin  # noqa: F401\n"
        )
        passwords = self.root / "passwords.json"
        passwords.write_text(json.dumps({"receiver": "receiver-password"}))
        api_conn = {
            "conn_type": "http",
            "host": f"http://127.0.0.1:{self.api_port}",
            "login": "receiver",
            "password": "receiver-password",
        }
        self.env.update(
            {
                "AIRFLOW_CONN_POLYTOMIC_DEFAULT": json.dumps(dict(polytomic_conn)),
                "AIRFLOW_CONN_POLYTOMIC_AIRFLOW_API": json.dumps(api_conn),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "receiver:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            }
        )

    # ------------------------------------------------------------------------------- CLI

    def cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with this home's environment; output captured (stderr merged)."""
        proc = subprocess.run(
            [airflow_executable(), *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-6000:]}")
        return proc

    def migrate(self, *, copy_from: AirflowHome | None = None, timeout: float = 240) -> None:
        """``airflow db migrate`` (creates the SQLite database).

        A new home reuses the first database this process migrated (a copy of it, taken
        before anything ran against it), so only one migration runs per test session. With
        ``copy_from``, copy that home's database instead; only copy one no DAG has run against.
        """
        global _MIGRATED_TEMPLATE
        if not self.uses_sqlite:
            self.cli("db", "migrate", timeout=timeout)
            return
        if copy_from is not None:
            shutil.copyfile(copy_from.db_path, self.db_path)
            return
        fresh = not self.db_path.exists()
        if fresh and _MIGRATED_TEMPLATE is not None and _MIGRATED_TEMPLATE.exists():
            shutil.copyfile(_MIGRATED_TEMPLATE, self.db_path)
            return
        self.cli("db", "migrate", timeout=timeout)
        if fresh and _MIGRATED_TEMPLATE is None:
            template = Path(tempfile.mkdtemp(prefix="airflow-migrated-")) / "airflow.db"
            shutil.copyfile(self.db_path, template)
            _MIGRATED_TEMPLATE = template

    def dags_test(
        self,
        dag_id: str,
        *,
        logical_date: str | None = None,
        conf: Mapping[str, Any] | None = None,
        timeout: float = 240,
    ) -> DagTestResult:
        """``airflow dags test <dag_id> [logical_date]``: runs the DAG in one process, triggers in-line.

        Returns the run it created (read from the database), the exit status and the output.
        """
        before = set(self._run_ids(dag_id))
        args = ["dags", "test", dag_id]
        if logical_date:
            args.append(logical_date)
        if conf is not None:
            args += ["--conf", json.dumps(dict(conf))]
        proc = self.cli(*args, timeout=timeout, check=False)
        new = [r for r in self._run_ids(dag_id) if r not in before]
        return DagTestResult(run_id=new[-1] if new else None, returncode=proc.returncode, output=proc.stdout)

    def trigger(
        self, dag_id: str, *, conf: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Create a manual run (no logical date); returns the run id.

        Through the REST API while :meth:`stack` runs (an ``airflow`` CLI call costs seconds of
        start-up), else ``airflow dags trigger``.
        """
        run_id = run_id or f"manual__e2e_{secrets.token_hex(4)}"
        if self._stack is not None and self._stack.alive():
            body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
            request = urllib.request.Request(
                f"{self._stack.api_url}/api/v2/dags/{dag_id}/dagRuns",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=60) as resp:
                created = json.load(resp)
            return str(created["dag_run_id"])
        args = ["dags", "trigger", dag_id, "--run-id", run_id]
        if conf is not None:
            args += ["--conf", json.dumps(dict(conf))]
        self.cli(*args)
        return run_id

    # ------------------------------------------------------------------------ state reads

    @property
    def uses_sqlite(self) -> bool:
        """Whether the metadata database is this home's SQLite file."""
        return self.database_url.startswith("sqlite")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read Airflow's metadata database (``?`` placeholders, whatever the database).

        Returns no rows while the schema does not exist yet (or SQLite is locked).
        """
        return self._query(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.uses_sqlite:
            return _postgres_query(self.database_url, sql, params)
        if not self.db_path.exists():
            return []
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            try:
                return list(db.execute(sql, params))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc) or "locked" in str(exc):
                    return []
                raise

    def _run_ids(self, dag_id: str) -> list[str]:
        rows = self._query("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,))
        return [r[0] for r in rows]

    def latest_run_id(self, dag_id: str) -> str | None:
        """The newest run of ``dag_id``, or None."""
        ids = self._run_ids(dag_id)
        return ids[-1] if ids else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has serialized ``dag_id`` (it can then be triggered)."""
        wait_until(
            f"DAG {dag_id} to be parsed",
            lambda: self._query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", (dag_id,)),
            timeout,
        )

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The state of a DAG run, or None when it does not exist."""
        rows = self._query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return rows[0][0] if rows else None

    def wait_for_run(
        self, dag_id: str, run_id: str, *, states: frozenset[str] = TERMINAL_RUN_STATES, timeout: float = 180
    ) -> str:
        """Wait until the run reaches one of ``states`` (default: success or failed); return it."""
        return str(
            wait_until(
                f"run {dag_id}/{run_id} to reach {sorted(states)}",
                lambda: (s := self.run_state(dag_id, run_id)) in states and s,
                timeout,
            )
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of a run (mapped tasks as ``task_id[map_index]``)."""
        rows = self._query(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        )
        return {(t if m < 0 else f"{t}[{m}]"): s for t, m, s in rows}

    def reschedule_count(self, dag_id: str, run_id: str, task_id: str) -> int:
        """How many times a task of a run was rescheduled (its ``task_reschedule`` rows)."""
        if AIRFLOW_V_3:
            sql = (
                "SELECT COUNT(*) FROM task_reschedule r JOIN task_instance t ON r.ti_id = t.id"
                " WHERE t.dag_id = ? AND t.run_id = ? AND t.task_id = ?"
            )
        else:
            sql = "SELECT COUNT(*) FROM task_reschedule WHERE dag_id = ? AND run_id = ? AND task_id = ?"
        rows = self._query(sql, (dag_id, run_id, task_id))
        return int(rows[0][0]) if rows else 0

    def wait_for_task_states(
        self, dag_id: str, run_id: str, expected: Mapping[str, set[str]], timeout: float = 180
    ) -> dict[str, str | None]:
        """Wait until every task in ``expected`` is in one of its allowed states; return all states."""

        def check() -> dict[str, str | None] | None:
            states = self.task_states(dag_id, run_id)
            ok = all(states.get(task) in allowed for task, allowed in expected.items())
            return states if ok else None

        return dict(wait_until(f"task states {dict(expected)} in {dag_id}/{run_id}", check, timeout))

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """An XCom value, JSON-decoded (None when absent)."""
        rows = self._query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?"
            " AND map_index = ?",
            (dag_id, run_id, task_id, key, map_index),
        )
        if not rows or rows[0][0] is None:
            return None
        value = rows[0][0]
        if isinstance(value, bytes):
            value = value.decode()
        # SQLite hands back the JSON text; PostgreSQL's JSON columns come back decoded.
        decoded = json.loads(value) if isinstance(value, str) else value
        # Some versions store the serialized value as a JSON string inside the JSON column.
        if isinstance(decoded, str):
            with contextlib.suppress(ValueError):
                return json.loads(decoded)
        return decoded

    def task_log(self, dag_id: str, run_id: str, task_id: str, *, attempt: int = 1) -> list[dict[str, Any]]:
        """The structured log events of one task attempt, then those of its triggers (files
        ``attempt=N.log`` and ``attempt=N.log.trigger.<id>.log``), each a dict with at least
        ``event``; lines that are not JSON come as ``{"event": line}``."""
        folder = self.root / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        events: list[dict[str, Any]] = []
        main = folder / f"attempt={attempt}.log"
        for path in [main, *sorted(folder.glob(f"attempt={attempt}.log.trigger.*.log"))]:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    item = {"event": line}
                if not isinstance(item, dict):
                    item = {"event": str(item)}
                item.setdefault("event", "")
                item["_file"] = path.name
                events.append(item)
        return events

    # ------------------------------------------------------------------------------ stack

    @contextlib.contextmanager
    def stack(self, *, timeout: float = 600, ready_timeout: float = 300) -> Iterator[Stack]:
        """Run api-server, scheduler, dag-processor and triggerer until the block exits.

        All four run under one shell in a new process group, which is killed on exit and,
        whatever happens, by a watchdog ``timeout`` seconds after the start.
        """
        logs = self.root / "component-logs"
        logs.mkdir(exist_ok=True)
        exe = airflow_executable()
        # --skip-serve-logs: the log servers would bind every interface; logs are read from disk.
        flags = {"scheduler": " --skip-serve-logs", "triggerer": " --skip-serve-logs"}
        lines = [f"'{exe}' {name}{flags.get(name, '')} > '{logs / name}.log' 2>&1 &" for name in COMPONENTS]
        script = "\n".join([*lines, "wait"])
        process = subprocess.Popen(
            ["/bin/sh", "-c", script],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack = Stack(process, f"http://127.0.0.1:{self.api_port}", logs)
        watchdog = threading.Timer(timeout, stack.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            self._wait_ready(stack, ready_timeout)
            self._stack = stack
            yield stack
        finally:
            self._stack = None
            watchdog.cancel()
            stack.kill()

    def _wait_ready(self, stack: Stack, timeout: float) -> None:
        def healthy() -> bool:
            if not stack.alive():
                tails = "\n".join(stack.log(c)[-2000:] for c in COMPONENTS)
                raise RuntimeError("the Airflow stack exited:\n" + tails)
            try:
                with urllib.request.urlopen(stack.api_url + "/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
            except (urllib.error.URLError, OSError, ValueError):
                return False
            return all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        try:
            wait_until("the Airflow stack to be healthy", healthy, timeout, interval=1.0)
        except TimeoutError as exc:
            tails = "\n".join(f"--- {c}\n{stack.log(c)[-1500:]}" for c in COMPONENTS)
            raise TimeoutError(f"{exc}\n{tails}") from None


def _postgres_query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import psycopg2
    import psycopg2.errors
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = psycopg2.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        connect_timeout=10,
    )
    with contextlib.closing(conn):
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
            except psycopg2.errors.UndefinedTable:
                return []
            return list(cur.fetchall()) if cur.description else []


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


__all__ = [
    "AirflowHome",
    "DagTestResult",
    "Stack",
    "free_port",
    "needs_airflow_3_stack",
    "polytomic_conn_env",
    "wait_until",
]
