"""Stream a sync execution's record logs from Polytomic's signed links into any object storage.

This is the engine behind
:class:`~airflow_provider_polytomic.operators.record_logs.PolytomicDownloadRecordLogsOperator`;
it has no Airflow operator machinery and can be used on its own::

    hook = PolytomicHook()
    downloader = RecordLogDownloader(hook, "s3://aws_default@bucket/polytomic/run-1")
    result = downloader.download(sync_id, execution_id, ("inserted", "updated"))
    result.to_xcom()  # {"sync_id", "execution_id", "files": [...], "counts": {...}}

One module per concern:

* :mod:`.discovery`: **links and counts.** The ``sync.completed`` event of the execution
  carries lists of links per record type and Polytomic's counts. Events live 48 hours and may
  be dropped; then the links come from the endpoints the execution's **logs index**
  (``GET /api/syncs/{sync_id}/executions/{id}/logs``) names, or from the documented per-type
  endpoints ``GET .../executions/{id}/{type}``, and the counts from the index, else the
  execution.
* :mod:`.transfer`: **one file, complete or not at all.** Links are fetched with a separate
  ``requests`` session that never carries the API key; a hop gets the key only when it is on
  the API origin itself under ``/api/``. Redirects are followed hop by hop, only ``http`` and
  ``https``. The body is read with ``readinto`` into one reused buffer, gunzipped on the fly,
  written to ``<final>.partial-<uuid>`` and moved to its final name only when its length
  matches ``Content-Length`` and a gzip stream's trailer (CRC, length) checks out. Signed links
  are credentials too: only their scheme, host and path reach logs and exceptions.
* :mod:`.counting`: **optional record counting** (``count_records=True``), one pure-Python
  engine, which also detects a JSON array that was never closed.
* :mod:`.markers`: **reruns.** A marker ``_polytomic/<record_type>/<name>.done`` next to the
  data makes a file count as complete on the next run.
* :mod:`.downloader`: **the engine.** Files in parallel; transient failures (connection
  errors, truncated or corrupt bodies, 429, 5xx) retried with the connection's
  :class:`~airflow_provider_polytomic.client.RetryPolicy`; a link answering 403/404/410
  replaced by a fresh one from the API, once.
* :mod:`.results`: what a download produced, and the comparison of counted and reported
  records.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_polytomic.record_logs.counting import RecordCounter, count_records, format_hint
    from airflow_provider_polytomic.record_logs.discovery import (
        EVENT_LINK_FIELDS,
        LOG_TYPES,
        RECORD_TYPES,
        LinkSet,
        RecordType,
        discover_links,
        find_completed_event,
    )
    from airflow_provider_polytomic.record_logs.downloader import RecordLogDownloader
    from airflow_provider_polytomic.record_logs.errors import RecordCountMismatchError, RecordLogError
    from airflow_provider_polytomic.record_logs.markers import MARKER_DIR
    from airflow_provider_polytomic.record_logs.naming import (
        check_link,
        redact_url,
        resolve_destination,
        safe_file_name,
    )
    from airflow_provider_polytomic.record_logs.results import (
        DownloadResult,
        FileResult,
        check_counts,
        compare_counts,
    )
    from airflow_provider_polytomic.record_logs.transfer import DEFAULT_CHUNK_SIZE, LOCAL_WRITE_SIZE

# Every name loads its module when first used (PEP 562). The operator's module is imported on
# every DAG parse and needs next to nothing from here; the engine and the transfer load
# requests, urllib3 and tenacity, which only a running download needs.
_MODULES = {
    "counting": ("RecordCounter", "count_records", "format_hint"),
    "discovery": (
        "EVENT_LINK_FIELDS",
        "LOG_TYPES",
        "RECORD_TYPES",
        "LinkSet",
        "RecordType",
        "discover_links",
        "find_completed_event",
    ),
    "downloader": ("RecordLogDownloader",),
    "errors": ("RecordCountMismatchError", "RecordLogError"),
    "markers": ("MARKER_DIR",),
    "naming": ("check_link", "redact_url", "resolve_destination", "safe_file_name"),
    "results": ("DownloadResult", "FileResult", "check_counts", "compare_counts"),
    "transfer": ("DEFAULT_CHUNK_SIZE", "LOCAL_WRITE_SIZE"),
}
_LAZY = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EVENT_LINK_FIELDS",
    "LOCAL_WRITE_SIZE",
    "LOG_TYPES",
    "MARKER_DIR",
    "RECORD_TYPES",
    "DownloadResult",
    "FileResult",
    "LinkSet",
    "RecordCountMismatchError",
    "RecordCounter",
    "RecordLogDownloader",
    "RecordLogError",
    "RecordType",
    "check_counts",
    "check_link",
    "compare_counts",
    "count_records",
    "discover_links",
    "find_completed_event",
    "format_hint",
    "redact_url",
    "resolve_destination",
    "safe_file_name",
]
