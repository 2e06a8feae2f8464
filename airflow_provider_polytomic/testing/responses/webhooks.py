"""The webhook and its delivery attempts as Polytomic writes them."""

from __future__ import annotations

from typing import Any

from ..backends.webhooks import Webhook
from ..records import Delivery, format_time

__all__ = ["delivery_json", "webhook_json"]


def webhook_json(hook: Webhook) -> dict[str, Any]:
    """``Webhook``: the secret is returned in plain text, as Polytomic does."""
    return {
        "id": hook.id,
        "organization_id": hook.organization_id,
        "endpoint": hook.endpoint,
        "secret": hook.secret,
        "disabled": hook.disabled,
        "disabled_at": format_time(hook.disabled_at),
        "disabled_reason": hook.disabled_reason,
        "created_at": format_time(hook.created_at),
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """``WebhookDelivery``: one attempt (``error`` and ``error_kind`` only on failure)."""
    error = delivery.error
    if error is None and not delivery.ok:
        error = f"endpoint answered HTTP {delivery.status_code}"
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "attempted_at": format_time(delivery.attempted_at or delivery.time),
        "status_code": delivery.status_code,
        "success": delivery.ok,
        "duration_ms": delivery.duration_ms,
        "response_body": delivery.response_body,
        "error": error,
        "error_kind": delivery.error_kind,
    }
