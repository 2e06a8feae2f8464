"""Where the webhook receiver's verified events go: Airflow asset events, recorded through
Airflow's public REST API (:class:`AirflowApiRecorder`), or any :class:`AssetEventRecorder`.

``POST /api/v2/assets/events`` is the supported interface for systems outside Airflow to
create asset events: versioned, authenticated and authorised by the auth manager,
audit-logged, and it queues asset-scheduled DAG runs like any other asset event. So the
receiver works the same mounted on the API server (plugin) or deployed as its own service.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import httpx

from airflow_provider_polytomic._compat import BaseHook, conf_get
from airflow_provider_polytomic.api import EVENT_RETENTION
from airflow_provider_polytomic.asset_events import LEDGER_KEY_PREFIX, ledger_key, ledger_pending
from airflow_provider_polytomic.models import Event

log = logging.getLogger(__name__)

DEFAULT_AIRFLOW_API_CONN_ID = "polytomic_airflow_api"


@dataclass(frozen=True)
class ReceivedEvent:
    """A verified delivery: the parsed event, the asset it belongs to, and the asset-event payload."""

    event: Event
    asset_uri: str
    payload: dict[str, Any]

    @property
    def extra(self) -> dict[str, Any]:
        """The asset event's extra."""
        return {"payload": self.payload, "polytomic_event_id": self.event.id, "source": "webhook"}


class RecordResult(str, enum.Enum):
    """What an :class:`AssetEventRecorder` did with an event."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    NO_ASSET = "no_asset"


class AssetEventRecorder(Protocol):
    """Turns a verified event into an Airflow asset event."""

    async def record(self, received: ReceivedEvent) -> RecordResult:
        """Record the event; raise to make the receiver answer 503 (Polytomic then retries)."""
        ...


class AirflowApiError(RuntimeError):
    """The Airflow REST API refused or failed a request."""


@dataclass(frozen=True)
class AirflowApiConfig:
    """Where the Airflow REST API is and how to authenticate to it.

    Authentication, in order: a static ``token`` (any auth manager), else
    ``username``/``password`` exchanged at ``POST /auth/token`` (simple and FAB auth
    managers), else ``GET /auth/token`` (simple auth manager with all-admins, for
    development only).
    """

    base_url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    # Generous: under write contention Airflow can take many seconds to commit an asset
    # event, and giving up early turns a slow success into an unknown outcome.
    timeout: float = 60.0

    def __repr__(self) -> str:
        return f"AirflowApiConfig(base_url={self.base_url!r}, username={self.username!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_AIRFLOW_API_CONN_ID) -> AirflowApiConfig:
        """Read the config from an Airflow connection (``http``: host[:port], login,
        password, or extra ``token``); without that connection, use the API server's own
        ``[api] base_url`` (or ``http://127.0.0.1:<[api] port>``) and no credentials."""
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception:
            base = str(conf_get("api", "base_url", fallback="") or "").strip()
            if not base or base.startswith("/"):
                base = f"http://127.0.0.1:{conf_get('api', 'port', fallback=8080)}{base}"
            return cls(base_url=base.rstrip("/"))
        extra = conn.extra_dejson if isinstance(getattr(conn, "extra_dejson", None), dict) else {}
        host = str(conn.host or "127.0.0.1")
        if "://" not in host:
            scheme = conn.schema if conn.schema in ("http", "https") else "http"
            host = f"{scheme}://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        return cls(
            base_url=host.rstrip("/"),
            token=extra.get("token") or None,
            username=conn.login or None,
            password=conn.password or None,
            timeout=float(extra.get("timeout", 60.0)),
        )


