"""Errors of the record-log download; every message is safe to log (no key, no link signature)."""

from __future__ import annotations

from airflow_provider_polytomic._compat import AirflowException

__all__ = ["LinkRejected", "RecordCountMismatchError", "RecordLogError"]


class RecordLogError(AirflowException):
    """Downloading record logs failed (a message safe to log: no key, no link signature)."""


class RecordCountMismatchError(RecordLogError):
    """Raised under ``count_records=True, strict=True`` when counted records differ from
    Polytomic's counts (or a file could not be counted)."""


class LinkRejected(Exception):
    """A signed link answered 403/404/410: it expired or was revoked, a fresh one may work."""

    def __init__(self, status: int, where: str) -> None:
        super().__init__(f"HTTP {status} from {where}")
        self.status = status
