"""What every route that queues a job (a merge, a composition) does around its service:
the same refusals before, the same 202 answer after."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import Request, Response

from registry.catalog.refs import parse_ref, parse_repo
from registry.errors import Unavailable
from registry.merge.job_queue import JobInfo
from registry.principal import Principal
from registry.services.job_models import CompositionQueued, JobView, MergeQueued

Queued = TypeVar("Queued", MergeQueued, CompositionQueued)


def admit(request: Request, user: Principal, refs: Iterable[str], output: str | None) -> None:
    """Unavailable when this server should run jobs itself but started without a worker
    (PyTorch was missing then); not found for any input or output outside ``user``'s
    namespaces."""
    refusal = getattr(request.app.state, "merge_refusal", None)
    if refusal:
        raise Unavailable(refusal)
    for ref in refs:
        user.require_namespace(parse_ref(ref).repo.namespace)
    if output:
        user.require_namespace(parse_repo(output).namespace)


def accepted(response: Response, job: JobInfo, interference: Any, model: type[Queued]) -> Queued:
    """The 202 body, ``{"job", "interference"}``, with ``Location`` naming the job."""
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return model(job=JobView.of(job), interference=interference)
