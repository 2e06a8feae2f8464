"""Build the sdist and the wheel with ``uv build`` and check what a user would install.

Run::

    .venv/bin/python scripts/check_dist.py            # builds into a temporary folder
    .venv/bin/python scripts/check_dist.py --keep dist

Checks (``tests/project/test_packaging.py`` runs them in CI):

* the wheel is pure Python: named ``*-py3-none-any.whl``, ``Root-Is-Purelib: true``, one
  ``Tag: py3-none-any``;
* it holds every module of ``airflow_provider_polytomic`` in the source tree and ``py.typed``,
  and nothing else: no tests, benchmarks, scripts, C sources or compiled extensions;
* it declares the ``apache_airflow_provider`` entry point Airflow discovers providers by;
* the metadata (the wheel's ``METADATA`` and the sdist's ``PKG-INFO``) parses and validates
  as core metadata, with the required fields and the README as a Markdown long description;
* the sdist holds the package, ``pyproject.toml``, ``README.md`` and the example DAGs, and no
  tests, benchmarks or C files.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.metadata import Metadata

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_polytomic"
ENTRY_POINT_GROUP = "apache_airflow_provider"
ENTRY_POINT = "provider_info = airflow_provider_polytomic.get_provider_info:get_provider_info"
FORBIDDEN = re.compile(r"(^|/)(tests|benchmarks|scripts)/|\.(c|h|so|pyd|dll|dylib)$|__pycache__|\.pyc$")


def build(out_dir: Path) -> tuple[Path, Path]:
    """``uv build`` the project into ``out_dir``; returns (sdist, wheel)."""
    # make passes the uv command it settled on (ci/find-uv: it may be `python -m uv`).
    uv = shlex.split(os.environ.get("UV", "")) or [shutil.which("uv") or ""]
    if not uv[0]:
        raise RuntimeError("uv is neither in $UV nor on PATH (make finds or installs it: ci/find-uv)")
    subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [*uv, "build", "--quiet", "--out-dir", str(out_dir), str(ROOT)],
        check=True,
        cwd=ROOT,
    )
    (sdist,) = out_dir.glob("*.tar.gz")
    (wheel,) = out_dir.glob("*.whl")
    return sdist, wheel


def source_modules() -> set[str]:
    """Every file the wheel must carry: the package's modules and its ``py.typed``."""
    package = ROOT / PACKAGE
    files = {p.relative_to(ROOT).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    return files | {f"{PACKAGE}/py.typed"}


def check_metadata(text: str, where: str) -> list[str]:
    """Problems with core metadata ``text`` (empty when fine)."""
    from airflow_provider_polytomic import __version__

    problems: list[str] = []
    try:
        meta = Metadata.from_email(text, validate=True)
    except Exception as exc:  # ExceptionGroup of every invalid field
        details = "; ".join(str(e) for e in getattr(exc, "exceptions", [exc]))
        return [f"{where}: metadata does not validate: {details}"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = {
        "name": "airflow-provider-polytomic",
        "version": __version__,
        "license_expression": "Apache-2.0",
        "description_content_type": "text/markdown",
    }
    for field, value in expected.items():
        got = getattr(meta, field)
        if str(got) != value:
            problems.append(f"{where}: {field} is {got!r}, expected {value!r}")
    for field in ("summary", "requires_python", "requires_dist"):
        if not getattr(meta, field):
            problems.append(f"{where}: {field} is missing")
    if (meta.description or "").strip() != readme.strip():
        problems.append(f"{where}: the long description is not README.md")
    if not any(str(r.name) == "apache-airflow" for r in meta.requires_dist or []):
        problems.append(f"{where}: apache-airflow is not a dependency")
    return problems


def check_wheel(wheel: Path) -> list[str]:
    """Problems with a built wheel (empty when fine)."""
    problems: list[str] = []
    if not wheel.name.endswith("-py3-none-any.whl"):
        problems.append(f"{wheel.name}: not a py3-none-any wheel")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(dist_info) != 1:
            return [*problems, f"{wheel.name}: expected one .dist-info folder, found {sorted(dist_info)}"]
        info = dist_info.pop()

        def read(name: str) -> str:
            try:
                return archive.read(f"{info}/{name}").decode("utf-8")
            except KeyError:
                problems.append(f"{wheel.name}: {info}/{name} is missing")
                return ""

        wheel_file = read("WHEEL")
        if "Root-Is-Purelib: true" not in wheel_file.splitlines():
            problems.append(f"{wheel.name}: WHEEL does not say Root-Is-Purelib: true")
        tags = [line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")]
        if tags != ["py3-none-any"]:
            problems.append(f"{wheel.name}: WHEEL tags are {tags}, expected ['py3-none-any']")
        entry_points = read("entry_points.txt")
        section = re.search(rf"^\[{ENTRY_POINT_GROUP}\]\n((?:[^\[].*\n?)*)", entry_points, re.MULTILINE)
        lines = [line.strip() for line in section.group(1).splitlines()] if section else []
        if ENTRY_POINT not in lines:
            problems.append(f"{wheel.name}: no [{ENTRY_POINT_GROUP}] entry point {ENTRY_POINT!r}")
        problems += check_metadata(read("METADATA"), f"{wheel.name} METADATA")
    content = {n for n in names if not n.startswith(info + "/")}
    missing = source_modules() - content
    if missing:
        problems.append(f"{wheel.name}: missing {sorted(missing)}")
    outside = sorted(n for n in content if not n.startswith(PACKAGE + "/"))
    if outside:
        problems.append(f"{wheel.name}: files outside the package: {outside}")
    forbidden = sorted(n for n in content if FORBIDDEN.search(n))
    if forbidden:
        problems.append(f"{wheel.name}: holds files a wheel must not: {forbidden}")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    """Problems with a built sdist (empty when fine)."""
    problems: list[str] = []
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name and m.isfile()}
        top = archive.getmembers()[0].name.split("/", 1)[0]
        pkg_info = archive.extractfile(f"{top}/PKG-INFO")
        metadata = pkg_info.read().decode("utf-8") if pkg_info is not None else ""
    for required in ("pyproject.toml", "README.md", "PKG-INFO", f"{PACKAGE}/py.typed"):
        if required not in members:
            problems.append(f"{sdist.name}: {required} is missing")
    missing = source_modules() - members
    if missing:
        problems.append(f"{sdist.name}: missing {sorted(missing)}")
    if not any(m.startswith("example_dags/") for m in members):
        problems.append(f"{sdist.name}: the example DAGs are missing")
    forbidden = sorted(m for m in members if FORBIDDEN.search(m))
    if forbidden:
        problems.append(f"{sdist.name}: holds files it must not: {forbidden}")
    problems += check_metadata(metadata, f"{sdist.name} PKG-INFO")
    return problems


def check(out_dir: Path) -> tuple[list[str], Path, Path]:
    """Build into ``out_dir`` and check both artifacts: (problems, sdist, wheel)."""
    sdist, wheel = build(out_dir)
    return check_wheel(wheel) + check_sdist(sdist), sdist, wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, default=None, help="build into this folder and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        problems, sdist, wheel = check(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="polytomic-dist-") as tmp:
            problems, sdist, wheel = check(Path(tmp))
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(f"ok: {sdist.name} and {wheel.name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
