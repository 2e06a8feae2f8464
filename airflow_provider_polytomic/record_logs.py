"""Stream a sync execution's record logs from Polytomic's signed links into any object storage.

This is the engine behind
:class:`~airflow_provider_polytomic.operators.record_logs.PolytomicDownloadRecordLogsOperator`;
it has no Airflow operator machinery and can be used on its own::

    hook = PolytomicHook()
    downloader = RecordLogDownloader(hook, "s3://aws_default@bucket/polytomic/run-1")
    result = downloader.download(sync_id, execution_id, ("inserted", "updated"))
    result.to_xcom()  # {"sync_id", "execution_id", "files": [...], "counts": {...}}

How it works, and why:

* **Links.** The ``sync.completed`` event of the execution carries lists of links per record
  type. Events live 48 hours and may be dropped, so when the event cannot be found the links
  come from ``GET /api/syncs/{sync_id}/executions/{id}/{type}``. A link answering 403/404/410
  (expired or revoked signature) is replaced by a fresh one from that endpoint, once.
* **Secrets.** Links are fetched with a separate ``requests`` session that never carries the
  API key; a hop gets the key only when it is on the API origin itself
  (:attr:`ClientConfig.api_host`) under ``/api/``. Redirects are followed hop by hop so that
  rule is applied to each hop, and only ``http``/``https`` hops are allowed. Signed links are
  credentials too: only their scheme, host and path ever reach logs and exceptions.
* **Streaming.** Bodies are read with ``readinto`` into one reused buffer per file
  (:class:`_BodyReader`), gunzipped on the fly (``Content-Encoding: gzip`` or gzip magic
  bytes), written to ``<final>.partial-<uuid>`` (plain ``open`` for local destinations,
  fsspec otherwise) and counted exactly by :class:`RecordCounter` (C scanners with the GIL
  released when built, pure Python otherwise).
  Nothing holds a whole file in memory.
* **Atomic placement.** A file is moved to its final name only when the body is complete:
  the wire length equals ``Content-Length``, a gzip stream reached its trailer (CRC checked)
  and a JSON array was closed. So a file at a final name is always complete.
* **Reruns.** After the move a small marker ``_polytomic/<record_type>/<name>.done`` (JSON:
  ids, bytes, records) is written next to the data. A file counts as already complete when its
  marker names the same sync and execution and the data file's size equals the marker's
  ``bytes``; such files are skipped unless ``overwrite=True``. A final file without a marker
  (crash between move and marker) is downloaded again. A marker from another execution means
  the destination is shared between executions, which is refused unless ``overwrite=True``.
* **Retries.** Transient failures (connection errors, truncated bodies, 429, 5xx) are retried
  with the connection's :class:`~airflow_provider_polytomic.client.RetryPolicy`, the same
  policy as API calls.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urljoin, urlsplit

import requests
import tenacity
import urllib3

try:  # a dependency of Airflow 3 itself; the structural scanner counts without it
    import msgspec as _msgspec

    _DecodeError: type[Exception] = _msgspec.DecodeError
except ImportError:  # pragma: no cover
    _msgspec = None  # type: ignore[assignment]
    _DecodeError = ValueError

from airflow_provider_polytomic._compat import AirflowException, ObjectStoragePath
from airflow_provider_polytomic.client import (
    ClientConfig,
    RetryableAPIError,
    RetryPolicy,
    parse_retry_after,
    user_agent,
)
from airflow_provider_polytomic.exceptions import PolytomicNotFoundError
from airflow_provider_polytomic.models import (
    BulkExecution,
    Event,
    EventType,
    Execution,
    ExecutionLogUrls,
    SyncCompletedPayload,
    SyncKind,
)

try:  # optional C scanners, built at install time when a C compiler is available
    from airflow_provider_polytomic import _record_scan
except ImportError:
    _record_scan = None  # type: ignore[assignment]

NATIVE_COUNTING: bool = _record_scan is not None
"""Whether record counting uses the C scanners (``airflow_provider_polytomic._record_scan``).
When False (no compiler at install time) the pure-Python paths count the same records, more
slowly."""

log = logging.getLogger(__name__)

RecordType = Literal["inserted", "updated", "deleted", "errored", "total"]
RECORD_TYPES: tuple[str, ...] = ("inserted", "updated", "deleted", "errored", "total")
"""Record types a ``sync.completed`` event links to, in XCom order."""

EVENT_LINK_FIELDS: dict[str, str] = {
    "inserted": "inserted_records",
    "updated": "updated_records",
    "deleted": "deleted_records",
    "errored": "errored_records",
    "total": "total_records",
}
"""Record type -> the ``sync.completed`` payload field listing its links."""

LOG_TYPES: dict[str, str] = {
    "inserted": "inserts",
    "updated": "updates",
    "deleted": "deletes",
    "errored": "errors",
    "total": "records",
}
"""Record type -> ``{type}`` of ``GET /api/syncs/{sync_id}/executions/{id}/{type}``."""

_EVENT_COUNT_FIELDS: dict[str, str] = {
    "inserted": "inserted_count",
    "updated": "updated_count",
    "errored": "error_count",
    "total": "record_count",
}
_EXECUTION_COUNT_FIELDS: dict[str, str] = {
    "inserted": "insert",
    "updated": "update",
    "deleted": "delete",
    "errored": "error",
    "total": "total",
}

MARKER_DIR = "_polytomic"
"""Folder under the destination holding the completion markers (kept out of the data folders)."""
MARKER_SUFFIX = ".done"

DEFAULT_CHUNK_SIZE = 1024 * 1024
LOCAL_WRITE_SIZE = 128 * 1024
"""Local files are written in slices of this size, not one write per 1 MiB chunk. A 1 MiB
write makes the kernel fill the page cache with large folios, which costs several times the
CPU when the free memory behind them has been handed back to a VM's host (free page
reporting, as on this project's CI VM): writing 1 GiB there cost 1.54 ms of CPU per MiB in
1 MiB writes against 0.64 ms in 128 KiB writes (0.29 and 0.31 ms into pages freed a moment
earlier; ``benchmarks/record_counting.py``). curl writes 16 KiB at a time and never pays it."""
_MAX_REDIRECTS = 10
_REFRESH_STATUSES = frozenset({403, 404, 410})
_PARTIAL_RE = re.compile(r"\.partial-[0-9a-f]{32}$")
_MAX_NAME = 120
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


# ------------------------------------------------------------------------------- errors


class RecordLogError(AirflowException):
    """Downloading record logs failed (a message safe to log: no key, no link signature)."""


class RecordCountMismatchError(RecordLogError):
    """Raised under ``strict=True`` when counted records differ from Polytomic's counts."""


