"""The adapter library: ``POST /api/v1/compositions``, ``GET /api/v1/interference``,
``GET .../analysis`` and ``POST .../compressions`` of an adapter.

Every ref a request names must lie in the caller's namespaces (404 otherwise, as for any
adapter it cannot see); a library selected by base is filtered to those namespaces in SQL.
PyTorch is imported only when a request runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from registry.api.deps import CurrentUser, Reader, RuntimeDep, Writer
from registry.api.queued_jobs import accepted, admit
from registry.api.responses import ERRORS
from registry.api.schemas import Body
from registry.catalog.refs import parse_ref, parse_repo
from registry.library.results import AnalysisResult, LibraryMap, LibraryVersion
from registry.services.job_models import CompositionQueued

router = APIRouter(prefix="/api/v1", tags=["library"], responses=ERRORS)


class ComposeRequest(Body):
    adapters: list[str] = Field(min_length=1, max_length=200)
    output: str = Field(max_length=200)
    weights: list[float] | None = Field(default=None, max_length=200)
    method: str = Field(default="cat", max_length=16)
    rank: int | None = None


class CompressRequest(Body):
    ref: str | None = Field(default=None, max_length=64)
    rank: int | None = None
    energy: float | None = None
    output: str | None = Field(default=None, max_length=200)


def _service() -> Any:
    from registry.merge.service import require_torch

    require_torch()
    from registry.library import service

    return service


@router.post(
    "/compositions", status_code=202, response_model=CompositionQueued, dependencies=[Writer]
)
def create_composition(
    rt: RuntimeDep, user: CurrentUser, body: ComposeRequest, request: Request, response: Response
) -> CompositionQueued:
    """Check a composition (cat, linear or svd) and queue it as a job; 202 with the job and
    the inputs' interference. A worker runs it; the job's result names the new version."""
    admit(request, user, body.adapters, body.output)
    _service()
    from registry.library.compose_jobs import request_compose

    job, report = request_compose(
        rt,
        body.adapters,
        output=body.output,
        actor=user.name,
        weights=body.weights,
        method=body.method,
        rank=body.rank,
    )
    return accepted(response, job, report, CompositionQueued)


@router.get("/interference", response_model=LibraryMap, dependencies=[Reader])
def interference(
    rt: RuntimeDep,
    user: CurrentUser,
    base: Annotated[str | None, Query(max_length=200)] = None,
    namespace: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[list[str] | None, Query(max_length=16)] = None,
    ref: Annotated[list[str] | None, Query(max_length=200)] = None,
) -> LibraryMap:
    """Every pair of the named adapters, or of the newest version of each adapter on
    ``base`` (narrowed by ``namespace`` and ``tag=K=V``): cosines and overlaps per module."""
    from registry.errors import InvalidInput

    refs = ref or []
    for r in refs:
        user.require_namespace(parse_ref(r).repo.namespace)
    if namespace is not None:
        user.require_namespace(namespace, what="namespace")
    tags = {}
    for t in tag or []:
        k, sep, v = t.partition("=")
        if not sep or not k:
            raise InvalidInput(f"tag {t!r}: write it as KEY=VALUE")
        tags[k] = v
    _service()
    from registry.library.library_map import library_map

    doc = library_map(
        rt, refs=refs, base=base, namespace=namespace, tags=tags, visible=user.namespaces
    )
    return doc


@router.get(
    "/adapters/{namespace}/{name}/analysis", response_model=AnalysisResult, dependencies=[Reader]
)
def analysis(
    rt: RuntimeDep,
    namespace: str,
    name: str,
    ref: Annotated[str | None, Query(max_length=64)] = None,
) -> AnalysisResult:
    """Singular values, effective ranks, relative update and engine cost of a version
    (``ref``: a number, stage or alias; default the newest)."""
    text = _ref_text(namespace, name, ref)
    return _service().analyze_version(rt, text)


@router.post(
    "/adapters/{namespace}/{name}/compressions",
    status_code=201,
    response_model=LibraryVersion,
    dependencies=[Writer],
)
def create_compression(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, body: CompressRequest
) -> LibraryVersion:
    """Truncate a version optimally per module into a new version (rank or energy)."""
    if body.output:
        user.require_namespace(parse_repo(body.output).namespace)
    result = _service().compress_version(
        rt,
        _ref_text(namespace, name, body.ref),
        actor=user.name,
        rank=body.rank,
        energy=body.energy,
        output=body.output,
        visible=user.namespaces,
    )
    return result


def _ref_text(namespace: str, name: str, ref: str | None) -> str:
    if ref is None or ref == "latest":
        return f"{namespace}/{name}"
    return f"{namespace}/{name}:{ref}" if ref.isdigit() else f"{namespace}/{name}@{ref}"
