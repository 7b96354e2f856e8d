"""Running experiments for serving nodes: every one on a base model, in one paged read.

``lorareg sync`` asks once per pass (and once per ``experiment.*`` event batch) instead of
once per adapter, so a node with thousands of adapters makes a handful of calls. The
answer is filtered like the adapter list: a scoped token sees its namespaces only.
"""

from __future__ import annotations

from sqlalchemy import select

from registry.catalog.refs import check_name
from registry.db import models as m
from registry.db.database import Database
from registry.db.experiment_models import Experiment
from registry.experiments.assignment import ranges_from_rows
from registry.experiments.domain import ServedExperiment, ServedVariant

MAX_PAGE = 1000


def running_experiments(
    db: Database,
    *,
    namespace: str | None = None,
    base: str | None = None,
    visible: frozenset[str] | None = None,
    after: int = 0,
    limit: int = MAX_PAGE,
) -> list[ServedExperiment]:
    """Running experiments with ``id > after``, oldest first, at most ``limit``."""
    if namespace is not None:
        check_name(namespace, what="namespace")
    A, N = m.Adapter, m.Namespace
    q = (
        select(Experiment)
        .join(A, A.id == Experiment.adapter_id)
        .join(N, N.id == A.namespace_id)
        .where(Experiment.state == "running", Experiment.id > after)
    )
    if namespace is not None:
        q = q.where(N.name == namespace)
    if visible is not None:
        q = q.where(N.name.in_(sorted(visible)))
    if base is not None:
        q = q.where(Experiment.base_model == base)
    with db.read() as s:
        rows = s.scalars(q.order_by(Experiment.id).limit(max(1, min(limit, MAX_PAGE)))).all()
        ids = [v.version_id for r in rows for v in r.variants if v.version_id is not None]
        V = m.AdapterVersion
        versions = {
            vid: (number, content)
            for vid, number, content in s.execute(
                select(V.id, V.number, V.content_id).where(V.id.in_(ids))
            )
        }
        out: list[ServedExperiment] = []
        for r in rows:
            variants = []
            for v in r.variants:
                number, content = versions.get(v.version_id or -1, (None, None))
                variants.append(
                    ServedVariant(
                        name=v.name, version=number, content_id=content, control=v.position == 0
                    )
                )
            out.append(
                ServedExperiment(
                    id=r.id,
                    namespace=r.adapter.namespace.name,
                    adapter=r.adapter.name,
                    name=r.name,
                    base_model=r.base_model,
                    salt=r.salt,
                    period=r.period,
                    ranges=[(x.start, x.end, x.variant) for x in ranges_from_rows(r.ranges)],
                    variants=variants,
                )
            )
    return out
