"""``FakePolytomic``: the fake state served over real HTTP by uvicorn in background threads."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import TRANSPORT_SCOPE_KEY, ApiOrigin, Scope, StorageOrigin, build_api
from .clock import FakeClock
from .state import EventsOrder, PolytomicState

__all__ = ["FakePolytomic"]

_STARTUP_TIMEOUT = 15.0


class _TransportExposingH11(H11Protocol):
    """uvicorn's h11 protocol, exposing the transport in the scope (for connection-reset faults)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every response.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        inner: Callable[..., Any] = self.app

        async def app(scope: Scope, receive: Any, send: Any) -> None:
            scope[TRANSPORT_SCOPE_KEY] = transport
            await inner(scope, receive, send)

        self.app = app


class _ReadyServer(uvicorn.Server):
    """A uvicorn server that signals a :class:`threading.Event` once it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class _Origin:
    """One uvicorn server on its own thread and pre-bound socket."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=_TransportExposingH11,
            loop="asyncio",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
        )
        self._server = _ReadyServer(config)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            self._error = exc
        finally:
            self._server.ready.set()

    def start(self) -> None:
        self._thread.start()
        if not self._server.ready.wait(_STARTUP_TIMEOUT) or not self._server.started:
            self.stop()
            raise RuntimeError(f"fake Polytomic server on {self.url} failed to start: {self._error!r}")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._sock.close()


class FakePolytomic(PolytomicState):
    """A fake Polytomic API served over real HTTP on 127.0.0.1, for tests and local DAG runs.

    Use it as a context manager (or :meth:`start` / :meth:`stop`)::

        with FakePolytomic() as fake:
            sync_id = fake.add_sync("contacts")
            # point the Airflow connection at fake.url with password fake.api_key
            execution_id = fake.run_execution(sync_id, outcome="completed", after=0.5,
                                              inserted=[{"id": 1}])

    Parameters:
        api_key: the only API key accepted (Bearer, or Basic ``organization_id:api_key``).
        organization_id: id of the fake organization (default: a random uuid4).
        organization_name: returned by ``GET /api/me``.
        clock: a :class:`FakeClock` (default: real time, adjustable).
        host: interface to bind; must be a loopback address.
        port: API origin port; 0 picks a free one.
        storage_origin: serve record-log files from a second server (:attr:`storage_url`).
        signed_url_ttl: lifetime of signed record-log URLs, in (fake-clock) seconds.
        gzip_record_logs: gzip record-log files (half with ``Content-Encoding: gzip``, half as raw
            ``application/gzip`` bytes).
        record_log_format: ``json`` (a JSON array per file) or ``jsonl`` (one object per line).
        webhook_retry_base_delay: first retry delay of webhook deliveries (doubles each retry).
        error_shape: ``api_error`` (``{"status","key","message","metadata"}``) or ``legacy``
            (``{"code","error","status","context"}``).
        api_version: ``X-Polytomic-Version`` answered when the request sends none.
        webhook_disable_after: disable the webhook after this many consecutive events whose
            every delivery attempt failed, with ``disabled_at`` and ``disabled_reason`` set
            (None, the default: never). Polytomic disables failing webhooks without
            documenting when; this is the knob for that assumption.
        events_order: how ``GET /api/events`` orders a page, which Polytomic does not document:
            ``oldest_first`` (default; the window's oldest ``limit`` events), ``newest_first``
            (the newest ``limit`` events, newest first) or ``shuffled`` (the oldest ``limit``
            events in a random, seeded order). Also an attribute, settable while serving.

    Connections, models and syncs are declared with :meth:`add_connection`,
    :meth:`add_model` and :meth:`add_sync`; behaviour knobs are attributes (``cancel_delay``,
    ``logs_index_urls``, ``webhook_disable_after``, ...) and fault knobs live in :attr:`faults`.
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-api-key-0123456789",
        organization_id: str | None = None,
        organization_name: str = "Fake Org",
        clock: FakeClock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_origin: bool = False,
        signed_url_ttl: float = 3600.0,
        gzip_record_logs: bool = False,
        record_log_format: Literal["json", "jsonl"] = "json",
        webhook_retry_base_delay: float = 0.05,
        error_shape: Literal["api_error", "legacy"] = "api_error",
        api_version: str = "2025-09-18",
        webhook_disable_after: int | None = None,
        events_order: EventsOrder = "oldest_first",
    ) -> None:
        """Configure the fake; nothing listens until :meth:`start`."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake Polytomic server only binds to loopback (127.0.0.1)")
        super().__init__(
            api_key=api_key,
            organization_id=organization_id,
            organization_name=organization_name,
            clock=clock,
            storage_origin=storage_origin,
            signed_url_ttl=signed_url_ttl,
            gzip_record_logs=gzip_record_logs,
            record_log_format=record_log_format,
            webhook_retry_base_delay=webhook_retry_base_delay,
            error_shape=error_shape,
            api_version=api_version,
            webhook_disable_after=webhook_disable_after,
            events_order=events_order,
        )
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self._api_origin: _Origin | None = None
        self._storage: _Origin | None = None

    @property
    def started(self) -> bool:
        """Whether the servers are running."""
        return self._api_origin is not None

    def start(self) -> FakePolytomic:
        """Start the API origin (and the storage origin) and wait until they accept connections."""
        if self._api_origin is not None:
            return self
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self.backends.webhooks.restart_dispatcher()  # after stop(), deliveries need a fresh worker
        api = _Origin(ApiOrigin(self, build_api(self)), self.host, self.port, "fake-polytomic-api")
        api.start()
        self._api_origin = api
        self.url = api.url
        self.port = api.port
        if self.storage_origin:
            try:
                storage = _Origin(StorageOrigin(self), self.host, 0, "fake-polytomic-storage")
                storage.start()
            except BaseException:
                self.stop()
                raise
            self._storage = storage
            self.storage_url = storage.url
        return self

    def stop(self) -> None:
        """Stop the servers, pending timers and the webhook worker."""
        self.org.cancel_timers()
        self.backends.webhooks.dispatcher.stop()
        for origin in (self._storage, self._api_origin):
            if origin is not None:
                origin.stop()
        self._storage = None
        self._api_origin = None

    def __enter__(self) -> FakePolytomic:
        """Start and return the fake."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the fake."""
        self.stop()
