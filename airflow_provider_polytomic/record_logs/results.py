"""What a download produced, and how counted records compare with Polytomic's counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_polytomic.record_logs.discovery import CountSource, LinkSource
from airflow_provider_polytomic.record_logs.errors import RecordCountMismatchError

__all__ = ["DownloadResult", "FileResult", "check_counts", "compare_counts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileResult:
    """One record-log file in the destination.

    :ivar record_type: inserted, updated, deleted, errored or total.
    :ivar uri: where it was written (``file://``, ``s3://``, ...).
    :ivar bytes: its size (decompressed).
    :ivar records: records counted in it; None unless counting was on (or when the body is
        neither a JSON array nor JSON lines).
    :ivar skipped: True when a complete copy from an earlier run was kept.
    """

    record_type: str
    uri: str
    bytes: int
    records: int | None
    skipped: bool = False

    def to_xcom(self) -> dict[str, Any]:
        """This file's XCom entry."""
        return {
            "record_type": self.record_type,
            "uri": self.uri,
            "bytes": self.bytes,
            "records": self.records,
        }


@dataclass
class DownloadResult:
    """What a download produced.

    :ivar counts: record type -> the count Polytomic reported (None when no source reports it).
    :ivar counted: record type -> records counted in the files, or None when counting was off.
    :ivar link_source: where the links came from (``event``, ``logs_index`` or ``api``).
    :ivar count_sources: record type -> where its count came from (``event``, ``logs_index``
        or ``execution``).
    :ivar mismatches: record type -> (counted, reported) where they differ or a file could not
        be counted; always empty when counting was off.
    """

    sync_id: str
    execution_id: str
    files: list[FileResult]
    counts: dict[str, int | None]
    counted: dict[str, int] | None = None
    link_source: LinkSource = "event"
    count_sources: dict[str, CountSource] = field(default_factory=dict)
    mismatches: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        """The operator's XCom: URIs and numbers, never record data or links."""
        xcom: dict[str, Any] = {
            "sync_id": self.sync_id,
            "execution_id": self.execution_id,
            "files": [f.to_xcom() for f in self.files],
            "counts": dict(self.counts),
        }
        if self.counted is not None:
            xcom["counted"] = dict(self.counted)
        return xcom


def compare_counts(result: DownloadResult) -> dict[str, tuple[int, int | None]]:
    """Record types whose counted records differ from Polytomic's count (or could not be
    counted): ``{record_type: (counted, reported)}``. Types Polytomic reports no count for are
    skipped; without counting there is nothing to compare."""
    if result.counted is None:
        return {}
    mismatches: dict[str, tuple[int, int | None]] = {}
    uncounted = {f.record_type for f in result.files if f.records is None}
    for rtype, reported in result.counts.items():
        counted = result.counted.get(rtype, 0)
        if rtype in uncounted or (reported is not None and counted != reported):
            mismatches[rtype] = (counted, reported)
    return mismatches


def check_counts(result: DownloadResult, *, strict: bool) -> None:
    """Warn about count mismatches, or raise :class:`RecordCountMismatchError` when ``strict``."""
    if not result.mismatches:
        return
    details = "; ".join(
        f"{rtype}: counted {counted}, Polytomic reported "
        f"{reported if reported is not None else 'nothing'}"
        + (
            " (some files could not be counted)"
            if any(f.records is None for f in result.files if f.record_type == rtype)
            else ""
        )
        for rtype, (counted, reported) in sorted(result.mismatches.items())
    )
    message = f"Record counts of execution {result.execution_id} do not match: {details}"
    if strict:
        raise RecordCountMismatchError(message)
    log.warning(message)
