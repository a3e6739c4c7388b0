"""Asynchronous jobs, polled at ``/services/rest/async/v1/job/{id}``.

A job has one task; the task's result is what the work produced. The CSV import uses jobs
(see ``csv_import.py``). An ``X-NetSuite-Idempotency-Key`` sent again returns NetSuite's
``IDEMPOTENCY_ERROR`` pointing at the first job instead of starting a second one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from revbridge.netsuite.sandbox.errors import ErrorDetail, NetSuiteError
from revbridge.netsuite.sandbox.records import JsonObject

Progress = Literal["pending", "succeeded", "failed"]
ASYNC_PREFIX = "/services/rest/async/v1/job"


@dataclass(slots=True)
class Job:
    id: str
    kind: str
    submitted: datetime
    progress: Progress = "pending"
    result: JsonObject = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.progress != "pending"

    def as_json(self, base_url: str) -> JsonObject:
        href = f"{base_url}{ASYNC_PREFIX}/{self.id}"
        return {
            "links": [{"rel": "self", "href": href}],
            "id": self.id,
            "completed": self.completed,
            "progress": self.progress,
            "task": {"links": [{"rel": "related", "href": f"{href}/task"}]},
        }

    def task_json(self, base_url: str) -> JsonObject:
        href = f"{base_url}{ASYNC_PREFIX}/{self.id}/task/{self.id}"
        return {
            "links": [
                {"rel": "self", "href": href},
                {"rel": "related", "href": f"{href}/result"},
            ],
            "id": self.id,
            "completed": self.completed,
            "progress": self.progress,
        }


class JobRegistry:
    """Jobs of this sandbox run, in memory: they do not outlive the process."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, str] = {}
        self._ids = itertools.count(1)

    def submit(self, kind: str, submitted: datetime, idempotency_key: str | None) -> Job:
        if idempotency_key is not None and idempotency_key in self._by_key:
            original = self._by_key[idempotency_key]
            raise NetSuiteError(
                400,
                ErrorDetail(
                    code="IDEMPOTENCY_ERROR",
                    detail=(
                        f"A request with this idempotency key was already accepted as job "
                        f"{original}: {ASYNC_PREFIX}/{original}"
                    ),
                    header="X-NetSuite-Idempotency-Key",
                ),
                headers={"Location": f"{ASYNC_PREFIX}/{original}"},
                title="Conflict",
            )
        job = Job(id=str(next(self._ids)), kind=kind, submitted=submitted)
        self._jobs[job.id] = job
        if idempotency_key is not None:
            self._by_key[idempotency_key] = job.id
        return job

    def get(self, job_id: str, url_path: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NetSuiteError(
                404,
                ErrorDetail(
                    code="NONEXISTENT_ID", detail=f"Job {job_id} does not exist.", url_path=url_path
                ),
            )
        return job

    def all(self) -> list[Job]:
        return list(self._jobs.values())


def finish(job: Job, progress: Progress, result: dict[str, Any]) -> None:
    job.result = result
    job.progress = progress
