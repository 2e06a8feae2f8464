"""Completion markers: what makes a file from an earlier run count as complete.

After a file is moved into place, ``<destination>/_polytomic/<record_type>/<name>.done``
records the ids, the byte size and the record count (JSON). A file is kept on a rerun when
its marker names the same sync and execution and its size equals the marker's ``bytes``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_provider_polytomic._compat import ObjectStoragePath
from airflow_provider_polytomic.record_logs.errors import RecordLogError
from airflow_provider_polytomic.record_logs.naming import redact_url
from airflow_provider_polytomic.record_logs.results import FileResult

__all__ = ["MARKER_DIR", "MARKER_SUFFIX", "kept_file", "write_marker"]

log = logging.getLogger(__name__)

MARKER_DIR = "_polytomic"
"""Folder under the destination holding the completion markers (kept out of the data folders)."""
MARKER_SUFFIX = ".done"


def write_marker(
    marker: ObjectStoragePath,
    *,
    sync_id: str,
    execution_id: str,
    record_type: str,
    url: str,
    result: FileResult,
    counted: bool,
) -> None:
    """Record that ``result`` is complete (the link is stored without its signature);
    ``counted`` says whether its records were counted."""
    body = {
        "sync_id": sync_id,
        "execution_id": execution_id,
        "record_type": record_type,
        "source": redact_url(url),
        "bytes": result.bytes,
        "records": result.records,
        "counted": counted,
    }
    marker.write_bytes(json.dumps(body, sort_keys=True).encode())


def kept_file(
    marker: ObjectStoragePath,
    final: ObjectStoragePath,
    *,
    sync_id: str,
    execution_id: str,
    record_type: str,
    need_count: bool,
) -> FileResult | None:
    """The earlier run's result for ``final`` when it is complete, else None (download again).

    Without ``need_count`` the result carries no record count. With it, a file whose records
    were not counted then (counting was off) is downloaded again so it can be counted.

    :raises RecordLogError: the marker belongs to another execution (a shared destination).
    """
    try:
        content: Any = json.loads(marker.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("Ignoring an unreadable completion marker for %s", final.name)
        return None
    if not isinstance(content, dict):
        return None
    if content.get("sync_id") != sync_id or content.get("execution_id") != execution_id:
        raise RecordLogError(
            f"{final} holds a record log of another execution "
            f"({content.get('execution_id')!r}); use one destination per execution "
            "(e.g. template the execution id into it) or overwrite=True"
        )
    try:
        size = final.stat().st_size
    except FileNotFoundError:
        return None
    if content.get("record_type") != record_type or size != content.get("bytes"):
        return None
    if not need_count:
        return FileResult(record_type, str(final), int(size), None, skipped=True)
    if content.get("counted") is not True:
        return None
    records = content.get("records")
    return FileResult(
        record_type, str(final), int(size), records if isinstance(records, int) else None, skipped=True
    )
