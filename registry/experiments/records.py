"""Rows to domain objects, and the lookups every experiment operation starts with."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.queries import adapter_row
from registry.catalog.refs import Repo, check_name
from registry.db import models as m
from registry.db.experiment_models import Experiment, ExperimentVariant
from registry.errors import ExperimentNotFound, UnknownVariant
from registry.experiments.assignment import ranges_from_rows, split_percent
from registry.experiments.domain import ExperimentInfo, VariantInfo


def experiment_row(session: Session, repo: Repo, name: str) -> Experiment:
    """The running experiment called ``name``, else the newest that ended."""
    check_name(name, what="experiment name")
    adapter = adapter_row(session, repo)
    rows = session.scalars(
        select(Experiment)
        .where(Experiment.adapter_id == adapter.id, Experiment.name == name)
        .order_by(Experiment.id.desc())
    ).all()
    if not rows:
        raise ExperimentNotFound(
            f"{repo} has no experiment {name!r}; list them with `lorareg experiment list {repo}`"
        )
    running = [r for r in rows if r.state == "running"]
    return running[0] if running else rows[0]


def variant_row(row: Experiment, name: str) -> ExperimentVariant:
    for v in row.variants:
        if v.name == name:
            return v
    names = ", ".join(v.name for v in row.variants)
    raise UnknownVariant(f"experiment {row.name!r} has no variant {name!r}; its variants: {names}")


def version_numbers(session: Session, row: Experiment) -> dict[str, int | None]:
    ids = [v.version_id for v in row.variants if v.version_id is not None]
    numbers = dict(
        session.execute(
            select(m.AdapterVersion.id, m.AdapterVersion.number).where(m.AdapterVersion.id.in_(ids))
        ).all()
    )
    return {
        v.name: numbers.get(v.version_id) if v.version_id is not None else None
        for v in row.variants
    }


def experiment_info(session: Session, row: Experiment) -> ExperimentInfo:
    numbers = version_numbers(session, row)
    ranges = ranges_from_rows(row.ranges)
    percent = split_percent(ranges, [v.name for v in row.variants])
    return ExperimentInfo(
        namespace=row.adapter.namespace.name,
        adapter=row.adapter.name,
        name=row.name,
        state=row.state,
        base_model=row.base_model,
        salt=row.salt,
        metric=row.metric,
        description=row.description,
        variants=[
            VariantInfo(
                name=v.name,
                version=numbers[v.name],
                ref=v.ref,
                percent=percent[v.name],
                control=v.position == 0,
            )
            for v in row.variants
        ],
        ranges=[(r.start, r.end, r.variant) for r in ranges],
        period=row.period,
        winner=row.winner,
        created_by=row.created_by,
        created_at=row.created_at,
        ended_by=row.ended_by,
        ended_at=row.ended_at,
    )
