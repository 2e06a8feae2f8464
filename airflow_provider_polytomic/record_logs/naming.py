"""Links and paths: which links are acceptable, what a link may show in logs, and where a
file lands. Nothing here does I/O."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_provider_polytomic._compat import ObjectStoragePath
from airflow_provider_polytomic.client import ClientConfig
from airflow_provider_polytomic.record_logs.errors import RecordLogError

__all__ = ["check_link", "is_api_url", "redact_url", "resolve_destination", "safe_file_name"]

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_COMPRESSED_SUFFIXES = (".gz", ".gzip")
_MAX_NAME = 120


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


def is_api_url(url: str, config: ClientConfig) -> bool:
    """Whether ``url`` is on the API origin under the API's ``/api/`` path: the only place the
    API key may be sent."""
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


def safe_file_name(url: str, record_type: str, index: int) -> str:
    """A file name derived from a link that cannot leave the folder it is joined to.

    The last path segment is percent-decoded once; anything after the last ``/`` or ``\\``
    is kept, every character outside ``[A-Za-z0-9._-]`` becomes ``_``, leading dots are
    dropped (so no ``..``, no hidden files) and a ``.gz`` suffix is removed because files are
    stored decompressed. An empty result falls back to ``<record_type>-<index>.json``.

    Example::

        safe_file_name("https://s/a/..%2F..%2Fevil.json.gz?sig=1", "inserted", 1)  # "evil.json"
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
