"""Random-input driver for the C record scanners, run by ``test_record_scan_sanitizers.py``
in a subprocess under AddressSanitizer and UBSan (it imports whichever ``_record_scan`` is
first on ``PYTHONPATH``, not the package's).

Usage: ``python record_scan_fuzz.py SEED ITERATIONS``. Per iteration: a random JSON array (strings
full of quotes, backslash runs, brackets and non-ASCII) scanned in random chunks must count
exactly; random bytes as JSON lines must count the lines holding non-whitespace; random
garbage must be scanned as both without a crash. Chunks are fresh bytearrays of their exact
length, so a read past a chunk's end lands in a sanitizer redzone.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import _record_scan as scan  # type: ignore[import-not-found]

ALPHABET = '"\\,{}[]x \nü:'


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 150)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice([_text(rng), rng.randint(-(10**6), 10**6), None, True, 1.5])
    if roll < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _chunks(doc: bytes, cuts: list[int]) -> list[bytearray]:
    out, i, k = [], 0, 0
    while i < len(doc):
        out.append(bytearray(doc[i : i + cuts[k % len(cuts)]]))
        i, k = i + cuts[k % len(cuts)], k + 1
    return out


def _scan_array(doc: bytes, cuts: list[int]) -> tuple[int, bool, bool]:
    state: tuple[Any, ...] = (False, False, 0, True, False)
    total, trailing = 0, False
    for chunk in _chunks(doc, cuts):
        found = scan.scan_array(chunk, *state)
        total, state, trailing = total + found[0], found[1:6], trailing or found[6]
    return total, bool(state[4]), trailing


def _scan_lines(doc: bytes, cuts: list[int]) -> int:
    counted, total = False, 0
    for chunk in _chunks(doc, cuts):
        found, counted = scan.scan_lines(chunk, counted)
        total += found
    return total


def main(seed: int, iterations: int) -> None:
    rng = random.Random(seed)
    for _ in range(iterations):
        cuts = [rng.randint(1, 400) for _ in range(rng.randint(1, 6))]
        values = [_value(rng) for _ in range(rng.randint(0, 8))]
        doc = json.dumps(values, ensure_ascii=rng.random() < 0.5).encode()
        assert _scan_array(doc[1:], cuts) == (len(values), True, False), (doc, cuts)
        lines = b"\n".join(rng.randbytes(rng.randint(0, 80)) for _ in range(rng.randint(0, 10)))
        assert _scan_lines(lines, cuts) == sum(1 for line in lines.split(b"\n") if line.strip())
        garbage = rng.randbytes(rng.randint(0, 600))
        _scan_array(garbage, cuts)
        _scan_lines(garbage, cuts)
    print(f"ok {iterations}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
