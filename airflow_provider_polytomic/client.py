"""The one HTTP core every Polytomic call goes through, synchronous and asynchronous.

A request is described once as a :class:`Call` (method, path, query, body, how to read the
answer). :class:`SyncTransport` (requests) and :class:`AsyncTransport` (httpx) send it with
the same headers and timeouts (:mod:`~airflow_provider_polytomic.client_config`), the same
retry policy (:mod:`~airflow_provider_polytomic.retry`, tenacity on both paths) and the
same response parser, so the two paths cannot drift apart.

Nothing in this module logs or raises text containing the API key: headers are never
logged, exception messages are built here rather than copied from the HTTP libraries, and
anything echoed from a response body is scrubbed of the key.

The HTTP and retry libraries are imported where requests are sent, not with this module:
DAG files import the provider's operators (and so this module) on every parse, and only a
running task sends anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_polytomic.client_config import ClientConfig, build_base_url, user_agent
from airflow_provider_polytomic.exceptions import (
    PolytomicAPIError,
    PolytomicNotFoundError,
    PolytomicSyncAlreadyRunningError,
)
from airflow_provider_polytomic.models import build_schemas
from airflow_provider_polytomic.retry import (
    DeadlineExceededError,
    RetryableAPIError,
    RetryPolicy,
    is_retryable,
    parse_retry_after,
)
from airflow_provider_polytomic.vocabulary import DEFAULT_API_VERSION, DEFAULT_HOST

if TYPE_CHECKING:
    import httpx
    import requests

log = logging.getLogger(__name__)

T = TypeVar("T")

_IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,255}$")


# ------------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request, described without doing any I/O.

    :param parse: turns the decoded JSON body (None when empty) into the result.
    :param conflict_is_running: a 409 means "an execution is already running" (sync start).
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    conflict_is_running: bool = False
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if self.idempotency_key is not None and not _IDEMPOTENCY_KEY_RE.match(self.idempotency_key):
            raise ValueError(
                f"idempotency_key={self.idempotency_key!r} must be 8-255 characters "
                "of letters, digits, - or _"
            )

    @property
    def sends_idempotency_key(self) -> bool:
        return self.method.upper() == "POST"

    def query(self) -> list[tuple[str, str]]:
        """Query parameters with None dropped, booleans lowercased, lists repeated."""
        out: list[tuple[str, str]] = []
        for name, value in (self.params or {}).items():
            if value is None:
                continue
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, bool):
                    out.append((name, "true" if v else "false"))
                elif isinstance(v, datetime):
                    out.append((name, format_time(v)))
                else:
                    out.append((name, str(v)))
        return out


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as the events API's time filters expect."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def data_of(body: Any) -> Any:
    """Unwrap Polytomic's ``{"data": ...}`` envelope."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


# ------------------------------------------------------------------- answers and errors


def error_from_response(
    config: ClientConfig, call: Call[Any], status: int, headers: Mapping[str, str], content: bytes
) -> PolytomicAPIError:
    """Build the exception for a non-2xx answer, from either of Polytomic's error shapes:
    ``{"status", "key", "message", "metadata"}`` or the legacy ``{"code", "error", "status", "context"}``."""
    key: str | None = None
    message: str | None = None
    metadata: dict[str, Any] = {}
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        raw_key = body.get("key") or body.get("code")
        key = str(raw_key) if raw_key is not None else None
        meta = body.get("metadata") or body.get("context")
        metadata = meta if isinstance(meta, dict) else {}
        if message is not None and not isinstance(message, str):
            message = json.dumps(message)[:500]
    if not message:
        text = content[:300].decode("utf-8", "replace").strip() if content else ""
        message = text or f"HTTP {status}"
    message = config.scrub(message)[:1000]
    kwargs: dict[str, Any] = {
        "status_code": status,
        "key": key,
        "method": call.method,
        "path": call.path,
        "metadata": metadata,
    }
    if status == 429 or status >= 500:
        return RetryableAPIError(
            message,
            retry_after=parse_retry_after(headers.get("Retry-After") or headers.get("retry-after")),
            **kwargs,
        )
    if status == 404:
        return PolytomicNotFoundError(message, **kwargs)
    if status == 409 and call.conflict_is_running:
        return PolytomicSyncAlreadyRunningError(message, **kwargs)
    return PolytomicAPIError(message, **kwargs)


def decode_success(config: ClientConfig, call: Call[T], content: bytes) -> T:
    if not content or not content.strip():
        return call.parse(None)
    try:
        body = json.loads(content)
    except ValueError:
        raise PolytomicAPIError(
            "the response body is not JSON", method=call.method, path=call.path, status_code=200
        ) from None
    try:
        return call.parse(body)
    except (ValueError, TypeError, KeyError) as exc:
        raise PolytomicAPIError(
            f"unexpected response shape: {config.scrub(str(exc))[:500]}", method=call.method, path=call.path
        ) from None


def handle_response(
    config: ClientConfig, call: Call[T], status: int, headers: Mapping[str, str], content: bytes
) -> T:
    """What both transports do with an answer: the parsed result, or the matching exception."""
    log.debug("Polytomic %s %s -> %s", call.method, call.path, status)
    if not 200 <= status < 300:
        raise error_from_response(config, call, status, headers, content)
    return decode_success(config, call, content)


