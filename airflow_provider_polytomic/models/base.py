"""The base of every wire model: unknown fields kept, nothing required beyond what identifies
an object (Polytomic adds fields and enum values over time)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Base for wire models: unknown fields kept, nothing required beyond what identifies an object."""

    # defer_build: each schema is built on first validation, not at import. A DAG file imports
    # the provider without validating anything, and building every schema up front was most of
    # what importing the models cost. build_schemas() builds them all before the first request.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


__all__ = ["WireModel"]
