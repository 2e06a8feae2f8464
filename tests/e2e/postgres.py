"""A throwaway PostgreSQL server for end-to-end tests: Debian's ``postgresql`` package, a
fresh cluster in a temporary directory, TCP on 127.0.0.1 only, gone when the block exits.

Usage::

    from tests.e2e.postgres import PostgresCluster

    with PostgresCluster() as pg:          # installs the package first when it is missing
        url = pg.url                       # postgresql+psycopg2://airflow:...@127.0.0.1:<port>/airflow
        rows = pg.query("SELECT 1")

How it runs on a fresh Debian machine:

* **Binaries**: ``initdb``/``pg_ctl`` from ``/usr/lib/postgresql/<newest>/bin`` (Debian does
  not put them on PATH). When there are none, ``apt-get install postgresql`` unattended
  (``DEBIAN_FRONTEND=noninteractive``, existing configuration files kept, waiting for another
  apt run's lock; ``apt-get update`` first when the install fails) as root or through
  passwordless ``sudo``, without the package's default "main" cluster. When that is not
  possible, :class:`PostgresUnavailable` says why and what to run: the suite then errors, it
  never skips.
* **User**: PostgreSQL refuses to run as root. As root, the server runs as the ``postgres``
  user the Debian package creates (or, when that user is missing, a system user
  ``polytomic-pg`` made with ``useradd``), through ``runuser``; the cluster directory is
  chowned to it. As any other user, it runs as that user.
* **Network**: ``listen_addresses = 127.0.0.1``, a free port below the ephemeral range, no
  Unix socket; password (SCRAM) authentication for a random password.
* **Durability**: ``durable=False`` (the test default) turns off ``fsync``,
  ``synchronous_commit`` and ``full_page_writes``: a crash of the machine loses the throwaway
  cluster anyway, and it spares a shared 2-core machine the disk flushes. Benchmarks pass
  ``durable=True`` to measure what a production server does.
* **Stop**: ``pg_ctl stop -m fast``, then SIGKILL of the postmaster's process group if it is
  still there; also at interpreter exit, so a failed test cannot leave a server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.e2e.harness import free_port, wait_until

FALLBACK_USER = "polytomic-pg"
DATABASE = "airflow"
ROLE = "airflow"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed and cannot be installed from here."""


def postgres_bin_dir(*, install: bool = True) -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``.

    Installs Debian's ``postgresql`` package first when there is none (see the module notes).
    """
    found = _find_bin_dir()
    if found is not None:
        return found
    if not install:
        raise PostgresUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    _install_postgresql()
    found = _find_bin_dir()
    if found is None:
        raise PostgresUnavailable("apt-get installed postgresql but no initdb is under /usr/lib/postgresql")
    return found


# Debian's postgresql-common reads this directory when it creates a cluster: without the
# drop-in, installing the package also creates (and, where an init system runs, starts) a
# "main" cluster on port 5432 that the tests never use and that would outlive them.
CREATECLUSTER_DROPIN = Path("/etc/postgresql-common/createcluster.d/polytomic-e2e.conf")


def _install_postgresql() -> None:
    """``apt-get install postgresql``, unattended; :class:`PostgresUnavailable` naming why not."""
    if shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb) and "
            "this is not a Debian-like system (no apt-get): install PostgreSQL's server package"
        )
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        raise PostgresUnavailable(
            "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb) and "
            "installing them needs root. Install them with: sudo apt-get install -y postgresql"
        )
    if not CREATECLUSTER_DROPIN.exists():
        subprocess.run(
            [*sudo, "sh", "-c", f"mkdir -p {CREATECLUSTER_DROPIN.parent} && cat > {CREATECLUSTER_DROPIN}"],
            input="# polytomic e2e tests: their clusters are throwaway ones in temp directories\n"
            "create_main_cluster = false\n",
            text=True,
            check=False,
            timeout=60,
        )
    # Never a question on a terminal: no debconf prompts, keep existing configuration files,
    # and wait for another apt/dpkg run to release its lock instead of failing at once.
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a"]
    options = [
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=600",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]

    def apt_get(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*sudo, *env, "apt-get", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    # A fresh machine may have no package lists yet: update once when the install fails.
    done = apt_get("install", *options, "postgresql", timeout=900)
    if done.returncode != 0:
        update = apt_get("update", "-q", "-o", "DPkg::Lock::Timeout=600", timeout=600)
        done = update if update.returncode != 0 else apt_get("install", *options, "postgresql", timeout=900)
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"could not install PostgreSQL: {shlex.join(done.args)} exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )


def _find_bin_dir() -> Path | None:
    candidates = [
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if Path(p).with_name("pg_ctl").exists()
    ]

    def version(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in path.parent.name.split("."))
        except ValueError:
            return (0,)

    return max(candidates, key=version) if candidates else None


def _server_user() -> str | None:
    """The user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True,
        timeout=60,
    )
    return FALLBACK_USER


