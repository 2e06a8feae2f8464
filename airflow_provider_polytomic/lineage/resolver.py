"""Read what a sync reads and writes from Polytomic, within a time budget, never raising.

:class:`SyncLineageResolver` asks Polytomic for the sync's definition, its models and the
connections they are on (each connection once), and for the execution when its counts are
needed, then names every input and output with :mod:`.naming`. Every lookup that fails
(404, 5xx, a timeout, a body of the wrong shape) is logged as a warning and recorded in
:attr:`SyncLineage.problems`; what could still be named is kept, so lineage is partial,
never an exception. Nothing here imports OpenLineage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.lineage.naming import (
    ConnectionInfo,
    DatasetRef,
    QueryRef,
    connection_dataset,
    model_source,
)
from airflow_provider_polytomic.models import (
    BulkExecution,
    BulkSync,
    Execution,
    Model,
    ModelSync,
    PolytomicConnection,
    SyncKind,
)

__all__ = [
    "DEFAULT_BUDGET",
    "LineageDataset",
    "SyncLineage",
    "SyncLineageResolver",
    "lineage_budget",
    "lineage_hook",
    "rows_written",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BUDGET = 6.0
"""Seconds all lineage lookups of one task may take, when OpenLineage's own limit is unknown."""
_MAX_BUDGET = 30.0
_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 3.0
_MAX_RETRIES = 1
_RETRY_BASE_WAIT = 0.25
_RETRY_MAX_WAIT = 1.0


def lineage_budget(execution_timeout: Any = None) -> float:
    """Seconds the lookups may take: 60 % of OpenLineage's ``[openlineage] execution_timeout``
    (the time its listener gives the whole extraction before killing it; 10 s by default),
    leaving the rest for building and emitting the event. Capped at 30 s."""
    try:
        limit = float(execution_timeout)
    except (TypeError, ValueError):
        return DEFAULT_BUDGET
    if limit <= 0:
        return DEFAULT_BUDGET
    return max(1.0, min(_MAX_BUDGET, 0.6 * limit))


def lineage_hook(
    polytomic_conn_id: str, budget: float, *, like: PolytomicHook | None = None
) -> PolytomicHook:
    """A hook for lineage lookups: short timeouts (5 s read, 3 s connect at most), one retry
    after a short wait, and a deadline ``budget`` seconds from now after which nothing more
    is sent.

    :param like: a hook of the same connection whose settings are already read (reused, so
        the Airflow connection is not read again).
    """
    hook = PolytomicHook(
        polytomic_conn_id,
        max_retries=_MAX_RETRIES,
        retry_max_wait=_RETRY_MAX_WAIT,
        deadline=time.monotonic() + budget,
    )
    config = getattr(like, "_config", None) if like is not None else None
    if config is not None:
        hook._config = replace(
            config,
            timeout=min(config.timeout, _TIMEOUT),
            connect_timeout=min(config.connect_timeout, _CONNECT_TIMEOUT),
            max_retries=min(config.max_retries, _MAX_RETRIES),
            retry_max_wait=min(config.retry_max_wait, _RETRY_MAX_WAIT),
            retry_base_wait=min(config.retry_base_wait, _RETRY_BASE_WAIT),
        )
    else:
        hook._overrides.update(
            timeout=_TIMEOUT, connect_timeout=_CONNECT_TIMEOUT, retry_base_wait=_RETRY_BASE_WAIT
        )
    return hook


def rows_written(counts: Mapping[str, Any] | None) -> int | None:
    """Rows an execution wrote to its target: inserted + updated + deleted when Polytomic
    reports any of them, else its record count less its errors; None when it reports nothing.

    >>> rows_written({"record": 10, "inserted": 4, "updated": 3, "deleted": None, "error": 3})
    7
    >>> rows_written({"record": 10, "error": 2})
    8
    """
    if not counts:
        return None

    def number(key: str) -> int | None:
        value = counts.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    changes = [number(k) for k in ("inserted", "updated", "deleted")]
    if any(c is not None for c in changes):
        return sum(c or 0 for c in changes)
    total = number("record")
    if total is None:
        return None
    return max(0, total - (number("error") or 0))


