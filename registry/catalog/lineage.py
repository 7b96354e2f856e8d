"""Lineage of a version beyond its parent: the versions a merged model was made from, and
the merged models a version went into, both from ``merge_inputs`` (indexed both ways:
``(output_id, input_id)`` unique, and ``input_id``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from registry.db import models as m

# A popular adapter may feed many merges; the page lists the newest few.
MERGED_INTO_LIMIT = 50


class LineageLink(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    number: int
    weight: float
    kind: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}:{self.number}"


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    merged_from: list[LineageLink]
    merged_into: list[LineageLink]
    more_merged_into: bool  # more than MERGED_INTO_LIMIT merges used this version


def lineage(session: Session, version_id: int, *, visible: frozenset[str] | None = None) -> Lineage:
    """Both directions for one version: two indexed queries, each bounded. A viewer scoped
    to ``visible`` namespaces gets only links into them, filtered before the LIMIT: a merge
    that used this version in another tenant's namespace is not named, nor counted."""
    MI, V, A, N = m.MergeInput, aliased(m.AdapterVersion), m.Adapter, m.Namespace

    def linked(column: Any) -> Any:
        q = (
            select(N.name, A.name, V.number, MI.weight, V.kind)
            .join(V, V.id == column)
            .join(A, A.id == V.adapter_id)
            .join(N, N.id == A.namespace_id)
        )
        return q if visible is None else q.where(N.name.in_(sorted(visible)))

    inputs = session.execute(
        linked(MI.input_id).where(MI.output_id == version_id).order_by(MI.position)
    ).all()
    outputs = session.execute(
        linked(MI.output_id)
        .where(MI.input_id == version_id)
        .order_by(MI.output_id.desc())
        .limit(MERGED_INTO_LIMIT + 1)
    ).all()
    return Lineage(
        merged_from=[_link(r) for r in inputs],
        merged_into=[_link(r) for r in outputs[:MERGED_INTO_LIMIT]],
        more_merged_into=len(outputs) > MERGED_INTO_LIMIT,
    )


def _link(row: Any) -> LineageLink:
    ns, name, number, weight, kind = row
    return LineageLink(namespace=ns, name=name, number=number, weight=weight, kind=kind)
