"""OpenLineage support: what a Polytomic task read and wrote, for Airflow's OpenLineage provider.

The operators' ``get_openlineage_facets_on_complete``/``_on_failure`` methods call
:func:`sync_task_lineage` and :func:`record_logs_lineage`, importing this package only then.
It imports OpenLineage only through :mod:`.openlineage`, and only when the OpenLineage
provider is installed (``pip install airflow-provider-polytomic[openlineage]``); without it
both functions return None and nothing else happens.

What a task reports never fails it: every lookup is bounded in time (see
:func:`~.resolver.lineage_budget`) and every error becomes a warning and a partial lineage.
Lineage is cached per task instance, so asking twice costs no more requests.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from airflow_provider_polytomic.lineage.naming import DatasetRef, storage_dataset
from airflow_provider_polytomic.lineage.resolver import (
    SyncLineage,
    SyncLineageResolver,
    lineage_budget,
    lineage_hook,
)

__all__ = [
    "MAX_FILE_DATASETS",
    "openlineage_available",
    "record_logs_lineage",
    "sync_task_lineage",
]

log = logging.getLogger(__name__)

MAX_FILE_DATASETS = 100
"""Past this many record-log files, outputs are reported per folder (record type) instead."""

_CACHE_ATTR = "_polytomic_lineage_cache"


def openlineage_available() -> bool:
    """Whether the OpenLineage provider (and so the OpenLineage client) can be imported."""
    try:
        from airflow_provider_polytomic.lineage import openlineage  # noqa: F401
    except ImportError:
        return False
    return True


def _ti_key(task_instance: Any) -> tuple[Any, ...]:
    return tuple(
        getattr(task_instance, name, None)
        for name in ("dag_id", "task_id", "run_id", "map_index", "try_number")
    )


def _cached(task: Any, task_instance: Any, build: Any) -> Any:
    cache = task.__dict__.setdefault(_CACHE_ATTR, {})
    key = _ti_key(task_instance)
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _execution_url(task: Any, sync_id: str, execution_id: str | None) -> str | None:
    if not execution_id:
        return None
    known = task.__dict__.get("_execution_url")
    if isinstance(known, str) and known:
        return known
    from airflow_provider_polytomic.links.polytomic import execution_url_for_connection

    try:
        return execution_url_for_connection(
            task.polytomic_conn_id, sync_id, execution_id, sync_kind=getattr(task, "sync_kind", "model")
        )
    except Exception as exc:
        log.warning("OpenLineage: could not build the Polytomic execution URL: %s", exc)
        return None


def _budget() -> float:
    from airflow_provider_polytomic._compat import conf_get

    try:
        return lineage_budget(conf_get("openlineage", "execution_timeout", fallback=None))
    except Exception:
        return lineage_budget(None)


def resolve_sync_task(task: Any) -> SyncLineage:
    """Resolve the sync lineage of a run-sync operator or sync sensor (no OpenLineage needed)."""
    summary = task.__dict__.get("_polytomic_summary") or {}
    sync_id = str(summary.get("sync_id") or task.sync_id)
    execution_id = (
        summary.get("execution_id")
        or task.__dict__.get("_execution_id")
        or getattr(task, "execution_id", None)
    )
    hook = lineage_hook(task.polytomic_conn_id, _budget(), like=task.__dict__.get("_hook"))
    resolver = SyncLineageResolver(hook)
    lineage = resolver.resolve(
        sync_id,
        task.sync_kind,
        execution_id=str(execution_id) if execution_id else None,
        counts=summary.get("counts"),
        status=summary.get("status"),
        execution_finished=bool(summary),
    )
    lineage.execution_url = _execution_url(task, sync_id, lineage.execution_id)
    log.info(
        "OpenLineage: Polytomic sync %s read %d and wrote %d dataset(s) (%d API calls%s).",
        sync_id,
        len(lineage.inputs),
        len(lineage.outputs),
        lineage.requests,
        f", {len(lineage.problems)} failed" if lineage.problems else "",
    )
    return lineage


def sync_task_lineage(task: Any, task_instance: Any) -> Any:
    """The ``OperatorLineage`` of a run-sync operator or sync sensor; None without OpenLineage.

    Inputs are the sync's models' sources (a bulk sync's source objects), outputs its target
    (a bulk sync's destination tables); docs/lineage.md has the naming table.
    """
    if not openlineage_available():
        return None

    def build() -> Any:
        from airflow_provider_polytomic.lineage.openlineage import sync_operator_lineage

        try:
            return sync_operator_lineage(resolve_sync_task(task))
        except Exception as exc:
            # Never let lineage fail or disturb the task: report nothing rather than raise.
            log.warning(
                "OpenLineage: could not describe Polytomic sync %s: %s", getattr(task, "sync_id", "?"), exc
            )
            from airflow_provider_polytomic.lineage.openlineage import OperatorLineage

            return OperatorLineage()

    return _cached(task, task_instance, build)


def _file_outputs(files: list[Any]) -> list[tuple[DatasetRef, int | None, int | None, int]]:
    if len(files) <= MAX_FILE_DATASETS:
        return [(storage_dataset(f.uri), f.records, f.bytes, 1) for f in files]
    # Thousands of datasets would make an event nobody can read: one per folder instead.
    folders: dict[str, list[Any]] = defaultdict(list)
    for f in files:
        folders[f.uri.rsplit("/", 1)[0]].append(f)
    out: list[tuple[DatasetRef, int | None, int | None, int]] = []
    for folder, group in folders.items():
        records = [f.records for f in group]
        rows = sum(r for r in records if r is not None) if all(r is not None for r in records) else None
        out.append((storage_dataset(folder), rows, sum(f.bytes for f in group), len(group)))
    return out


def record_logs_lineage(task: Any, task_instance: Any) -> Any:
    """The ``OperatorLineage`` of the record-log operator: the files it wrote as outputs
    (per folder past :data:`MAX_FILE_DATASETS` files). None without OpenLineage."""
    if not openlineage_available():
        return None

    def build() -> Any:
        from airflow_provider_polytomic.lineage.openlineage import file_lineage

        result = task.__dict__.get("_polytomic_download")
        try:
            if result is None:
                from airflow_provider_polytomic.lineage.openlineage import OperatorLineage

                return OperatorLineage()
            run = SyncLineage(result.sync_id, task.sync_kind, result.execution_id)
            run.execution_url = _execution_url(task, result.sync_id, result.execution_id)
            run.counts = {k: v for k, v in result.counts.items()}
            return file_lineage(_file_outputs(list(result.files)), run)
        except Exception as exc:
            log.warning("OpenLineage: could not describe the record-log files: %s", exc)
            from airflow_provider_polytomic.lineage.openlineage import OperatorLineage

            return OperatorLineage()

    return _cached(task, task_instance, build)
