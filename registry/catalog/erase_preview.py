"""What an erasure would remove, without removing it: the dashboard's confirmation page.

The same checks ``erase`` starts with (scope, role, existence), in a read-only session,
and aggregates only, so a namespace of a million versions previews in one query;
``erase`` checks everything again when it runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, func, select

from registry.catalog.erase import Target
from registry.db import models as m
from registry.db.database import Database
from registry.errors import AdapterNotFound, NotFound, VersionNotFound
from registry.principal import Principal

MAX_LISTED = 20  # production versions named on the page


class ErasurePreview(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    kind: str  # "namespace", "adapter" or "version"
    adapters: int
    versions: int
    bytes: int  # the versions' total size (shared weights are kept, so at most this is freed)
    production: list[str]  # versions in production now (the first 20): erasing needs force


def preview_erasure(db: Database, target: Target, *, principal: Principal) -> ErasurePreview:
    """Raises NotFound (also outside the principal's scope) and Forbidden for non-admins."""
    principal.require_namespace(target.namespace, "namespace")
    principal.require("admin")
    scope = [m.Namespace.name == target.namespace]
    if target.repo is not None:
        scope.append(m.Adapter.name == target.repo.name)
    if target.number is not None:
        scope.append(m.AdapterVersion.number == target.number)

    def of_target(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(m.AdapterVersion)
            .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
            .where(*scope)
        )

    with db.read() as s:
        if target.repo is not None:
            exists = s.scalar(
                select(m.Adapter.id)
                .join(m.Namespace)
                .where(m.Namespace.name == target.namespace, m.Adapter.name == target.repo.name)
            )
            if exists is None:
                raise AdapterNotFound(f"adapter {target.repo} does not exist")
        elif s.scalar(select(m.Namespace.id).where(m.Namespace.name == target.namespace)) is None:
            raise NotFound(f"namespace {target.namespace} does not exist")
        adapters, versions, size = s.execute(
            of_target(
                func.count(func.distinct(m.AdapterVersion.adapter_id)),
                func.count(),
                func.coalesce(func.sum(m.AdapterVersion.size), 0),
            )
        ).one()
        serving = s.execute(
            of_target(m.Adapter.name, m.AdapterVersion.number)
            .where(m.AdapterVersion.stage == "production")
            .order_by(m.Adapter.name, m.AdapterVersion.number)
            .limit(MAX_LISTED)
        ).all()
    if target.number is not None and not versions:
        raise VersionNotFound(f"{target.repo} has no version {target.number}")
    kind = "namespace" if target.repo is None else "adapter" if target.number is None else "version"
    return ErasurePreview(
        target=str(target),
        kind=kind,
        adapters=int(adapters),
        versions=int(versions),
        bytes=int(size),
        production=[f"{target.namespace}/{name}:{n}" for name, n in serving],
    )
