"""Merge jobs: ``/ui/-/jobs`` (newest first, by state) and ``/ui/-/jobs/{id}``.

Both pages are complete without JavaScript (a reload shows the latest progress). With it,
``app.js`` polls ``GET /api/v1/jobs/{id}`` once a second for every job still queued or
running and moves its ``<progress>``; the session cookie authenticates those reads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from registry.catalog.refs import parse_ref
from registry.errors import InvalidInput, LoraregError
from registry.http_deps import MAX_ID, CurrentUser, IdPath, Reader, RuntimeDep
from registry.merge.job_queue import TERMINAL, JobInfo
from registry.services import jobs as jobs_service
from registry.services.jobs import STATES
from registry.web.format import human_size
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, version_path, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

JOBS = f"{PREFIX}/-/jobs"


def progress_text(job: JobInfo) -> str:
    """``42% · shard 2 of 5 · 12.3 MB/s · about 10 s left``; app.js writes the same."""
    parts = [f"{job.progress * 100:.0f}%"]
    st = job.status or {}
    if st.get("shards_total"):
        shard = min(int(st.get("shards_done") or 0) + 1, int(st["shards_total"]))
        parts.append(f"shard {shard} of {st['shards_total']}")
    if job.state == "running":
        if st.get("rate_bytes_s"):
            parts.append(f"{human_size(float(st['rate_bytes_s']))}/s")
        if st.get("eta_s") is not None:
            parts.append(f"about {float(st['eta_s']):.0f} s left")
        elif st.get("phase"):
            parts.append(str(st["phase"]))
    return " · ".join(parts)


def _version_link(ref: str | None) -> str | None:
    """The page of ``ns/name:N`` as a job spec or result names it (None if it is not one)."""
    try:
        parsed = parse_ref(ref or "")
    except LoraregError:
        return None
    if parsed.number is None:
        return None
    return version_path(parsed.repo.namespace, parsed.repo.name, parsed.number)


def _ctx(job: JobInfo) -> dict[str, Any]:
    return {
        "job": job,
        "progress_text": progress_text(job),
        "poll": job.state not in TERMINAL,
        "output_url": _version_link(job.output),
        "inputs": [
            {
                "ref": str(i.get("ref", "")),
                "url": _version_link(i.get("ref")),
                "weight": i.get("weight"),
                "content_id": str(i.get("content_id") or ""),
            }
            for i in job.spec.get("inputs", [])
        ],
    }


@router.get(JOBS, dependencies=[Reader])
def job_list(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    state: str = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    if state and state not in STATES:
        raise InvalidInput(f"unknown job state {state!r}; states are {', '.join(STATES)}")
    page = jobs_service.job_page(
        rt.db, state=state or None, before=before, limit=limit, visible=user.namespaces
    )
    keep = {"state": state, "limit": limit if limit != 50 else None}
    return render(
        request,
        "jobs.html",
        {
            "rows": [_ctx(j) for j in page.items],
            "states": STATES,
            "state": state,
            "older_url": with_query(JOBS, {**keep, "before": page.next_before})
            if page.next_before
            else None,
            "newest_url": with_query(JOBS, keep) if page.has_prev else None,
        },
    )


@router.get(JOBS + "/{job_id}", dependencies=[Reader])
def job_detail(request: Request, rt: RuntimeDep, user: CurrentUser, job_id: IdPath) -> HTMLResponse:
    job = jobs_service.get_job(rt.db, job_id, visible=user.namespaces)
    return render(request, "job.html", _ctx(job))
