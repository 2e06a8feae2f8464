"""A controllable clock for the fake Polytomic server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

__all__ = ["FakeClock"]


class FakeClock:
    """Wall-clock time plus an adjustable offset (or a frozen instant).

    By default the clock follows real time, so timestamps keep increasing on their own;
    :meth:`advance` and :meth:`set` shift it. With ``frozen=True`` the clock only moves when
    told to. Event retention (48 h), signed-URL expiry and idempotency-key retention in the
    fake all read this clock, so ``clock.advance(49 * 3600)`` expires every stored event.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        """Create a clock.

        :param start: the initial time (aware, or naive meaning UTC); default: now.
        :param frozen: when True the clock does not follow real time.
        """
        self._lock = threading.Lock()
        self._frozen = frozen
        initial = _aware(start) if start is not None else _real_now()
        self._frozen_at = initial
        self._offset = initial - _real_now()

    @property
    def frozen(self) -> bool:
        """Whether the clock is frozen (moves only on :meth:`advance` / :meth:`set`)."""
        return self._frozen

    def now(self) -> datetime:
        """Return the current fake time as an aware UTC datetime."""
        with self._lock:
            if self._frozen:
                return self._frozen_at
            return _real_now() + self._offset

    def timestamp(self) -> float:
        """Return the current fake time as a Unix timestamp."""
        return self.now().timestamp()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (negative moves it back); return the new time."""
        with self._lock:
            delta = timedelta(seconds=seconds)
            self._frozen_at += delta
            self._offset += delta
        return self.now()

    def set(self, dt: datetime) -> None:
        """Jump to ``dt`` (aware, or naive meaning UTC). A running clock keeps ticking from there."""
        value = _aware(dt)
        with self._lock:
            self._frozen_at = value
            self._offset = value - _real_now()

    def freeze(self) -> None:
        """Stop following real time at the current instant."""
        current = self.now()
        with self._lock:
            self._frozen_at = current
            self._frozen = True

    def unfreeze(self) -> None:
        """Follow real time again, continuing from the current instant."""
        current = self.now()
        with self._lock:
            self._offset = current - _real_now()
            self._frozen = False


def _real_now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
