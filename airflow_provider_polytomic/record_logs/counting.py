"""Counting the records of a record-log file while it streams (opt-in: ``count_records=True``).

One pure-Python engine, :class:`RecordCounter`. It is exact, keeps O(nesting depth) state and
never holds a whole file, but it reads every byte, so it costs CPU that a plain download does
not (``benchmarks/record_logs_throughput.py`` measures both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

__all__ = ["RecordCounter", "count_records", "format_hint"]

_WS = b" \t\r\n"
_WS_BUT_NEWLINE = b" \t\r\x0b\x0c"
# Every byte except quotes and the JSON structure characters: deleted by ``bytes.translate``.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{},')))
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# An innermost group of the skeleton: an opener, top-level commas of that group, a closer.
_GROUP = re.compile(rb"[\[{],*[\]}]")
_FIRST_BRACKET = re.compile(rb"[\[\]{}]")
_NEWLINE_RUNS = re.compile(rb"\n\n+")
_COMPRESSED_SUFFIXES = (".gz", ".gzip")


class RecordCounter:
    """Counts records in a JSON array or JSON lines document fed in chunks, in bounded memory.

    What is counted: the top-level elements of a JSON array, or the lines of a JSON lines
    document that hold something other than whitespace. The counter counts; it does not
    validate (a record that is not valid JSON is still one record).

    How, without a Python loop per byte (every step is a C-level ``bytes`` or ``re`` call):

    * **JSON arrays.** Escape pairs (``\\x``) are deleted (only when the chunk has an escaped
      quote or backslash, the only escapes that matter); ``bytes.translate`` keeps only quotes
      and ``[]{},``; splitting on quotes drops string contents by quote parity, leaving the
      *skeleton* of structure outside strings. Complete groups are erased from the skeleton
      with a regex, innermost first, so what remains is the top-level commas (one more record
      each), then the array's closing bracket or the openers of an element still in progress,
      which are carried into the next chunk.
    * **JSON lines.** Whitespace other than newlines is deleted, runs of newlines are
      collapsed, and the lines are counted with ``bytes.count``.

    The format is taken from ``hint`` (``"json"`` / ``"jsonl"``) when given, else sniffed from
    the first non-whitespace byte: ``[`` means array, anything else JSON lines.

    Example::

        counter = RecordCounter()
        for chunk in (b'[{"a": "x,]"},', b' {"b": [1, 2]}]'):
            counter.feed(chunk)
        counter.finish()  # 2

    :ivar records: the count so far (elements or lines seen to start).
    :ivar complete: after :meth:`finish`: the document was a closed array (nothing but
        whitespace after it) or JSON lines. A truncated array never completes.
    :ivar trailing_garbage: something other than whitespace followed the array's close.
    """

    def __init__(self, hint: Literal["json", "jsonl"] | None = None) -> None:
        self.hint = hint
        self.mode: Literal["array", "lines"] | None = None
        self.records = 0
        self.complete = False
        self.trailing_garbage = False
        self._in_string = False
        self._escape_pending = False
        self._open = b""  # openers of the element in progress (its unclosed groups)
        self._awaiting_first = True
        self._closed = False
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
        if self.mode == "lines":
            self._feed_lines(chunk)
        else:
            self._feed_array(chunk)

    def finish(self) -> int | None:
        """Close the document; the record count, or None when the document is not a complete
        array or JSON lines document."""
        if self.mode is None:  # empty body: zero records, a legitimate "nothing to report"
            self.complete = True
            return 0
        if self.mode == "lines":
            self.complete = True
            return self.records
        self.complete = self._closed and not self.trailing_garbage
        return self.records if self.complete else None

    def _feed_array(self, chunk: bytes | bytearray) -> None:
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
                self.trailing_garbage = bool(head[1:].strip(_WS))
                return
            self.records = 1
            chunk = head
        original = chunk
        if self._escape_pending:
            chunk = chunk[1:]
            self._escape_pending = False
        # Only escaped quotes and backslashes can change quote parity (\n, \u00fc... cannot).
        if b'\\"' in chunk or b"\\\\" in chunk:
            chunk = _ESCAPE.sub(b"", chunk)
        if chunk.endswith(b"\\"):  # a lone backslash escapes the first byte of the next chunk
            chunk = chunk[:-1]
            self._escape_pending = True
        # Adjacent quotes enclose nothing: dropping them keeps the split below short.
        structure = chunk.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
        parts = structure.split(b'"')
        outside = b"".join(parts[1::2] if self._in_string else parts[0::2])
        if len(parts) % 2 == 0:
            self._in_string = not self._in_string
        skeleton = unreduced = self._open + outside
        while True:
            skeleton, erased = _GROUP.subn(b"", skeleton)
            if not erased:
                break
        first = _FIRST_BRACKET.search(skeleton)
        end = first.start() if first else len(skeleton)
        self.records += skeleton.count(b",", 0, end)
        rest = skeleton[end:]
        if rest[:1] in (b"]", b"}"):
            self._closed = True
            self._open = b""
            # Erasing groups also erased any complete groups after the close (``[1] [2]``),
            # so look after the close in the unreduced skeleton. A word or number after it
            # leaves no skeleton, but then the chunk does not end with the close; a string
            # after it leaves the chunk ending with a quote, or inside a string.
            self.trailing_garbage = (
                bool(_after_close(unreduced))
                or self._in_string
                or original.rstrip(_WS)[-1:] not in (b"]", b"}")
            )
        else:
            self._open = rest.replace(b",", b"")

    def _feed_lines(self, chunk: bytes | bytearray) -> None:
        text = chunk.translate(None, _WS_BUT_NEWLINE)
        if not text:
            return
        if b"\n\n" in text:
            text = _NEWLINE_RUNS.sub(b"\n", text)
        # No blank line is left inside ``text``: every segment between newlines has content,
        # except an empty first one (``text`` starts with a newline) and an empty last one.
        starts_line, ends_line = text.startswith(b"\n"), text.endswith(b"\n")
        lines = text.count(b"\n") + 1 - starts_line - ends_line
        if self._line_open and not starts_line:
            lines -= 1  # the first segment continues the line counted in the previous chunk
        self.records += lines
        self._line_open = not ends_line


def _after_close(skeleton: bytes) -> bytes:
    """The skeleton following the first closer that is not matched inside ``skeleton``."""
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
    """Count the records of a document given as chunks (see :class:`RecordCounter`).

    Example::

        count_records([b'{"a": 1}\\n', b'{"a": 2}\\n'])  # 2
    """
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
