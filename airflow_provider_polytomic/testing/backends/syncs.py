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
    "SyncSpec",
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


@dataclass(frozen=True)
class SyncSpec:
    """What a sync reads and writes, as :meth:`PolytomicState.add_sync` is asked for it."""

    name: str = "sync"
    kind: SyncKind = "model"
    source: str | None = None
    models: Sequence[str] | None = None
    target: str | None = None
    target_object: str | None = None
    schemas: Sequence[str] | None = None
    schedule: str | Mapping[str, Any] | None = None
    mode: str | None = None
    active: bool = True


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

    def add(self, spec: SyncSpec, *, sync_id: str | None = None) -> str:
        """Create the sync ``spec`` describes; see :meth:`PolytomicState.add_sync`."""
        if spec.kind not in ("model", "bulk"):
            raise ValueError(f"kind must be 'model' or 'bulk', got {spec.kind!r}")
        now = self._org.now()
        sync = Sync(
            id=sync_id or str(uuid.uuid4()),
            name=spec.name,
            kind=spec.kind,
            created_at=now,
            updated_at=now,
            source_connection_id="",
            destination_connection_id="",
            schedule=_schedule(spec.schedule),
            mode="",
            active=bool(spec.active),
        )
        if spec.kind == "model":
            self._fill_model_sync(sync, spec)
        else:
            self._fill_bulk_sync(sync, spec)
        with self._org.lock:
            self._syncs[sync.id] = sync
        return sync.id

    def _fill_model_sync(self, sync: Sync, spec: SyncSpec) -> None:
        models, source, mode = spec.models, spec.source, spec.mode
        if spec.schemas is not None:
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
            sync.model_ids = list(models)
        else:
            source_id = self._catalog.resolve_connection(source or "snowflake", "source")
            sync.model_ids = [self._catalog.add_model(source_id, name=spec.name)]
        first = self._catalog.model(sync.model_ids[0])
        target_id = self._catalog.resolve_connection(spec.target or "salesforce", "target")
        target_type = CONNECTION_TYPES.get(self._catalog.connection(target_id).type)
        saas = target_type is not None and not target_type.warehouse
        sync.fields = [
            FieldMapping(first.id, f.name, _target_field(f.name, saas))
            for f in first.fields
            if f.name != "id"
        ]
        sync.identity = next((m for m in sync.fields if m.source == "email"), None) or next(
            (m for m in sync.fields if m.source == first.identifier), sync.fields[0] if sync.fields else None
        )
        sync.source_connection_id = first.connection_id
        sync.destination_connection_id = target_id
        sync.mode = mode or "updateOrCreate"
        sync.target_object = spec.target_object or self._catalog.default_object(target_id, spec.name)

    def _fill_bulk_sync(self, sync: Sync, spec: SyncSpec) -> None:
        schemas, mode = spec.schemas, spec.mode
        if spec.models is not None or spec.target_object is not None:
            raise ValueError("models and target_object belong to model syncs; a bulk sync copies schemas")
        if mode is not None and mode not in BULK_MODES:
            raise ValueError(f"mode of a bulk sync must be one of {', '.join(BULK_MODES)}, got {mode!r}")
        if schemas is not None and (
            isinstance(schemas, str) or not all(isinstance(s, str) and s for s in schemas)
        ):
            raise ValueError(f"schemas must be a list of source object names, got {schemas!r}")
        sync.source_connection_id = self._catalog.resolve_connection(spec.source or "salesforce", "source")
        sync.destination_connection_id = self._catalog.resolve_connection(
            spec.target or "snowflake", "target"
        )
        source_type = self._catalog.connection(sync.source_connection_id).type
        fields = (
            ("Id", "Name", "CreatedDate", "SystemModstamp")
            if source_type == "salesforce"
            else ("id", "name", "created_at", "updated_at")
        )
        names = list(schemas) if schemas is not None else ["Account", "Contact"]
        sync.schemas = [BulkSchema(n, n.lower(), fields, fields[-1]) for n in names]
        sync.destination_configuration = {"schema": source_type}
        sync.mode = mode or "replicate"

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
