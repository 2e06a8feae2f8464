"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

This module imports nothing from Airflow and nothing heavy: Airflow loads it while it is
itself starting up. Airflow 3.2+ builds the connection form from ``conn-fields`` and
``ui-field-behaviour`` here; Airflow 2 calls the hook's classmethods, which read the same
:data:`CONN_FIELDS` and :data:`UI_FIELD_BEHAVIOUR`, so the two cannot disagree.

On Airflow 2 the entries for Airflow 3 features are left out: the ``polytomic://`` asset
scheme (``asset-uris``) and the webhook receiver plugin, which mounts a FastAPI app on the
Airflow 3 API server. The installed Airflow's major version is read from package metadata,
not by importing Airflow.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from airflow_provider_polytomic import __version__

PACKAGE_NAME = "airflow-provider-polytomic"
CONN_TYPE = "polytomic"

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_version": {
        "label": "API version",
        "description": "Sent as X-Polytomic-Version on every request.",
        "schema": {"type": ["string", "null"], "default": "2025-09-18"},
    },
    "organization_id": {
        "label": "Organization ID",
        "description": "Only for partner or deployment keys: switches auth to Basic base64(org_id:key).",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Read timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries on 429, 5xx, connection errors and timeouts.",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "event_recheck_interval": {
        "label": "Event re-read interval (seconds)",
        "description": "How often waiting sensors' shared events poll re-reads events that may "
        "have shown up late (see the provider docs: what Polytomic has not confirmed).",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "execution_url_template": {
        "label": "Execution URL template",
        "description": "Link to an execution in Polytomic's app (an assumption, see the provider docs). "
        "Format string with {base_url} {sync_id} {execution_id} {sync_kind} {sync_path}.",
        "schema": {"type": ["string", "null"]},
    },
    "webhook_secret": {
        "label": "Webhook secret",
        "description": "Secret of the organization's event webhook (6-32 characters), "
        "used to verify deliveries.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "Polytomic URL", "password": "API key"},
    "placeholders": {"host": "https://app.polytomic.com", "password": "Polytomic API key"},
}


def airflow_major_version() -> int:
    """The installed Airflow's major version, from package metadata (3 when it cannot tell).

    ``apache-airflow-core`` exists from Airflow 3 on; an Airflow 3 install may lack the
    ``apache-airflow`` meta package, an Airflow 2 install always has it.
    """
    for dist in ("apache-airflow-core", "apache-airflow"):
        try:
            return int(metadata.version(dist).split(".")[0])
        except (metadata.PackageNotFoundError, ValueError):
            continue
    return 3


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata (validated against Airflow's provider_info schema in tests)."""
    info = _provider_info()
    if airflow_major_version() < 3:
        del info["asset-uris"], info["plugins"]
    return info


def _provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Polytomic",
        "description": "Run, wait for and react to Polytomic syncs; download their record logs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Polytomic",
                "external-doc-url": "https://apidocs.polytomic.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Polytomic",
                "python-modules": ["airflow_provider_polytomic.hooks.polytomic"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Polytomic",
                "python-modules": ["airflow_provider_polytomic.sensors.polytomic"],
            }
        ],
        "operators": [
            {
                "integration-name": "Polytomic",
                "python-modules": [
                    "airflow_provider_polytomic.operators.sync",
                    "airflow_provider_polytomic.operators.record_logs",
                    "airflow_provider_polytomic.operators.webhook",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Polytomic",
                "python-modules": [
                    "airflow_provider_polytomic.triggers.polytomic",
                    "airflow_provider_polytomic.triggers.events",
                ],
            }
        ],
        "asset-uris": [
            {"schemes": ["polytomic"], "handler": "airflow_provider_polytomic.assets.normalize_uri"}
        ],
        "plugins": [
            {
                "name": "polytomic_webhook",
                "plugin-class": "airflow_provider_polytomic.webhook.plugin.PolytomicWebhookPlugin",
            }
        ],
        "extra-links": ["airflow_provider_polytomic.links.polytomic.PolytomicExecutionLink"],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_polytomic.hooks.polytomic.PolytomicHook",
                "hook-name": "Polytomic",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
