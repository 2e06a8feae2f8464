"""Asynchronous jobs polled at ``GET /api/jobs/{type}/{id}`` (the fake runs log exports)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ..records import FakeApiError
from .context import Org

__all__ = ["JOB_TYPES", "Job", "JobsBackend"]

JOB_TYPES = ("createmodel", "updatemodel", "previewmodel", "samplemodel", "exportlogs", "connectionproxy")
"""The job types the endpoint accepts (any other answers 400), per the official SDK."""


@dataclass
class Job:
    id: str
    type: str
    status: str
    polls_left: int
    """Polls that still answer ``running`` before the job is ``done``."""
    final_result: Any
    result: Any = None
    error: str | None = None


class JobsBackend:
    """Jobs that finish after a set number of polls (``FakeSettings.export_job_polls``).

    Polytomic documents only that a job is ``running`` until it is ``done`` or ``failed``;
    counting polls rather than seconds keeps tests deterministic.
    """

    def __init__(self, org: Org) -> None:
        """No jobs yet."""
        self._org = org
        self._jobs: dict[tuple[str, str], Job] = {}

    def create(self, job_type: str, result: Any) -> Job:
        """A ``running`` job that ends ``done`` with ``result``."""
        polls = max(0, int(self._org.settings.export_job_polls))
        job = Job(str(uuid.uuid4()), job_type, "running" if polls else "done", polls, result)
        if not polls:
            job.result = result
        with self._org.lock:
            self._jobs[(job_type, job.id)] = job
        return job

    def poll(self, job_type: str, job_id: str) -> Job:
        """The job's state after one more poll; 400 on an unknown type, 404 on an unknown id."""
        if job_type not in JOB_TYPES:
            raise FakeApiError(400, f"job type must be one of {', '.join(JOB_TYPES)}")
        with self._org.lock:
            job = self._jobs.get((job_type, job_id))
            if job is None:
                raise FakeApiError(404, f"job {job_id} not found")
            if job.status == "running":
                job.polls_left -= 1
                if job.polls_left < 0:
                    job.status, job.result = "done", job.final_result
            return job
