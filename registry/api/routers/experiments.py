"""A/B experiments between versions of an adapter: ``/api/v1/adapters/{ns}/{name}/experiments``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query
from pydantic import Field

from registry.api.deps import (
    MAX_ID,
    CurrentUser,
    Maintainer,
    NumberPath,
    Reader,
    RuntimeDep,
    Writer,
)
from registry.api.responses import ERRORS
from registry.api.schemas import Body
from registry.catalog.refs import Ref, Repo, parse_repo
from registry.experiments import service
from registry.experiments.domain import (
    Assignment,
    Conclusion,
    ExperimentInfo,
    ExperimentReport,
    GatePreview,
    ServedExperiment,
)
from registry.experiments.fleet import MAX_PAGE, running_experiments
from registry.experiments.report import report
from registry.experiments.serving import assignment_for

router = APIRouter(
    prefix="/api/v1/adapters/{namespace}/{name}/experiments", tags=["experiments"], responses=ERRORS
)
version_router = APIRouter(
    prefix="/api/v1/adapters/{namespace}/{name}", tags=["experiments"], responses=ERRORS
)
fleet_router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"], responses=ERRORS)

ExperimentPath = Annotated[str, Path(max_length=64)]
Reason = Annotated[str | None, Field(default=None, max_length=2000)]


class VariantSpec(Body):
    name: str = Field(max_length=64)
    ref: str = Field(max_length=200, description="a version of this adapter: 3, v3, @production")


class CreateExperiment(Body):
    name: str = Field(max_length=64)
    variants: list[VariantSpec] = Field(min_length=1, max_length=50, description="control first")
    split: list[float] | str = Field(description="percent per variant, adding up to 100")
    metric: str = Field(max_length=128, description="the primary metric")
    reason: Reason = None


# The bodies below hold exactly the service's keyword arguments: handlers pass them on whole.
class RampRequest(Body):
    split: list[float] | str
    reason: Reason = None


class OutcomeRequest(Body):
    variant: str = Field(max_length=64)
    metric: str | None = Field(default=None, max_length=128)
    successes: int | None = None
    trials: int | None = None
    n: int | None = None
    mean: float | None = None
    variance: float | None = None


class ConcludeRequest(Body):
    winner: str = Field(max_length=64)
    reason: Reason = None


def _repo(namespace: str, name: str) -> Repo:
    return parse_repo(f"{namespace}/{name}")


# The adapter every route here is under, from its path.
RepoDep = Annotated[Repo, Depends(_repo)]


@router.post("", response_model=ExperimentInfo, status_code=201, dependencies=[Maintainer])
def create_experiment(
    rt: RuntimeDep, user: CurrentUser, repo: RepoDep, body: CreateExperiment
) -> ExperimentInfo:
    """Start an experiment; ``split`` is ``[80, 10, 10]`` or ``"80,10,10"``."""
    return service.create(
        rt.db,
        repo,
        body.name,
        variants=[(v.name, v.ref) for v in body.variants],
        split=body.split,
        metric=body.metric,
        reason=body.reason,
        principal=user,
    )


@router.get("", response_model=list[ExperimentInfo], dependencies=[Reader])
def list_experiments(rt: RuntimeDep, repo: RepoDep, running: bool = False) -> list[ExperimentInfo]:
    return service.list_experiments(rt.db, repo, running_only=running)


@router.get("/{experiment}", response_model=ExperimentReport, dependencies=[Reader])
def show_experiment(rt: RuntimeDep, repo: RepoDep, experiment: ExperimentPath) -> ExperimentReport:
    """Per metric and variant: exposures, rate or mean with its 95 % interval, lift against
    control, p-value and chance to beat control; the SRM check; the history."""
    return report(rt.db, repo, experiment)


@router.get("/{experiment}/assign", response_model=Assignment, dependencies=[Reader])
def assign(
    rt: RuntimeDep,
    repo: RepoDep,
    experiment: ExperimentPath,
    subject: Annotated[str, Query(max_length=1024)],
) -> Assignment:
    return assignment_for(rt.db, repo, experiment, subject)


@router.post("/{experiment}/ramp", response_model=ExperimentInfo, dependencies=[Maintainer])
def ramp(
    rt: RuntimeDep,
    user: CurrentUser,
    repo: RepoDep,
    experiment: ExperimentPath,
    body: RampRequest,
) -> ExperimentInfo:
    return service.ramp(rt.db, repo, experiment, principal=user, **body.model_dump())


@router.post("/{experiment}/outcomes", response_model=ExperimentInfo, dependencies=[Writer])
def record(
    rt: RuntimeDep,
    user: CurrentUser,
    repo: RepoDep,
    experiment: ExperimentPath,
    body: OutcomeRequest,
) -> ExperimentInfo:
    return service.record(rt.db, repo, experiment, principal=user, **body.model_dump())


@router.get("/{experiment}/preview", response_model=GatePreview, dependencies=[Reader])
def preview(
    rt: RuntimeDep,
    repo: RepoDep,
    experiment: ExperimentPath,
    winner: Annotated[str, Query(max_length=64)],
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> GatePreview:
    """The promotion gates concluding with ``winner`` would meet; nothing changes."""
    return service.preview_conclusion(
        rt.db, repo, experiment, winner=winner, reason=reason, store=rt.store
    )


@router.post("/{experiment}/conclude", response_model=Conclusion, dependencies=[Reader])
def conclude(
    rt: RuntimeDep,
    user: CurrentUser,
    repo: RepoDep,
    experiment: ExperimentPath,
    body: ConcludeRequest,
) -> Conclusion:
    """Promote the winner through the adapter's promotion policy (its role and gates: 403
    ``forbidden``, 409 ``gate_failed``), then end the experiment."""
    return service.conclude(
        rt.db, repo, experiment, principal=user, store=rt.store, **body.model_dump()
    )


@version_router.get(
    "/versions/{number}/experiments", response_model=list[ExperimentInfo], dependencies=[Reader]
)
def experiments_of_version(
    rt: RuntimeDep, repo: RepoDep, number: NumberPath
) -> list[ExperimentInfo]:
    """Experiments with a variant on this version, running first."""
    return service.experiments_using(rt.db, Ref(repo, number=number))


@fleet_router.get("", response_model=list[ServedExperiment], dependencies=[Reader])
def list_running(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: Annotated[str | None, Query(max_length=64)] = None,
    base: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="page after this experiment id")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[ServedExperiment]:
    """Every running experiment (on ``base``, in ``namespace``) the caller may see, with
    salt, bucket ranges and each variant's version and content id: what a serving node
    needs to assign and load offline. Paged by ``id``: pass the last one as ``after``."""
    return running_experiments(
        rt.db, namespace=namespace, base=base, visible=user.namespaces, after=after, limit=limit
    )


def include(app: FastAPI) -> None:
    """The routers (one line in the app factory)."""
    app.include_router(router)
    app.include_router(version_router)
    app.include_router(fleet_router)
