"""OpenLineage facets for Polytomic tasks. Imported only when OpenLineage asks for lineage.

This is the one module that imports the OpenLineage provider (and the OpenLineage client
it brings). The operators' ``get_openlineage_facets_on_*`` methods import it lazily, so
without ``airflow-provider-polytomic[openlineage]`` nothing here is ever loaded.

* Inputs and outputs come from :class:`~.resolver.SyncLineageResolver`; a model running a
  SQL query is named by the tables OpenLineage's SQL parser finds in it.
* Outputs carry ``outputStatistics`` (rows written, from the execution's counts) and, for a
  model sync, ``columnLineage`` (which model field feeds which target field); inputs read
  through a model carry its ``schema``.
* The run gets a ``polytomicExecution`` facet: sync id, kind and name, execution id, status,
  counts and the link to the execution in Polytomic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from airflow.providers.common.compat.openlineage.facet import (
    ColumnLineageDatasetFacet,
    Fields,
    InputDataset,
    InputField,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    RunFacet,
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_polytomic.lineage.naming import DatasetRef, QueryRef
from airflow_provider_polytomic.lineage.resolver import LineageDataset, SyncLineage

__all__ = [
    "RUN_FACET_KEY",
    "OperatorLineage",
    "PolytomicExecutionRunFacet",
    "file_lineage",
    "parse_query",
    "sync_operator_lineage",
]

log = logging.getLogger(__name__)

RUN_FACET_KEY = "polytomicExecution"
"""Key of :class:`PolytomicExecutionRunFacet` among the run facets."""

_SCHEMA_URL = (
    "https://github.com/polytomic/airflow-provider-polytomic/blob/main/"
    "airflow_provider_polytomic/lineage/PolytomicExecutionRunFacet.json#/$defs/PolytomicExecutionRunFacet"
)


@attrs.define
class PolytomicExecutionRunFacet(RunFacet):
    """The Polytomic sync and execution an Airflow task ran or waited on.

    :ivar syncId: the sync's id; ``syncKind`` is ``model`` or ``bulk``.
    :ivar executionId: the execution's id, when there was one.
    :ivar executionUrl: the execution's page in Polytomic (an assumed URL pattern; docs/run-sync.md).
    :ivar counts: Polytomic's record counts (``record``, ``inserted``, ``updated``,
        ``deleted``, ``error``, ``warning``).
    :ivar problems: lookups that failed while naming the datasets, when any did.
    """

    syncId: str  # camelCase, as OpenLineage facet fields are
    syncKind: str
    syncName: str | None = None
    executionId: str | None = None
    executionUrl: str | None = None
    status: str | None = None
    counts: dict[str, Any] | None = None
    problems: list[str] | None = None

    _additional_skip_redact = ["syncId", "syncKind", "executionId", "executionUrl", "status", "counts"]

    @staticmethod
    def _get_schema() -> str:
        return _SCHEMA_URL


def parse_query(query: QueryRef) -> list[DatasetRef]:
    """The tables ``query`` reads, named on its connection; its fallback when unparseable."""
    try:
        from openlineage_sql import parse
    except ImportError:  # pragma: no cover - shipped with the OpenLineage provider
        log.warning("OpenLineage: no SQL parser available; reporting query models by model id.")
        return [query.fallback]
    try:
        meta = parse([query.sql], dialect=query.dialect, default_schema=query.default_schema)
    except Exception as exc:
        log.warning("OpenLineage: could not parse a Polytomic model's query (%s); reporting the model.", exc)
        return [query.fallback]
    tables = list(getattr(meta, "in_tables", None) or []) if meta is not None else []
    if not tables:
        return [query.fallback]
    out: list[DatasetRef] = []
    for table in tables:
        parts = [p for p in (table.database, table.schema, table.name) if p]
        out.append(query.qualify(parts))
    return out


def _input_facets(item: LineageDataset) -> dict[str, Any]:
    if not item.fields:
        return {}
    return {
        "schema": SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=name, type=type_ or None) for name, type_ in item.fields]
        )
    }


def _statistics(row_count: int | None, size: int | None = None, files: int | None = None) -> dict[str, Any]:
    if row_count is None and size is None:
        return {}
    kwargs: dict[str, Any] = {"rowCount": row_count, "size": size}
    if files is not None and "fileCount" in attrs.fields_dict(OutputStatisticsOutputDatasetFacet):
        kwargs["fileCount"] = files
    return {"outputStatistics": OutputStatisticsOutputDatasetFacet(**kwargs)}


def _column_lineage(item: LineageDataset) -> dict[str, Any]:
    if not item.column_lineage:
        return {}
    fields = {
        target: Fields(
            inputFields=[
                InputField(namespace=ref.namespace, name=ref.name, field=src) for ref, src in sources
            ],
            transformationDescription="",
            transformationType="IDENTITY",
        )
        for target, sources in item.column_lineage.items()
    }
    return {"columnLineage": ColumnLineageDatasetFacet(fields=fields)}


def _dedupe(datasets: Iterable[Any]) -> list[Any]:
    seen: set[tuple[str, str]] = set()
    out = []
    for dataset in datasets:
        key = (dataset.namespace, dataset.name)
        if key not in seen:
            seen.add(key)
            out.append(dataset)
    return out


def sync_operator_lineage(lineage: SyncLineage) -> OperatorLineage:
    """The :class:`OperatorLineage` of a resolved sync."""
    inputs: list[InputDataset] = []
    for item in lineage.inputs:
        refs = parse_query(item.ref) if isinstance(item.ref, QueryRef) else [item.ref]
        facets = _input_facets(item) if isinstance(item.ref, DatasetRef) else {}
        inputs.extend(InputDataset(namespace=r.namespace, name=r.name, facets=dict(facets)) for r in refs)
    outputs = [
        OutputDataset(
            namespace=item.ref.namespace,
            name=item.ref.name,
            facets=_column_lineage(item),
            outputFacets=_statistics(item.row_count),
        )
        for item in lineage.outputs
        if isinstance(item.ref, DatasetRef)
    ]
    return OperatorLineage(
        inputs=_dedupe(inputs),
        outputs=_dedupe(outputs),
        run_facets={RUN_FACET_KEY: _run_facet(lineage)},
    )


def _run_facet(lineage: SyncLineage) -> PolytomicExecutionRunFacet:
    return PolytomicExecutionRunFacet(
        syncId=lineage.sync_id,
        syncKind=lineage.sync_kind,
        syncName=lineage.sync_name,
        executionId=lineage.execution_id,
        executionUrl=lineage.execution_url,
        status=lineage.status,
        counts=dict(lineage.counts) or None,
        problems=list(lineage.problems) or None,
    )


def file_lineage(
    outputs: Iterable[tuple[DatasetRef, int | None, int | None, int]], run: SyncLineage | None = None
) -> OperatorLineage:
    """Output datasets for files written: ``(dataset, rows, bytes, files)`` each."""
    datasets = [
        OutputDataset(namespace=ref.namespace, name=ref.name, outputFacets=_statistics(rows, size, files))
        for ref, rows, size, files in outputs
    ]
    run_facets: Mapping[str, Any] = {RUN_FACET_KEY: _run_facet(run)} if run is not None else {}
    return OperatorLineage(outputs=_dedupe(datasets), run_facets=dict(run_facets))