class AirflowApiRecorder:
    """Records asset events through Airflow's public REST API (``/api/v2``).

    * resolves the asset id from its URI (``GET /api/v2/assets?uri_prefix_pattern=``),
      caching hits for ``asset_cache_seconds`` and misses for ``miss_cache_seconds``;
    * checks the webhook ledger in the asset's state store (written by this recorder and
      by a :class:`~airflow_provider_polytomic.triggers.events.PolytomicEventTrigger` with
      ``webhook_dedupe=True``), so an event is recorded once across API-server workers,
      receiver restarts and the polling path;
    * writes a *pending* ledger entry, ``POST /api/v2/assets/events``, then completes the
      entry; ledger entries older than Polytomic's retention are pruned at most every
      ``prune_every`` seconds per asset;
    * when a create ended without a clear answer (timeout, 5xx), or a retry finds the entry
      still pending (the process that was creating it died, e.g. an API-server restart) -
      Airflow may have stored the event anyway - the retry first looks for it among the
      asset's recent events (``GET /api/v2/assets/events``) instead of creating it twice.

    :param config: API location and credentials; default :meth:`AirflowApiConfig.from_connection`.
    :param ledger: use the asset-state-store ledger (needs Airflow 3.3+).
    :param transport: an httpx transport (tests).
    """

    def __init__(
        self,
        config: AirflowApiConfig | None = None,
        *,
        airflow_api_conn_id: str = DEFAULT_AIRFLOW_API_CONN_ID,
        ledger: bool = True,
        asset_cache_seconds: float = 300.0,
        miss_cache_seconds: float = 10.0,
        prune_every: float = 3600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._conn_id = airflow_api_conn_id
        self.ledger = ledger
        self._asset_ttl = asset_cache_seconds
        self._miss_ttl = miss_cache_seconds
        self._prune_every = prune_every
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: str | None = None
        self._assets: dict[str, tuple[int | None, float]] = {}
        self._pruned: dict[int, float] = {}
        # Events whose create request ended without a clear answer (timeout, 5xx): Airflow
        # may have stored them anyway, so a retry looks before creating again.
        self._uncertain: set[str] = set()
        self.requests = 0

    async def _cfg(self) -> AirflowApiConfig:
        if self._config is None:
            self._config = await asyncio.to_thread(AirflowApiConfig.from_connection, self._conn_id)
        return self._config

    async def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            cfg = await self._cfg()
            self._client = httpx.AsyncClient(
                base_url=cfg.base_url, timeout=cfg.timeout, transport=self._transport, trust_env=False
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch_token(self, client: httpx.AsyncClient, cfg: AirflowApiConfig) -> str | None:
        if cfg.token:
            return cfg.token
        if cfg.username and cfg.password:
            response = await client.post(
                "/auth/token", json={"username": cfg.username, "password": cfg.password}
            )
        else:
            response = await client.get("/auth/token")
        if response.status_code >= 400:
            # The body may echo what was sent; report the status only.
            raise AirflowApiError(f"Airflow refused to issue a token (HTTP {response.status_code})")
        token = response.json().get("access_token")
        if not token:
            raise AirflowApiError("Airflow's token endpoint returned no access_token")
        return str(token)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        client = await self._http()
        cfg = await self._cfg()
        for attempt in (1, 2):
            if self._token is None:
                self._token = await self._fetch_token(client, cfg)
            self.requests += 1
            response = await client.request(
                method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs
            )
            if response.status_code == 401 and attempt == 1 and not cfg.token:
                self._token = None  # expired: get a new one once
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def asset_id(self, uri: str) -> int | None:
        """The id of the active asset with URI ``uri`` (or ``uri`` + ``/``), None when Airflow has none."""
        cached = self._assets.get(uri)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        response = await self._request(
            "GET", "/api/v2/assets", params={"uri_prefix_pattern": uri, "limit": 100}
        )
        _raise_for(response, "list assets")
        found: int | None = None
        # Without the provider's URI handler Airflow stores "polytomic://<id>/"; accept both.
        for item in response.json().get("assets", []):
            if item.get("uri") in (uri, f"{uri}/"):
                found = int(item["id"])
                break
        ttl = self._asset_ttl if found is not None else self._miss_ttl
        self._assets[uri] = (found, time.monotonic() + ttl)
        return found

    async def record(self, received: ReceivedEvent) -> RecordResult:
        """Record ``received`` on its sync's asset (see the class docstring)."""
        asset_id = await self.asset_id(received.asset_uri)
        if asset_id is None:
            return RecordResult.NO_ASSET
        key = ledger_key(received.event.id)
        event_id = received.event.id
        uncertain = event_id in self._uncertain
        if self.ledger:
            response = await self._request("GET", f"/api/v2/assets/{asset_id}/state-store/{key}")
            if response.status_code == 200:
                if not ledger_pending(_json_value(response)):
                    return RecordResult.DUPLICATE
                # An earlier attempt was creating it and never finished: it may have.
                uncertain = True
            elif response.status_code == 404:
                # Durable intent: a retry served by another process (or after a restart)
                # knows to look for the event before creating it again.
                await self._put_ledger(asset_id, received, pending=True)
            else:
                _raise_for(response, "read the webhook ledger")
        if uncertain and await self._already_created(asset_id, event_id):
            self._uncertain.discard(event_id)
            await self._write_ledger(asset_id, received)
            return RecordResult.DUPLICATE
        try:
            response = await self._request(
                "POST", "/api/v2/assets/events", json={"asset_id": asset_id, "extra": received.extra}
            )
        except httpx.TimeoutException:
            self._uncertain.add(event_id)
            raise
        if response.status_code >= 500:
            self._uncertain.add(event_id)
        if response.status_code == 404:
            self._assets.pop(received.asset_uri, None)  # the asset went away: look it up again next time
        _raise_for(response, "create the asset event")
        self._uncertain.discard(event_id)
        await self._write_ledger(asset_id, received)
        return RecordResult.RECORDED

    async def _put_ledger(self, asset_id: int, received: ReceivedEvent, *, pending: bool) -> httpx.Response:
        value: dict[str, Any] = {
            "source": "webhook",
            "created_at": received.event.created_at.isoformat(),
            "type": received.event.type,
        }
        if pending:
            value["pending"] = True
        key = ledger_key(received.event.id)
        response = await self._request(
            "PUT", f"/api/v2/assets/{asset_id}/state-store/{key}", json={"value": value}
        )
        if pending:
            _raise_for(response, "write the webhook ledger")
        return response

    async def _write_ledger(self, asset_id: int, received: ReceivedEvent) -> None:
        if not self.ledger:
            return
        try:
            response = await self._put_ledger(asset_id, received, pending=False)
        except httpx.HTTPError as exc:
            # The asset event exists: answering 503 now would make Polytomic deliver it again.
            # A pending entry left behind sends a retry to look before creating.
            log.warning("Could not complete the webhook ledger entry: %s", type(exc).__name__)
            return
        if response.status_code >= 400:
            # The asset event exists; a missing ledger entry only weakens de-duplication.
            log.warning("Could not write the webhook ledger entry (HTTP %s)", response.status_code)
        await self._maybe_prune(asset_id)

    async def _already_created(self, asset_id: int, event_id: str) -> bool:
        """Whether one of the asset's recent asset events carries ``event_id``."""
        since = datetime.now(timezone.utc) - timedelta(hours=6)
        response = await self._request(
            "GET",
            "/api/v2/assets/events",
            params={
                "asset_id": asset_id,
                "timestamp_gte": since.isoformat(),
                "order_by": "-timestamp",
                "limit": 100,
            },
        )
        _raise_for(response, "list asset events")
        for item in response.json().get("asset_events", []):
            extra = item.get("extra") or {}
            if isinstance(extra, dict) and extra.get("polytomic_event_id") == event_id:
                return True
        return False

    async def _maybe_prune(self, asset_id: int) -> None:
        now = time.monotonic()
        if now - self._pruned.get(asset_id, float("-inf")) < self._prune_every:
            return
        self._pruned[asset_id] = now
        # Past retention no poll can return the event again, and Polytomic stopped retrying long ago.
        cutoff = datetime.now(timezone.utc) - EVENT_RETENTION - timedelta(hours=1)
        try:
            stale: list[str] = []
            offset = 0
            while offset < 10_000:
                response = await self._request(
                    "GET", f"/api/v2/assets/{asset_id}/state-store", params={"limit": 100, "offset": offset}
                )
                if response.status_code != 200:
                    return
                entries = response.json().get("asset_state_store", [])
                for entry in entries:
                    key = str(entry.get("key", ""))
                    updated = _parse_dt(entry.get("updated_at"))
                    if key.startswith(LEDGER_KEY_PREFIX) and updated is not None and updated < cutoff:
                        stale.append(key)
                if len(entries) < 100:
                    break
                offset += 100
            for key in stale:
                await self._request("DELETE", f"/api/v2/assets/{asset_id}/state-store/{key}")
        except httpx.HTTPError as exc:
            log.warning("Pruning the webhook ledger failed: %s", type(exc).__name__)


def _json_value(response: httpx.Response) -> Any:
    try:
        return response.json().get("value")
    except (ValueError, AttributeError):
        return None


def _parse_dt(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise AirflowApiError(f"Airflow API: could not {what} (HTTP {response.status_code})")


__all__ = [
    "DEFAULT_AIRFLOW_API_CONN_ID",
    "AirflowApiConfig",
    "AirflowApiError",
    "AirflowApiRecorder",
    "AssetEventRecorder",
    "ReceivedEvent",
    "RecordResult",
]
