"""The typed answers about merge and compose jobs, as every edge sends them."""

from __future__ import annotations

from typing import Any

from registry.domain import JobState
from registry.merge.job_queue import JobInfo
from registry.services.models import WireTime, _Result


class JobView(_Result):
    """A job: its spec, state, progress and lease holder, and its result once finished
    (``output`` names the version it wrote)."""

    id: int
    kind: str  # merge | compose
    state: JobState
    spec: dict[str, Any]
    progress: float
    status: dict[str, Any]
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    output: str | None  # ns/name:N
    worker_id: str | None
    created_by: str
    created_at: WireTime
    started_at: WireTime | None
    finished_at: WireTime | None
    namespace: str  # the output's: the job belongs to it

    @classmethod
    def of(cls, job: JobInfo) -> JobView:
        return cls.model_validate(job.__dict__)


class MergeQueued(_Result):
    """A merge checked and queued, with the interference report of its adapters (lines)."""

    job: JobView
    interference: list[str]


class CompositionQueued(_Result):
    """A composition checked and queued, with the pairwise interference of its inputs."""

    job: JobView
    interference: list[dict[str, Any]]


class WorkerStatus(_Result):
    """Whether merges can run: the last sign of life of any merge worker (a claim, a
    heartbeat or a finish), and whether this server runs one itself."""

    last_seen_at: WireTime | None
    seconds_since_seen: float | None
    in_process: bool
    refusal: str | None  # why this server refuses merges (started without PyTorch)
