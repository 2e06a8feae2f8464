"""Airflow plugin mounting the Polytomic webhook receiver on the Airflow 3 API server.

Once the provider is installed (its provider-info ``plugins`` entry
points here), the API server serves the receiver at ``<api-server>/polytomic/events``.
Point Polytomic at it with ``PolytomicEnsureWebhookOperator`` or
``python -m airflow_provider_polytomic.webhook ensure --endpoint https://<host>/polytomic/events``.

The receiver reads its secret from the ``polytomic_default`` connection and records
asset events through the API server's own public REST API (credentials in the
``polytomic_airflow_api`` connection); the environment variables
``POLYTOMIC_WEBHOOK_CONN_ID`` and ``POLYTOMIC_WEBHOOK_AIRFLOW_API_CONN_ID`` change those
connection ids. Nothing is read until the first delivery, so importing the plugin is cheap.

Needs Airflow 3.0+: Airflow 2 has no FastAPI API server. On Airflow 2 the provider does not
register the plugin, this module still imports, and loading the plugin (for example from
the plugins folder) fails with
:class:`~airflow_provider_polytomic.exceptions.PolytomicAirflowVersionError`.
"""

from __future__ import annotations

import os
from typing import Any

from airflow_provider_polytomic._compat import AIRFLOW_V_3, AirflowPlugin, require_airflow

URL_PREFIX = "/polytomic"
FEATURE = "The Polytomic webhook receiver plugin"


def build_receiver_app() -> Any:
    """The receiver app as the plugin mounts it (configured from the environment)."""
    require_airflow(FEATURE, (3, 0))
    from airflow_provider_polytomic.webhook.receiver import create_app
    from airflow_provider_polytomic.webhook.recorder import AirflowApiRecorder

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
    fastapi_apps = (
        [{"app": build_receiver_app(), "url_prefix": URL_PREFIX, "name": "Polytomic webhook receiver"}]
        if AIRFLOW_V_3
        else []
    )

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        """Refuse to load on Airflow 2 with an error naming the Airflow version needed."""
        require_airflow(FEATURE, (3, 0))


__all__ = ["URL_PREFIX", "PolytomicWebhookPlugin", "build_receiver_app"]
