"""What every route that queues a job (a merge, a composition) does around its service:
the same refusals before, the same 202 answer after."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request, Response

from registry.catalog.refs import parse_ref, parse_repo
from registry.errors import Unavailable
from registry.merge.jobs import JobInfo
from registry.principal import Principal


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


def accepted(response: Response, job: JobInfo, interference: Any) -> dict[str, Any]:
    """The 202 body, ``{"job", "interference"}``, with ``Location`` naming the job."""
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return {"job": job.to_json(), "interference": interference}
