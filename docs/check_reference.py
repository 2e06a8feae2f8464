"""Check that the built API reference documents every public name of the package.

    python docs/check_reference.py docs/_build/html/objects.inv

Public means: every module whose dotted path has no component starting with an underscore;
in each, every name its ``__all__`` lists, and every class and function it defines whose name
does not start with an underscore. Each must be in the Sphinx inventory under the module's
path (``airflow_provider_polytomic.testing.FakePolytomic``). ``make docs`` runs this after the
build; exit status 1 lists what is missing.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import tempfile
import zlib
from pathlib import Path

PACKAGE = "airflow_provider_polytomic"


def read_inventory(path: Path) -> set[str]:
    """The object names in a Sphinx ``objects.inv`` (version 2)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # '# Sphinx inventory version 2', project, version, compression note
        header_end = data.index(b"\n", header_end) + 1
    if not data.startswith(b"# Sphinx inventory version 2"):
        raise ValueError(f"{path}: not a version 2 Sphinx inventory")
    names = set()
    for line in zlib.decompress(data[header_end:]).decode().splitlines():
        if line.strip():
            names.add(line.split(" ", 1)[0])
    return names


def public_modules(package: str = PACKAGE) -> list[str]:
    """Every public module of ``package``, the package itself first."""
    root = importlib.import_module(package)
    found = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return found


def public_names(module_name: str) -> set[str]:
    """The dotted names the reference must hold for one module (the module included)."""
    module = importlib.import_module(module_name)
    names = {module_name}
    names.update(f"{module_name}.{name}" for name in getattr(module, "__all__", ()))
    for name, obj in vars(module).items():
        defined_here = getattr(obj, "__module__", None) == module_name
        if not name.startswith("_") and defined_here and (inspect.isclass(obj) or inspect.isfunction(obj)):
            names.add(f"{module_name}.{name}")
    return names


def missing_names(inventory: set[str], package: str = PACKAGE) -> list[str]:
    """The public names of ``package`` that ``inventory`` lacks, sorted."""
    wanted: set[str] = set()
    for module_name in public_modules(package):
        wanted |= public_names(module_name)
    return sorted(wanted - inventory)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    # Importing the package imports Airflow: keep Airflow's files out of ~/airflow.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="polytomic-provider-docs-"))
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    inventory = read_inventory(Path(argv[0]))
    missing = missing_names(inventory)
    if missing:
        print(f"{len(missing)} public names are missing from the API reference ({argv[0]}):")
        for name in missing:
            print(f"  {name}")
        return 1
    modules = len(public_modules())
    print(f"API reference: every public name of {modules} modules is documented ({len(inventory)} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
