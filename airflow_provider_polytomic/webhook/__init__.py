"""Receive Polytomic's signed event webhook in Airflow.

* :func:`~airflow_provider_polytomic.webhook.receiver.create_app` - the FastAPI receiver
  (a plain ASGI app; also mounted on the Airflow API server by
  :class:`~airflow_provider_polytomic.webhook.plugin.PolytomicWebhookPlugin`).
* ``python -m airflow_provider_polytomic.webhook ensure --endpoint URL`` - point the
  organization's webhook at it.
"""

from __future__ import annotations