def remaining_time(deadline: float | None, call: Call[Any]) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline).

    :raises DeadlineExceededError: the deadline has passed, so ``call`` must not be sent.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError(
            "the time allowed for these Polytomic calls ran out", method=call.method, path=call.path
        )
    return left


# -------------------------------------------------------------------------- transports


def _network_error(call: Call[Any], config: ClientConfig, exc: BaseException) -> RetryableAPIError:
    # Our own wording: library messages are not copied, so nothing unexpected leaks.
    return RetryableAPIError(
        f"{type(exc).__name__} while talking to {config.api_host}",
        method=call.method,
        path=call.path,
    )


class SyncTransport:
    """Sends :class:`Call` objects with ``requests``.

    :param deadline: a ``time.monotonic()`` value bounding every call sent through this
        transport: each attempt's timeouts are cut to the time left, no retry starts after it,
        and a call sent once it has passed fails at once with :class:`DeadlineExceededError`.
    """

    def __init__(
        self, config: ClientConfig, session: requests.Session | None = None, *, deadline: float | None = None
    ) -> None:
        import requests

        build_schemas()
        self.config = config
        self.session = session or requests.Session()
        # Never pick up credentials from ~/.netrc for a host: we send our own.
        self.session.trust_env = False
        self.retry_policy = config.retry_policy
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"SyncTransport(base_url={self.config.base_url!r})"

    def send(self, call: Call[T]) -> T:
        key = call.idempotency_key or (uuid.uuid4().hex if call.sends_idempotency_key else None)
        import tenacity

        retrying = tenacity.Retrying(**self.retry_policy.tenacity_kwargs(self.deadline))
        return retrying(self._send_once, call, key)

    def _send_once(self, call: Call[T], idempotency_key: str | None) -> T:
        import requests

        headers = self.config.headers(idempotency_key=idempotency_key, has_body=call.json is not None)
        connect_timeout, read_timeout = self.config.connect_timeout, self.config.timeout
        left = remaining_time(self.deadline, call)
        if left is not None:
            connect_timeout, read_timeout = min(connect_timeout, left), min(read_timeout, left)
        try:
            response = self.session.request(
                call.method,
                self.config.base_url + call.path,
                params=call.query(),
                data=json.dumps(call.json) if call.json is not None else None,
                headers=headers,
                timeout=(connect_timeout, read_timeout),
                allow_redirects=False,
            )
            content = response.content
        except requests.RequestException as exc:
            raise _network_error(call, self.config, exc) from None
        return handle_response(self.config, call, response.status_code, response.headers, content)

    def close(self) -> None:
        self.session.close()


class AsyncTransport:
    """Sends :class:`Call` objects with ``httpx.AsyncClient``; never blocks the event loop."""

    def __init__(
        self, config: ClientConfig, client: httpx.AsyncClient | None = None, *, deadline: float | None = None
    ) -> None:
        self.config = config
        self._client = client
        self._lock: asyncio.Lock | None = None
        self.retry_policy = config.retry_policy
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"AsyncTransport(base_url={self.config.base_url!r})"

    def _build_client(self) -> httpx.AsyncClient:
        import httpx

        # Off the event loop (see _http), so the schemas' one-time build does not block it either.
        build_schemas()
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout),
            trust_env=False,
            follow_redirects=False,
        )

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._client is None:
                    # Building the client loads the CA bundle from disk (and, the first time,
                    # httpx itself), which blocked the triggerer's event loop for most of a
                    # second: do it in a thread.
                    self._client = await asyncio.to_thread(self._build_client)
        return self._client

    async def send(self, call: Call[T]) -> T:
        key = call.idempotency_key or (uuid.uuid4().hex if call.sends_idempotency_key else None)
        import tenacity

        retrying = tenacity.AsyncRetrying(**self.retry_policy.tenacity_kwargs(self.deadline))
        return await retrying(self._send_once, call, key)

    async def _send_once(self, call: Call[T], idempotency_key: str | None) -> T:
        headers = self.config.headers(idempotency_key=idempotency_key, has_body=call.json is not None)
        left = remaining_time(self.deadline, call)
        client = await self._http()
        import httpx  # already loaded by _http(), off the event loop

        extra: dict[str, Any] = {}
        if left is not None:
            extra["timeout"] = httpx.Timeout(
                min(self.config.timeout, left), connect=min(self.config.connect_timeout, left)
            )
        try:
            response = await client.request(
                call.method,
                self.config.base_url + call.path,
                params=tuple(call.query()),
                content=json.dumps(call.json).encode() if call.json is not None else None,
                headers=headers,
                **extra,
            )
            content = response.content
        except httpx.HTTPError as exc:
            raise _network_error(call, self.config, exc) from None
        return handle_response(self.config, call, response.status_code, response.headers, content)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_HOST",
    "AsyncTransport",
    "Call",
    "ClientConfig",
    "DeadlineExceededError",
    "RetryPolicy",
    "RetryableAPIError",
    "SyncTransport",
    "build_base_url",
    "data_of",
    "format_time",
    "is_retryable",
    "parse_retry_after",
    "remaining_time",
    "user_agent",
]
