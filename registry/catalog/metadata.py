"""Mutable metadata of an immutable version: tags and eval scores, each change an event."""

from __future__ import annotations

from registry.catalog.push import check_eval, check_tags
from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Ref
from registry.db import models as m
from registry.db.database import Database
from registry.domain import EvalRecord, VersionInfo


def set_tags(db: Database, ref: Ref, tags: dict[str, str], *, actor: str) -> VersionInfo:
    """Add or overwrite tags on a version (an empty value removes the tag)."""
    check_tags({k: v for k, v in tags.items() if v})
    with db.write() as session:
        row = ref_row(session, ref)
        current = {t.key: t for t in row.tags}
        for key, value in tags.items():
            if not value:
                if key in current:
                    row.tags.remove(current[key])
            elif key in current:
                current[key].value = value
            else:
                row.tags.append(m.Tag(key=key, value=value))
        session.add(_event(row, "version.tagged", actor, {"tags": tags}))
        session.flush()
        session.refresh(row)
        return to_info(session, row)


def add_evals(db: Database, ref: Ref, evals: list[EvalRecord], *, actor: str) -> VersionInfo:
    for e in evals:
        check_eval(e)
    with db.write() as session:
        row = ref_row(session, ref)
        for e in evals:
            row.evals.append(
                m.EvalScore(
                    metric=e.metric,
                    value=e.value,
                    dataset=e.dataset,
                    higher_is_better=e.higher_is_better,
                    recorded_by=actor,
                )
            )
        session.add(
            _event(
                row, "eval.recorded", actor, {"evals": [e.model_dump(mode="json") for e in evals]}
            )
        )
        session.flush()
        session.refresh(row)
        return to_info(session, row)


def _event(row: m.AdapterVersion, kind: str, actor: str, payload: dict) -> m.Event:  # type: ignore[type-arg]
    return m.Event(
        kind=kind,
        namespace=row.adapter.namespace.name,
        adapter=row.adapter.name,
        version=row.number,
        actor=actor,
        payload=payload,
    )