class _LinkRejected(Exception):
    """A signed link answered 403/404/410: it expired or was revoked, a fresh one may work."""

    def __init__(self, status: int, where: str) -> None:
        super().__init__(f"HTTP {status} from {where}")
        self.status = status


# ------------------------------------------------------------------------------ helpers


def redact_url(url: str) -> str:
    """``scheme://host/path`` of a link: the query of a signed URL is a credential."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable link>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def check_link(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host, else raise :class:`RecordLogError`."""
    if not isinstance(url, str):
        raise RecordLogError(f"record-log link must be a string, got {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise RecordLogError("record-log link is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise RecordLogError(
            f"refusing record-log link with scheme {parts.scheme!r}: only http and https are allowed"
        )
    if not parts.hostname:
        raise RecordLogError(f"refusing record-log link without a host: {redact_url(url)}")
    return url.strip()


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_COMPRESSED_SUFFIXES = (".gz", ".gzip")


def safe_file_name(url: str, record_type: str, index: int) -> str:
    """A file name derived from a link that cannot leave the folder it is joined to.

    The last path segment is percent-decoded once; anything after the last ``/`` or ``\\``
    is kept, every character outside ``[A-Za-z0-9._-]`` becomes ``_``, leading dots are
    dropped (so no ``..``, no hidden files) and a ``.gz`` suffix is removed because files are
    stored decompressed. An empty result falls back to ``<record_type>-<index>.json``.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    segment = unquote(path.rsplit("/", 1)[-1])
    segment = re.split(r"[/\\]", segment)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", segment).lstrip(".")
    lowered = name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = name.strip("._")[:_MAX_NAME] if name.strip("._") else ""
    if not name or name in (".", ".."):
        name = f"{record_type}-{index:04d}.json"
    return name


def resolve_destination(destination: str | ObjectStoragePath | Path) -> ObjectStoragePath:
    """Turn a destination (URI, plain local folder, ``Path`` or ``ObjectStoragePath``) into an
    :class:`ObjectStoragePath`. Plain paths become absolute ``file://`` URIs."""
    if isinstance(destination, ObjectStoragePath):
        return destination
    if isinstance(destination, Path):
        return ObjectStoragePath(destination.expanduser().resolve().as_uri())
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError(f"destination must be a non-empty string or ObjectStoragePath, got {destination!r}")
    text = destination.strip()
    if "://" not in text:
        return ObjectStoragePath(Path(text).expanduser().resolve().as_uri())
    return ObjectStoragePath(text)


# ------------------------------------------------------------------------------ counting


_KEEP_STRUCTURE = bytes(set(range(256)) - set(b'"[]{},'))
_KEEP_GROUPS = bytes(set(range(256)) - set(b"[]{}"))
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# A complete group nested at most three deep, matched in one go (possessive, no backtracking):
# a typical record is erased by one match instead of one per nested group. Deeper nesting is
# handled by repeating the substitution.
_GROUP1 = rb"[\[{][^\[\]{}]*+[\]}]"
_GROUP2 = rb"[\[{](?:[^\[\]{}]++|" + _GROUP1 + rb")*+[\]}]"
_INNER_GROUP = re.compile(rb"[\[{](?:[^\[\]{}]++|" + _GROUP2 + rb")*+[\]}]")
_FIRST_GROUP_CHAR = re.compile(rb"[\[\]{}]")
_BLANK_LINE_START = re.compile(rb"\n[ \t\r\n\x0b\x0c]")
_WS = b" \t\r\n"
_WS_NO_NEWLINE = b" \t\r\x0b\x0c"
_WS_BYTES = frozenset(_WS)

_FAST_CARRY_LIMIT = 4 * 1024 * 1024
"""Bytes the fast array path may hold without finding an element boundary before it hands the
rest of the document to the structural scanner (a single huge element): bounds memory."""
_FAST_FAILURES = 3
"""Boundary guesses msgspec may refuse per document before the structural scanner keeps it."""
_GUESSES = 3
"""Boundary guesses tried (last one first) per chunk before the scanner counts the chunk."""
_SIGNATURE_SCAN = 256


class RecordCounter:
    """Counts records in a JSON array or JSON lines document fed in chunks, in bounded memory.

    What is counted: the top-level elements of a JSON array, or the lines of a JSON lines
    document that hold something other than whitespace. The counter counts; it does not
    validate (a record that is not valid JSON is still one record).

    Three engines give the same counts (the tests check them against each other):

    * **C scanners** (:data:`NATIVE_COUNTING`, the usual case): ``_record_scan``, built at
      install time, scans each chunk with the GIL released, so concurrent downloads overlap
      their counting with I/O. With SSE2, JSON lines go 16 bytes at a time and arrays in
      64-byte blocks (simdjson-style quote, escape and structure bit masks).
    * **msgspec** (arrays, without the C scanners): the bytes since the last known element
      boundary are kept, the last likely boundary in them is found with ``bytes.rfind`` (the
      opening bytes of the first element, e.g. ``{"id":``, preceded by a comma), and
      everything before it is parsed at C speed by ``msgspec`` (an Airflow 3 dependency) as
      ``list[Raw]``. A wrong guess (a comma inside a string or a nested value) can never parse
      as a list of complete values, so a successful parse proves the boundary and gives the
      exact number of elements before it.
    * **Structural scanner** (arrays, fallback of the msgspec path): escapes removed, string
      contents dropped by quote parity after ``bytes.translate``, closed groups erased with a
      regex, top-level commas counted; O(nesting) state, no per-byte Python loop. It takes over
      when msgspec refuses a piece (a wrong guess, or JSON msgspec does not accept such as
      ``NaN``), when no boundary shows up within :data:`_FAST_CARRY_LIMIT` bytes, or when
      msgspec is missing; at the next boundary it proves to be top-level, the msgspec path
      resumes. JSON lines without the C scanners are counted with ``bytes.count``.

    The format is taken from ``hint`` (``"json"`` / ``"jsonl"``) when given, else sniffed from
    the first non-whitespace byte: ``[`` means array, anything else JSON lines.

    :param fast: use the msgspec path for arrays when msgspec is importable and the C scanners
        are not used (tests turn it off to check the structural scanner on its own).
    :param native: use the C scanners when they are built (tests turn it off to check the
        pure-Python engines).
    :ivar records: the count so far (elements or lines seen to start; with the msgspec path,
        elements before the last proven boundary plus those the scanner has seen start).
    :ivar complete: False while an array is still open (a truncated array never completes).
    """

    def __init__(
        self, hint: Literal["json", "jsonl"] | None = None, *, fast: bool = True, native: bool = True
    ) -> None:
        self.hint = hint
        self.mode: Literal["array", "lines"] | None = None
        self.records = 0
        self.complete = False
        self.trailing_garbage = False
        self._native = native and _record_scan is not None
        self._depth = 0  # C array scanner: nesting inside the current element
        # msgspec array path
        self._decoder: Any = _raw_list_decoder() if fast and not self._native else None
        self._fast = self._decoder is not None
        self._buf = bytearray(b"[")  # "[" + the document since the last proven boundary
        self._signature: bytes | None = None
        self._signature_known = False
        self._failures = 0
        # structural scanner state
        self._in_string = False
        self._escape_pending = False
        self._carry = b""  # unclosed openers of the current element, commas removed
        self._awaiting_first = True
        self._closed = False
        # lines state
        self._line_open = False

    def feed(self, chunk: bytes | bytearray) -> None:
        """Count the records of the next chunk of the decoded document.

        The counter keeps no reference to ``chunk``: a reused read buffer may be passed.
        """
        if not chunk:
            return
        if self.mode is None:
            stripped = chunk.lstrip(_WS)
            if not stripped:
                return
            if stripped[:1] == b"[" and self.hint != "jsonl":
                self.mode = "array"
                chunk = stripped[1:]
            else:
                self.mode = "lines"
        if self._native:
            self._feed_native(chunk)
        elif self.mode == "lines":
            self._feed_lines(chunk)
        elif self._fast:
            self._feed_fast(chunk)
        else:
            self._feed_scanner_resuming(chunk)

    def finish(self) -> int | None:
        """Close the document; the record count, or None when the document is not a complete
        array or JSON lines document."""
        if self.mode is None:
            # empty body: zero records, a legitimate "nothing to report"
            self.complete = True
            return 0
        if self.mode == "lines":
            self.complete = True
            return self.records
        if self._fast:
            count = self._decode(len(self._buf))
            if count is not None:
                # A valid array, closed, with nothing but whitespace after it.
                self.records += count
                self._buf = bytearray()
                self._closed = self.complete = True
                return self.records
            self._to_scanner()
        self.complete = self._closed and not self.trailing_garbage
        return self.records if self.complete else None

    # -- C scanners ---------------------------------------------------------------------------

    def _feed_native(self, chunk: bytes | bytearray) -> None:
        if self.mode == "lines":
            added, self._line_open = _record_scan.scan_lines(chunk, self._line_open)
            self.records += added
            return
        (
            added,
            self._in_string,
            self._escape_pending,
            self._depth,
            self._awaiting_first,
            self._closed,
            trailing,
        ) = _record_scan.scan_array(
            chunk, self._in_string, self._escape_pending, self._depth, self._awaiting_first, self._closed
        )
        self.records += added
        self.trailing_garbage = self.trailing_garbage or trailing

    # -- JSON array: msgspec path --------------------------------------------------------------

    def _feed_fast(self, chunk: bytes | bytearray) -> None:
        buf = self._buf
        searched = max(1, len(buf) - _SIGNATURE_SCAN)
        buf += chunk
        if not self._signature_known:
            self._learn_signature()
            searched = 1
        cut = self._find_boundary(buf, searched) if self._signature_known else -1
        if cut < 0:
            if len(buf) > _FAST_CARRY_LIMIT:
                self._to_scanner()
            return
        guess = cut
        for _ in range(_GUESSES):
            count = self._decode(guess)
            if count is not None:
                self.records += count
                del buf[1 : guess + 1]
                return
            # Not a top-level boundary (a nested object starting like a record, or a string
            # holding one): try the likely boundary before it.
            guess = self._find_boundary(buf, 1, guess)
            if guess < 0:
                break
        # No guess parsed (or the JSON is one msgspec refuses, such as NaN): count the piece
        # exactly with the scanner, which also tells whether its last comma was top-level.
        self._failures += 1
        rest = bytes(buf[cut + 1 :])
        del buf[cut + 1 :]
        self._to_scanner()
        if self._can_resume() and self._scanner_clean() and not self._awaiting_first:
            self._resume(rest)  # top-level after all: msgspec refused the JSON itself (NaN...)
        else:
            self._feed_scanner_resuming(rest)

    def _decode(self, end: int) -> int | None:
        """Elements of ``buf[:end]`` closed with ``]`` (the byte at ``end`` is a comma, or ``end``
        is the length), or None when that is not a valid JSON array."""
        buf = self._buf
        restore = end < len(buf)
        if restore:
            buf[end] = 0x5D  # "]" over the boundary comma
            view = memoryview(buf)[: end + 1]
        else:
            view = memoryview(buf)
        try:
            return len(self._decoder.decode(view))  # the Raw list dies here, before release()
        except _DecodeError:
            return None
        finally:
            view.release()
            if restore:
                buf[end] = 0x2C

    def _learn_signature(self) -> None:
        """The opening bytes of the first element: what a boundary is searched by."""
        head = bytes(self._buf[1 : 1 + 2 * _SIGNATURE_SCAN]).lstrip(_WS)
        if not head:
            return
        first = head[:1]
        if first == b"{":
            colon = head.find(b":", 0, _SIGNATURE_SCAN)
            if colon < 0 and len(head) < _SIGNATURE_SCAN:
                return  # wait for more bytes
            signature = head[: colon + 1] if colon > 0 and b"\\" not in head[:colon] else b"{"
        elif first in (b"[", b'"'):
            signature = first
        elif first == b"]":
            signature = None  # empty array: nothing to cut
        else:
            signature = b""  # numbers and literals: any comma is a candidate
        self._signature, self._signature_known = signature, True

    def _find_boundary(self, data: bytes | bytearray, start: int, end: int | None = None) -> int:
        """Index of the last comma in ``data[start:end]`` that likely separates two top-level
        elements (followed by optional whitespace and the signature), or -1."""
        signature = self._signature
        if signature is None:
            return -1
        if end is None:
            end = len(data)
        if not signature:
            return data.rfind(b",", start, end)
        for _ in range(4):
            at = data.rfind(signature, start, end)
            if at < 1:
                return -1
            i = at - 1
            while i > 0 and data[i] in _WS_BYTES:
                i -= 1
            if data[i] == 0x2C:
                return i
            end = at + len(signature) - 1
        return -1

    def _to_scanner(self) -> None:
        """Hand the bytes since the last proven boundary to the structural scanner."""
        rest = bytes(self._buf[1:])
        self._buf = bytearray(b"[")
        self._fast = False
        self._awaiting_first = True  # at the start of an element (or of the whole array)
        self._feed_scanner(rest)

    def _can_resume(self) -> bool:
        return (
            self._decoder is not None
            and self._signature_known
            and not self._closed
            and self._failures < _FAST_FAILURES
        )

    def _resume(self, rest: bytes | bytearray) -> None:
        """Back to the fast path right after a comma the scanner proved top-level. The scanner
        counted the element after that comma when it saw the comma; the fast path will count
        it again when it parses it, so it is taken back here."""
        self.records -= 1
        self._fast = True
        self._buf = bytearray(b"[")
        self._buf += rest

    def _feed_scanner_resuming(self, chunk: bytes | bytearray) -> None:
        """Scanner mode: feed ``chunk``, returning to the fast path after the last likely
        boundary in it if the scanner proves it top-level."""
        cut = self._find_boundary(chunk, 0) if self._can_resume() else -1
        if cut < 0:
            self._feed_scanner(chunk)
            return
        self._feed_scanner(chunk[: cut + 1])
        if self._scanner_clean() and not self._awaiting_first:
            self._resume(chunk[cut + 1 :])
        else:
            self._feed_scanner(chunk[cut + 1 :])

    def _scanner_clean(self) -> bool:
        """Outside strings and groups: after a comma, that comma was a top-level one."""
        return not (self._in_string or self._escape_pending or self._carry or self._closed)

    # -- JSON array: structural scanner --------------------------------------------------------

    def _feed_scanner(self, chunk: bytes | bytearray) -> None:
        if not chunk:
            return
        if self._closed:
            if chunk.strip(_WS):
                self.trailing_garbage = True
            return
        if self._awaiting_first:
            head = chunk.lstrip(_WS)
            if not head:
                return
            self._awaiting_first = False
            if head[:1] == b"]":
                self._closed = True
                if head[1:].strip(_WS):
                    self.trailing_garbage = True
                return
            self.records += 1
            chunk = head
        original = chunk
        if self._escape_pending:
            chunk = chunk[1:]
            self._escape_pending = False
        # Only escaped quotes and backslashes can change quote parity; skip the regex when
        # neither occurs (the usual case: most escapes are \uXXXX or \n).
        if b'\\"' in chunk or b"\\\\" in chunk:
            chunk = _ESCAPE.sub(b"", chunk)
        if chunk.endswith(b"\\"):
            # a lone backslash ending the chunk escapes the first byte of the next chunk
            chunk = chunk[:-1]
            self._escape_pending = True
        # Only quotes and structure remain; with escapes gone, "inside a string" is pure quote
        # parity, and dropping adjacent quote pairs first keeps the split below short.
        structure = bytes(chunk.translate(None, _KEEP_STRUCTURE)).replace(b'""', b"")
        parts = structure.split(b'"')
        outside = parts[1::2] if self._in_string else parts[0::2]
        if len(parts) % 2 == 0:
            self._in_string = not self._in_string
        skeleton = unreduced = self._carry + b"".join(outside)
        while True:
            skeleton, n = _INNER_GROUP.subn(b"", skeleton)
            if not n:
                break
        # What is left: top-level commas, then possibly the array's closing bracket and/or the
        # openers of an element still in progress.
        first = _FIRST_GROUP_CHAR.search(skeleton)
        end = first.start() if first else len(skeleton)
        self.records += skeleton.count(b",", 0, end)
        rest = skeleton[end:]
        if rest[:1] in (b"]", b"}"):
            self._closed = True
            self._carry = b""
            # Reduction also erased any complete groups after the close; find the close in the
            # unreduced skeleton (once per document) to see whether anything followed it.
            if rest[1:].strip(b",") or _after_close(unreduced).strip(b","):
                self.trailing_garbage = True
            elif original.rstrip(_WS)[-1:] not in (b"]", b"}"):
                # Nothing structural follows the close, so the close is the chunk's last
                # non-whitespace byte unless something else (a number, a word) follows it.
                self.trailing_garbage = True
        else:
            self._carry = rest.translate(None, b",")

    # -- JSON lines ----------------------------------------------------------------------------

    def _feed_lines(self, chunk: bytes | bytearray) -> None:
        if chunk[:1] not in b" \t\r\n\x0b\x0c" and _BLANK_LINE_START.search(chunk) is None:
            # Fast path, the usual case: no blank or whitespace-led line, so every newline ends
            # a line with content and the last line is open iff the chunk does not end one.
            newlines = chunk.count(b"\n")
            self.records += newlines + (0 if self._line_open else 1) - (1 if chunk.endswith(b"\n") else 0)
            self._line_open = not chunk.endswith(b"\n")
            return
        text = chunk.translate(None, _WS_NO_NEWLINE)
        if not text:
            return
        segments = len(text.split())
        if self._line_open and text[:1] != b"\n":
            segments -= 1  # continues the line counted in the previous chunk
        self.records += segments
        self._line_open = text[-1:] != b"\n"


def _raw_list_decoder() -> Any:
    """A msgspec decoder of ``list[Raw]`` (validates JSON, builds no values), or None."""
    if _msgspec is None:
        return None
    return _msgspec.json.Decoder(list[_msgspec.Raw])


def _after_close(skeleton: bytes) -> bytes:
    """The structure following the first unmatched closer of ``skeleton``."""
    depth = 0
    for i, byte in enumerate(skeleton):
        if byte in b"[{":
            depth += 1
        elif byte in b"]}":
            if depth == 0:
                return skeleton[i + 1 :]
            depth -= 1
    return b""


def count_records(chunks: Iterable[bytes], hint: Literal["json", "jsonl"] | None = None) -> int | None:
    """Count the records of a document given as chunks (see :class:`RecordCounter`)."""
    counter = RecordCounter(hint)
    for chunk in chunks:
        counter.feed(chunk)
    return counter.finish()


def format_hint(name: str, content_type: str | None) -> Literal["json", "jsonl"] | None:
    """``jsonl`` for ``.jsonl``/``.ndjson`` names or ndjson/jsonl content types, ``json`` for
    ``.json``, else None (sniff)."""
    lowered = name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        lowered = lowered.removesuffix(suffix)
    ctype = (content_type or "").lower()
    if lowered.endswith((".jsonl", ".ndjson")) or any(t in ctype for t in ("ndjson", "jsonl", "json-seq")):
        return "jsonl"
    if lowered.endswith(".json"):
        return "json"
    return None


# --------------------------------------------------------------------------- decompression


class _Decoder:
    """Streams gzip/deflate away: ``Content-Encoding`` decides first, then gzip magic bytes.

    Output is bounded per call (``max_length``) so a small compressed chunk cannot balloon in
    memory; concatenated gzip members are followed.
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

    @property
    def compressed(self) -> bool:
        return self._wbits is not None

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
                raise RecordLogError("the record-log body is not valid gzip/deflate data") from None
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


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FileResult:
    """One record-log file in the destination.

    :ivar record_type: inserted, updated, deleted, errored or total.
    :ivar uri: where it was written (``file://``, ``s3://``, ...).
    :ivar bytes: its size (decompressed JSON).
    :ivar records: records counted in it (None when the body is neither an array nor JSON lines).
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
    """What a download produced: files, per-type counts and the counts Polytomic reported."""

    sync_id: str
    execution_id: str
    files: list[FileResult]
    counts: dict[str, int]
    expected_counts: dict[str, int | None] = field(default_factory=dict)
    link_source: Literal["event", "api"] = "event"
    mismatches: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        """The operator's XCom: URIs and numbers, never record data or links."""
        return {
            "sync_id": self.sync_id,
            "execution_id": self.execution_id,
            "files": [f.to_xcom() for f in self.files],
            "counts": dict(self.counts),
        }


@dataclass
class LinkSet:
    """Links per record type plus the counts Polytomic reported for them."""

    links: dict[str, list[str]]
    expected_counts: dict[str, int | None]
    source: Literal["event", "api"]


class _HookLike(Protocol):
    """What the engine needs from :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook`."""

    @property
    def config(self) -> ClientConfig: ...

    def iter_events(self, event_type: str | None = ...) -> Iterator[Event]: ...

    def get_execution_log_urls(
        self, sync_id: str, execution_id: str, log_type: str = ..., *, sync_kind: SyncKind = ...
    ) -> ExecutionLogUrls: ...

    def get_execution(
        self, sync_id: str, execution_id: str, *, sync_kind: SyncKind = ...
    ) -> Execution | BulkExecution: ...


# ------------------------------------------------------------------------------ discovery


def find_completed_event(hook: _HookLike, sync_id: str, execution_id: str) -> SyncCompletedPayload | None:
    """The ``sync.completed`` payload of the execution within the events API's 48-hour window."""
    found: SyncCompletedPayload | None = None
    for event in hook.iter_events(event_type=EventType.SYNC_COMPLETED):
        payload = event.payload
        if payload.execution_id != execution_id or not isinstance(payload, SyncCompletedPayload):
            continue
        if payload.sync_id and payload.sync_id != sync_id:
            continue
        found = payload  # keep iterating: a duplicate delivered later carries the same data
    return found


def discover_links(
    hook: _HookLike,
    sync_id: str,
    execution_id: str,
    record_types: Sequence[str],
    *,
    sync_kind: SyncKind = "model",
) -> LinkSet:
    """Links of each record type: from the ``sync.completed`` event, else the execution log API.

    Bulk syncs have no record links in their events and a single log set (``total``).
    """
    payload = find_completed_event(hook, sync_id, execution_id) if sync_kind == "model" else None
    if payload is not None:
        links: dict[str, list[str]] = {}
        expected: dict[str, int | None] = {}
        for rtype in record_types:
            links[rtype] = list(getattr(payload, EVENT_LINK_FIELDS[rtype]) or [])
            count_field = _EVENT_COUNT_FIELDS.get(rtype)
            expected[rtype] = getattr(payload, count_field) if count_field else None
        log.info("Record-log links for execution %s come from its sync.completed event.", execution_id)
        return LinkSet(links, expected, "event")

    log.info(
        "No sync.completed event for execution %s in the events API (older than 48 h or dropped); "
        "asking the execution log endpoint for links.",
        execution_id,
    )
    try:
        execution = hook.get_execution(sync_id, execution_id, sync_kind=sync_kind)
    except PolytomicNotFoundError:
        raise RecordLogError(f"Polytomic has no execution {execution_id!r} of sync {sync_id!r}") from None
    links = {}
    expected = {}
    for rtype in record_types:
        answer = hook.get_execution_log_urls(sync_id, execution_id, LOG_TYPES[rtype], sync_kind=sync_kind)
        links[rtype] = list(answer.urls)
        expected[rtype] = _execution_count(execution, rtype)
    return LinkSet(links, expected, "api")


def _execution_count(execution: Execution | BulkExecution, record_type: str) -> int | None:
    if isinstance(execution, BulkExecution):
        return execution.record_count if record_type == "total" else None
    if execution.counts is None:
        return None
    value = getattr(execution.counts, _EXECUTION_COUNT_FIELDS[record_type], None)
    return value if isinstance(value, int) else None


# ------------------------------------------------------------------------------ download


@dataclass(frozen=True)
class _Job:
    record_type: str
    index: int
    url: str
    name: str
    final: ObjectStoragePath
    marker: ObjectStoragePath


@dataclass
class _Attempt:
    wire_bytes: int = 0
    written: int = 0
    records: int | None = None


class RecordLogDownloader:
    """Downloads record logs of one execution into ``destination``.

    Layout: ``<destination>/<record_type>/<file name from the link>`` and completion markers
    under ``<destination>/_polytomic/<record_type>/``.

    :param hook: a :class:`~airflow_provider_polytomic.hooks.polytomic.PolytomicHook`.
    :param destination: URI (``file://``, ``s3://conn@bucket/prefix``, ``memory://``...), plain
        local folder or :class:`ObjectStoragePath`.
    :param overwrite: download again even files a previous run completed.
    :param max_concurrency: files downloaded in parallel (threads).
    :param chunk_size: bytes read from the network per step.
    :param session_factory: builds the download session (tests and proxies); it must not carry
        credentials of its own.
    """

    def __init__(
        self,
        hook: _HookLike,
        destination: str | ObjectStoragePath | Path,
        *,
        overwrite: bool = False,
        max_concurrency: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
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
        self._session_factory = session_factory or _plain_session
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

    # -- public ---------------------------------------------------------------------------------

    def download(
        self,
        sync_id: str,
        execution_id: str,
        record_types: Sequence[str] = ("inserted", "updated"),
        *,
        sync_kind: SyncKind = "model",
        links: LinkSet | None = None,
    ) -> DownloadResult:
        """Download every file of ``record_types``; returns files and counts.

        Count mismatches are reported in :attr:`DownloadResult.mismatches`; deciding whether
        they are fatal is the caller's job (see :func:`check_counts`).

        :param links: links already discovered (skips :func:`discover_links`).
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
        counts = {t: 0 for t in record_types}
        for f in files:
            counts[f.record_type] += f.records or 0
        result = DownloadResult(
            sync_id=sync_id,
            execution_id=execution_id,
            files=files,
            counts=counts,
            expected_counts={t: link_set.expected_counts.get(t) for t in record_types},
            link_source=link_set.source,
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
                _unlink_quietly(entry)

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
            kept = self._completed_earlier(job)
            if kept is not None:
                log.info("Keeping %s: already complete from an earlier run.", kept.uri)
                return kept
        url = job.url
        refreshed = False
        while True:
            try:
                retrying = tenacity.Retrying(**self._retry_policy.tenacity_kwargs())
                attempt: _Attempt = retrying(self._attempt, job, url)
                break
            except _LinkRejected as exc:
                if refreshed:
                    raise RecordLogError(
                        f"{job.record_type} log {job.name}: a fresh link from Polytomic was also "
                        f"refused ({exc}); giving up"
                    ) from None
                log.info(
                    "%s log %s: link refused (%s), asking Polytomic for a fresh one.",
                    job.record_type,
                    job.name,
                    exc,
                )
                url = self._fresh_link(job)
                refreshed = True
            except RetryableAPIError as exc:
                raise RecordLogError(
                    f"{job.record_type} log {job.name} could not be downloaded after "
                    f"{self._retry_policy.max_retries} retries: {exc}"
                ) from None
        result = FileResult(job.record_type, str(job.final), attempt.written, attempt.records)
        self._write_marker(job, result)
        log.info(
            "Downloaded %s log %s: %d bytes, %s records.",
            job.record_type,
            job.name,
            attempt.written,
            attempt.records if attempt.records is not None else "uncounted",
        )
        return result

    # -- rerun support --------------------------------------------------------------------------

    def _completed_earlier(self, job: _Job) -> FileResult | None:
        try:
            marker = json.loads(job.marker.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("Ignoring an unreadable completion marker for %s", job.name)
            return None
        if not isinstance(marker, dict):
            return None
        if marker.get("sync_id") != self._sync_id or marker.get("execution_id") != self._execution_id:
            raise RecordLogError(
                f"{job.final} holds a record log of another execution "
                f"({marker.get('execution_id')!r}); use one destination per execution "
                "(e.g. template the execution id into it) or overwrite=True"
            )
        try:
            size = job.final.stat().st_size
        except FileNotFoundError:
            return None
        if marker.get("record_type") != job.record_type or size != marker.get("bytes"):
            return None
        records = marker.get("records")
        return FileResult(
            job.record_type,
            str(job.final),
            int(size),
            records if isinstance(records, int) else None,
            skipped=True,
        )

    def _write_marker(self, job: _Job, result: FileResult) -> None:
        body = {
            "sync_id": self._sync_id,
            "execution_id": self._execution_id,
            "record_type": job.record_type,
            "source": redact_url(job.url),
            "bytes": result.bytes,
            "records": result.records,
        }
        job.marker.write_bytes(json.dumps(body, sort_keys=True).encode())

    # -- links ----------------------------------------------------------------------------------

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
        raise RecordLogError(
            f"{job.record_type} log {job.name}: the link was refused and Polytomic lists no fresh link for it"
        )

    # -- one attempt ----------------------------------------------------------------------------

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

    def _open(self, url: str) -> requests.Response:
        """GET ``url`` following redirects hop by hop (http/https only, key only on the API origin)."""
        session = self._session()
        config = self._config
        timeout = (config.connect_timeout, config.timeout)
        current = check_link(url)
        for _ in range(_MAX_REDIRECTS + 1):
            headers = {"User-Agent": user_agent(), "Accept-Encoding": "gzip"}
            if _is_api_url(current, config):
                # Only the API's own file endpoint may need the key; it redirects to storage.
                headers.update(config.headers())
                headers["Accept-Encoding"] = "gzip"
            try:
                response = session.get(
                    current, headers=headers, stream=True, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                raise RetryableAPIError(
                    f"{type(exc).__name__} while fetching {redact_url(current)}"
                ) from None
            if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise RecordLogError(f"redirect without Location from {redact_url(current)}")
                current = check_link(urljoin(current, location))
                continue
            return response
        raise RecordLogError(f"more than {_MAX_REDIRECTS} redirects fetching {redact_url(url)}")

    def _attempt(self, job: _Job, url: str) -> _Attempt:
        response = self._open(url)
        where = redact_url(response.url or url)
        try:
            status = response.status_code
            if status in _REFRESH_STATUSES:
                raise _LinkRejected(status, where)
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise RetryableAPIError(f"HTTP {status} from {where}", retry_after=retry_after)
            if not 200 <= status < 300:
                raise RecordLogError(f"{job.record_type} log {job.name}: HTTP {status} from {where}")
            return self._stream_to_storage(job, response, where)
        finally:
            response.close()

    def _stream_to_storage(self, job: _Job, response: requests.Response, where: str) -> _Attempt:
        expected_length = _content_length(response.headers.get("Content-Length"))
        decoder = _Decoder(response.headers.get("Content-Encoding"), self.chunk_size)
        counter = RecordCounter(format_hint(job.name, response.headers.get("Content-Type")))
        partial = job.final.parent / f"{job.name}.partial-{uuid.uuid4().hex}"
        reader = _BodyReader(response, self.chunk_size, where)
        sink = _Sink(partial, job.final)
        outcome = _Attempt()
        moved = False
        try:
            with sink:
                while True:
                    raw = reader.read()
                    if not raw:
                        break
                    for piece in decoder.feed(raw):
                        # Both release the GIL (the C counter does); the reused read buffer
                        # is consumed before the next read.
                        sink.write(piece)
                        counter.feed(piece)
                        outcome.written += len(piece)
                for piece in decoder.finish():
                    sink.write(piece)
                    counter.feed(piece)
                    outcome.written += len(piece)
            outcome.wire_bytes = reader.received
            if expected_length is not None and outcome.wire_bytes != expected_length:
                raise RetryableAPIError(
                    f"{where} ended after {outcome.wire_bytes} of {expected_length} bytes (truncated)"
                )
            outcome.records = counter.finish()
            if counter.mode == "array" and not counter.complete and not counter.trailing_garbage:
                raise RetryableAPIError(f"{where}: the JSON array is not closed (truncated body)")
            if outcome.records is None:
                log.warning(
                    "%s log %s is neither a JSON array nor JSON lines; its records are not counted.",
                    job.record_type,
                    job.name,
                )
            # The old marker goes first: a crash right after the move must not leave a marker
            # vouching for bytes that are no longer there.
            _unlink_quietly(job.marker)
            sink.move_into_place()
            moved = True
            reader.release()
            return outcome
        finally:
            if not moved:
                sink.discard()


_READ_ERRORS = (http.client.HTTPException, urllib3.exceptions.HTTPError, requests.RequestException, OSError)


class _BodyReader:
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


class _Sink:
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

    def __enter__(self) -> _Sink:
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
            _unlink_quietly(self.partial)


# ------------------------------------------------------------------------------- counts


def compare_counts(result: DownloadResult) -> dict[str, tuple[int, int | None]]:
    """Record types whose counted records differ from Polytomic's count (or could not be
    counted): ``{record_type: (counted, expected)}``. Types without a known count are skipped."""
    mismatches: dict[str, tuple[int, int | None]] = {}
    uncounted = {f.record_type for f in result.files if f.records is None}
    for rtype, expected in result.expected_counts.items():
        counted = result.counts.get(rtype, 0)
        if rtype in uncounted or (expected is not None and counted != expected):
            mismatches[rtype] = (counted, expected)
    return mismatches


def check_counts(result: DownloadResult, *, strict: bool) -> None:
    """Warn about count mismatches, or raise :class:`RecordCountMismatchError` when ``strict``."""
    if not result.mismatches:
        return
    details = "; ".join(
        f"{rtype}: counted {counted}, Polytomic reported "
        f"{expected if expected is not None else 'nothing'}"
        + (
            " (some files could not be counted)"
            if any(f.records is None for f in result.files if f.record_type == rtype)
            else ""
        )
        for rtype, (counted, expected) in sorted(result.mismatches.items())
    )
    message = f"Record counts of execution {result.execution_id} do not match: {details}"
    if strict:
        raise RecordCountMismatchError(message)
    log.warning(message)


# ------------------------------------------------------------------------------ plumbing


def _plain_session() -> requests.Session:
    session = requests.Session()
    # No ~/.netrc credentials or proxy auth picked up from the environment: signed links need none.
    session.trust_env = False
    session.headers.pop("Authorization", None)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _is_api_url(url: str, config: ClientConfig) -> bool:
    parts = urlsplit(url)
    api = urlsplit(config.api_host)
    same_origin = (
        parts.scheme == api.scheme
        and (parts.hostname or "").lower() == (api.hostname or "").lower()
        and (parts.port or _default_port(parts.scheme)) == (api.port or _default_port(api.scheme))
    )
    return same_origin and parts.path.startswith(urlsplit(config.base_url).path.rstrip("/") + "/api/")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _unlink_quietly(path: ObjectStoragePath) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # never mask the original failure with a cleanup failure
        log.warning("Could not remove %s: %s", path, type(exc).__name__)


__all__ = [
    "EVENT_LINK_FIELDS",
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
