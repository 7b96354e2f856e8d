"""Merge jobs: ``POST /api/v1/merges``, ``/api/v1/jobs``.

A job belongs to every namespace it reads or writes; a scoped token sees (and cancels)
only jobs wholly within its namespaces, filtered in SQL, and any other id is a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from registry.api.deps import CurrentUser, IdPath, Reader, RuntimeDep, Writer
from registry.api.queued_jobs import accepted, admit
from registry.api.schemas import MergeRequest
from registry.merge import jobs
from registry.timestamps import iso_z

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post("/merges", status_code=202, dependencies=[Writer])
def create_merge(
    rt: RuntimeDep, user: CurrentUser, body: MergeRequest, request: Request, response: Response
) -> dict[str, Any]:
    """Queue a merge after checking it can be done exactly; 202 with the job and the
    interference report of the adapters. Refused when this server should run merges
    itself but started without a worker (PyTorch was missing then)."""
    admit(request, user, body.adapters, body.output)
    from registry.merge.service import request_merge  # loads torch only when merging

    job, report = request_merge(
        rt,
        body.adapters,
        base=body.base,
        actor=user.name,
        weights=body.weights,
        method=body.method,
        svd_rank=body.svd_rank,
        output=body.output,
        device=body.device,
        dtype=body.dtype,
    )
    return accepted(response, job, report)


@router.get("/workers", dependencies=[Reader])
def workers(rt: RuntimeDep, request: Request) -> dict[str, Any]:
    """Whether merges can run: the last sign of life of any merge worker (a claim, a
    heartbeat or a finish), and whether this server runs one itself."""
    seen = jobs.worker_last_seen(rt.db)
    return {
        "last_seen_at": iso_z(seen),
        "seconds_since_seen": round((jobs.now() - seen).total_seconds(), 1) if seen else None,
        "in_process": bool(getattr(request.app.state, "merge_worker", False)),
        "refusal": getattr(request.app.state, "merge_refusal", None),
    }


@router.get("/jobs", dependencies=[Reader])
def list_jobs(rt: RuntimeDep, user: CurrentUser) -> list[dict[str, Any]]:
    return [j.to_json() for j in jobs.list_jobs(rt.db, namespaces=user.namespaces)]


@router.get("/jobs/{job_id}", dependencies=[Reader])
def show_job(rt: RuntimeDep, user: CurrentUser, job_id: IdPath) -> dict[str, Any]:
    return jobs.get_job(rt.db, job_id, namespaces=user.namespaces).to_json()


@router.post("/jobs/{job_id}/cancel", dependencies=[Writer])
def cancel_job(rt: RuntimeDep, user: CurrentUser, job_id: IdPath) -> dict[str, Any]:
    jobs.get_job(rt.db, job_id, namespaces=user.namespaces)
    return jobs.cancel(rt.db, job_id, actor=user.name).to_json()
