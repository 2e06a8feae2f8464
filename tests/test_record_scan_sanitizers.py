"""The C record scanners under AddressSanitizer and UBSan.

``_record_scan.c`` reads caller buffers 16 and 64 bytes at a time; a read past a chunk's end
or undefined arithmetic would not show in the count tests (it may return the right count by
luck). Here the extension is built twice with ``-fsanitize=address,undefined`` (the SSE2 build
and the ``SCAN_PORTABLE`` byte-at-a-time build) and ``record_scan_fuzz.py`` drives each with
random documents, random chunking and random garbage in a subprocess that preloads the
sanitizer runtimes; Python's own allocator is switched off (``PYTHONMALLOC=malloc``) so every
chunk is its own allocation with redzones around it. Any report aborts the subprocess.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from airflow_provider_polytomic import record_logs

SOURCE = Path(record_logs.__file__).with_name("_record_scan.c")
DRIVER = Path(__file__).with_name("record_scan_fuzz.py")


def _runtime(compiler: list[str], name: str) -> str:
    path = subprocess.run(
        [*compiler, f"-print-file-name={name}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert os.path.isabs(path) and os.path.exists(path), f"{name} not found by {compiler[0]}: {path!r}"
    return path


@pytest.mark.parametrize("variant", ["sse2", "portable"])
def test_c_scanners_are_clean_under_sanitizers(tmp_path: Path, variant: str) -> None:
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    out = tmp_path / f"_record_scan{sysconfig.get_config_var('EXT_SUFFIX')}"
    flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
    flags += ["-fno-sanitize-recover=all", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}"]
    if variant == "portable":
        flags.append("-DSCAN_PORTABLE")
    subprocess.run([*compiler, *flags, str(SOURCE), "-o", str(out)], check=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PYTHONMALLOC": "malloc",
        "LD_PRELOAD": ":".join(_runtime(compiler, lib) for lib in ("libasan.so", "libubsan.so")),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    done = subprocess.run(
        [sys.executable, str(DRIVER), "20261127", "1500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = done.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in report, report
    assert "runtime error" not in report, report
    assert done.returncode == 0 and done.stdout.strip() == "ok 1500", report or done.stdout
