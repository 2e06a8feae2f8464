"""The distributions: ``uv build`` gives a pure ``py3-none-any`` wheel and an sdist that hold
the package and nothing that must not ship (``scripts/check_dist.py`` does the checking)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_dist() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / "scripts" / "check_dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(check_dist: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, Path]:
    return check_dist.check(tmp_path_factory.mktemp("dist"))


def test_uv_build_gives_a_pure_wheel_and_an_sdist_that_pass_every_check(
    built: tuple[list[str], Path, Path],
) -> None:
    problems, sdist, wheel = built
    assert problems == []
    assert wheel.name.endswith("-py3-none-any.whl") and sdist.name.endswith(".tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "airflow_provider_polytomic/py.typed" in names
    assert "airflow_provider_polytomic/record_logs/counting.py" in names
    assert not [
        n for n in names if n.endswith((".c", ".so", ".pyi")) or n.startswith(("tests/", "benchmarks/"))
    ]


def test_no_c_sources_in_the_repository() -> None:
    # What git tracks: virtualenvs (.venv, the test matrix's .matrix/) hold other projects' C files.
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    tracked = [Path(line) for line in listed.stdout.splitlines()]
    assert len(tracked) > 50
    assert not [p for p in tracked if p.suffix in (".c", ".h") or p.name == "setup.py"]


def _wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_the_wheel_check_catches_a_platform_wheel_with_c_and_test_files(
    check_dist: ModuleType, built: tuple[list[str], Path, Path], tmp_path: Path
) -> None:
    _, _, good = built
    with zipfile.ZipFile(good) as archive:
        files = {n: archive.read(n).decode() for n in archive.namelist()}
    info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/WHEEL"))
    files[f"{info}/WHEEL"] = files[f"{info}/WHEEL"].replace("py3-none-any", "cp311-cp311-linux_x86_64")
    files[f"{info}/entry_points.txt"] = "[console_scripts]\nx = y:z\n"
    files[f"{info}/METADATA"] = files[f"{info}/METADATA"].replace(
        "Description-Content-Type: text/markdown\n", ""
    )
    files["airflow_provider_polytomic/_scan.c"] = "int x;"
    files["tests/test_x.py"] = ""
    del files["airflow_provider_polytomic/py.typed"]
    bad = _wheel(tmp_path / "airflow_provider_polytomic-0.1.0-cp311-cp311-linux_x86_64.whl", files)

    problems = "\n".join(check_dist.check_wheel(bad))

    for expected in (
        "not a py3-none-any wheel",
        "WHEEL tags are ['cp311-cp311-linux_x86_64']",
        "no [apache_airflow_provider] entry point",
        "description_content_type",
        "airflow_provider_polytomic/py.typed",
        "files outside the package: ['tests/test_x.py']",
        "airflow_provider_polytomic/_scan.c",
    ):
        assert expected in problems, (expected, problems)


def test_the_sdist_check_catches_tests_and_a_missing_readme(
    check_dist: ModuleType, built: tuple[list[str], Path, Path], tmp_path: Path
) -> None:
    _, good, _ = built
    bad = tmp_path / good.name
    with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            if member.name.endswith("/README.md"):
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        extra = tarfile.TarInfo(f"{src.getmembers()[0].name.split('/')[0]}/benchmarks/bench.py")
        extra.size = 0
        dst.addfile(extra, io.BytesIO(b""))

    problems = "\n".join(check_dist.check_sdist(bad))

    assert "README.md is missing" in problems
    assert "benchmarks/bench.py" in problems
