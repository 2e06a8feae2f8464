"""Airflow plugin mounting the Polytomic webhook receiver on the Airflow 3 API server.

Once the provider is installed (and the lead-registered provider-info ``plugins`` entry
points here), the API server serves the receiver at ``<api-server>/polytomic/events``.
Point Polytomic at it with ``PolytomicEnsureWebhookOperator`` or
``python -m airflow_provider_polytomic.webhook ensure --endpoint https://<host>/polytomic/events``.

The receiver reads its secret from the ``polytomic_default`` connection and records
asset events through the API server's own public REST API (credentials in the
``polytomic_airflow_api`` connection); the environment variables
``POLYTOMIC_WEBHOOK_CONN_ID`` and ``POLYTOMIC_WEBHOOK_AIRFLOW_API_CONN_ID`` change those
connection ids. Nothing is read until the first delivery, so importing the plugin is cheap.
"""

from __future__ import annotations

import os
from typing import Any

from airflow_provider_polytomic._compat import AirflowPlugin
from airflow_provider_polytomic.webhook.receiver import AirflowApiRecorder, create_app

URL_PREFIX = "/polytomic"


def build_receiver_app() -> Any:
    """The receiver app as the plugin mounts it (configured from the environment)."""
    return create_app(
        polytomic_conn_id=os.environ.get("POLYTOMIC_WEBHOOK_CONN_ID", "polytomic_default"),
        recorder=AirflowApiRecorder(
            airflow_api_conn_id=os.environ.get(
                "POLYTOMIC_WEBHOOK_AIRFLOW_API_CONN_ID", "polytomic_airflow_api"
            )
        ),
    )


class PolytomicWebhookPlugin(AirflowPlugin):
    """Serves the Polytomic webhook receiver under ``/polytomic`` on the API server."""

    name = "polytomic_webhook"
    fastapi_apps = [
        {"app": build_receiver_app(), "url_prefix": URL_PREFIX, "name": "Polytomic webhook receiver"}
    ]


__all__ = ["URL_PREFIX", "PolytomicWebhookPlugin", "build_receiver_app"]
