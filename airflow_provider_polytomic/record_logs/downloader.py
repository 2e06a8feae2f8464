"""The download engine: plan the files of an execution, fetch them in parallel with retries
and one link refresh, keep what an earlier run completed."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import requests
import tenacity

from airflow_provider_polytomic._compat import ObjectStoragePath
from airflow_provider_polytomic.client import ClientConfig, RetryableAPIError, RetryPolicy
from airflow_provider_polytomic.models import SyncKind
from airflow_provider_polytomic.record_logs.discovery import (
    LOG_TYPES,
    RECORD_TYPES,
    HookLike,
    LinkSet,
    discover_links,
)
from airflow_provider_polytomic.record_logs.errors import LinkRejected, RecordLogError
from airflow_provider_polytomic.record_logs.markers import MARKER_DIR, MARKER_SUFFIX, kept_file, write_marker
from airflow_provider_polytomic.record_logs.naming import check_link, resolve_destination, safe_file_name
from airflow_provider_polytomic.record_logs.results import DownloadResult, FileResult, compare_counts
from airflow_provider_polytomic.record_logs.transfer import (
    DEFAULT_CHUNK_SIZE,
    Transfer,
    fetch_once,
    plain_session,
    unlink_quietly,
)

__all__ = ["RecordLogDownloader"]

log = logging.getLogger(__name__)

_PARTIAL_RE = re.compile(r"\.partial-[0-9a-f]{32}$")


@dataclass(frozen=True)
class _Job:
    record_type: str
    index: int
    url: str
    name: str
    final: ObjectStoragePath
    marker: ObjectStoragePath

    @property
    def label(self) -> str:
        return f"{self.record_type} log {self.name}"


class RecordLogDownloader:
    """Downloads the record logs of one execution into ``destination``.

    Layout: ``<destination>/<record_type>/<file name from the link>`` and completion markers
    under ``<destination>/_polytomic/<record_type>/``.

    Example::

        downloader = RecordLogDownloader(PolytomicHook(), "s3://aws_default@bucket/polytomic/run-1")
        result = downloader.download(sync_id, execution_id, ("inserted", "updated"))
        result.to_xcom()  # {"sync_id", "execution_id", "files": [...], "counts": {...}}

    :param hook: a :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook`.
    :param destination: URI (``file://``, ``s3://conn@bucket/prefix``, ``memory://``...), plain
        local folder or :class:`ObjectStoragePath`.
    :param overwrite: download again even files a previous run completed.
    :param max_concurrency: files downloaded in parallel (threads).
    :param chunk_size: bytes read from the network per step.
    :param count_records: count the records of every file while it streams (costs CPU; see
        :class:`~airflow_provider_polytomic.record_logs.counting.RecordCounter`).
    :param session_factory: builds the download session (tests and proxies); it must not carry
        credentials of its own.
    """

    def __init__(
        self,
        hook: HookLike,
        destination: str | ObjectStoragePath | Path,
        *,
        overwrite: bool = False,
        max_concurrency: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        count_records: bool = False,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a whole number >= 1, got {max_concurrency!r}")
        if not isinstance(chunk_size, int) or chunk_size < 1024:
            raise ValueError(f"chunk_size must be an integer >= 1024, got {chunk_size!r}")
        self.hook = hook
        self.root = resolve_destination(destination)
        self.overwrite = overwrite
        self.max_concurrency = max_concurrency
        self.chunk_size = chunk_size
        self.count_records = count_records
        self._session_factory = session_factory or plain_session
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._api_lock = threading.Lock()
        self._fresh: dict[str, list[str]] = {}
        self._sync_id = ""
        self._execution_id = ""
        self._sync_kind: SyncKind = "model"

    def __repr__(self) -> str:
        return f"RecordLogDownloader(root={str(self.root)!r})"

    @property
    def _config(self) -> ClientConfig:
        return self.hook.config

    @property
    def _retry_policy(self) -> RetryPolicy:
        return self._config.retry_policy

    def download(
        self,
        sync_id: str,
        execution_id: str,
        record_types: Sequence[str] = ("inserted", "updated"),
        *,
        sync_kind: SyncKind = "model",
        links: LinkSet | None = None,
    ) -> DownloadResult:
        """Download every file of ``record_types``; returns the files and Polytomic's counts
        (plus the counted records when ``count_records``).

        Count mismatches are reported in :attr:`DownloadResult.mismatches`; deciding whether
        they are fatal is the caller's job (see
        :func:`~airflow_provider_polytomic.record_logs.results.check_counts`).

        :param links: links already discovered (skips
            :func:`~airflow_provider_polytomic.record_logs.discovery.discover_links`).
        """
        unknown = [t for t in record_types if t not in RECORD_TYPES]
        if unknown:
            raise ValueError(f"record_types: unknown {unknown!r}; choose from {', '.join(RECORD_TYPES)}")
        self._sync_id, self._execution_id, self._sync_kind = sync_id, execution_id, sync_kind
        self._fresh = {}
        link_set = links or discover_links(
            self.hook, sync_id, execution_id, record_types, sync_kind=sync_kind
        )
        jobs = self._plan(link_set, record_types)
        results: dict[tuple[str, int], FileResult] = {}
        try:
            if jobs:
                results = self._run(jobs)
        finally:
            self._close_sessions()
        files = [results[(j.record_type, j.index)] for j in jobs]
        counted: dict[str, int] | None = None
        if self.count_records:
            counted = {t: 0 for t in record_types}
            for f in files:
                counted[f.record_type] += f.records or 0
        result = DownloadResult(
            sync_id=sync_id,
            execution_id=execution_id,
            files=files,
            counts={t: link_set.reported_counts.get(t) for t in record_types},
            counted=counted,
            link_source=link_set.source,
            count_sources=dict(link_set.count_sources),
        )
        result.mismatches = compare_counts(result)
        return result

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, link_set: LinkSet, record_types: Sequence[str]) -> list[_Job]:
        jobs: list[_Job] = []
        root_text = str(self.root).rstrip("/")
        for rtype in record_types:
            urls = link_set.links.get(rtype) or []
            if not urls:
                continue
            folder = self.root / rtype
            marker_folder = self.root / MARKER_DIR / rtype
            used: set[str] = set()
            for index, url in enumerate(urls):
                check_link(url)
                name = safe_file_name(url, rtype, index + 1)
                if name in used:
                    stem, dot, suffix = name.partition(".")
                    name = f"{stem}-{index + 1:04d}{dot}{suffix}"
                used.add(name)
                final = folder / name
                # Belt and braces: the name has no separators, but never trust a derived path.
                if not str(final).startswith(root_text + "/") or final.name != name:
                    raise RecordLogError(f"refusing a file name that leaves the destination: {name!r}")
                jobs.append(_Job(rtype, index, url, name, final, marker_folder / (name + MARKER_SUFFIX)))
            folder.mkdir(parents=True, exist_ok=True)
            marker_folder.mkdir(parents=True, exist_ok=True)
            self._remove_stale_partials(folder)
        return jobs

    def _remove_stale_partials(self, folder: ObjectStoragePath) -> None:
        # A worker killed mid-download leaves <name>.partial-<uuid>; it is never a final file.
        try:
            entries = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if _PARTIAL_RE.search(entry.name):
                log.info("Removing a partial download left by an earlier run: %s", entry.name)
                unlink_quietly(entry)

    # -- running --------------------------------------------------------------------------------

    def _run(self, jobs: list[_Job]) -> dict[tuple[str, int], FileResult]:
        results: dict[tuple[str, int], FileResult] = {}
        workers = min(self.max_concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="polytomic-record-logs") as pool:
            futures: dict[Future[FileResult], _Job] = {pool.submit(self._download_one, j): j for j in jobs}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                # Let running downloads stop and clean their partial files before raising.
                wait(pending)
                exc = failed[0].exception()
                assert exc is not None
                raise exc
            for fut, job in futures.items():
                results[(job.record_type, job.index)] = fut.result()
        return results

    def _download_one(self, job: _Job) -> FileResult:
        if not self.overwrite:
            kept = kept_file(
                job.marker,
                job.final,
                sync_id=self._sync_id,
                execution_id=self._execution_id,
                record_type=job.record_type,
                need_count=self.count_records,
            )
            if kept is not None:
                log.info("Keeping %s: already complete from an earlier run.", kept.uri)
                return kept
        url = job.url
        refreshed = False
        while True:
            try:
                retrying = tenacity.Retrying(**self._retry_policy.tenacity_kwargs())
                transfer: Transfer = retrying(self._fetch, job, url)
                break
            except LinkRejected as exc:
                if refreshed:
                    raise RecordLogError(
                        f"{job.label}: a fresh link from Polytomic was also refused ({exc}); giving up"
                    ) from None
                log.info("%s: link refused (%s), asking Polytomic for a fresh one.", job.label, exc)
                url = self._fresh_link(job)
                refreshed = True
            except RetryableAPIError as exc:
                raise RecordLogError(
                    f"{job.label} could not be downloaded after "
                    f"{self._retry_policy.max_retries} retries: {exc}"
                ) from None
        result = FileResult(job.record_type, str(job.final), transfer.written, transfer.records)
        write_marker(
            job.marker,
            sync_id=self._sync_id,
            execution_id=self._execution_id,
            record_type=job.record_type,
            url=job.url,
            result=result,
            counted=self.count_records,
        )
        log.info(
            "Downloaded %s: %d bytes%s.",
            job.label,
            transfer.written,
            f", {transfer.records} records" if self.count_records else "",
        )
        return result

    def _fetch(self, job: _Job, url: str) -> Transfer:
        return fetch_once(
            self._session(),
            self._config,
            url,
            job.final,
            label=job.label,
            chunk_size=self.chunk_size,
            count_records=self.count_records,
            # The old marker goes first: a crash right after the move must not leave a marker
            # vouching for bytes that are no longer there.
            before_move=lambda: unlink_quietly(job.marker),
        )

    def _fresh_link(self, job: _Job) -> str:
        with self._api_lock:
            urls = self._fresh.get(job.record_type)
            if urls is None:
                answer = self.hook.get_execution_log_urls(
                    self._sync_id, self._execution_id, LOG_TYPES[job.record_type], sync_kind=self._sync_kind
                )
                urls = list(answer.urls)
                self._fresh[job.record_type] = urls
        for candidate in urls:
            if safe_file_name(candidate, job.record_type, 0) == safe_file_name(job.url, job.record_type, 0):
                return check_link(candidate)
        if job.index < len(urls):
            return check_link(urls[job.index])
        raise RecordLogError(f"{job.label}: the link was refused and Polytomic lists no fresh link for it")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory()
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _close_sessions(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self._local = threading.local()
