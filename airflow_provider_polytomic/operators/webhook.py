"""Operator that points the organization's Polytomic webhook at the Airflow receiver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_polytomic._compat import AirflowException, BaseOperator, Context
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.vocabulary import (
    WEBHOOK_SECRET_MAX_LENGTH,
    WEBHOOK_SECRET_MIN_LENGTH,
    is_valid_webhook_secret,
)


def ensure_receiver_webhook(endpoint: str, polytomic_conn_id: str = "polytomic_default") -> dict[str, Any]:
    """Point the organization's single webhook at ``endpoint``, signed with the connection's secret.

    The secret is the ``webhook_secret`` extra of the ``polytomic`` connection - the same
    one the receiver verifies with - so the two cannot drift apart. Idempotent (see
    :meth:`PolytomicHook.reconcile_webhook`). A webhook found disabled (Polytomic disables
    one after repeated failed deliveries) is re-enabled with a warning saying why it was off.

    :return: ``{"webhook_id", "endpoint", "disabled", "created", "updated", "reenabled",
        "outage"}`` - never the secret. ``outage`` is None, or, for a webhook that was
        disabled, ``{"disabled_at", "reason", "failed_deliveries_24h", "failed_deliveries"}``
        with the newest failed attempts (event id and type, time, status code, error).
    :raises ValueError: on a non-http(s) endpoint, or a missing or out-of-bounds secret.
    """
    from airflow_provider_polytomic.webhook.receiver import webhook_secret_for

    parts = urlsplit(endpoint or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint must be an absolute http(s) URL, got {endpoint!r}")
    secret = webhook_secret_for(polytomic_conn_id)
    if not secret:
        raise ValueError(
            f"Connection {polytomic_conn_id!r} has no 'webhook_secret' extra; set one "
            f"({WEBHOOK_SECRET_MIN_LENGTH}-{WEBHOOK_SECRET_MAX_LENGTH} characters) so the receiver can "
            "verify deliveries."
        )
    if not is_valid_webhook_secret(secret):
        raise ValueError(
            f"Connection {polytomic_conn_id!r}: 'webhook_secret' must be "
            f"{WEBHOOK_SECRET_MIN_LENGTH}-{WEBHOOK_SECRET_MAX_LENGTH} "
            f"characters (Polytomic's limit), it has {len(secret)}."
        )
    result = PolytomicHook(polytomic_conn_id).reconcile_webhook(endpoint, secret)
    webhook, outage = result.webhook, result.outage
    report = None
    if outage is not None:
        report = {
            "disabled_at": outage.disabled_at.isoformat() if outage.disabled_at else None,
            "reason": outage.reason,
            "failed_deliveries_24h": outage.failed_total,
            "failed_deliveries": [
                d.model_dump(
                    mode="json", include={"event_id", "event_type", "attempted_at", "status_code", "error"}
                )
                for d in outage.failed_deliveries or []
            ],
        }
    return {
        "webhook_id": webhook.id,
        "endpoint": webhook.endpoint,
        "disabled": bool(webhook.disabled),
        "created": result.created,
        "updated": result.updated,
        "reenabled": result.reenabled,
        "outage": report,
    }


class PolytomicEnsureWebhookOperator(BaseOperator):
    """Make the organization's Polytomic webhook deliver to the Airflow receiver.

    Polytomic allows one webhook per organization; this creates it, or updates its
    endpoint and secret, and enables it - only what differs. The secret comes from the
    connection's ``webhook_secret`` extra and never appears in logs or XCom.

    :param endpoint: the receiver's public URL, e.g. ``https://airflow.example.com/polytomic/events``.
    :param polytomic_conn_id: the ``polytomic`` connection (API key and ``webhook_secret``).
    :return: (XCom) what :func:`ensure_receiver_webhook` returns: ``webhook_id``,
        ``endpoint``, ``disabled``, whether it was ``created``, ``updated`` or ``reenabled``,
        and, for a webhook that was disabled, the ``outage`` (when, why, failed deliveries of
        the last 24 hours).
    """

    template_fields: Sequence[str] = ("endpoint",)
    ui_color = "#4B3FE4"

    def __init__(self, *, endpoint: str, polytomic_conn_id: str = "polytomic_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.polytomic_conn_id = polytomic_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            result = ensure_receiver_webhook(self.endpoint, self.polytomic_conn_id)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        # A webhook found disabled was reported by the hook's warning (why, what failed).
        self.log.info("Polytomic webhook %s delivers to %s", result["webhook_id"], result["endpoint"])
        return result


__all__ = ["PolytomicEnsureWebhookOperator", "ensure_receiver_webhook"]
