"""Merge jobs: ``POST /api/v1/merges``, ``/api/v1/jobs``.

A job belongs to every namespace it reads or writes; a scoped token sees (and cancels)
only jobs wholly within its namespaces, filtered in SQL, and any other id is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from registry.api.deps import CurrentUser, IdPath, Reader, RuntimeDep, Writer
from registry.api.queued_jobs import accepted, admit
from registry.api.responses import ERRORS
from registry.api.schemas import MergeRequest
from registry.merge import job_queue
from registry.services import jobs as jobs_service
from registry.services.job_models import JobView, MergeQueued, WorkerStatus

router = APIRouter(prefix="/api/v1", tags=["jobs"], responses=ERRORS)


@router.post("/merges", status_code=202, response_model=MergeQueued, dependencies=[Writer])
def create_merge(
    rt: RuntimeDep, user: CurrentUser, body: MergeRequest, request: Request, response: Response
) -> MergeQueued:
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
    return accepted(response, job, report, MergeQueued)


@router.get("/workers", response_model=WorkerStatus, dependencies=[Reader])
def workers(rt: RuntimeDep, request: Request) -> WorkerStatus:
    """Whether merges can run: the last sign of life of any merge worker (a claim, a
    heartbeat or a finish), and whether this server runs one itself."""
    seen = job_queue.worker_last_seen(rt.db)
    return WorkerStatus(
        last_seen_at=seen,
        seconds_since_seen=round((job_queue.now() - seen).total_seconds(), 1) if seen else None,
        in_process=bool(getattr(request.app.state, "merge_worker", False)),
        refusal=getattr(request.app.state, "merge_refusal", None),
    )


@router.get("/jobs", response_model=list[JobView], dependencies=[Reader])
def list_jobs(rt: RuntimeDep, user: CurrentUser) -> list[JobView]:
    return [JobView.of(j) for j in jobs_service.list_jobs(rt.db, visible=user.namespaces)]


@router.get("/jobs/{job_id}", response_model=JobView, dependencies=[Reader])
def show_job(rt: RuntimeDep, user: CurrentUser, job_id: IdPath) -> JobView:
    return JobView.of(job_queue.get_job(rt.db, job_id, namespaces=user.namespaces))


@router.post("/jobs/{job_id}/cancel", response_model=JobView, dependencies=[Writer])
def cancel_job(rt: RuntimeDep, user: CurrentUser, job_id: IdPath) -> JobView:
    job_queue.get_job(rt.db, job_id, namespaces=user.namespaces)
    return JobView.of(job_queue.cancel(rt.db, job_id, actor=user.name))
