"""The single retry policy of both transports, and the errors it tells apart.

:class:`RetryableAPIError` is a failure worth trying again (429, 5xx, a connection error, a
timeout); :func:`is_retryable` says so for any exception, and waiters ride such failures out
after the transport's own retries. :class:`RetryPolicy` turns that into tenacity's arguments,
honouring ``Retry-After`` and an optional deadline. tenacity itself is imported only when a
request is about to be sent (see :mod:`~airflow_provider_polytomic.client`).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_polytomic.exceptions import PolytomicAPIError
from airflow_provider_polytomic.vocabulary import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BASE_WAIT,
    DEFAULT_RETRY_MAX_WAIT,
)

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class DeadlineExceededError(PolytomicAPIError):
    """A transport's deadline passed before a request could be sent; never retried."""


class RetryableAPIError(PolytomicAPIError):
    """A failure worth retrying (429, 5xx, network); carries the server's Retry-After."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure worth trying again: 429, 5xx, a connection error or a
    timeout. After the transport's own retries, waiters ride these out until their deadline."""
    return isinstance(exc, RetryableAPIError)


@dataclass(frozen=True)
class RetryPolicy:
    """The single retry policy of both transports.

    Retries 429, 5xx, connection errors and timeouts, never other 4xx. Waits follow
    ``Retry-After`` when the server sends one (capped at ``max_wait``), else an exponential
    backoff from ``base_wait`` with jitter (half fixed, half random) capped at ``max_wait``.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_wait: float = DEFAULT_RETRY_BASE_WAIT
    max_wait: float = DEFAULT_RETRY_MAX_WAIT

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_wait)
        ceiling = min(self.max_wait, self.base_wait * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _tenacity_wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.wait_for(state.attempt_number, exc)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning(
            "Polytomic call failed (%s); retry %d of %d in %.1f s",
            exc,
            state.attempt_number,
            self.max_retries,
            wait,
        )

    def tenacity_kwargs(self, deadline: float | None = None) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying``/``AsyncRetrying``.

        :param deadline: a ``time.monotonic()`` value: no retry starts after it, and no wait
            between attempts runs past it.
        """
        import tenacity

        attempts = tenacity.stop_after_attempt(self.max_retries + 1)
        stop: Any = attempts
        wait: Any = self._tenacity_wait
        if deadline is not None:

            def stop(state: tenacity.RetryCallState) -> bool:
                return bool(attempts(state)) or time.monotonic() >= deadline

            def wait(state: tenacity.RetryCallState) -> float:
                return min(self._tenacity_wait(state), max(0.0, deadline - time.monotonic()))

        return {
            "stop": stop,
            "retry": tenacity.retry_if_exception(is_retryable),
            "wait": wait,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }


__all__ = [
    "DeadlineExceededError",
    "RetryPolicy",
    "RetryableAPIError",
    "is_retryable",
    "parse_retry_after",
]
