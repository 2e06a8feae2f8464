"""Sign and verify Polytomic webhook deliveries (the ``Polytomic-Signature`` header).

Polytomic documents that each webhook POST carries a ``Polytomic-Signature`` header
computed as an HMAC of the request body with the webhook's ``secret``. It has **not**
published the hash function or the encoding, so both are parameters here. The defaults,
HMAC-SHA256 rendered as lowercase hex, are the common convention and what the bundled
fake server sends; validate them against one real delivery before relying on them.

Example::

    from airflow_provider_polytomic.signature import sign, verify_signature

    header = sign(b'{"type": "sync.completed"}', "my-secret")
    assert verify_signature(b'{"type": "sync.completed"}', header, "my-secret")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Literal

SIGNATURE_HEADER = "Polytomic-Signature"
"""Name of the header carrying the signature."""

Encoding = Literal["hex", "base64"]

_PREFIXES = ("sha256=", "sha1=", "sha512=", "v1=")


def _digest(body: bytes, secret: str, algorithm: str) -> bytes:
    try:
        return hmac.new(secret.encode("utf-8"), body, getattr(hashlib, algorithm)).digest()
    except AttributeError:
        raise ValueError(f"algorithm={algorithm!r} is not a hashlib algorithm") from None


def sign(body: bytes, secret: str, *, algorithm: str = "sha256", encoding: Encoding = "hex") -> str:
    """Return the signature Polytomic would send for ``body`` signed with ``secret``.

    :param body: the exact raw request body.
    :param secret: the webhook secret.
    :param algorithm: a :mod:`hashlib` name (default ``sha256``).
    :param encoding: ``hex`` (lowercase, default) or ``base64``.
    """
    digest = _digest(body, secret, algorithm)
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode("ascii")
    raise ValueError(f"encoding={encoding!r} must be 'hex' or 'base64'")


def _decode(signature: str, encoding: Encoding) -> bytes | None:
    value = signature.strip()
    lowered = value.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            value = value[len(prefix) :]
            break
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None


def verify_signature(
    body: bytes,
    signature: str | None,
    secret: str,
    *,
    algorithm: str = "sha256",
    encoding: Encoding = "hex",
) -> bool:
    """Return True when ``signature`` is a valid signature of ``body`` under ``secret``.

    The comparison is constant-time. A ``sha256=`` style prefix is tolerated; a missing,
    empty, malformed or wrong-length signature, or an empty secret, is simply invalid.
    """
    if not signature or not secret or encoding not in ("hex", "base64"):
        return False
    provided = _decode(signature, encoding)
    if provided is None:
        return False
    expected = _digest(body, secret, algorithm)
    return hmac.compare_digest(provided, expected)


__all__ = ["SIGNATURE_HEADER", "Encoding", "sign", "verify_signature"]
