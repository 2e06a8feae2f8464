"""The test tooling: ci/matrix.txt agrees with the README, ci/matrix.py parses and reports
what it should, and make finds uv on PATH, as ``python -m uv``, or installs it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIND_UV = ROOT / "ci" / "find-uv"
BARE_PATH = "/usr/bin:/bin"  # no uv there (checked below)


def _matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_matrix", ROOT / "ci" / "matrix.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_matrix"] = module
    spec.loader.exec_module(module)
    return module


matrix = _matrix()


def test_readme_support_table_is_what_ci_runs() -> None:
    cells = matrix.parse_matrix((ROOT / "ci" / "matrix.txt").read_text())
    readme = (ROOT / "README.md").read_text()
    # The table sits between these markers; docs/install.md includes it from there.
    section = readme.split("<!-- support-table-start -->", 1)[1].split("<!-- support-table-end -->", 1)[0]
    rows = re.findall(r"^\| (\d+\.\d+) \((\d+\.\d+\.\d+)\) \| (3\.\d+) \| ([^|]+) \|$", section, re.M)
    assert rows, section
    table = {
        (exact, python, "end to end" in runs, "with the OpenLineage provider" in runs)
        for minor, exact, python, runs in rows
        if exact.startswith(minor)
    }
    assert len(table) == len(rows)
    assert table == {(c.airflow, c.python, "e2e" in c.suites, "openlineage" in c.extras) for c in cells}


def test_matrix_covers_what_the_package_claims() -> None:
    cells = matrix.parse_matrix((ROOT / "ci" / "matrix.txt").read_text())
    minors = {tuple(int(x) for x in c.airflow.split(".")[:2]) for c in cells}
    assert {(2, 11), (3, 0), (3, 2), (3, 3)} <= minors
    assert {c.python for c in cells} == {"3.10", "3.11", "3.12", "3.13"}
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"apache-airflow>=2.11"' in pyproject and 'requires-python = ">=3.10"' in pyproject


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a 3.10 2.11.2", "expected 'name python airflow suites'"),
        ("a 3 2.11.2 unit", "python must look like 3.12"),
        ("a 3.10 2.11 unit", "must be exact"),
        ("a 3.10 2.11.2 unit,smoke", "unknown suites"),
        ("# only a comment", "lists no cells"),
    ],
)
def test_matrix_file_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(matrix.MatrixError, match=message):
        matrix.parse_matrix(line)


def test_the_openlineage_extra_is_tested_with_and_without() -> None:
    cells = matrix.parse_matrix((ROOT / "ci" / "matrix.txt").read_text())
    with_it = [c for c in cells if "openlineage" in c.extras]
    without = [c for c in cells if "openlineage" not in c.extras]
    assert any("e2e" in c.suites for c in with_it) and any("e2e" in c.suites for c in without)
    assert any("unit" in c.suites for c in with_it) and any("unit" in c.suites for c in without)
    # The extra's lower bound is what one cell installs.
    package = "apache-airflow-providers-openlineage"
    floor = re.search(rf'"{package}>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert floor and any(f"{package}=={floor[1]}" in c.constraints for c in with_it)


def test_extras_are_parsed_apart_from_constraints() -> None:
    (cell,) = matrix.parse_matrix("x 3.13 3.3.2 unit +openlineage  pkg==1.0  # why\n")
    assert cell.extras == ("openlineage",) and cell.constraints == ("pkg==1.0",)
    with pytest.raises(matrix.MatrixError, match="extras look like"):
        matrix.parse_matrix("x 3.13 3.3.2 unit +Open_Lineage")


def test_constraints_and_comments_are_parsed() -> None:
    (cell,) = matrix.parse_matrix("x 3.11 3.0.6 unit,e2e  universal-pathlib<0.3  # why\n")
    assert (cell.name, cell.python, cell.airflow) == ("x", "3.11", "3.0.6")
    assert cell.suites == ("unit", "e2e") and cell.constraints == ("universal-pathlib<0.3",)


def test_a_missing_interpreter_is_named_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", "/nonexistent")
    cells = matrix.parse_matrix("future 3.99 9.9.9 unit\n")
    with pytest.raises(matrix.MatrixError, match=r"python3\.99 is missing \(needed by future\)"):
        matrix.find_pythons(cells, None)


def test_summary_line_is_read_with_and_without_bars() -> None:
    text = "...\n==== 3 failed, 380 passed, 2 skipped, 5 deselected in 278.81s (0:04:38) ====\n"
    summary, counts = matrix.summarize(text)
    assert summary == "3 failed, 380 passed, 2 skipped, 5 deselected"
    assert counts == {"failed": 3, "passed": 380, "skipped": 2, "deselected": 5}
    assert matrix.summarize("12 passed in 1.20s\n")[1] == {"passed": 12}
    assert matrix.summarize("Traceback...\n") == ("", {})


def test_failure_excerpt_keeps_failures_not_warnings_or_skips() -> None:
    log = "\n".join(
        [
            "collected 3 items",
            "=================================== FAILURES ===================================",
            "____ test_x ____",
            "E   assert 1 == 2",
            "=============================== warnings summary ===============================",
            "DeprecationWarning: noise",
            "=========================== short test summary info ============================",
            "SKIPPED [1] tests/test_y.py:3: needs Airflow 3.0",
            "FAILED tests/test_x.py::test_x - assert 1 == 2",
            "==================== 1 failed, 1 passed, 1 skipped in 0.50s ====================",
        ]
    )
    excerpt = "\n".join(matrix.failure_excerpt(log))
    assert "E   assert 1 == 2" in excerpt and "FAILED tests/test_x.py::test_x" in excerpt
    assert "1 failed, 1 passed, 1 skipped" in excerpt
    assert "noise" not in excerpt and "SKIPPED" not in excerpt and "collected" not in excerpt


# ----------------------------------------------------------------------------- finding uv


def _find_uv(python: str, path: str, bootstrap: Path) -> str:
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHON": python,
        "UV_BOOTSTRAP": str(bootstrap),
    }
    proc = subprocess.run(
        [str(FIND_UV)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=bootstrap.parent,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.timeout(900)
def test_uv_is_found_or_installed(tmp_path: Path) -> None:
    """The three ways, in the order a new machine meets them: no uv anywhere (it is installed
    into a bootstrap venv and called by path), uv importable only, uv on PATH."""
    assert subprocess.run(["sh", "-c", "command -v uv"], env={"PATH": BARE_PATH}, check=False).returncode != 0
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)  # a Python without uv
    bootstrap = tmp_path / "uv-bootstrap"

    installed = _find_uv(str(bare / "bin" / "python"), BARE_PATH, bootstrap)
    assert installed == str(bootstrap / "bin" / "uv")
    assert subprocess.run([installed, "--version"], capture_output=True, check=False).returncode == 0
    # Found again without installing twice.
    assert _find_uv(str(bare / "bin" / "python"), BARE_PATH, bootstrap) == installed

    importable = str(bootstrap / "bin" / "python")  # has the uv module, but not on PATH
    assert _find_uv(importable, BARE_PATH, tmp_path / "unused") == f"{importable} -m uv"

    on_path = f"{bootstrap / 'bin'}:{BARE_PATH}"
    assert _find_uv(str(bare / "bin" / "python"), on_path, tmp_path / "unused") == "uv"
    assert not (tmp_path / "unused").exists()

    # make resolves it the same way (dry run: nothing is installed).
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run(
        ["make", "-n", "-B", "install", f"PYTHON={importable}", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f'UV="{importable} -m uv" {importable} ci/matrix.py --install-dev' in proc.stdout
