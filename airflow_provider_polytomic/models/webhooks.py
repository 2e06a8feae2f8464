"""The organization's webhook, its delivery attempts, and what reconciling it did."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from airflow_provider_polytomic.models.base import WireModel


class Webhook(WireModel):
    """The organization's event webhook. ``secret`` is a :class:`SecretStr`: it never prints.

    :ivar disabled_at: when it was disabled (by a user, or by Polytomic after repeated
        failed deliveries); None while enabled.
    :ivar disabled_reason: why, when Polytomic says.
    """

    id: str
    organization_id: str | None = None
    endpoint: str | None = None
    secret: SecretStr | None = None
    disabled: bool | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    created_at: datetime | None = None


class WebhookDelivery(WireModel):
    """One attempt to deliver an event to the webhook (``GET /api/webhooks/{id}/deliveries``).

    :ivar success: whether the endpoint answered 2xx.
    :ivar status_code: what the endpoint answered; None when it could not be reached.
    :ivar error: why the attempt failed; ``error_kind`` classifies it (values undocumented).
    :ivar response_body: the start of what the endpoint answered.
    """

    id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    attempted_at: datetime | None = None
    status_code: int | None = None
    success: bool | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_kind: str | None = None
    response_body: str | None = None

    def describe(self) -> str:
        """One line: when, which event, and how it failed (or that it succeeded)."""
        when = self.attempted_at.isoformat() if self.attempted_at else "unknown time"
        what = f"{self.event_type or 'event'} {self.event_id or '?'}"
        if self.success:
            return f"{when}: {what} delivered"
        if self.status_code is not None:
            detail = f"HTTP {self.status_code}"
        else:
            detail = self.error or self.error_kind or "no answer"
        return f"{when}: {what} failed ({detail})"


class WebhookDeliveriesPage(WireModel):
    """One page of delivery attempts, newest first, and the token of the next page (None: last)."""

    deliveries: list[WebhookDelivery] = Field(default_factory=list)
    next_page_token: str | None = None


class WebhookOutage(WireModel):
    """A disabled webhook: when and why, and the deliveries that failed in the window before.

    Built by :meth:`PolytomicHook.webhook_outage`; ``failed_deliveries`` is None when the
    delivery history could not be read. ``failed_total`` counts every failed attempt found,
    ``failed_deliveries`` keeps the newest of them.
    """

    webhook_id: str
    disabled_at: datetime | None = None
    reason: str | None = None
    window_hours: float = 24.0
    failed_total: int | None = None
    failed_total_capped: bool = False
    """True when there were more failed attempts than were counted."""
    failed_deliveries: list[WebhookDelivery] | None = None

    def summary(self) -> str:
        """A sentence for a log line: why the webhook was off and what failed."""
        since = f" since {self.disabled_at.isoformat()}" if self.disabled_at else ""
        reason = self.reason or "Polytomic gave no reason"
        text = f"Polytomic webhook {self.webhook_id} was disabled{since}: {reason}."
        if self.failed_deliveries is None:
            return text + " Its delivery history could not be read."
        window = f"{self.window_hours:g} hours"
        if not self.failed_total:
            return text + f" No failed deliveries in the last {window}."
        latest = "; ".join(d.describe() for d in self.failed_deliveries[:3])
        count = f"{'at least ' if self.failed_total_capped else ''}{self.failed_total}"
        return text + f" {count} failed deliveries in the last {window}, latest: {latest}."


class WebhookReconciliation(BaseModel):
    """What :meth:`PolytomicHook.reconcile_webhook` did to the organization's webhook.

    ``outage`` is set when the webhook was disabled (by Polytomic or a user) and has been
    re-enabled: when, why, and the deliveries that failed before.
    """

    model_config = ConfigDict(defer_build=True)  # as WireModel's: built on first use

    webhook: Webhook
    created: bool = False
    updated: bool = False
    reenabled: bool = False
    outage: WebhookOutage | None = None


__all__ = [
    "Webhook",
    "WebhookDeliveriesPage",
    "WebhookDelivery",
    "WebhookOutage",
    "WebhookReconciliation",
]
