"""Sync definitions: what a model or bulk sync reads, where it writes, and on what schedule.

Executions (runs of a sync) live in :mod:`.executions`; this module only knows the syncs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..records import FakeApiError, SyncKind
from .catalog import CONNECTION_TYPES, CatalogBackend
from .context import Org

__all__ = [
    "BULK_MODES",
    "MODEL_MODES",
    "SCHEDULE_FREQUENCIES",
    "BulkSchema",
    "FieldMapping",
    "Sync",
    "SyncsBackend",
    "next_execution_time",
]

SCHEDULE_FREQUENCIES = (
    "manual",
    "continuous",
    "hourly",
    "daily",
    "weekly",
    "custom",
    "builder",
    "runafter",
    "multi",
    "dbtcloud",
)
_SCHEDULE_KEYS = frozenset(
    {
        "frequency",
        "minute",
        "hour",
        "day_of_week",
        "day_of_month",
        "month",
        "connection_id",
        "job_id",
        "run_after",
        "run_after_success_only",
    }
)
MODEL_MODES = ("create", "update", "updateOrCreate", "replace", "append", "remove", "snapshot")
BULK_MODES = ("snapshot", "replicate", "append")


@dataclass(frozen=True)
class FieldMapping:
    """A model field written to a target field."""

    model_id: str
    source: str
    target: str


@dataclass(frozen=True)
class BulkSchema:
    """One source object a bulk sync copies, and the table it lands in."""

    id: str
    output_name: str
    fields: tuple[str, ...]
    tracking_field: str | None
    enabled: bool = True


@dataclass
class Sync:
    """A model sync (models -> target object) or a bulk sync (source schemas -> destination)."""

    id: str
    name: str
    kind: SyncKind
    created_at: datetime
    updated_at: datetime
    source_connection_id: str
    destination_connection_id: str
    schedule: dict[str, Any]
    mode: str
    active: bool = True
    model_ids: list[str] = field(default_factory=list)
    target_object: str | None = None
    fields: list[FieldMapping] = field(default_factory=list)
    identity: FieldMapping | None = None
    schemas: list[BulkSchema] = field(default_factory=list)
    destination_configuration: dict[str, Any] = field(default_factory=dict)
    schedule_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def target_connection_id(self) -> str:
        """Where the sync writes (a model sync's target, a bulk sync's destination)."""
        return self.destination_connection_id


def _schedule(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {"frequency": "manual"}
    schedule = {"frequency": value} if isinstance(value, str) else dict(value)
    unknown = sorted(set(schedule) - _SCHEDULE_KEYS)
    if unknown:
        raise ValueError(f"schedule has unknown keys {unknown}; known: {sorted(_SCHEDULE_KEYS)}")
    frequency = schedule.get("frequency")
    if frequency not in SCHEDULE_FREQUENCIES:
        raise ValueError(
            f"schedule frequency must be one of {', '.join(SCHEDULE_FREQUENCIES)}, got {frequency!r}"
        )
    return schedule


def next_execution_time(sync: Sync, now: datetime) -> datetime | None:
    """When an active sync's schedule runs next: hourly, daily and weekly schedules (UTC);
    None for manual, continuous, run-after, dbt Cloud and cron-like schedules, which the fake
    does not evaluate."""
    schedule = sync.schedule
    frequency = schedule.get("frequency")
    if not sync.active or frequency not in ("hourly", "daily", "weekly"):
        return None
    try:
        minute = int(schedule.get("minute") or 0)
        hour = int(schedule.get("hour") or 0)
        weekday = int(schedule.get("day_of_week") or 0)  # 0 = Sunday, as in cron
    except (TypeError, ValueError):
        return None
    base = now.replace(second=0, microsecond=0)
    try:
        if frequency == "hourly":
            candidate, step = base.replace(minute=minute), timedelta(hours=1)
        else:
            candidate, step = base.replace(hour=hour, minute=minute), timedelta(days=1)
    except ValueError:  # an hour or minute out of range: no next run the fake can tell
        return None
    while candidate <= now or (frequency == "weekly" and (candidate.weekday() + 1) % 7 != weekday):
        candidate += step
    return candidate


def _target_field(name: str, saas: bool) -> str:
    return "".join(part.capitalize() for part in name.split("_")) if saas else name


class SyncsBackend:
    """The organization's model and bulk syncs."""

    def __init__(self, org: Org, catalog: CatalogBackend) -> None:
        """No syncs yet; connections and models come from ``catalog``."""
        self._org = org
        self._catalog = catalog
        self._syncs: dict[str, Sync] = {}

    def add(
        self,
        name: str = "sync",
        *,
        kind: SyncKind = "model",
        sync_id: str | None = None,
        source: str | None = None,
        models: Sequence[str] | None = None,
        target: str | None = None,
        target_object: str | None = None,
        schemas: Sequence[str] | None = None,
        schedule: str | Mapping[str, Any] | None = None,
        mode: str | None = None,
        active: bool = True,
    ) -> str:
        """Create a sync; see :meth:`PolytomicState.add_sync` for the arguments."""
        if kind not in ("model", "bulk"):
            raise ValueError(f"kind must be 'model' or 'bulk', got {kind!r}")
        now = self._org.now()
        sid = sync_id or str(uuid.uuid4())
        if kind == "model":
            sync = self._model_sync(sid, name, now, source, models, target, target_object, schemas, mode)
        else:
            sync = self._bulk_sync(sid, name, now, source, models, target, target_object, schemas, mode)
        sync.schedule = _schedule(schedule)
        sync.active = bool(active)
        with self._org.lock:
            self._syncs[sid] = sync
        return sid

    def _model_sync(
        self,
        sid: str,
        name: str,
        now: datetime,
        source: str | None,
        models: Sequence[str] | None,
        target: str | None,
        target_object: str | None,
        schemas: Sequence[str] | None,
        mode: str | None,
    ) -> Sync:
        if schemas is not None:
            raise ValueError("schemas belong to bulk syncs; a model sync reads models")
        if mode is not None and mode not in MODEL_MODES:
            raise ValueError(f"mode of a model sync must be one of {', '.join(MODEL_MODES)}, got {mode!r}")
        if models is not None and source is not None:
            raise ValueError("give source (a connection for a new model) or models, not both")
        if models is not None:
            if isinstance(models, str) or not models:
                raise ValueError(f"models must be a non-empty list of model ids, got {models!r}")
            for model_id in models:
                self._catalog.model(model_id)  # KeyError names an unknown id
            model_ids = list(models)
        else:
            source_id = self._catalog.resolve_connection(source or "snowflake", "source")
            model_ids = [self._catalog.add_model(source_id, name=name)]
        first = self._catalog.model(model_ids[0])
        target_id = self._catalog.resolve_connection(target or "salesforce", "target")
        saas = not CONNECTION_TYPES.get(
            self._catalog.connection(target_id).type, CONNECTION_TYPES["snowflake"]
        ).warehouse
        mappings = [
            FieldMapping(first.id, f.name, _target_field(f.name, saas))
            for f in first.fields
            if f.name != "id"
        ]
        key = next((m for m in mappings if m.source == "email"), None) or next(
            (m for m in mappings if m.source == first.identifier), mappings[0] if mappings else None
        )
        return Sync(
            id=sid,
            name=name,
            kind="model",
            created_at=now,
            updated_at=now,
            source_connection_id=first.connection_id,
            destination_connection_id=target_id,
            schedule={},
            mode=mode or "updateOrCreate",
            model_ids=model_ids,
            target_object=target_object or self._catalog.default_object(target_id, name),
            fields=mappings,
            identity=key,
        )

    def _bulk_sync(
        self,
        sid: str,
        name: str,
        now: datetime,
        source: str | None,
        models: Sequence[str] | None,
        target: str | None,
        target_object: str | None,
        schemas: Sequence[str] | None,
        mode: str | None,
    ) -> Sync:
        if models is not None or target_object is not None:
            raise ValueError("models and target_object belong to model syncs; a bulk sync copies schemas")
        if mode is not None and mode not in BULK_MODES:
            raise ValueError(f"mode of a bulk sync must be one of {', '.join(BULK_MODES)}, got {mode!r}")
        if schemas is not None and (
            isinstance(schemas, str) or not all(isinstance(s, str) and s for s in schemas)
        ):
            raise ValueError(f"schemas must be a list of source object names, got {schemas!r}")
        source_id = self._catalog.resolve_connection(source or "salesforce", "source")
        destination_id = self._catalog.resolve_connection(target or "snowflake", "target")
        source_type = self._catalog.connection(source_id).type
        salesforce = source_type == "salesforce"
        names = list(schemas) if schemas is not None else ["Account", "Contact"]
        fields = (
            ("Id", "Name", "CreatedDate", "SystemModstamp")
            if salesforce
            else ("id", "name", "created_at", "updated_at")
        )
        return Sync(
            id=sid,
            name=name,
            kind="bulk",
            created_at=now,
            updated_at=now,
            source_connection_id=source_id,
            destination_connection_id=destination_id,
            schedule={},
            mode=mode or "replicate",
            schemas=[BulkSchema(s, s.lower(), fields, fields[-1]) for s in names],
            destination_configuration={"schema": source_type},
        )

    # -- lookups ------------------------------------------------------------------------------

    def get(self, sync_id: str) -> Sync:
        """One sync; KeyError when unknown."""
        with self._org.lock:
            sync = self._syncs.get(sync_id)
        if sync is None:
            raise KeyError(f"unknown sync {sync_id!r}")
        return sync

    def api_get(self, sync_id: str, kind: SyncKind) -> Sync:
        """One sync of ``kind``; a 404 API error when unknown or of the other kind."""
        with self._org.lock:
            sync = self._syncs.get(sync_id)
        if sync is None or sync.kind != kind:
            raise FakeApiError(404, f"{'bulk ' if kind == 'bulk' else ''}sync {sync_id} not found")
        return sync

    def all(self, kind: SyncKind | None = None) -> list[Sync]:
        """Every sync (of ``kind``), oldest first."""
        with self._org.lock:
            return [s for s in self._syncs.values() if kind is None or s.kind == kind]

    def api_set_active(self, sync_id: str, kind: SyncKind, active: Any) -> Sync:
        """``POST .../activate``: pause or resume a sync."""
        if not isinstance(active, bool):
            raise FakeApiError(400, "active must be a boolean")
        with self._org.lock:
            sync = self.api_get(sync_id, kind)
            sync.active = active
            sync.updated_at = self._org.now()
            return sync

    def api_schema(self, sync_id: str, schema_id: str) -> BulkSchema:
        """One schema of a bulk sync; 404 when unknown."""
        sync = self.api_get(sync_id, "bulk")
        for schema in sync.schemas:
            if schema.id == schema_id:
                return schema
        raise FakeApiError(404, f"schema {schema_id} not found on bulk sync {sync_id}")
