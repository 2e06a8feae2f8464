"""The two costs behind the record-log operator's throughput, measured in one run each.

Run::

    .venv/bin/python benchmarks/record_counting.py                 # both parts
    .venv/bin/python benchmarks/record_counting.py --part counting
    .venv/bin/python benchmarks/record_counting.py --part writes --write-mib 1024

1. **Counting** (``--part counting``, what ``count_records=True`` adds): ``RecordCounter`` over
   an in-memory document fed in 1 MiB chunks, against ``json.loads`` of the same document (what
   parsing it would cost), back to back. Two record shapes: the throughput benchmark's
   ~520-byte records (escaped quotes, brackets inside strings) and small dense records
   (``{"id": 1, "a": "b"}``). Prints CPU ms per MiB and the counter's cost relative to
   ``json.loads``.
2. **Writes** (``--part writes``): one 1 GiB file written from Python in 1 MiB ``write()`` calls
   and in 128 KiB calls (what the operator does for local destinations), each into page-cache
   pages freed a moment earlier (``recycled``) and after a 5 s pause (``cold``: on VMs with free
   page reporting the freed memory has gone back to the host by then). Prints CPU ms per MiB
   and the ratio of 1 MiB to 128 KiB writes per condition.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="polytomic-bench-home-"))

from airflow_provider_polytomic.record_logs import LOCAL_WRITE_SIZE, RecordCounter

MIB = 1 << 20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _documents(size_mib: int) -> dict[str, tuple[str, bytes, int]]:
    """name -> (hint, document, records)."""
    big = json.dumps(
        {
            "id": 1234567,
            "email": "someone@example.com",
            "name": 'Jane "JJ" Doe, [VIP]',
            "tags": ["a", "b"],
            "nested": {"x": 1.5, "y": None},
            "note": "x" * 400,
        }
    ).encode()
    small = json.dumps({"id": 1, "a": "b"}).encode()
    docs = {}
    for label, record in (("~520-byte records", big), ("20-byte records", small)):
        n = size_mib * MIB // (len(record) + 1)
        docs[f"JSON array, {label}"] = ("json", b"[" + b",".join([record] * n) + b"]", n)
        docs[f"JSON lines, {label}"] = ("jsonl", b"\n".join([record] * n) + b"\n", n)
    return docs


def _count(doc: bytes, hint: str) -> tuple[float, int | None]:
    chunks = [doc[i : i + MIB] for i in range(0, len(doc), MIB)]  # cut before the clock starts
    counter = RecordCounter(hint)  # type: ignore[arg-type]
    start = _cpu()
    for chunk in chunks:
        counter.feed(chunk)
    count = counter.finish()
    return _cpu() - start, count


def _parse(doc: bytes, hint: str) -> tuple[float, int]:
    start = _cpu()
    if hint == "json":
        count = len(json.loads(doc))
    else:
        count = sum(1 for line in doc.splitlines() if line.strip() and json.loads(line) is not None)
    return _cpu() - start, count


def counting(args: argparse.Namespace) -> bool:
    ok = True
    print(f"\n== counting: {args.count_mib} MiB per document, median of {args.repeat}, CPU ms per MiB")
    print(f"{'document':<34}{'RecordCounter':>14}{'json.loads':>12}{'counter / json.loads':>22}")
    for name, (hint, doc, records) in _documents(args.count_mib).items():
        mib = len(doc) / MIB
        samples: dict[str, list[float]] = {"count": [], "parse": []}
        for _ in range(args.repeat):
            for label, measure in (("count", _count), ("parse", _parse)):
                seconds, count = measure(doc, hint)
                if count != records:
                    print(f"   WRONG: {label} gave {count}, expected {records}")
                    ok = False
                samples[label].append(seconds * 1000 / mib)
        ms = {k: statistics.median(v) for k, v in samples.items()}
        print(f"{name:<34}{ms['count']:>14.2f}{ms['parse']:>12.2f}{ms['count'] / ms['parse']:>22.2f}")
    return ok


def _write(path: Path, total_mib: int, piece: int) -> float:
    block = memoryview(b"\0" * MIB)
    start = _cpu()
    with open(path, "wb", buffering=0) as f:
        for _ in range(total_mib):
            for offset in range(0, MIB, piece):
                f.write(block[offset : offset + piece])
    seconds = _cpu() - start
    path.unlink()
    return seconds * 1000 / total_mib


def writes(args: argparse.Namespace) -> bool:
    print(f"\n== writes: {args.write_mib} MiB per file, CPU ms per MiB")
    print(f"{'pages':<10}{'1 MiB writes':>14}{f'{LOCAL_WRITE_SIZE >> 10} KiB writes':>16}{'ratio':>8}")
    with tempfile.TemporaryDirectory(prefix="polytomic-writes-", dir=args.workdir) as tmp:
        path = Path(tmp) / "probe.bin"
        _write(path, args.write_mib, MIB)  # so "recycled" has just-freed pages from the start
        for pages in ("recycled", "cold"):
            figures = []
            for piece in (MIB, LOCAL_WRITE_SIZE):
                if pages == "cold":
                    time.sleep(5)
                figures.append(_write(path, args.write_mib, piece))
            print(f"{pages:<10}{figures[0]:>14.2f}{figures[1]:>16.2f}{figures[0] / figures[1]:>8.2f}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("both", "counting", "writes"), default="both")
    parser.add_argument("--count-mib", type=int, default=64, help="size of each counted document")
    parser.add_argument("--repeat", type=int, default=3, help="counting runs per document (median)")
    parser.add_argument("--write-mib", type=int, default=1024, help="size of the written file")
    parser.add_argument("--workdir", default=None, help="where the file is written (default: system temp)")
    args = parser.parse_args()
    ok = True
    if args.part in ("both", "counting"):
        ok = counting(args) and ok
    if args.part in ("both", "writes"):
        ok = writes(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
