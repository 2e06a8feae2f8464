"""The organization's webhook, its deliveries (every attempt) and its automatic disabling."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

from ..records import Delivery, FakeApiError
from ..webhooks import WebhookDispatcher
from .context import Org
from .events import EVENT_RETENTION

__all__ = ["DeliveryFilter", "Webhook", "WebhooksBackend"]


@dataclass
class Webhook:
    id: str
    organization_id: str
    endpoint: str
    secret: str
    created_at: datetime
    disabled: bool = False
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    """Events in a row whose every attempt failed (reset by a delivered event or by enabling)."""


@dataclass(frozen=True)
class DeliveryFilter:
    """The filters of ``GET /api/webhooks/{id}/deliveries``."""

    success: bool | None = None
    event_id: str | None = None
    start: datetime | None = None
    """Attempts at or after this time."""
    end: datetime | None = None
    """Attempts before this time."""

    def matches(self, delivery: Delivery) -> bool:
        when = delivery.attempted_at or delivery.time
        return (
            (self.success is None or delivery.ok == self.success)
            and (self.event_id is None or delivery.event_id == self.event_id)
            and (self.start is None or when >= self.start)
            and (self.end is None or when < self.end)
        )


class WebhooksBackend:
    """Webhook CRUD, delivery of recorded events, and the delivery history.

    Polytomic allows one webhook per organization. Every attempt is kept in :attr:`deliveries`
    (oldest first); the API lists them newest first while their event is retained.
    """

    def __init__(self, org: Org, *, retry_base_delay: float = 0.05) -> None:
        """No webhook yet; deliveries retry ``retry_base_delay * 2**n`` seconds apart."""
        self._org = org
        self._hooks: dict[str, Webhook] = {}
        self.deliveries: list[Delivery] = []
        """Every delivery attempt, oldest first."""
        self.dispatcher = self._new_dispatcher(retry_base_delay)

    def _new_dispatcher(self, base_delay: float) -> WebhookDispatcher:
        return WebhookDispatcher(
            self._on_attempt, self._org.now, base_delay=base_delay, should_attempt=self._deliverable
        )

    def restart_dispatcher(self) -> None:
        """A fresh delivery worker after :meth:`WebhookDispatcher.stop` (the fake was restarted)."""
        if self.dispatcher.stopped:
            self.dispatcher = self._new_dispatcher(self.dispatcher.base_delay)

    # -- CRUD ----------------------------------------------------------------------------------

    def all(self) -> list[Webhook]:
        """The webhooks (zero or one)."""
        with self._org.lock:
            return list(self._hooks.values())

    def create(self, body: Any) -> Webhook:
        """``POST /api/webhooks``: validate and create; 422 when one exists already."""
        endpoint, secret = self._validate(body)
        with self._org.lock:
            if self._hooks:
                existing = next(iter(self._hooks))
                raise FakeApiError(
                    422,
                    f"only one webhook per organization is allowed; update or delete webhook {existing}",
                    "webhook_exists",
                )
            hook = Webhook(str(uuid.uuid4()), self._org.organization_id, endpoint, secret, self._org.now())
            self._hooks[hook.id] = hook
            return hook

    def get(self, webhook_id: str) -> Webhook:
        """One webhook; 404 API error when unknown."""
        with self._org.lock:
            hook = self._hooks.get(webhook_id)
        if hook is None:
            raise FakeApiError(404, f"webhook {webhook_id} not found")
        return hook

    def update(self, webhook_id: str, body: Any) -> Webhook:
        """``PUT /api/webhooks/{id}``: validate and replace endpoint and secret."""
        with self._org.lock:
            hook = self.get(webhook_id)
            hook.endpoint, hook.secret = self._validate(body)
            return hook

    def delete(self, webhook_id: str) -> None:
        """``DELETE /api/webhooks/{id}``."""
        with self._org.lock:
            self.get(webhook_id)
            del self._hooks[webhook_id]

    def set_disabled(self, webhook_id: str, disabled: bool, reason: str | None = None) -> Webhook:
        """Disable (with an optional reason) or enable a webhook.

        Disabling through the API records when, but no reason: Polytomic does not document one.
        Enabling clears both and the failure count.
        """
        with self._org.lock:
            hook = self.get(webhook_id)
            if disabled and not hook.disabled:
                hook.disabled_at, hook.disabled_reason = self._org.now(), reason
            elif not disabled:
                hook.disabled_at, hook.disabled_reason, hook.consecutive_failures = None, None, 0
            hook.disabled = disabled
            return hook

    def _validate(self, body: Any) -> tuple[str, str]:
        if not isinstance(body, dict):
            raise FakeApiError(422, "request body must be a JSON object")
        endpoint, secret = body.get("endpoint"), body.get("secret")
        org = body.get("organization_id")
        if org not in (None, "", self._org.organization_id):
            raise FakeApiError(403, "organization_id does not match the caller's organization")
        if not isinstance(endpoint, str) or not endpoint:
            raise FakeApiError(422, "endpoint is required")
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FakeApiError(422, "endpoint must be an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise FakeApiError(422, "secret is required")
        if not 6 <= len(secret) <= 32:
            raise FakeApiError(422, "secret must be between 6 and 32 characters")
        return endpoint, secret

    # -- delivery ------------------------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for the enabled webhook (events are not queued while it is disabled)."""
        with self._org.lock:
            hook = next((h for h in self._hooks.values() if not h.disabled), None)
            if hook is None or self._org.faults.take_drop_webhook():
                return
            body = json.dumps(event, separators=(",", ":")).encode()
            self.dispatcher.submit(hook.endpoint, hook.secret, body, event["id"], event["type"], hook.id)

    def _deliverable(self, webhook_id: str) -> bool:
        with self._org.lock:
            hook = self._hooks.get(webhook_id)
            return hook is not None and not hook.disabled

    def _on_attempt(self, delivery: Delivery, final: bool) -> None:
        with self._org.lock:
            self.deliveries.append(delivery)
            hook = self._hooks.get(delivery.webhook_id)
            if hook is None or not final:
                return
            if delivery.ok:
                hook.consecutive_failures = 0
                return
            hook.consecutive_failures += 1
            threshold = self._org.settings.webhook_disable_after
            if threshold is not None and hook.consecutive_failures >= threshold and not hook.disabled:
                self.set_disabled(
                    hook.id,
                    True,
                    f"disabled after {hook.consecutive_failures} consecutive failed deliveries "
                    f"(last: {delivery.error or f'HTTP {delivery.status_code}'})",
                )

    def wait(self, timeout: float | None) -> bool:
        """Block until every queued event is delivered or given up; False on timeout."""
        return self.dispatcher.wait(timeout)

    # -- history -------------------------------------------------------------------------------

    def page(
        self, webhook_id: str, filters: DeliveryFilter, page_token: str | None
    ) -> tuple[list[Delivery], str | None]:
        """One page of a webhook's attempts, newest first, and the token of the next page.

        Attempts are listed while their event is retained (48 hours; the fake dates an event
        by its first attempt). The token is a keyset cursor, so attempts made between two
        pages never shift the next one.
        """
        cursor = self._decode(page_token, webhook_id) if page_token else None
        cutoff = self._org.now() - EVENT_RETENTION
        size = max(1, int(self._org.settings.webhook_deliveries_page_size))
        with self._org.lock:
            self.get(webhook_id)
            rows = [
                d
                for d in self.deliveries
                if d.webhook_id == webhook_id and (d.attempted_at or d.time) >= cutoff and filters.matches(d)
            ]
        rows.sort(key=_key, reverse=True)
        if cursor is not None:
            rows = [d for d in rows if _key(d) < cursor]
        page = rows[:size]
        token = self._encode(_key(page[-1]), webhook_id) if len(rows) > size else None
        return page, token

    @staticmethod
    def _encode(key: tuple[int, int], webhook_id: str) -> str:
        raw = json.dumps({"t": key[0], "s": key[1], "w": webhook_id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode(token: str, webhook_id: str) -> tuple[int, int]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
            if decoded["w"] != webhook_id:
                raise ValueError(token)
            return int(decoded["t"]), int(decoded["s"])
        except (ValueError, KeyError, TypeError):
            raise FakeApiError(400, "invalid page_token") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _key(delivery: Delivery) -> tuple[int, int]:
    """Newest-first order of attempts: start time in microseconds, then attempt number."""
    when = delivery.attempted_at or delivery.time
    return ((when - _EPOCH) // timedelta(microseconds=1), delivery.seq)
