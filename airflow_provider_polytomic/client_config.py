"""Where and how to reach one Polytomic deployment, read from an Airflow ``polytomic``
connection: :class:`ClientConfig` (base URL, credentials, timeouts, retry settings).

The API key is a :class:`~pydantic.SecretStr`, and :meth:`ClientConfig.scrub` removes it
from any text that came off the wire.
"""

from __future__ import annotations

import base64
import platform
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from airflow_provider_polytomic import __version__
from airflow_provider_polytomic._compat import airflow_version
from airflow_provider_polytomic.retry import RetryPolicy
from airflow_provider_polytomic.vocabulary import (
    DEFAULT_API_VERSION,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EVENT_RECHECK_INTERVAL,
    DEFAULT_HOST,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BASE_WAIT,
    DEFAULT_RETRY_MAX_WAIT,
    DEFAULT_TIMEOUT,
    ConnectionExtras,
)


def user_agent() -> str:
    """User-Agent naming the provider, Airflow and Python versions."""
    return (
        f"airflow-provider-polytomic/{__version__} apache-airflow/{airflow_version()} "
        f"python/{platform.python_version()}"
    )


def build_base_url(host: str | None, port: int | None = None, scheme: str | None = None) -> str:
    """Turn a connection's host (``app.polytomic.com``, ``https://polytomic.acme.internal``,
    ``http://127.0.0.1:8900``) into a base URL without a trailing slash."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        host = f"{scheme or 'https'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Polytomic connection host {host!r} is not an http(s) URL")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{netloc}{path}"


@dataclass(frozen=True)
class ClientConfig:
    """Everything needed to talk to one Polytomic deployment. The key is a :class:`SecretStr`."""

    api_key: SecretStr = field(repr=False)
    base_url: str = DEFAULT_HOST
    api_version: str = DEFAULT_API_VERSION
    organization_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT
    retry_base_wait: float = DEFAULT_RETRY_BASE_WAIT
    event_recheck_interval: float = DEFAULT_EVENT_RECHECK_INTERVAL
    """Seconds between the shared events poll's re-reads of late-visible events."""
    conn_id: str | None = None

    @classmethod
    def from_connection(cls, conn: Any, **overrides: Any) -> ClientConfig:
        """Build a config from an Airflow ``Connection`` of type ``polytomic``.

        ``overrides`` (``timeout``, ``max_retries``, ...) win over the connection's extras.
        """
        extras = ConnectionExtras.of(conn, **overrides)
        conn_id = extras.conn_id
        api_key = conn.password or extras.api_key
        if not api_key:
            raise ValueError(
                f"Connection {conn_id!r}: no API key. Put the Polytomic API key in the connection's password."
            )
        api_version = extras.api_version
        try:
            base_url = build_base_url(conn.host, getattr(conn, "port", None), extras.scheme)
        except ValueError as exc:
            raise ValueError(f"Connection {conn_id!r}: {exc}") from None
        return cls(
            api_key=SecretStr(str(api_key)),
            base_url=base_url,
            api_version=api_version,
            organization_id=extras.organization_id,
            timeout=extras.timeout,
            connect_timeout=extras.connect_timeout,
            max_retries=extras.max_retries,
            retry_max_wait=extras.retry_max_wait,
            retry_base_wait=extras.retry_base_wait,
            event_recheck_interval=extras.event_recheck_interval,
            conn_id=conn_id,
        )

    @property
    def api_host(self) -> str:
        """``scheme://host:port`` of the API: the only origin that ever receives the key."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def authorization(self) -> str:
        """The Authorization header value: Bearer, or org-scoped Basic for partner/deployment keys."""
        key = self.api_key.get_secret_value()
        if self.organization_id:
            token = base64.b64encode(f"{self.organization_id}:{key}".encode()).decode("ascii")
            return f"Basic {token}"
        return f"Bearer {key}"

    def headers(self, *, idempotency_key: str | None = None, has_body: bool = False) -> dict[str, str]:
        headers = {
            "Authorization": self.authorization(),
            "X-Polytomic-Version": self.api_version,
            "User-Agent": user_agent(),
            "Accept": "application/json",
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def scrub(self, text: str) -> str:
        """Remove the API key (and its Basic form) from text that came off the wire."""
        key = self.api_key.get_secret_value()
        if key:
            text = text.replace(key, "***")
            text = text.replace(self.authorization().split(" ", 1)[1], "***")
        return text

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_retries, base_wait=self.retry_base_wait, max_wait=self.retry_max_wait
        )


__all__ = ["ClientConfig", "build_base_url", "user_agent"]