@dataclass
class LineageDataset:
    """One input or output of a sync.

    :ivar ref: its name, or the query a model runs (named once parsed).
    :ivar fields: the model's fields as ``(name, type)``, for inputs whose fields are known.
    :ivar row_count: rows written, for outputs whose count Polytomic reports.
    :ivar column_lineage: target field -> the (input dataset, field) pairs written into it.
    """

    ref: DatasetRef | QueryRef
    fields: list[tuple[str, str | None]] = field(default_factory=list)
    row_count: int | None = None
    column_lineage: dict[str, list[tuple[DatasetRef, str]]] = field(default_factory=dict)


@dataclass
class SyncLineage:
    """What one sync (and, when known, one of its executions) read and wrote."""

    sync_id: str
    sync_kind: SyncKind
    execution_id: str | None = None
    sync_name: str | None = None
    execution_url: str | None = None
    status: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    """How many Polytomic API calls the resolution made."""


class SyncLineageResolver:
    """Resolves a sync's lineage through ``hook``; see the module docstring.

    One resolver per task instance: models and connections are read once each however many
    times the sync names them.
    """

    def __init__(self, hook: PolytomicHook) -> None:
        self.hook = hook
        self._connections: dict[str, ConnectionInfo] = {}
        self._models: dict[str, Model | None] = {}
        self._lineage: SyncLineage | None = None
        self._finished = True

    def _lookup(self, what: str, fetch: Callable[[], T]) -> T | None:
        assert self._lineage is not None
        self._lineage.requests += 1
        try:
            return fetch()
        except Exception as exc:
            # Lineage is best effort: any failure of a lookup leaves a gap, never an error.
            message = f"could not read {what}: {exc}"
            self._lineage.problems.append(message)
            log.warning("OpenLineage: %s; its lineage will be incomplete.", message)
            return None

    def connection(self, connection_id: str) -> ConnectionInfo:
        """The connection, read once; without type and configuration when it cannot be read."""
        if connection_id not in self._connections:
            found: PolytomicConnection | None = self._lookup(
                f"Polytomic connection {connection_id}",
                lambda: self.hook.get_polytomic_connection(connection_id),
            )
            self._connections[connection_id] = (
                ConnectionInfo(
                    connection_id,
                    found.type_id,
                    dict(found.configuration or {}) if isinstance(found.configuration, dict) else {},
                    found.name,
                )
                if found is not None
                else ConnectionInfo(connection_id)
            )
        return self._connections[connection_id]

    def model(self, model_id: str) -> Model | None:
        """The model, read once; None when it cannot be read."""
        if model_id not in self._models:
            self._models[model_id] = self._lookup(
                f"Polytomic model {model_id}", lambda: self.hook.get_model(model_id)
            )
        return self._models[model_id]

    def resolve(
        self,
        sync_id: str,
        sync_kind: SyncKind = "model",
        *,
        execution_id: str | None = None,
        counts: Mapping[str, Any] | None = None,
        status: str | None = None,
        execution_finished: bool = True,
    ) -> SyncLineage:
        """The sync's inputs and outputs; ``counts``/``status`` are the execution's when the
        caller knows them. The execution is read only when it has finished and its counts
        (or, for a bulk sync, the schemas it ran) are needed; a running execution's counts
        are not what it wrote."""
        lineage = self._lineage = SyncLineage(
            sync_id, sync_kind, execution_id, counts=dict(counts or {}), status=status
        )
        self._finished = execution_finished
        sync = self._lookup(
            f"{'bulk ' if sync_kind == 'bulk' else ''}sync {sync_id}",
            lambda: self.hook.get_sync(sync_id, sync_kind=sync_kind),
        )
        if sync is None:
            return lineage
        lineage.sync_name = sync.name
        if isinstance(sync, BulkSync):
            self._bulk(sync, lineage)
        elif isinstance(sync, ModelSync):
            self._model_sync(sync, lineage)
        return lineage

    def _execution(self, lineage: SyncLineage) -> Execution | BulkExecution | None:
        if not lineage.execution_id or not self._finished:
            return None
        execution_id = lineage.execution_id
        execution = self._lookup(
            f"execution {execution_id}",
            lambda: self.hook.get_execution(lineage.sync_id, execution_id, sync_kind=lineage.sync_kind),
        )
        if execution is not None:
            lineage.status = lineage.status or execution.status
            if not lineage.counts:
                lineage.counts = execution.summary_counts()
        return execution

    def _model_sync(self, sync: ModelSync, lineage: SyncLineage) -> None:
        if lineage.execution_id and not lineage.counts:
            self._execution(lineage)
        sources: dict[str, DatasetRef | QueryRef] = {}
        for model_id in dict.fromkeys(m for m in sync.model_ids if isinstance(m, str) and m):
            model = self.model(model_id)
            if model is None or not model.connection_id:
                if model is not None:
                    lineage.problems.append(f"model {model_id} names no connection")
                continue
            ref = model_source(model.id, model.configuration, self.connection(model.connection_id))
            sources[model_id] = ref
            fields = [(f.name, f.remote_type or f.type) for f in model.fields or [] if f.name]
            lineage.inputs.append(LineageDataset(ref, fields=fields))
        target = sync.target
        target_object = (target.object or target.new_name) if target is not None else None
        if target is None or not target.connection_id or not target_object:
            lineage.problems.append(f"sync {sync.id} names no target connection and object")
            return
        output = LineageDataset(
            connection_dataset(self.connection(target.connection_id), target_object),
            row_count=rows_written(lineage.counts),
        )
        for mapping in sync.fields or []:
            source = mapping.source
            if source is None or not source.field or not source.model_id or not mapping.target:
                continue
            read = sources.get(source.model_id)
            if isinstance(read, DatasetRef):
                output.column_lineage.setdefault(mapping.target, []).append((read, source.field))
        lineage.outputs.append(output)

    def _bulk(self, sync: BulkSync, lineage: SyncLineage) -> None:
        if not sync.source_connection_id or not sync.destination_connection_id:
            lineage.problems.append(f"bulk sync {sync.id} names no source or destination connection")
            return
        execution = self._execution(lineage)
        runs = execution.schema_runs() if isinstance(execution, BulkExecution) else []
        source = self.connection(sync.source_connection_id)
        destination = self.connection(sync.destination_connection_id)
        config = sync.destination_configuration or {}
        prefix = next(
            (
                str(config[k]).strip()
                for k in ("schema", "dataset")
                if isinstance(config.get(k), str) and config[k]
            ),
            None,
        )
        # (source object, output table, counts) per schema: the execution's own list when it
        # has one, else the sync's enabled schemas.
        rows: list[tuple[str, str | None, dict[str, Any] | None]] = [
            (r.schema_, r.output_name, {"record": r.record_count, "error": r.error_count})
            for r in runs
            if r.schema_
        ]
        if not rows:
            schemas = self._lookup(
                f"the schemas of bulk sync {sync.id}", lambda: self.hook.list_bulk_sync_schemas(sync.id)
            )
            rows = [(s.id, s.output_name, None) for s in schemas or [] if s.id and s.enabled is not False]
        for schema_id, output_name, schema_counts in rows:
            lineage.inputs.append(LineageDataset(connection_dataset(source, schema_id)))
            table = output_name or schema_id.rsplit(".", 1)[-1]
            name = [prefix, table] if prefix else [table]
            lineage.outputs.append(
                LineageDataset(
                    connection_dataset(destination, name),
                    row_count=rows_written(schema_counts) if schema_counts else None,
                )
            )
        if len(lineage.outputs) == 1 and lineage.outputs[0].row_count is None:
            lineage.outputs[0].row_count = rows_written(lineage.counts)
