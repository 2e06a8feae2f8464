#!/usr/bin/env python3
"""Run the test matrix of ``ci/matrix.txt``: one virtualenv per cell, suites run concurrently.

::

    python ci/matrix.py                                   # every cell and suite (= make test = CI)
    python ci/matrix.py --cells airflow-2.11 --suites unit
    python ci/matrix.py --list                            # the cells, and the interpreters found
    python ci/matrix.py --install-dev .venv --python python3.11   # the development venv

Each cell gets ``.matrix/<cell>/venv`` (created with uv in seconds, and kept between runs
until ``pyproject.toml`` or the cell's line changes) with the package, its test extras and
the cell's exact Airflow. Suites then run as separate pytest processes, ``--jobs`` at a time
(default: all at once; the suites mostly wait on sockets and timers, so running them together
costs little more wall time than the slowest one alone, even on two cores). Each suite's
output goes to ``.matrix/<cell>/<suite>.log``; the console gets one line per suite when it
starts and ends, then a summary, then pytest's failure report of every failing suite under a
header naming its cell.

Interpreters: ``python3.X`` on PATH (when it runs: a pyenv shim of an inactive version
does not), else pyenv's ``versions/3.X.*``, else a uv-managed Python. A missing one stops
the run before anything is installed, naming the interpreter and the cell that needs it.

uv: the ``UV`` environment variable (a command, e.g. ``python3 -m uv``), else what
``ci/find-uv`` prints (it installs uv when there is none). Only the standard library is
used here, so any Python 3.10+ can run this file.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX_FILE = ROOT / "ci" / "matrix.txt"
WORK = ROOT / ".matrix"
SUITES = {"unit": "not e2e", "e2e": "e2e"}
# Extras only the development venv gets: the documentation build (make docs).
DEV_EXTRAS = ("docs",)
# Longest first, so the slowest suite does not start last.
SUITE_ORDER = {"e2e": 0, "unit": 1}
JOB_TIMEOUT = 1800.0
EXCERPT_LINES = 150
_HEADER = re.compile(r"^=+ (.+?) =+$")
_SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*?) in [\d.]+s(?: \([\d:]+\))?\s*=*$")
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")


class MatrixError(Exception):
    """A problem with the matrix file or the machine, reported without a traceback."""


@dataclass(frozen=True)
class Cell:
    """One line of ``ci/matrix.txt``."""

    name: str
    python: str
    airflow: str
    suites: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    line: str = ""
    extras: tuple[str, ...] = ()
    """Package extras installed besides ``test`` (``+openlineage`` in the file)."""

    @property
    def venv(self) -> Path:
        return WORK / self.name / "venv"


def parse_matrix(text: str) -> list[Cell]:
    """The cells of a matrix file (see the file's header for the format)."""
    cells: list[Cell] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 4:
            raise MatrixError(
                f"{MATRIX_FILE.name}:{number}: expected 'name python airflow suites', got {raw!r}"
            )
        name, python, airflow, suites, *rest = parts
        extras = tuple(token[1:] for token in rest if token.startswith("+"))
        constraints = [token for token in rest if not token.startswith("+")]
        if any(not re.fullmatch(r"[a-z][a-z0-9-]*", e) for e in extras):
            raise MatrixError(f"{MATRIX_FILE.name}:{number}: extras look like +openlineage, got {raw!r}")
        if not re.fullmatch(r"3\.\d+", python):
            raise MatrixError(f"{MATRIX_FILE.name}:{number}: python must look like 3.12, got {python!r}")
        if not re.fullmatch(r"\d+\.\d+\.\d+", airflow):
            raise MatrixError(
                f"{MATRIX_FILE.name}:{number}: apache-airflow must be exact (X.Y.Z), got {airflow!r}"
            )
        unknown = [s for s in suites.split(",") if s not in SUITES]
        if unknown:
            raise MatrixError(
                f"{MATRIX_FILE.name}:{number}: unknown suites {unknown}; known: {sorted(SUITES)}"
            )
        cells.append(Cell(name, python, airflow, tuple(suites.split(",")), tuple(constraints), line, extras))
    if not cells:
        raise MatrixError(f"{MATRIX_FILE} lists no cells")
    if len({c.name for c in cells}) != len(cells):
        raise MatrixError(f"{MATRIX_FILE}: cell names must be unique")
    return cells


# ------------------------------------------------------------------------- tools


def uv_command() -> list[str]:
    """How to run uv: $UV, else what ci/find-uv prints (installing uv if needed)."""
    configured = os.environ.get("UV", "").strip()
    if configured:
        return shlex.split(configured)
    env = {**os.environ, "PYTHON": sys.executable}
    found = subprocess.run(
        [str(ROOT / "ci" / "find-uv")], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    if found.returncode != 0 or not found.stdout.strip():
        raise MatrixError("could not find or install uv (see ci/find-uv's messages above)")
    return shlex.split(found.stdout.strip())


def _python_version(executable: str) -> str | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"versions/(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(x) for x in match.groups()) if match else (0,)


def find_python(version: str, uv: list[str] | None = None) -> tuple[str | None, list[str]]:
    """An interpreter for Python ``version`` (e.g. ``3.12``), and where it looked."""
    tried: list[str] = []
    on_path = shutil.which(f"python{version}")
    tried.append(f"python{version} on PATH" + ("" if on_path else " (none)"))
    if on_path and _python_version(on_path) == version:
        return on_path, tried
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    pattern = os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")
    tried.append(pattern)
    for candidate in sorted(glob.glob(pattern), key=_version_key, reverse=True):
        if _python_version(candidate) == version:
            return candidate, tried
    if uv:
        tried.append(f"{shlex.join(uv)} python find --no-python-downloads {version}")
        found = subprocess.run(
            [*uv, "python", "find", "--no-python-downloads", "--python-preference", "only-managed", version],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=False,
        )
        candidate = found.stdout.strip()
        if found.returncode == 0 and candidate and _python_version(candidate) == version:
            return candidate, tried
    return None, tried


def find_pythons(cells: list[Cell], uv: list[str] | None) -> dict[str, str]:
    """An interpreter per Python version the cells need; MatrixError naming every one missing."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for version in sorted({c.python for c in cells}, key=lambda v: tuple(map(int, v.split(".")))):
        path, tried = find_python(version, uv)
        if path:
            found[version] = path
        else:
            needers = ", ".join(c.name for c in cells if c.python == version)
            missing.append(
                f"python{version} is missing (needed by {needers}). Looked for: {'; '.join(tried)}. "
                f"Install it (e.g. `pyenv install {version}` or `uv python install {version}`) "
                "or put a working python" + version + " on PATH."
            )
    if missing:
        raise MatrixError("\n".join(missing))
    return found


# ---------------------------------------------------------------------- installing


def install(
    uv: list[str],
    venv: Path,
    python: str,
    airflow: str,
    constraints: tuple[str, ...],
    extras: tuple[str, ...] = (),
) -> bool:
    """Create ``venv`` with the package (editable) with its ``test`` extra and ``extras``, and
    ``apache-airflow==airflow``.

    Skipped when the venv was made from the same inputs (returns False then).
    """
    stamp = venv / ".matrix-stamp"
    digest = hashlib.sha256(
        "\n".join([(ROOT / "pyproject.toml").read_text(), python, airflow, *constraints, *extras]).encode()
    ).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (venv / "bin" / "python").exists():
        return False
    venv.parent.mkdir(parents=True, exist_ok=True)
    _check([*uv, "venv", "--quiet", "--allow-existing", "--python", python, str(venv)])
    command = [*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    if constraints:
        pins = venv / "constraints.txt"
        pins.write_text("\n".join(constraints) + "\n")
        command += ["--constraint", str(pins)]
    _check([*command, "-e", f"{ROOT}[{','.join(('test', *extras))}]", f"apache-airflow=={airflow}"])
    stamp.write_text(digest)
    return True


def _check(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise MatrixError(f"failed ({proc.returncode}): {shlex.join(command)}")


# ------------------------------------------------------------------------- running


@dataclass
class Job:
    """One suite of one cell."""

    cell: Cell
    suite: str
    returncode: int | None = None
    seconds: float = 0.0
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.cell.name} {self.suite}"

    @property
    def log(self) -> Path:
        return WORK / self.cell.name / f"{self.suite}.log"

    @property
    def ok(self) -> bool:
        # pytest exits 5 when it collected nothing: a suite that runs no test is a failure.
        return self.returncode == 0


_print_lock = threading.Lock()
_started = time.monotonic()


def say(message: str) -> None:
    elapsed = time.monotonic() - _started
    with _print_lock:
        print(f"[{int(elapsed) // 60:2d}m{int(elapsed) % 60:02d}s] {message}", flush=True)


def run_job(job: Job, timeout: float) -> Job:
    python = job.cell.venv / "bin" / "python"
    basetemp = WORK / job.cell.name / f"tmp-{job.suite}"
    command = [str(python), "-m", "pytest", "-m", SUITES[job.suite], f"--basetemp={basetemp}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    say(f"start {job.label:<20} python {job.cell.python}, apache-airflow {job.cell.airflow}")
    began = time.monotonic()
    with job.log.open("w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            job.returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            job.returncode = -1
            log.write(f"\nci/matrix.py: killed after {timeout:.0f} s\n")
    job.seconds = time.monotonic() - began
    job.summary, job.counts = summarize(job.log.read_text(errors="replace"))
    verdict = "PASS" if job.ok else "FAIL"
    say(f"{verdict}  {job.label:<20} {job.summary or f'exit {job.returncode}'} ({job.seconds:.0f} s)")
    return job


def summarize(output: str) -> tuple[str, dict[str, int]]:
    """pytest's closing line (without the time) and its counts."""
    for line in reversed(output.splitlines()):
        match = _SUMMARY.match(line.strip())
        if match:
            counts: dict[str, int] = {}
            for number, kind in _COUNT.findall(match.group(1)):
                kind = {"error": "errors", "warning": "warnings"}.get(kind, kind)
                counts[kind] = counts.get(kind, 0) + int(number)
            return match.group(1), counts
    return "", {}


def run_matrix(cells: list[Cell], suites: set[str], jobs: int, timeout: float) -> int:
    uv = uv_command()
    pythons = find_pythons(cells, uv)
    uv_version = subprocess.run(
        [*uv, "--version"], stdout=subprocess.PIPE, text=True, check=False
    ).stdout.strip()
    say(f"uv: {shlex.join(uv)} ({uv_version})")
    for version, path in pythons.items():
        say(f"python{version}: {path}")
    for cell in cells:
        began = time.monotonic()
        made = install(uv, cell.venv, pythons[cell.python], cell.airflow, cell.constraints, cell.extras)
        what = f"installed in {time.monotonic() - began:.0f} s" if made else "up to date"
        say(f"venv  {cell.name:<20} {what}: {cell.venv.relative_to(ROOT)}")
    todo = [Job(c, s) for c in cells for s in c.suites if s in suites]
    if not todo:
        raise MatrixError("no suite selected")
    todo.sort(key=lambda j: SUITE_ORDER[j.suite])
    with ThreadPoolExecutor(max_workers=jobs if jobs > 0 else len(todo)) as pool:
        done = list(pool.map(lambda j: run_job(j, timeout), todo))
    return report(done)


def failure_excerpt(output: str, limit: int = EXCERPT_LINES) -> list[str]:
    """pytest's failures and errors sections and its short summary, not the warnings;
    the whole output's tail when pytest did not get that far."""
    kept: list[str] = []
    keeping = False
    for line in output.splitlines():
        header = _HEADER.match(line)
        if header:
            title = header.group(1)
            keeping = (
                title in ("FAILURES", "ERRORS")
                or title.startswith("short test summary")
                or bool(_SUMMARY.match(line.strip()))
            )
        if keeping and not line.startswith(("SKIPPED ", "XFAIL ", "XPASS ")):
            kept.append(line)
    if not kept:
        kept = output.splitlines()[-limit:]
    if len(kept) > limit:
        head = limit * 2 // 3
        cut = len(kept) - limit
        kept = [*kept[:head], f"... ({cut} lines cut) ...", *kept[-(limit - head) :]]
    return kept


def report(done: list[Job]) -> int:
    print("\nSummary (logs in .matrix/<cell>/<suite>.log):", flush=True)
    for job in sorted(done, key=lambda j: (j.cell.name, j.suite)):
        verdict = "PASS" if job.ok else "FAIL"
        print(
            f"  {verdict}  {job.cell.name:<14} py{job.cell.python:<5} airflow {job.cell.airflow:<7} "
            f"{job.suite:<5} {job.summary or f'exit {job.returncode}'}",
            flush=True,
        )
    failed = [j for j in done if not j.ok]
    for job in failed:
        print(f"\n---- FAILED: {job.label} (excerpt of {job.log.relative_to(ROOT)}) ----")
        print("\n".join(failure_excerpt(job.log.read_text(errors="replace"))))
        print(f"---- end of {job.label} ----", flush=True)
    total = {k: sum(j.counts.get(k, 0) for j in done) for k in ("passed", "failed", "errors", "skipped")}
    print(
        f"\nmatrix: {total['passed']} passed, {total['failed'] + total['errors']} failed, "
        f"{total['skipped']} skipped",
        flush=True,
    )
    if failed:
        print(f"{len(failed)} of {len(done)} suites failed: {', '.join(j.label for j in failed)}", flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cells", help="comma-separated cell names (default: all)")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated: unit,e2e")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=int(os.environ.get("MATRIX_JOBS", "0")),
        help="suites run at once (default: all; they mostly wait on sockets and timers)",
    )
    parser.add_argument("--timeout", type=float, default=JOB_TIMEOUT, help="seconds per suite")
    parser.add_argument("--list", action="store_true", help="print the cells and their interpreters")
    parser.add_argument("--install-dev", metavar="VENV", help="create the development venv and exit")
    parser.add_argument("--python", help="interpreter for --install-dev (default: this one)")
    args = parser.parse_args(argv)
    try:
        cells = parse_matrix(MATRIX_FILE.read_text())
        if args.install_dev:
            newest = cells[-1]
            made = install(
                uv_command(),
                Path(args.install_dev),
                args.python or sys.executable,
                newest.airflow,
                newest.constraints,
                (*newest.extras, *DEV_EXTRAS),
            )
            print(
                f"{args.install_dev}: {'installed' if made else 'up to date'} "
                f"(apache-airflow {newest.airflow})"
            )
            return 0
        if args.cells:
            wanted = args.cells.split(",")
            unknown = sorted(set(wanted) - {c.name for c in cells})
            if unknown:
                raise MatrixError(f"unknown cells {unknown}; known: {[c.name for c in cells]}")
            cells = [c for c in cells if c.name in wanted]
        if args.list:
            for cell in cells:
                path, _ = find_python(cell.python)
                print(
                    f"{cell.name:<14} python{cell.python} ({path or 'MISSING'}) "
                    f"apache-airflow=={cell.airflow} "
                    f"suites={','.join(cell.suites)} extras={list(cell.extras)} "
                    f"constraints={list(cell.constraints)}"
                )
            return 0
        return run_matrix(cells, set(args.suites.split(",")), args.jobs, args.timeout)
    except MatrixError as exc:
        print(f"ci/matrix.py: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
