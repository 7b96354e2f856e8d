"""Offboarding and quotas: ``DELETE`` an adapter, a version or a namespace, and a
namespace's usage and quota (``/api/v1/namespaces/{namespace}``).

Every route has ``{namespace}`` in its path, so ``allow()`` hides namespaces outside a
scoped token (404) before the role check; the services check both again.
A quota refusal on push is ``403 quota_exceeded`` (the request is fine; the namespace's
policy refuses to hold more), an erasure of a production version without ``force`` is
``409 in_production``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from registry.api.deps import Admin, CurrentUser, NumberPath, Reader, RuntimeDep
from registry.api.responses import ERRORS
from registry.api.schemas import Body
from registry.catalog import erase, quotas
from registry.catalog.erase import ErasureReport
from registry.catalog.quotas import KEEP, MAX_LIMIT, NamespaceInfo
from registry.catalog.refs import Repo, check_name
from registry.services.regions import regional_stores

router = APIRouter(prefix="/api/v1", tags=["namespaces"], responses=ERRORS)


class EraseRequest(Body):
    reason: str = Field(min_length=1, max_length=erase.MAX_REASON)
    force: bool = False


class QuotaRequest(Body):
    """Each limit: a number sets it, ``null`` removes it, leaving it out keeps it."""

    max_bytes: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    max_versions: int | None = Field(default=None, ge=0, le=MAX_LIMIT)


def _erase(
    rt: RuntimeDep, user: CurrentUser, target: erase.Target, body: EraseRequest
) -> ErasureReport:
    return erase.erase(
        rt.db,
        rt.store,
        target,
        principal=user,
        reason=body.reason,
        force=body.force,
        regional=regional_stores(rt),
    )


@router.delete("/adapters/{namespace}/{name}", response_model=ErasureReport, dependencies=[Admin])
def delete_adapter(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, body: EraseRequest
) -> ErasureReport:
    """Erase every version of the adapter, its weights no other version uses, and the
    adapter itself; the audit log keeps who, when and why."""
    repo = Repo(check_name(namespace, what="namespace"), check_name(name))
    target = erase.Target(namespace=repo.namespace, repo=repo)
    return _erase(rt, user, target, body)


@router.delete(
    "/adapters/{namespace}/{name}/versions/{number}",
    response_model=ErasureReport,
    dependencies=[Admin],
)
def delete_version(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    number: NumberPath,
    body: EraseRequest,
) -> ErasureReport:
    """Erase one version and its weights no other version uses (its number is never
    handed out again)."""
    repo = Repo(check_name(namespace, what="namespace"), check_name(name))
    target = erase.Target(namespace=repo.namespace, repo=repo, number=number)
    return _erase(rt, user, target, body)


@router.delete("/namespaces/{namespace}", response_model=ErasureReport, dependencies=[Admin])
def delete_namespace(
    rt: RuntimeDep, user: CurrentUser, namespace: str, body: EraseRequest
) -> ErasureReport:
    """Offboard a client: every adapter, version and weight of the namespace, its tokens,
    webhooks, policies and quota."""
    return _erase(rt, user, erase.namespace_target(namespace), body)


@router.get("/namespaces/{namespace}", response_model=NamespaceInfo, dependencies=[Reader])
def show_namespace(rt: RuntimeDep, user: CurrentUser, namespace: str) -> NamespaceInfo:
    """Usage (bytes, versions, adapters) and quota of a namespace."""
    return quotas.namespace_info(rt.db, namespace, principal=user)


@router.put("/namespaces/{namespace}/quota", response_model=NamespaceInfo, dependencies=[Admin])
def set_quota(
    rt: RuntimeDep, user: CurrentUser, namespace: str, body: QuotaRequest
) -> NamespaceInfo:
    given = body.model_fields_set
    return quotas.set_quota(
        rt.db,
        namespace,
        principal=user,
        max_bytes=body.max_bytes if "max_bytes" in given else KEEP,
        max_versions=body.max_versions if "max_versions" in given else KEEP,
    )
