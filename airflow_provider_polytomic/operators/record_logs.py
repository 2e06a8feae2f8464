"""Operator downloading a Polytomic sync execution's record logs to any object storage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_provider_polytomic._compat import Asset, BaseOperator, Context, ObjectStoragePath, is_xcom_arg
from airflow_provider_polytomic.hooks.polytomic import PolytomicHook
from airflow_provider_polytomic.record_logs.discovery import RECORD_TYPES
from airflow_provider_polytomic.record_logs.naming import resolve_destination
from airflow_provider_polytomic.vocabulary import SyncKind, check_sync_kind

_TEMPLATE = re.compile(r"{{|{%")
MAX_CONCURRENCY_LIMIT = 64


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and bool(_TEMPLATE.search(value))


class PolytomicDownloadRecordLogsOperator(BaseOperator):
    """Stream the record logs of one Polytomic sync execution into a folder of any storage.

    The links and Polytomic's record counts come from the execution's ``sync.completed``
    event (or, once the event is gone, from the execution's logs index and log endpoints);
    every file is streamed, gunzipped and moved into ``<destination>/<record_type>/<name>``
    only when complete. See :mod:`airflow_provider_polytomic.record_logs` for the details and
    the rerun rules.

    Example, after a sensor whose XCom is the finished execution::

        PolytomicDownloadRecordLogsOperator(
            task_id="record_logs",
            sync_id="{{ ti.xcom_pull(task_ids='wait')['sync_id'] }}",
            execution_id="{{ ti.xcom_pull(task_ids='wait')['execution_id'] }}",
            destination="s3://aws_default@my-bucket/polytomic/{{ run_id }}/",
        )

    XCom (return value); ``counts`` are Polytomic's, ``records`` and ``counted`` are only
    filled with ``count_records=True``::

        {"sync_id": "...", "execution_id": "...",
         "files": [{"record_type": "inserted", "uri": "s3://...", "bytes": 123, "records": None}],
         "counts": {"inserted": 4, "updated": 0}}

    :param sync_id: the sync (templated).
    :param execution_id: the execution whose logs to fetch (templated), or an ``XComArg`` such as
        ``run_sync.output["execution_id"]`` (the run-sync operator pushes that key).
    :param destination: folder to write to (templated): a URI Airflow's object storage
        understands (``file://``, ``s3://conn_id@bucket/prefix``, ``gs://``, ``memory://``...),
        a plain local folder, or an :class:`ObjectStoragePath`. Use one folder per execution.
    :param record_types: any of ``inserted``, ``updated``, ``deleted``, ``errored``, ``total``.
        Bulk syncs only have ``total``.
    :param polytomic_conn_id: the Polytomic Airflow connection.
    :param overwrite: download again files a previous run already completed.
    :param max_concurrency: files downloaded in parallel (1-64).
    :param count_records: also count the records of every file while it streams (reads every
        byte in Python: slower than a plain download) and report them as ``counted`` and per
        file. It also detects a JSON array that was never closed.
    :param strict: with ``count_records=True``, fail instead of warning when counted records
        differ from Polytomic's counts (or a file cannot be counted). Without counting there
        is nothing to compare, so ``strict=True`` is refused as a parameter error.
    :param sync_kind: ``model`` or ``bulk``.
    :param outlet_asset: ``True`` to declare the destination as an outlet :class:`Asset`
        (the destination must then be a literal, not a template), or an :class:`Asset` to
        declare that asset instead.
    """

    template_fields: Sequence[str] = ("sync_id", "execution_id", "destination")
    ui_color = "#5c6bf7"

    def __init__(
        self,
        *,
        sync_id: str,
        execution_id: str,
        destination: str | ObjectStoragePath,
        record_types: Sequence[str] = ("inserted", "updated"),
        polytomic_conn_id: str = PolytomicHook.default_conn_name,
        overwrite: bool = False,
        max_concurrency: int = 4,
        count_records: bool = False,
        strict: bool = False,
        sync_kind: SyncKind = "model",
        outlet_asset: bool | Asset = False,
        **kwargs: Any,
    ) -> None:
        _check_id("sync_id", sync_id)
        _check_id("execution_id", execution_id)
        if not isinstance(destination, str | ObjectStoragePath | Path):
            raise ValueError(
                f"destination must be a string or ObjectStoragePath, got {type(destination).__name__}"
            )
        if isinstance(destination, str) and not destination.strip():
            raise ValueError(f"destination must not be empty, got {destination!r}")
        self.record_types = _check_record_types(record_types, sync_kind)
        if not isinstance(polytomic_conn_id, str) or not polytomic_conn_id.strip():
            raise ValueError(f"polytomic_conn_id must be a non-empty string, got {polytomic_conn_id!r}")
        for name, flag in (("overwrite", overwrite), ("count_records", count_records), ("strict", strict)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        if strict and not count_records:
            raise ValueError(
                "strict=True compares counted records with Polytomic's counts, so it needs "
                "count_records=True (got count_records=False)"
            )
        if (
            not isinstance(max_concurrency, int)
            or isinstance(max_concurrency, bool)
            or not 1 <= max_concurrency <= MAX_CONCURRENCY_LIMIT
        ):
            raise ValueError(
                f"max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT}, "
                f"got {max_concurrency!r}"
            )
        if outlet_asset is not False:
            outlets = list(kwargs.pop("outlets", None) or [])
            outlets.append(_outlet_for(destination, outlet_asset))
            kwargs["outlets"] = outlets
        super().__init__(**kwargs)
        self.sync_id = sync_id
        self.execution_id = execution_id
        self.destination = destination
        self.polytomic_conn_id = polytomic_conn_id
        self.overwrite = overwrite
        self.max_concurrency = max_concurrency
        self.count_records = count_records
        self.strict = strict
        self.sync_kind = sync_kind

    def execute(self, context: Context) -> dict[str, Any]:
        """Download the files and return the XCom described in the class docstring."""
        sync_id = _check_id("sync_id", self.sync_id, rendered=True)
        execution_id = _check_id("execution_id", self.execution_id, rendered=True)
        destination = self.destination
        if isinstance(destination, str) and not destination.strip():
            raise ValueError(f"destination rendered to an empty string ({self.destination!r})")
        # Here, not at import: the engine loads the HTTP stack, which parsing a DAG never needs.
        from airflow_provider_polytomic.record_logs.downloader import RecordLogDownloader
        from airflow_provider_polytomic.record_logs.results import check_counts

        hook = PolytomicHook(polytomic_conn_id=self.polytomic_conn_id)
        downloader = RecordLogDownloader(
            hook,
            resolve_destination(destination),
            overwrite=self.overwrite,
            max_concurrency=self.max_concurrency,
            count_records=self.count_records,
        )
        self.log.info(
            "Downloading %s record logs of execution %s (sync %s) to %s",
            ", ".join(self.record_types),
            execution_id,
            sync_id,
            downloader.root,
        )
        result = downloader.download(sync_id, execution_id, self.record_types, sync_kind=self.sync_kind)
        # Kept for OpenLineage, which asks for the files written once the task has ended.
        self._polytomic_download = result
        skipped = sum(1 for f in result.files if f.skipped)
        self.log.info(
            "%d file(s) (%d kept from an earlier run), records reported by Polytomic: %s",
            len(result.files),
            skipped,
            ", ".join(
                f"{k}={v} ({result.count_sources.get(k, 'not reported')})" for k, v in result.counts.items()
            )
            or "none",
        )
        if result.counted is not None:
            self.log.info("Records counted: %s", ", ".join(f"{k}={v}" for k, v in result.counted.items()))
        check_counts(result, strict=self.strict)
        return result.to_xcom()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: every file written as an output dataset (``file``, ``s3://bucket``...
        per the OpenLineage naming spec) with its size and, when counted, its records; past
        100 files, one dataset per folder. No API call. None without the OpenLineage provider.
        """
        from airflow_provider_polytomic.lineage import record_logs_lineage

        return record_logs_lineage(self, task_instance)


def _check_id(name: str, value: Any, *, rendered: bool = False) -> str:
    if not rendered and is_xcom_arg(value):
        return value  # checked in execute(), once resolved
    if not isinstance(value, str) or not value.strip():
        when = " after templating" if rendered else ""
        raise ValueError(f"{name} must be a non-empty string{when}, got {value!r}")
    if rendered and _is_templated(value):
        raise ValueError(f"{name} was not rendered: {value!r}")
    if rendered and ("/" in value or value.strip() != value):
        raise ValueError(f"{name} must be a Polytomic id without '/' or surrounding spaces, got {value!r}")
    return value


def _check_record_types(record_types: Any, sync_kind: Any) -> tuple[str, ...]:
    check_sync_kind(sync_kind)
    if isinstance(record_types, str):
        record_types = (record_types,)
    if not isinstance(record_types, Sequence) or not record_types:
        raise ValueError(
            f"record_types must be a non-empty list of {', '.join(RECORD_TYPES)}, got {record_types!r}"
        )
    out: list[str] = []
    for rtype in record_types:
        if rtype not in RECORD_TYPES:
            raise ValueError(f"record_types: {rtype!r} is not one of {', '.join(RECORD_TYPES)}")
        if rtype in out:
            raise ValueError(f"record_types: {rtype!r} is listed twice")
        out.append(rtype)
    if sync_kind == "bulk" and out != ["total"]:
        raise ValueError(f"record_types must be ('total',) for bulk syncs (one log set), got {tuple(out)!r}")
    return tuple(out)


def _outlet_for(destination: Any, outlet_asset: Any) -> Asset:
    if isinstance(outlet_asset, Asset):
        return outlet_asset
    if outlet_asset is not True:
        raise ValueError(f"outlet_asset must be True, False or an Asset, got {outlet_asset!r}")
    if _is_templated(destination):
        raise ValueError(
            "outlet_asset=True needs a literal destination, but destination is templated "
            f"({destination!r}); pass outlet_asset=Asset(...) instead"
        )
    uri = str(resolve_destination(destination)).rstrip("/")
    return Asset(uri=uri)


__all__ = ["PolytomicDownloadRecordLogsOperator"]
