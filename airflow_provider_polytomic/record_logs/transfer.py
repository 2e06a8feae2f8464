"""Moving one record-log file from a link to its final path, complete or not at all.

A link is fetched hop by hop (:func:`open_link`: http(s) only, the API key only on the API
origin), the body read into one reused buffer (:class:`BodyReader`), gunzipped on the fly
(:class:`Decoder`), optionally counted, written to ``<final>.partial-<uuid>`` (:class:`Sink`)
and moved to ``final`` only after the integrity checks of :func:`fetch_once` pass.
"""

from __future__ import annotations

import http.client
import logging
import os
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3

from airflow_provider_polytomic._compat import ObjectStoragePath
from airflow_provider_polytomic.client import ClientConfig, RetryableAPIError, parse_retry_after, user_agent
from airflow_provider_polytomic.record_logs.counting import RecordCounter, format_hint
from airflow_provider_polytomic.record_logs.errors import LinkRejected, RecordLogError
from airflow_provider_polytomic.record_logs.naming import check_link, is_api_url, redact_url

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "LOCAL_WRITE_SIZE",
    "BodyReader",
    "Decoder",
    "Sink",
    "Transfer",
    "fetch_once",
    "open_link",
    "plain_session",
    "unlink_quietly",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1024 * 1024
LOCAL_WRITE_SIZE = 128 * 1024
"""Local files are written in slices of this size, not one write per 1 MiB chunk. A 1 MiB
write makes the kernel fill the page cache with large folios, which costs several times the
CPU when the free memory behind them has been handed back to a VM's host (free page
reporting): writing 1 GiB there cost 1.54 ms of CPU per MiB in 1 MiB writes against 0.64 ms
in 128 KiB writes (0.29 and 0.31 ms into pages freed a moment earlier;
``benchmarks/record_counting.py --part writes``). curl writes 16 KiB at a time and never pays it."""
_MAX_REDIRECTS = 10
_REFRESH_STATUSES = frozenset({403, 404, 410})
_LOCAL_PROTOCOLS = frozenset({"file", "local"})
_READ_ERRORS = (http.client.HTTPException, urllib3.exceptions.HTTPError, requests.RequestException, OSError)


@dataclass
class Transfer:
    """What one successful fetch produced.

    :ivar records: records counted, or None when counting was off or the body is neither a
        JSON array nor JSON lines.
    """

    wire_bytes: int = 0
    written: int = 0
    records: int | None = None


