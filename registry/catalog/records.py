"""Turning catalog rows into domain objects (the only place that reads row attributes)."""

from __future__ import annotations

from registry.db import models as m
from registry.domain import EvalRecord, EventInfo, FileEntry, Stage, VersionInfo


def version_info(
    row: m.AdapterVersion, *, parent_number: int | None = None, aliases: list[str] | None = None
) -> VersionInfo:
    return VersionInfo(
        namespace=row.adapter.namespace.name,
        name=row.adapter.name,
        number=row.number,
        content_id=row.content_id,
        base_model=row.base_model,
        peft_type=row.peft_type,
        r=row.r,
        lora_alpha=row.lora_alpha,
        target_modules=list(row.target_modules or []),
        config=dict(row.config or {}),
        size=row.size,
        file_count=row.file_count,
        author=row.author,
        description=row.description,
        parent=parent_number,
        created_at=row.created_at,
        stage=Stage(row.stage) if row.stage else None,
        kind=row.kind,
        aliases=sorted(aliases or []),
        tags={t.key: t.value for t in row.tags},
        evals=[
            EvalRecord(
                metric=e.metric,
                value=e.value,
                dataset=e.dataset,
                higher_is_better=e.higher_is_better,
                recorded_by=e.recorded_by,
                created_at=e.created_at,
            )
            for e in row.evals
        ],
        files=[FileEntry(path=f.path, sha256=f.sha256, size=f.size) for f in row.files],
    )


def event_info(row: m.Event) -> EventInfo:
    return EventInfo(
        id=row.id,
        kind=row.kind,
        namespace=row.namespace,
        adapter=row.adapter,
        version=row.version,
        actor=row.actor,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
    )
