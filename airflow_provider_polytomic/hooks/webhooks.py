"""The :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook` methods for the
organization's webhook: the webhook itself, its delivery history, and keeping it pointed at
the Airflow receiver (:meth:`PolytomicWebhookMethods.reconcile_webhook`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_polytomic import api
from airflow_provider_polytomic.exceptions import PolytomicAPIError
from airflow_provider_polytomic.models import (
    Webhook,
    WebhookDeliveriesPage,
    WebhookDelivery,
    WebhookOutage,
    WebhookReconciliation,
)

if TYPE_CHECKING:
    from airflow_provider_polytomic.client import Call

T = TypeVar("T")


class PolytomicWebhookMethods:
    """Webhook methods of :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook`,
    which provides :meth:`run` and ``log``."""

    if TYPE_CHECKING:
        log: Any

        def run(self, call: Call[T]) -> T: ...

    def list_webhooks(self) -> list[Webhook]:
        return self.run(api.list_webhooks())

    def create_webhook(self, endpoint: str, secret: str) -> Webhook:
        return self.run(api.create_webhook(endpoint, secret))

    def get_webhook(self, webhook_id: str) -> Webhook:
        return self.run(api.get_webhook(webhook_id))

    def update_webhook(self, webhook_id: str, endpoint: str, secret: str) -> Webhook:
        return self.run(api.update_webhook(webhook_id, endpoint, secret))

    def delete_webhook(self, webhook_id: str) -> None:
        self.run(api.delete_webhook(webhook_id))

    def enable_webhook(self, webhook_id: str) -> Webhook:
        return self.run(api.set_webhook_enabled(webhook_id, True))

    def disable_webhook(self, webhook_id: str) -> Webhook:
        return self.run(api.set_webhook_enabled(webhook_id, False))

    def list_webhook_deliveries(
        self,
        webhook_id: str,
        *,
        success: bool | None = None,
        event_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        page_token: str | None = None,
    ) -> WebhookDeliveriesPage:
        """One page of the webhook's delivery attempts, newest first (``GET /api/webhooks/{id}/deliveries``).

        :param success: only delivered (True) or failed (False) attempts.
        :param start: attempts at or after this time (timezone-aware); ``end``: before it.
        :param page_token: the previous page's ``next_page_token``.
        """
        return self.run(
            api.list_webhook_deliveries_page(
                webhook_id, success=success, event_id=event_id, start=start, end=end, page_token=page_token
            )
        )

    def iter_webhook_deliveries(
        self,
        webhook_id: str,
        *,
        success: bool | None = None,
        event_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[WebhookDelivery]:
        """Every delivery attempt matching the filters, newest first, across pages.

        Example::

            since = datetime.now(timezone.utc) - timedelta(hours=24)
            failed = list(hook.iter_webhook_deliveries(webhook_id, success=False, start=since))
        """
        for page in api.follow_page_tokens(
            lambda token: self.list_webhook_deliveries(
                webhook_id, success=success, event_id=event_id, start=start, end=end, page_token=token
            )
        ):
            yield from page.deliveries

    def webhook_outage(
        self,
        webhook: Webhook,
        *,
        window: timedelta = timedelta(hours=24),
        keep: int = 10,
        max_scan: int = 1000,
    ) -> WebhookOutage | None:
        """Why ``webhook`` is disabled and which deliveries failed in the ``window`` before now.

        None when it is enabled. Keeps the newest ``keep`` failed attempts and counts at most
        ``max_scan``. A deployment that cannot list deliveries still gets the outage, with
        ``failed_deliveries`` None.
        """
        if not webhook.disabled:
            return None
        outage = WebhookOutage(
            webhook_id=webhook.id,
            disabled_at=webhook.disabled_at,
            reason=webhook.disabled_reason,
            window_hours=window.total_seconds() / 3600,
        )
        since = datetime.now(timezone.utc) - window
        failed: list[WebhookDelivery] = []
        total = 0
        try:
            for delivery in self.iter_webhook_deliveries(webhook.id, success=False, start=since):
                total += 1
                if len(failed) < keep:
                    failed.append(delivery)
                if total >= max_scan:
                    outage.failed_total_capped = True
                    break
        except PolytomicAPIError as exc:
            self.log.warning(
                "Could not read the delivery history of Polytomic webhook %s: %s", webhook.id, exc
            )
            return outage
        outage.failed_total, outage.failed_deliveries = total, failed
        return outage

    def reconcile_webhook(self, endpoint: str, secret: str) -> WebhookReconciliation:
        """Make the organization's single webhook point at ``endpoint`` with ``secret``, enabled,
        and say what that took.

        Idempotent: creates it when there is none, updates it only when the endpoint or
        secret differ, and re-enables it when disabled, with a warning saying when and why it
        was off and which deliveries failed in the last 24 hours (see :meth:`webhook_outage`).
        """
        existing = self.list_webhooks()
        result = WebhookReconciliation(
            webhook=existing[0] if existing else self.create_webhook(endpoint, secret)
        )
        result.created = not existing
        webhook = result.webhook
        current_secret = webhook.secret.get_secret_value() if webhook.secret else None
        if existing and (webhook.endpoint != endpoint or current_secret != secret):
            webhook = self.update_webhook(webhook.id, endpoint, secret)
            result.updated = True
        if webhook.disabled:
            result.outage = self.webhook_outage(webhook)
            if result.outage is not None:
                self.log.warning("%s Re-enabling it.", result.outage.summary())
            webhook = self.enable_webhook(webhook.id)
            result.reenabled = True
        result.webhook = webhook
        return result

    def ensure_webhook(self, endpoint: str, secret: str) -> Webhook:
        """Make the organization's single webhook point at ``endpoint`` with ``secret``, enabled.

        Idempotent: creates it when there is none, updates it only when the endpoint or
        secret differ, enables it when disabled (warning why it was off), and otherwise
        changes nothing. :meth:`reconcile_webhook` also says what it did.
        """
        return self.reconcile_webhook(endpoint, secret).webhook


__all__ = ["PolytomicWebhookMethods"]
