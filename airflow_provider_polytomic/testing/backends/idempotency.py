"""``Idempotency-Key``: the first response for a key is replayed for 24 hours."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .context import Org

__all__ = ["IDEMPOTENCY_RETENTION", "IdempotencyBackend", "IdempotencyEntry"]

IDEMPOTENCY_RETENTION = timedelta(hours=24)
"""How long an ``Idempotency-Key`` replays its first response."""


@dataclass
class IdempotencyEntry:
    created_at: datetime
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @property
    def in_flight(self) -> bool:
        """Whether the first request with the key has not answered yet."""
        return self.status is None


class IdempotencyBackend:
    """Keys and the responses they replay."""

    def __init__(self, org: Org) -> None:
        """No keys yet."""
        self._org = org
        self._entries: dict[str, IdempotencyEntry] = {}

    def begin(self, key: str) -> IdempotencyEntry | None:
        """The stored entry for ``key`` (replay, or in flight), or None after reserving the key."""
        now = self._org.now()
        with self._org.lock:
            for stale in [k for k, v in self._entries.items() if now - v.created_at > IDEMPOTENCY_RETENTION]:
                del self._entries[stale]
            entry = self._entries.get(key)
            if entry is not None:
                return entry
            self._entries[key] = IdempotencyEntry(created_at=now)
            return None

    def finish(self, key: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Store the first response for ``key``."""
        with self._org.lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.status, entry.headers, entry.body = status, headers, body

    def abort(self, key: str) -> None:
        """Forget a reservation whose request never produced a response."""
        with self._org.lock:
            entry = self._entries.get(key)
            if entry is not None and entry.in_flight:
                del self._entries[key]