def plain_session() -> requests.Session:
    """A session for signed links: no credentials of its own, none picked up from the environment."""
    session = requests.Session()
    # No ~/.netrc credentials or proxy auth picked up from the environment: signed links need none.
    session.trust_env = False
    session.headers.pop("Authorization", None)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def open_link(session: requests.Session, config: ClientConfig, url: str) -> requests.Response:
    """GET ``url`` following redirects hop by hop (http/https only, key only on the API origin)."""
    timeout = (config.connect_timeout, config.timeout)
    current = check_link(url)
    for _ in range(_MAX_REDIRECTS + 1):
        headers = {"User-Agent": user_agent(), "Accept-Encoding": "gzip"}
        if is_api_url(current, config):
            # Only the API's own file endpoint may need the key; it redirects to storage.
            headers.update(config.headers())
            headers["Accept-Encoding"] = "gzip"
        try:
            response = session.get(
                current, headers=headers, stream=True, timeout=timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise RetryableAPIError(f"{type(exc).__name__} while fetching {redact_url(current)}") from None
        if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise RecordLogError(f"redirect without Location from {redact_url(current)}")
            current = check_link(urljoin(current, location))
            continue
        return response
    raise RecordLogError(f"more than {_MAX_REDIRECTS} redirects fetching {redact_url(url)}")


def fetch_once(
    session: requests.Session,
    config: ClientConfig,
    url: str,
    final: ObjectStoragePath,
    *,
    label: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    count_records: bool = False,
    before_move: Callable[[], None] = lambda: None,
) -> Transfer:
    """Fetch ``url`` into ``final`` once: complete, or nothing at ``final``.

    The body goes to ``<final>.partial-<uuid>`` and is moved to ``final`` only when the number
    of bytes received equals ``Content-Length`` and a gzip stream reached its trailer with a
    matching CRC and length; with ``count_records``, also when a JSON array was closed (without
    parsing, an unclosed array cannot be told from a complete one). ``before_move`` runs just
    before the move.

    :raises LinkRejected: 403/404/410, the link expired or was revoked.
    :raises RetryableAPIError: 429, 5xx, a network error or a failed integrity check.
    :raises RecordLogError: any other failure.
    """
    response = open_link(session, config, url)
    where = redact_url(response.url or url)
    try:
        status = response.status_code
        if status in _REFRESH_STATUSES:
            raise LinkRejected(status, where)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise RetryableAPIError(f"HTTP {status} from {where}", retry_after=retry_after)
        if not 200 <= status < 300:
            raise RecordLogError(f"{label}: HTTP {status} from {where}")
        return _stream(response, final, where, label, chunk_size, count_records, before_move)
    finally:
        response.close()


def _stream(
    response: requests.Response,
    final: ObjectStoragePath,
    where: str,
    label: str,
    chunk_size: int,
    count_records: bool,
    before_move: Callable[[], None],
) -> Transfer:
    expected_length = _content_length(response.headers.get("Content-Length"))
    decoder = Decoder(response.headers.get("Content-Encoding"), chunk_size)
    counter = (
        RecordCounter(format_hint(final.name, response.headers.get("Content-Type")))
        if count_records
        else None
    )
    reader = BodyReader(response, chunk_size, where)
    sink = Sink(final.parent / f"{final.name}.partial-{uuid.uuid4().hex}", final)
    outcome = Transfer()
    moved = False
    try:
        with sink:
            while True:
                raw = reader.read()
                if not raw:
                    break
                for piece in decoder.feed(raw):
                    # The reused read buffer is consumed here, before the next read.
                    sink.write(piece)
                    if counter is not None:
                        counter.feed(piece)
                    outcome.written += len(piece)
            for piece in decoder.finish():
                sink.write(piece)
                if counter is not None:
                    counter.feed(piece)
                outcome.written += len(piece)
        outcome.wire_bytes = reader.received
        if expected_length is not None and outcome.wire_bytes != expected_length:
            raise RetryableAPIError(
                f"{where} ended after {outcome.wire_bytes} of {expected_length} bytes (truncated)"
            )
        if counter is not None:
            outcome.records = counter.finish()
            if counter.mode == "array" and not counter.complete and not counter.trailing_garbage:
                raise RetryableAPIError(f"{where}: the JSON array is not closed (truncated body)")
            if outcome.records is None:
                log.warning("%s is neither a JSON array nor JSON lines; its records are not counted.", label)
        before_move()
        sink.move_into_place()
        moved = True
        reader.release()
        return outcome
    finally:
        if not moved:
            sink.discard()


class BodyReader:
    """The raw (still encoded) body, read into one reused buffer; network failures become
    retryable errors.

    With urllib3 underneath (always, through ``requests``) it reads straight from the
    ``http.client`` response with ``readinto``: one kernel-to-buffer copy per chunk and no
    allocation, where ``iter_content``/``raw.read`` copy each chunk twice more. Only reading
    the socket is wrapped, so a storage write error is never mistaken for a network one and
    retried.
    """

    def __init__(self, response: requests.Response, chunk_size: int, where: str) -> None:
        self._raw = response.raw
        fp = getattr(self._raw, "_fp", None)
        self._fp: http.client.HTTPResponse | None = fp if isinstance(fp, http.client.HTTPResponse) else None
        self._buffer = bytearray(chunk_size) if self._fp is not None else bytearray()
        self._view = memoryview(self._buffer)
        self._chunk_size = chunk_size
        self._where = where
        self.received = 0

    def read(self) -> bytes | bytearray:
        """The next chunk, ``b""`` at the end. A full chunk is the reused buffer itself: use it
        before calling ``read`` again."""
        try:
            if self._fp is None:
                data: bytes | bytearray = self._raw.read(self._chunk_size, decode_content=False)
            else:
                n = self._fp.readinto(self._view)
                data = self._buffer if n == len(self._buffer) else bytes(self._view[:n])
        except _READ_ERRORS as exc:
            raise RetryableAPIError(
                f"{type(exc).__name__} while reading {self._where} after {self.received} bytes"
            ) from None
        self.received += len(data)
        return data

    def release(self) -> None:
        """Return a fully read connection to the pool (reused by this thread's next file)."""
        if self._fp is not None and self._fp.isclosed():
            self._raw.release_conn()


class Decoder:
    """Streams gzip/deflate away: ``Content-Encoding`` decides first, then gzip magic bytes.

    Output is bounded per call (``max_length``) so a small compressed chunk cannot balloon in
    memory; concatenated gzip members are followed. zlib checks each gzip member's trailer
    (CRC-32 and length): a mismatch, like any corrupt stream, raises :class:`RetryableAPIError`,
    so the file is fetched again rather than kept.
    """

    def __init__(self, content_encoding: str | None, chunk_size: int) -> None:
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            self._wbits: int | None = None
            self._sniff = True
        elif encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
            self._sniff = False
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped, per RFC 9110
            self._sniff = False
        else:
            raise RecordLogError(f"unsupported Content-Encoding {content_encoding!r}")
        self._chunk = chunk_size
        self._obj: Any = None if self._wbits is None else zlib.decompressobj(self._wbits)
        self._head = b""

    def feed(self, data: bytes | bytearray) -> Iterator[bytes | bytearray]:
        """Decode one chunk of the body (an identity body is passed through as is)."""
        if self._sniff:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head, self._sniff = self._head, b"", False
            if data[:2] == b"\x1f\x8b":
                self._wbits = 16 + zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
        if self._obj is None:
            yield data
            return
        yield from self._inflate(data)

    def _inflate(self, data: bytes | bytearray) -> Iterator[bytes]:
        while data:
            if self._obj.eof:
                # another gzip member follows (concatenated members are valid gzip)
                if not data.strip(b"\x00"):
                    return  # zero padding after the last member
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self._wbits is None else self._wbits)
            try:
                out = self._obj.decompress(data, self._chunk)
            except zlib.error:
                # Bad CRC or length in a gzip trailer, or corrupt data: fetch the file again.
                raise RetryableAPIError(
                    "the compressed record-log body is corrupt (gzip check failed)"
                ) from None
            if out:
                yield out
            data = self._obj.unused_data if self._obj.eof else self._obj.unconsumed_tail

    def finish(self) -> Iterator[bytes]:
        """Flush what is left; raises :class:`RetryableAPIError` if a compressed stream is cut short."""
        if self._sniff:
            self._sniff = False
            if self._head:
                yield self._head
                self._head = b""
            return
        if self._obj is None:
            return
        tail = self._obj.flush()
        if tail:
            yield tail
        if not self._obj.eof:
            raise RetryableAPIError("the compressed record-log body ended before its gzip trailer")