class PostgresCluster:
    """A private PostgreSQL server (see the module documentation).

    :param durable: keep ``fsync``/``synchronous_commit`` on (benchmarks); off for tests.
    :param max_connections: the server's connection limit (Airflow's components each keep a pool).
    """

    def __init__(self, *, durable: bool = False, max_connections: int = 200) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.port = 0
        self.password = secrets.token_urlsafe(16)
        self.root: Path | None = None
        self._bin: Path | None = None
        self._user: str | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PostgresCluster:
        """Create the cluster and start the server; returns once it accepts connections."""
        self._bin = postgres_bin_dir()
        self._user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="polytomic-pg-"))
        atexit.register(self.stop)
        data = self.root / "data"
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            info = pwd.getpwnam(self._user)
            for path in (self.root, pwfile):
                os.chown(path, info.pw_uid, info.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            ROLE,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
            timeout=300,
        )
        pwfile.unlink()
        self.port = free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": str(self.max_connections),
            "shared_buffers": "'128MB'",
            "log_min_duration_statement": "1000",
            "log_lock_waits": "on",
            "deadlock_timeout": "'500ms'",
        }
        if not self.durable:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# polytomic e2e throwaway cluster\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "120", "start")
        self._started = True
        wait_until("PostgreSQL to accept connections", self._accepts, 60, interval=0.3)
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            conn.cursor().execute(f"CREATE DATABASE {DATABASE}")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete the cluster directory."""
        if self.root is None:
            return
        root, self.root = self.root, None
        data = root / "data"
        if self._started:
            self._started = False
            stopped = (
                self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop", check=False) == 0
            )
            if not stopped:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                    time.sleep(0.5)  # the kernel reaps the group; nothing else waits on it
        shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------- use

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``airflow`` database (Airflow's ``sql_alchemy_conn``)."""
        return f"postgresql+psycopg2://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, database: str = DATABASE) -> Any:
        """A new psycopg2 connection (the caller closes it)."""
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=ROLE,
            password=self.password,
            dbname=database,
            connect_timeout=10,
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; its rows (``%s`` placeholders)."""
        with contextlib.closing(self.connect()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []

    def server_log(self) -> str:
        """The server's log (slow statements, lock waits, errors)."""
        if self.root is None:
            return ""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _accepts(self) -> bool:
        try:
            with contextlib.closing(self.connect("postgres")):
                return True
        except Exception:
            return False

    def _run(self, tool: str, *args: str, timeout: float = 120, check: bool = True) -> int:
        assert self._bin is not None
        cmd = [str(self._bin / tool), *args]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        proc = subprocess.run(
            cmd,
            cwd=self.root or "/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{tool} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{self.server_log()[-3000:]}"
            )
        return proc.returncode


__all__ = ["PostgresCluster", "PostgresUnavailable", "postgres_bin_dir"]
