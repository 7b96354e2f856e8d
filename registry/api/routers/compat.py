"""Base models and compatibility checks: ``/api/v1/bases``, ``.../checks``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from registry.api.deps import CurrentUser, Maintainer, Reader, RuntimeDep, Writer
from registry.api.responses import ERRORS
from registry.api.schemas import BaseRequest, CheckRequest
from registry.catalog.queries import version_row
from registry.catalog.refs import Ref, parse_repo
from registry.compat import bases
from registry.compat.version_checks import latest_checks
from registry.services import compat as compat_service
from registry.services.compat import run_check as run_check_service
from registry.services.models import BaseAdded, BaseDetail, BaseSummary, CheckRecord, CheckRun

router = APIRouter(prefix="/api/v1", tags=["compatibility"], responses=ERRORS)


@router.post("/bases", response_model=BaseAdded, dependencies=[Maintainer])
def add_base(
    rt: RuntimeDep, user: CurrentUser, body: BaseRequest, response: Response
) -> dict[str, Any]:
    """Register a base model from ``hf://repo@rev``, or (admins) a folder on the server
    under LORAREG_BASE_ROOTS or ``s3://`` in LORAREG_BASE_BUCKETS."""
    # Base models are shared by every namespace: only an unscoped token registers one.
    # Server folders and buckets are refused inside add_base (source_not_allowed) unless
    # the caller is an unscoped admin; a hub source needs an unscoped maintainer.
    if body.source.startswith("hf://"):
        user.require_unscoped("a base model")
    doc, created = bases.add_base(
        rt.db,
        rt.settings,
        body.name,
        body.source,
        actor=user.name,
        on_server=True,
        caller_is_admin=user.can("admin") and user.namespaces is None,
    )
    response.status_code = 201 if created else 200
    return {**doc, "created": created}


@router.get("/bases", response_model=list[BaseSummary], dependencies=[Reader])
def list_bases(rt: RuntimeDep) -> list[BaseSummary]:
    return compat_service.list_bases(rt.db)


@router.get("/bases/{base:path}", response_model=BaseDetail, dependencies=[Reader])
def get_base(rt: RuntimeDep, base: str) -> BaseDetail:
    return compat_service.get_base(rt.db, base)


def _numbered(rt: RuntimeDep, namespace: str, name: str, revision: str) -> Ref:
    repo = parse_repo(f"{namespace}/{name}")
    with rt.db.read() as s:
        return Ref(repo, number=version_row(s, repo, revision).number)


@router.post(
    "/adapters/{namespace}/{name}/versions/{revision}/checks",
    response_model=CheckRun,
    dependencies=[Writer],
)
def run_check(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, revision: str, body: CheckRequest
) -> CheckRun:
    ref = _numbered(rt, namespace, name, revision)
    return run_check_service(rt, ref, base=body.base, engines=body.engines, actor=user.name)


@router.get(
    "/adapters/{namespace}/{name}/versions/{revision}/checks",
    response_model=list[CheckRecord],
    dependencies=[Reader],
)
def get_checks(rt: RuntimeDep, namespace: str, name: str, revision: str) -> list[dict[str, Any]]:
    return latest_checks(rt.db, _numbered(rt, namespace, name, revision))
