"""Stages, aliases, evals, diffs, policies and history: ``/api/v1/...``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registry.api.deps import Admin, CurrentUser, Maintainer, NumberPath, Reader, RuntimeDep, Writer
from registry.api.responses import ERRORS
from registry.api.schemas import AliasRequest, EvalsRequest, PromoteRequest
from registry.catalog import metadata, queries
from registry.catalog.diff import diff_versions
from registry.catalog.refs import Ref, Repo, check_name, parse_repo
from registry.domain import EventInfo, VersionInfo
from registry.lifecycle import events, stages
from registry.services import lifecycle as lifecycle_service
from registry.services.models import EffectivePolicy, PolicyView, PromotionResult, VersionDiff

router = APIRouter(prefix="/api/v1", tags=["lifecycle"], responses=ERRORS)


def _repo(namespace: str, name: str) -> Repo:
    return parse_repo(f"{namespace}/{name}")


@router.post(
    "/adapters/{namespace}/{name}/versions/{number}/promote",
    response_model=PromotionResult,
    dependencies=[Maintainer],
)
def promote(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    number: NumberPath,
    body: PromoteRequest,
) -> PromotionResult:
    """Move a version to a stage if its policy allows; 409 ``gate_failed`` lists what is unmet."""
    return lifecycle_service.promote(
        rt.db,
        Ref(_repo(namespace, name), number=number),
        to=body.to,
        reason=body.reason,
        principal=user,
        end_experiment=body.end_experiment,
        store=rt.store,
    )


@router.put(
    "/adapters/{namespace}/{name}/aliases/{label}",
    response_model=VersionInfo,
    dependencies=[Maintainer],
)
def set_alias(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, label: str, body: AliasRequest
) -> VersionInfo:
    return stages.set_alias(
        rt.db, _repo(namespace, name), label, body.version, principal=user, reason=body.reason
    )


@router.delete(
    "/adapters/{namespace}/{name}/aliases/{label}", status_code=204, dependencies=[Maintainer]
)
def delete_alias(rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, label: str) -> None:
    stages.delete_alias(rt.db, _repo(namespace, name), label, principal=user)


@router.post(
    "/adapters/{namespace}/{name}/versions/{number}/evals",
    response_model=VersionInfo,
    dependencies=[Writer],
)
def add_evals(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    number: NumberPath,
    body: EvalsRequest,
) -> VersionInfo:
    ref = Ref(_repo(namespace, name), number=number)
    return metadata.add_evals(rt.db, ref, body.evals, actor=user.name)


@router.get("/adapters/{namespace}/{name}/diff", response_model=VersionDiff, dependencies=[Reader])
def diff(rt: RuntimeDep, namespace: str, name: str, a: str, b: str) -> dict[str, Any]:
    repo = _repo(namespace, name)
    with rt.db.read() as s:
        va = queries.to_info(s, queries.version_row(s, repo, a))
        vb = queries.to_info(s, queries.version_row(s, repo, b))
    return diff_versions(va, vb)


@router.get("/policies/{namespace}", response_model=PolicyView, dependencies=[Reader])
def get_namespace_policy(rt: RuntimeDep, namespace: str) -> PolicyView:
    return lifecycle_service.namespace_policy(rt.db, namespace)


@router.get("/policies/{namespace}/{name}", response_model=EffectivePolicy, dependencies=[Reader])
def get_adapter_policy(rt: RuntimeDep, namespace: str, name: str) -> EffectivePolicy:
    return lifecycle_service.effective_policy(rt.db, _repo(namespace, name))


@router.put("/policies/{namespace}", response_model=PolicyView, dependencies=[Admin])
def set_namespace_policy(
    rt: RuntimeDep, user: CurrentUser, namespace: str, body: dict[str, Any]
) -> PolicyView:
    return lifecycle_service.set_policy(
        rt.db, namespace, body, principal=user, regions=rt.settings.region_names
    )


@router.put("/policies/{namespace}/{name}", response_model=PolicyView, dependencies=[Admin])
def set_adapter_policy(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, body: dict[str, Any]
) -> PolicyView:
    return lifecycle_service.set_policy(
        rt.db,
        str(_repo(namespace, name)),
        body,
        principal=user,
        regions=rt.settings.region_names,
    )


@router.get(
    "/namespaces/{namespace}/history", response_model=list[EventInfo], dependencies=[Reader]
)
def namespace_history(rt: RuntimeDep, namespace: str) -> list[EventInfo]:
    return events.namespace_history(rt.db, check_name(namespace, what="namespace"))
