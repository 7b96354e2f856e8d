"""Compositions as jobs, on the merge job queue (``jobs.kind == "compose"``).

``request_compose`` refuses everything it can (refs, bases, weights, ranks, method, shapes)
before queuing, so a bad request queues nothing. A worker (``lorareg worker``, the one
embedded in ``lorareg serve``, or ``lorareg compose --wait`` without a server) runs
``run_compose``: the composed version is recorded in the same transaction that checks the job
is still the worker's and marks it succeeded, so a job taken over by another worker, or
cancelled at the last moment, records nothing, and a job completes exactly once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.catalog.refs import parse_repo
from registry.db import models as m
from registry.merge import job_queue
from registry.merge.job_queue import JobInfo
from registry.runtime import Runtime

KIND = "compose"


class JobLost(Exception):
    """The job was cancelled or taken over before its version was recorded."""


def request_compose(
    rt: Runtime,
    refs: list[str],
    *,
    output: str,
    actor: str,
    weights: list[float] | None = None,
    method: str = "cat",
    rank: int | None = None,
) -> tuple[JobInfo, list[dict[str, Any]]]:
    """Check a composition and queue it; returns the job and the inputs' interference."""
    from registry.library.service import check_compose_request

    versions, w, pairs = check_compose_request(
        rt, refs, output=output, weights=weights, method=method, rank=rank
    )
    spec: dict[str, Any] = {
        "inputs": [
            {
                "ref": v.ref,
                "repo": v.repo,
                "number": v.number,
                "content_id": v.content_id,
                "weight": x,
            }
            for v, x in zip(versions, w, strict=True)
        ],
        "base": versions[0].base_model,
        "method": method,
        "rank": rank,
        "output": str(parse_repo(output)),
        "interference": pairs,
    }
    return job_queue.enqueue(rt.db, spec, actor=actor, kind=KIND), pairs


def run_compose(rt: Runtime, job: JobInfo, worker_id: str) -> bool:
    """Compose the job's inputs and record the version and the job's success together;
    False when the job stopped being this worker's (nothing recorded then)."""
    from registry.library.results import LibraryVersion
    from registry.library.service import compose_versions

    spec = job.spec

    def finish(s: Session, row: m.AdapterVersion, result: LibraryVersion) -> None:
        job_row = job_queue.owns(s, job.id, worker_id)
        if job_row is None:
            raise JobLost()  # rolls the version back with the transaction
        job_row.output_version_id = row.id
        job_row.result = result.model_dump(mode="json")
        job_row.progress = 1.0
        job_queue.finish(s, job_row, "succeeded")

    try:
        compose_versions(
            rt,
            [f"{i['repo']}:{i['number']}" for i in spec["inputs"]],
            output=spec["output"],
            actor=job.created_by,
            weights=[float(i["weight"]) for i in spec["inputs"]],
            method=spec["method"],
            rank=spec.get("rank"),
            on_commit=finish,
        )
    except JobLost:
        return False
    return True