class Sink:
    """Where one download is written: ``<final>.partial-<uuid>``, then moved to ``final``.

    Local destinations (``file://``) use plain ``open``/``os.replace`` (an atomic rename);
    other schemes go through the fsspec filesystem (fs-level calls: ``ObjectStoragePath.open``
    and ``move`` would report the temporary name to Airflow's hook lineage; the operator
    declares the destination itself).
    """

    def __init__(self, partial: ObjectStoragePath, final: ObjectStoragePath) -> None:
        self.partial, self.final = partial, final
        self._local = partial.protocol in _LOCAL_PROTOCOLS and final.protocol in _LOCAL_PROTOCOLS
        self._file: Any = None

    def __enter__(self) -> Sink:
        if self._local:
            self._file = open(self.partial.path, "wb", buffering=0)
        else:
            self._file = self.partial.fs.open(self.partial.path, "wb")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def write(self, data: bytes | bytearray) -> None:
        if self._local:
            # Unbuffered file: each slice is one write(2); a short write is resumed.
            with memoryview(data) as view:
                start, end = 0, len(view)
                while start < end:
                    start += self._file.write(view[start : min(end, start + LOCAL_WRITE_SIZE)])
        else:
            # Remote filesystems may keep what they are given in a buffer: never a reused one.
            self._file.write(bytes(data) if isinstance(data, bytearray) else data)

    def move_into_place(self) -> None:
        if self._local:
            os.replace(self.partial.path, self.final.path)
        else:
            self.partial.fs.mv(self.partial.path, self.final.path)

    def discard(self) -> None:
        if self._local:
            try:
                os.unlink(self.partial.path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # never mask the original failure with a cleanup failure
                log.warning("Could not remove %s: %s", self.partial, type(exc).__name__)
        else:
            unlink_quietly(self.partial)


def unlink_quietly(path: ObjectStoragePath) -> None:
    """Remove ``path`` if it exists; a failure is logged, never raised over another error."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # never mask the original failure with a cleanup failure
        log.warning("Could not remove %s: %s", path, type(exc).__name__)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None
