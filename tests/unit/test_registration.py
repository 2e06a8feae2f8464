"""The provider is discoverable by Airflow, and its metadata is valid and consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema

from airflow_provider_polytomic import __version__
from airflow_provider_polytomic._compat import AIRFLOW_V_3
from airflow_provider_polytomic.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook

ROOT = Path(__file__).resolve().parents[2]


def _entry_point() -> metadata.EntryPoint:
    eps = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_polytomic")
    ]
    assert len(eps) == 1, eps
    return eps[0]


def test_entry_point_returns_provider_info():
    info = _entry_point().load()()
    assert info == get_provider_info()


def test_provider_info_validates_against_airflow_schema():
    schema = json.loads((resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_matches_distribution_and_version():
    info = get_provider_info()
    dist = metadata.distribution(info["package-name"])
    assert dist.metadata["Name"] == info["package-name"] == "airflow-provider-polytomic"
    assert dist.version == __version__ == info["versions"][0]


def test_connection_type_declares_form_for_airflow_3():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == PolytomicHook.conn_type == "polytomic"
    assert conn["hook-name"] == PolytomicHook.hook_name
    assert conn["hook-class-name"] == f"{PolytomicHook.__module__}.{PolytomicHook.__qualname__}"
    assert set(conn["conn-fields"]) == {
        "execution_url_template",
        "api_version",
        "organization_id",
        "timeout",
        "max_retries",
        "webhook_secret",
        "event_recheck_interval",
    }
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API key"


def test_hook_classmethods_agree_with_provider_info():
    (conn,) = get_provider_info()["connection-types"]
    widgets = PolytomicHook.get_connection_form_widgets()
    assert set(widgets) == set(conn["conn-fields"]) == set(CONN_FIELDS)
    for name, field in widgets.items():
        assert field.args[0] == conn["conn-fields"][name]["label"]
    behaviour = PolytomicHook.get_ui_field_behaviour()
    ui = conn["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": ui["hidden-fields"],
        "relabeling": ui["relabeling"],
        "placeholders": ui["placeholders"],
    }


def test_every_module_and_class_named_in_provider_info_imports():
    import importlib

    info = get_provider_info()
    dotted: list[str] = []
    for section in ("hooks", "triggers", "operators", "sensors"):
        for item in info.get(section, []):
            dotted.extend(item["python-modules"])
    for module in dotted:
        importlib.import_module(module)
    classes = [c["hook-class-name"] for c in info["connection-types"]] + list(info.get("extra-links", []))
    classes += [p["plugin-class"] for p in info.get("plugins", [])]
    for path in classes:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def _airflow_json(*args: str) -> Any:
    """Run the ``airflow`` CLI; its JSON answer (some Airflow versions log to stdout before it)."""
    env = {**os.environ, "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in reversed(proc.stdout.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise AssertionError(f"no JSON in the output of airflow {' '.join(args)}: {proc.stdout[-3000:]}")


def test_airflow_cli_discovers_provider_and_hook():
    providers = _airflow_json("providers", "list")
    ours = [p for p in providers if p["package_name"] == "airflow-provider-polytomic"]
    assert ours and ours[0]["version"] == __version__
    # Our provider info breaks nobody else's discovery: Airflow's own providers are listed too.
    assert any(p["package_name"] == "apache-airflow-providers-common-io" for p in providers)
    (details,) = _airflow_json("providers", "get", "airflow-provider-polytomic", "--full")
    assert details["package-name"] == "airflow-provider-polytomic"
    # Airflow 3 features are registered on Airflow 3 only (see get_provider_info).
    assert ("asset-uris" in details) == ("plugins" in details) == AIRFLOW_V_3
    hooks = _airflow_json("providers", "hooks")
    (hook,) = [h for h in hooks if h["connection_type"] == "polytomic"]
    assert hook["class"] == "airflow_provider_polytomic.hooks.polytomic.PolytomicHook"
    assert hook["package_name"] == "airflow-provider-polytomic"
    assert hook["conn_id_attribute_name"] == "polytomic_conn_id"
