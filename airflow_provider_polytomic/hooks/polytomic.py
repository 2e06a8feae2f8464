"""Hook over Polytomic's Events, webhook and sync-execution APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from airflow_provider_polytomic import api
from airflow_provider_polytomic._compat import BaseHook, aget_connection
from airflow_provider_polytomic.client import AsyncTransport, Call, ClientConfig, SyncTransport
from airflow_provider_polytomic.event_pager import EventPager
from airflow_provider_polytomic.get_provider_info import CONN_FIELDS, CONN_TYPE, UI_FIELD_BEHAVIOUR
from airflow_provider_polytomic.hooks.webhooks import PolytomicWebhookMethods
from airflow_provider_polytomic.models import (
    BulkExecution,
    BulkSync,
    BulkSyncSchema,
    Event,
    Execution,
    ExecutionLogsIndex,
    ExecutionLogUrls,
    Identity,
    Model,
    ModelSync,
    PolytomicConnection,
    StartedExecution,
    SyncKind,
    SyncStatus,
)

T = TypeVar("T")


class PolytomicHook(PolytomicWebhookMethods, BaseHook):
    """Talk to Polytomic with the credentials of a ``polytomic`` Airflow connection.

    The connection's password is the API key; its host the Polytomic URL (default
    ``https://app.polytomic.com``; on-prem deployments set their own). Extras:
    ``api_version`` (default ``2025-09-18``), ``organization_id`` (partner/deployment keys),
    ``timeout``, ``connect_timeout``, ``max_retries``, ``retry_max_wait``, ``webhook_secret``.

    Every call goes through one HTTP core (:mod:`airflow_provider_polytomic.client`) with
    retries on 429/5xx/network errors that honour ``Retry-After``. Methods prefixed with
    ``a`` are the asynchronous twins used by triggers; they share requests, retry policy
    and models with the synchronous ones.

    Example::

        hook = PolytomicHook()
        started = hook.start_sync("9a4e1c2d-...")
        execution = hook.get_execution("9a4e1c2d-...", started.id)

    :param polytomic_conn_id: the Airflow connection id.
    :param timeout: read timeout in seconds, overriding the connection's.
    :param max_retries: retries for transient failures, overriding the connection's.
    :param connect_timeout: connect timeout in seconds, overriding the connection's.
    :param retry_max_wait: the cap on one wait between retries, overriding the connection's.
    :param deadline: a ``time.monotonic()`` value after which this hook's requests stop:
        timeouts are cut to the time left, retries stop, and a request due after it fails at
        once with :class:`~airflow_provider_polytomic.client.DeadlineExceededError`.
    """

    conn_name_attr = "polytomic_conn_id"
    default_conn_name = "polytomic_default"
    conn_type = CONN_TYPE
    hook_name = "Polytomic"

    def __init__(
        self,
        polytomic_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        connect_timeout: float | None = None,
        retry_max_wait: float | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.polytomic_conn_id = polytomic_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "connect_timeout": connect_timeout,
            "retry_max_wait": retry_max_wait,
        }
        self.deadline = deadline
        self._config: ClientConfig | None = None
        self._async_transport: AsyncTransport | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"PolytomicHook(polytomic_conn_id={self.polytomic_conn_id!r})"

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form behaviour for Airflow 2 (Airflow 3.2+ reads provider info)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields for Airflow 2 (needs wtforms, which Airflow 2 ships)."""
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            label = spec["label"]
            types = spec["schema"]["type"]
            description = spec.get("description", "")
            if spec["schema"].get("format") == "password":
                widgets[name] = PasswordField(label, description=description)
            elif "integer" in types:
                widgets[name] = IntegerField(
                    label, validators=[Optional(), NumberRange(min=0)], description=description
                )
            else:
                widgets[name] = StringField(label, description=description)
        return widgets

    # ------------------------------------------------------------------------ plumbing

    @property
    def config(self) -> ClientConfig:
        """The resolved connection settings (reads the connection once)."""
        if self._config is None:
            conn = self.get_connection(self.polytomic_conn_id)
            self._config = ClientConfig.from_connection(conn, **self._overrides)
        return self._config

    async def aconfig(self) -> ClientConfig:
        """The resolved settings, read without blocking the event loop."""
        if self._config is None:
            conn = await aget_connection(self.polytomic_conn_id)
            self._config = ClientConfig.from_connection(conn, **self._overrides)
        return self._config

    @cached_property
    def _transport(self) -> SyncTransport:
        return SyncTransport(self.config, deadline=self.deadline)

    def run(self, call: Call[T]) -> T:
        """Send one described request through the shared HTTP core."""
        return self._transport.send(call)

    async def arun(self, call: Call[T]) -> T:
        """Asynchronous :meth:`run`."""
        loop = asyncio.get_running_loop()
        if self._async_transport is None or self._async_loop is not loop:
            # httpx clients are bound to the loop that created them.
            self._async_transport = AsyncTransport(await self.aconfig(), deadline=self.deadline)
            self._async_loop = loop
        return await self._async_transport.send(call)

    async def aclose(self) -> None:
        """Close the asynchronous HTTP client."""
        if self._async_transport is not None:
            await self._async_transport.aclose()
            self._async_transport = None

    @property
    def base_url(self) -> str:
        return self.config.base_url

    # ---------------------------------------------------------------------- identity

    def get_identity(self) -> Identity:
        """``GET /api/me``: who the key belongs to."""
        return self.run(api.get_identity())

    def test_connection(self) -> tuple[bool, str]:
        """Used by Airflow's "Test" button: calls ``GET /api/me``."""
        try:
            me = self.get_identity()
        except Exception as exc:
            return False, str(exc)
        name = me.organization_name or me.organization_id or "unknown organization"
        return True, f"Connected to Polytomic organization {name!r}."

    # ------------------------------------------------------------------------ events

    def iter_events(
        self,
        event_type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
    ) -> Iterator[Event]:
        """Yield every event of the window, oldest first, de-duplicated, whatever the server's order.

        Memory stays bounded by one page, so this suits 48-hour windows of a busy organization.
        """
        pager = EventPager(event_type=event_type, starting_after=starting_after, ending_before=ending_before)
        while (call := pager.next_call()) is not None:
            yield from pager.feed(self.run(call))

    def list_events(
        self,
        event_type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
    ) -> list[Event]:
        """Every event of the window (``starting_after`` < created_at < ``ending_before``), oldest first.

        Without ``starting_after`` it covers Polytomic's whole 48-hour retention.
        """
        return list(self.iter_events(event_type, starting_after, ending_before))

    async def aiter_events(
        self,
        event_type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
    ) -> AsyncIterator[Event]:
        """Asynchronous :meth:`iter_events`."""
        pager = EventPager(event_type=event_type, starting_after=starting_after, ending_before=ending_before)
        while (call := pager.next_call()) is not None:
            for event in pager.feed(await self.arun(call)):
                yield event

    async def alist_events(
        self,
        event_type: str | None = None,
        starting_after: datetime | None = None,
        ending_before: datetime | None = None,
    ) -> list[Event]:
        """Asynchronous :meth:`list_events`."""
        return [e async for e in self.aiter_events(event_type, starting_after, ending_before)]

    def get_event_types(self) -> list[str]:
        """``GET /api/events_types``."""
        return self.run(api.get_event_types())

    # ------------------------------------------------------------------------- syncs

    def start_sync(
        self,
        sync_id: str,
        *,
        sync_kind: SyncKind = "model",
        resync: bool = False,
        test: bool = False,
        identities: Sequence[str] | None = None,
        resync_mode: str | None = None,
        fetch_mode: str | None = None,
        schemas: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> StartedExecution:
        """Start an execution of a model (``/api/syncs``) or bulk (``/api/bulk/syncs``) sync.

        :raises PolytomicSyncAlreadyRunningError: Polytomic answered 409, an execution is running.
        """
        return self.run(
            api.start_sync(
                sync_id,
                kind=sync_kind,
                resync=resync,
                test=test,
                identities=identities,
                resync_mode=resync_mode,
                fetch_mode=fetch_mode,
                schemas=schemas,
                idempotency_key=idempotency_key,
            )
        )

    def get_sync_status(self, sync_id: str, *, sync_kind: SyncKind = "model") -> SyncStatus:
        return self.run(api.get_sync_status(sync_id, kind=sync_kind))

    def get_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = "model"
    ) -> Execution | BulkExecution:
        return self.run(api.get_execution(sync_id, execution_id, kind=sync_kind))

    async def aget_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = "model"
    ) -> Execution | BulkExecution:
        return await self.arun(api.get_execution(sync_id, execution_id, kind=sync_kind))

    def iter_executions(
        self,
        sync_id: str,
        *,
        sync_kind: SyncKind = "model",
        only_completed: bool | None = None,
        ascending: bool | None = None,
    ) -> Iterator[Execution | BulkExecution]:
        """Yield a sync's executions across pages (newest first unless ``ascending``)."""
        for page in api.follow_page_tokens(
            lambda token: self.run(
                api.list_executions_page(
                    sync_id,
                    kind=sync_kind,
                    page_token=token,
                    only_completed=only_completed,
                    ascending=ascending,
                )
            )
        ):
            yield from page.executions

    def list_executions(
        self,
        sync_id: str,
        *,
        sync_kind: SyncKind = "model",
        only_completed: bool | None = None,
        ascending: bool | None = None,
        max_items: int | None = None,
    ) -> list[Execution | BulkExecution]:
        """A sync's executions (token pagination followed), at most ``max_items``."""
        out: list[Execution | BulkExecution] = []
        for execution in self.iter_executions(
            sync_id, sync_kind=sync_kind, only_completed=only_completed, ascending=ascending
        ):
            out.append(execution)
            if max_items is not None and len(out) >= max_items:
                break
        return out

    def cancel_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = "model"
    ) -> str | None:
        """Ask Polytomic to cancel one execution; returns Polytomic's message."""
        return self.run(api.cancel_execution(sync_id, execution_id, kind=sync_kind))

    async def acancel_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = "model"
    ) -> str | None:
        return await self.arun(api.cancel_execution(sync_id, execution_id, kind=sync_kind))

    def cancel_sync(self, sync_id: str, *, sync_kind: SyncKind = "model") -> str | None:
        """Cancel whatever execution of the sync is running."""
        return self.run(api.cancel_sync(sync_id, kind=sync_kind))

    def get_execution_log_urls(
        self, sync_id: str, execution_id: str, log_type: str = "records", *, sync_kind: SyncKind = "model"
    ) -> ExecutionLogUrls:
        """Fresh signed URLs of an execution's logs (``inserts``, ``updates``, ``deletes``,
        ``errors``, ``warnings``, ``records``; bulk syncs have a single log set)."""
        return self.run(api.get_execution_log_urls(sync_id, execution_id, log_type, kind=sync_kind))

    def get_execution_logs_index(self, sync_id: str, execution_id: str) -> ExecutionLogsIndex:
        """A model sync execution's logs index: per log type (``records``, ``errors``,
        ``warnings``, ``inserts``, ``updates``, ``deletes``) the record count Polytomic reports
        and the endpoint of its signed URLs. Types Polytomic leaves out are None.

        Example::

            index = hook.get_execution_logs_index(sync_id, execution_id)
            inserts = index.entry("inserts")
            if inserts is not None and inserts.url:
                urls = hook.get_log_urls_at(inserts.url).urls
        """
        return self.run(api.get_execution_logs_index(sync_id, execution_id))

    def get_log_urls_at(self, endpoint: str) -> ExecutionLogUrls:
        """The signed URLs behind an endpoint named by the logs index (absolute, or a path on
        this connection's API).

        :raises ValueError: the endpoint is not under the connection's ``/api/``: the API key
            is never sent anywhere else.
        """
        return self.run(api.get_log_urls_at(endpoint, self.config.base_url))

    # ------------------------------------------------- sync definitions, models, connections

    def get_sync(self, sync_id: str, *, sync_kind: SyncKind = "model") -> ModelSync | BulkSync:
        """A sync's definition: a :class:`ModelSync` (``model_ids``, ``target``, ``fields``)
        or, with ``sync_kind="bulk"``, a :class:`BulkSync` (source and destination connections).

        Example::

            sync = hook.get_sync(sync_id)
            sync.model_ids, sync.target.connection_id, sync.target.object
        """
        return self.run(api.get_sync(sync_id, kind=sync_kind))

    def list_bulk_sync_schemas(self, sync_id: str) -> list[BulkSyncSchema]:
        """The objects a bulk sync copies: source ``id``, ``enabled`` and ``output_name``."""
        return self.run(api.list_bulk_sync_schemas(sync_id))

    def get_model(self, model_id: str) -> Model:
        """A model: its source ``connection_id``, ``configuration`` (table, query...) and fields."""
        return self.run(api.get_model(model_id))

    def get_polytomic_connection(self, connection_id: str) -> PolytomicConnection:
        """A Polytomic connection (not an Airflow one): its type and configuration, secrets left
        out by Polytomic."""
        return self.run(api.get_connection(connection_id))
