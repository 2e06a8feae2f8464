"""The compatibility layer: one module for every Airflow import, checked against the installed
Airflow (2.11 or 3.x), and features that need Airflow 3 failing clearly on Airflow 2."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_polytomic import _compat
from airflow_provider_polytomic._compat import (
    AIRFLOW_V_3,
    AIRFLOW_V_3_3,
    AIRFLOW_VERSION,
    Asset,
    airflow_version,
    asset_state_accessors,
    asset_state_store_accessors,
)
from airflow_provider_polytomic.exceptions import PolytomicAirflowVersionError
from airflow_provider_polytomic.get_provider_info import airflow_major_version

ROOT = Path(__file__).resolve().parents[2]
SID = "9a4e1c2d-3b5f-4a6e-8c7d-0e1f2a3b4c5d"
# DAG files are written the way users write them (their own Airflow 2/3 imports).
DAG_FOLDERS = (
    "example_dags",
    "tests/e2e/dags",
    "tests/e2e/dags_events",
    "tests/e2e/dags_portable",
    "tests/e2e/dags_lineage",
    "tests/e2e/dags_production",
)
# The OpenLineage provider is not Airflow core: one module imports it (as _compat does Airflow).
OPENLINEAGE_MODULE = Path("airflow_provider_polytomic/lineage/openlineage.py")


def _airflow_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "airflow"
        ]
    return found


def test_every_airflow_import_goes_through_compat() -> None:
    files = [
        p
        for folder in ("airflow_provider_polytomic", "tests", "benchmarks", "scripts")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "_compat.py"
        and p != ROOT / OPENLINEAGE_MODULE
        and not any(p.is_relative_to(ROOT / d) for d in DAG_FOLDERS)
    ]
    assert len(files) > 40
    assert [imp for p in files for imp in _airflow_imports(p)] == []


def test_the_scan_sees_imports() -> None:
    """The check above can fail: it finds the imports _compat.py itself makes."""
    found = _airflow_imports(ROOT / "airflow_provider_polytomic" / "_compat.py")
    assert any(f.endswith(" airflow.triggers.base") for f in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.11.2", (2, 11, 2)),
        ("3.0.6", (3, 0, 6)),
        ("3.1.0rc1", (3, 1, 0)),
        ("3.3.0.dev0", (3, 3, 0)),
        ("3", (3, 0, 0)),
    ],
)
def test_version_parsing(text: str, expected: tuple[int, int, int]) -> None:
    assert _compat._parse_version(text) == expected


def test_provider_info_and_compat_agree_on_the_airflow_version() -> None:
    assert airflow_major_version() == AIRFLOW_VERSION[0] == int(airflow_version().split(".")[0])
    assert (AIRFLOW_VERSION >= (3, 0, 0)) is AIRFLOW_V_3


# ------------------------------------------------- the one wrapper over an Airflow internal


@pytest.mark.skipif(not AIRFLOW_V_3_3, reason="the asset state store is new in Airflow 3.3")
def test_asset_state_accessors_agrees_with_airflows_public_subscript() -> None:
    """Fails when Airflow renames or restructures what the wrapper reads."""
    by_name = Asset(name="contacts", uri=f"polytomic://{SID}")
    by_uri = Asset.ref(uri=f"polytomic://bulk/{SID}")
    accessors = asset_state_store_accessors([by_name, by_uri])
    found = asset_state_accessors(accessors)
    assert found is not None
    assert sorted(found, key=repr) == sorted([accessors[by_name], accessors[by_uri]], key=repr)
    assert len(set(found)) == 2


def test_asset_state_accessors_leaves_other_objects_alone() -> None:
    class SingleAccessor:
        async def aget(self, key: str, default: Any = None) -> Any:
            return default

    assert asset_state_accessors(SingleAccessor()) is None
    assert asset_state_accessors(None) is None


def test_asset_state_accessors_fails_loudly_when_airflow_changes() -> None:
    class AssetStateStoreAccessors:  # Airflow's class name, without the maps the wrapper reads
        pass

    with pytest.raises(RuntimeError, match="changed AssetStateStoreAccessors"):
        asset_state_accessors(AssetStateStoreAccessors())


# ---------------------------------------------- Airflow 3 features on Airflow 2: a clear error


def _event_trigger() -> Any:
    from airflow_provider_polytomic.triggers.events import PolytomicEventTrigger

    return PolytomicEventTrigger(sync_ids=[SID])


def _sync_asset() -> Any:
    from airflow_provider_polytomic.assets import sync_asset

    return sync_asset(SID, watch=True)


def _events_for_run() -> Any:
    from airflow_provider_polytomic.assets import events_for_run

    return events_for_run({}, sync_ids=[SID])


def _receiver() -> Any:
    from airflow_provider_polytomic.webhook.receiver import create_app

    class Sink:
        async def record(self, *args: object, **kwargs: object) -> str:
            return "recorded"

    return create_app(recorder=Sink(), secret_loader=lambda: "secret")  # type: ignore[arg-type]


def _plugin() -> Any:
    from airflow_provider_polytomic.webhook.plugin import PolytomicWebhookPlugin

    PolytomicWebhookPlugin.on_load()
    return PolytomicWebhookPlugin.fastapi_apps


AIRFLOW_3_FEATURES: dict[str, tuple[Callable[[], Any], str]] = {
    "event trigger": (_event_trigger, "PolytomicEventTrigger (asset watchers)"),
    "sync asset": (_sync_asset, "sync_asset (polytomic:// assets)"),
    "events for run": (_events_for_run, "events_for_run (asset-triggered runs)"),
    "webhook receiver": (_receiver, "The Polytomic webhook receiver"),
    "webhook plugin": (_plugin, "The Polytomic webhook receiver plugin"),
}


@pytest.mark.parametrize("name", sorted(AIRFLOW_3_FEATURES))
def test_airflow_3_features_name_the_version_they_need(name: str, polytomic_conn: Any) -> None:
    use, feature = AIRFLOW_3_FEATURES[name]
    if AIRFLOW_V_3:
        assert use() is not None
        return
    with pytest.raises(PolytomicAirflowVersionError) as err:
        use()
    assert str(err.value) == (
        f"{feature} needs Airflow 3.0 or newer; this is Airflow {airflow_version()}. "
        "See the support table in the airflow-provider-polytomic README."
    )


def test_every_module_imports_without_fastapi_on_airflow_2() -> None:
    """Airflow 2 does not ship FastAPI: nothing the provider registers may need it to import.

    On Airflow 3 (which ships FastAPI) every module simply imports.
    """
    package = ROOT / "airflow_provider_polytomic"
    # The OpenLineage module needs the [openlineage] extra, which some cells do not install;
    # without it, openlineage_available() says so and nothing imports that module.
    with_openlineage = importlib.util.find_spec("airflow.providers.openlineage") is not None
    modules = [
        ".".join(("airflow_provider_polytomic", *p.relative_to(package).with_suffix("").parts))
        for p in sorted(package.rglob("*.py"))
        if "testing" not in p.parts
        and p.name != "__main__.py"
        and (with_openlineage or p != ROOT / OPENLINEAGE_MODULE)
    ]
    hide = "" if AIRFLOW_V_3 else "import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"
    load = "import importlib\nfor m in MODULES:\n    importlib.import_module(m.removesuffix('.__init__'))\n"
    code = hide + f"MODULES = {modules!r}\n" + load
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
