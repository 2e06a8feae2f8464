"""The fake's responses layer: envelopes, error bodies, and the JSON shape of every resource.

Backends hold state; these functions say how Polytomic writes it on the wire (field names,
time format, envelopes), so the shapes live in one place per resource:
:mod:`.executions` (executions, event payloads, console logs), :mod:`.syncs` (model and bulk
syncs), :mod:`.catalog` (models and connections), :mod:`.webhooks` (webhooks, deliveries).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from ..backends.context import Org
from ..records import FakeApiError

__all__ = ["error_body", "identity_json", "job_json", "list_envelope", "ok"]


def ok(data: Any) -> dict[str, Any]:
    """``{"data": ...}``, Polytomic's envelope of every answer."""
    return {"data": data}


def list_envelope(data: list[Any], next_page_token: str | None) -> dict[str, Any]:
    """A token-paged list: ``pagination`` only when there is a next page."""
    envelope: dict[str, Any] = {"data": data}
    if next_page_token:
        envelope["pagination"] = {"next_page_token": next_page_token}
    return envelope


def error_body(
    shape: Literal["api_error", "legacy"], status: int, message: str, key: str | None = None
) -> dict[str, Any]:
    """An error body as the SDK parses it: ``ApiError`` or the older ``RestErrResponse``."""
    if shape == "legacy":
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return {"code": status, "error": message, "status": phrase, "context": {}}
    return {
        "status": status,
        "key": FakeApiError(status, message, key).key,
        "message": message,
        "metadata": {},
    }


def identity_json(org: Org) -> dict[str, Any]:
    """``GET /api/me`` for the fake's API key: a user's organization-wide key.

    ``credential.method`` and ``credential.mode`` name the kind of key; their values are not
    documented. The key has no API-key profile (a scoped key would).
    """
    return {
        "id": org.user_id,
        "email": org.user_email,
        "organization_id": org.organization_id,
        "organization_name": org.organization_name,
        "is_user": True,
        "is_organization": False,
        "is_partner": False,
        "is_system": False,
        "role": "admin",
        "credential": {"method": "api_key", "mode": "user"},
    }


def job_json(job: Any) -> dict[str, Any]:
    """An asynchronous job (``JobResponse``)."""
    return {
        "job_id": job.id,
        "type": job.type,
        "status": job.status,
        "error": job.error,
        "result": job.result,
    }
