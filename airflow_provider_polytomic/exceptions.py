"""Exceptions raised by the Polytomic provider."""

from __future__ import annotations

from typing import Any

from airflow_provider_polytomic._compat import AirflowException


class PolytomicAPIError(AirflowException):
    """A Polytomic API call failed.

    :ivar status_code: HTTP status of the failed response (None for network failures).
    :ivar key: Polytomic's machine-readable error key (``key`` or legacy ``code``), if any.
    :ivar message: Polytomic's human-readable message (``message`` or legacy ``error``).
    :ivar method: HTTP method of the request.
    :ivar path: path of the request (never the query string, which could carry tokens).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        key: str | None = None,
        method: str | None = None,
        path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        # AirflowException declares status_code as the HTTP status Airflow's API would answer;
        # here it is the status Polytomic answered (None when there was no response).
        self.status_code = status_code  # type: ignore[assignment]
        self.key = key
        self.message = message
        self.method = method
        self.path = path
        self.metadata = metadata or {}
        where = f"{method} {path}" if method and path else "Polytomic API"
        status = f"HTTP {status_code}" if status_code is not None else "no response"
        key_part = f" [{key}]" if key else ""
        super().__init__(f"{where} failed ({status}{key_part}): {message}")


class PolytomicNotFoundError(PolytomicAPIError):
    """The API answered 404 for the requested object."""


class PolytomicSyncAlreadyRunningError(PolytomicAPIError):
    """Starting a sync answered 409: an execution of that sync is already running."""


class PolytomicSyncFailedError(AirflowException):
    """The awaited sync execution failed, was canceled or was interrupted."""


class PolytomicAirflowVersionError(AirflowException):
    """A feature was used on an Airflow release that does not have what it is built on.

    :ivar feature: what was used, e.g. ``"asset watchers (PolytomicEventTrigger)"``.
    :ivar minimum: the oldest Airflow (major, minor) that has it.
    :ivar installed: the installed Airflow version.
    """

    def __init__(self, feature: str, minimum: tuple[int, int], installed: str) -> None:
        self.feature = feature
        self.minimum = minimum
        self.installed = installed
        needed = ".".join(str(part) for part in minimum)
        super().__init__(
            f"{feature} needs Airflow {needed} or newer; this is Airflow {installed}. "
            "See the support table in the airflow-provider-polytomic README."
        )


__all__ = [
    "PolytomicAPIError",
    "PolytomicAirflowVersionError",
    "PolytomicNotFoundError",
    "PolytomicSyncAlreadyRunningError",
    "PolytomicSyncFailedError",
]
