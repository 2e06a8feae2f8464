"""Reading query parameters and bodies the way Polytomic validates them (errors as API errors)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from fastapi import Request

from ..records import FakeApiError

__all__ = ["json_body", "parse_rfc3339", "q_bool", "q_int", "q_time"]

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 date-time (offset required); ValueError otherwise.

    A ``+`` turned into a space by form decoding (``...00 00:00``) is accepted.
    """
    text = value.strip()
    if re.search(r"\d \d{2}:\d{2}$", text):
        text = text[:-6] + "+" + text[-5:]
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    frac = (match.group(7) or "")[1:]
    offset = match.group(8)
    norm = (
        f"{match.group(1)}-{match.group(2)}-{match.group(3)}T{match.group(4)}:{match.group(5)}:{match.group(6)}"
        f"{'.' + (frac + '000000')[:6] if frac else ''}{'+00:00' if offset in ('Z', 'z') else offset}"
    )
    return datetime.fromisoformat(norm).astimezone(timezone.utc)


def q_bool(request: Request, name: str, status: int = 422) -> bool | None:
    """A boolean query parameter (``true``/``false``/``1``/``0``...); None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise FakeApiError(status, f"{name} must be a boolean")


def q_int(request: Request, name: str, default: int, low: int, high: int, status: int = 422) -> int:
    """An integer query parameter within ``[low, high]``; ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FakeApiError(status, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise FakeApiError(status, f"{name} must be between {low} and {high}")
    return value


def q_time(request: Request, name: str, status: int = 422) -> datetime | None:
    """An RFC 3339 query parameter; None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise FakeApiError(status, f"{name} must be an RFC 3339 date-time") from None


async def json_body(request: Request, status: int) -> dict[str, Any]:
    """The JSON object body (``{}`` when empty); ``status`` when it is not a JSON object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise FakeApiError(status, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise FakeApiError(status, "request body must be a JSON object")
    return body
