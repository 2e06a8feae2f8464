"""Types of the optional C extension built from ``_record_scan.c`` (see ``RecordCounter``)."""

from typing_extensions import Buffer

def scan_array(
    data: Buffer, in_string: bool, escape: bool, depth: int, awaiting_first: bool, closed: bool, /
) -> tuple[int, bool, bool, int, bool, bool, bool]:
    """Scan the next chunk of a JSON array whose opening ``[`` has been consumed; returns
    ``(records, in_string, escape, depth, awaiting_first, closed, trailing)``."""

def scan_lines(data: Buffer, counted: bool, /) -> tuple[int, bool]:
    """Count the lines of a JSON lines chunk holding something other than whitespace; returns
    ``(records, counted)``."""
