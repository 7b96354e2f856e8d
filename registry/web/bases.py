"""Registered base models: ``/ui/-/bases`` (by name, keyset pages) and one base's page,
``/ui/-/bases/{name}`` (names are Hugging Face repo ids, so the name may hold a slash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.api.deps import Reader, RuntimeDep
from registry.compat.bases import get_base
from registry.db import models as m
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

BASES = f"{PREFIX}/-/bases"
# Architecture keys worth a column: what tells two bases apart at a glance.
HEADLINE_KEYS = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads")


@dataclass(frozen=True)
class BaseItem:
    name: str
    source: str | None
    architecture: dict[str, Any]
    total_size: int | None
    structure_hash: str | None
    created_at: datetime

    @property
    def model_type(self) -> str:
        kinds = self.architecture.get("architectures") or []
        return str(kinds[0]) if kinds else str(self.architecture.get("model_type") or "")


def base_page(session: Session, *, after: str | None, limit: int) -> tuple[list[BaseItem], bool]:
    """Bases by name after a key, on the unique name index; the ``info`` JSON (every
    tensor's header) is left unread."""
    B = m.BaseModel
    q = select(B.name, B.source, B.architecture, B.total_size, B.structure_hash, B.created_at)
    if after:
        q = q.where(B.name > after)
    rows = session.execute(q.order_by(B.name).limit(limit + 1)).all()
    items = [
        BaseItem(
            name=r.name,
            source=r.source,
            architecture=dict(r.architecture or {}),
            total_size=r.total_size,
            structure_hash=r.structure_hash,
            created_at=r.created_at,
        )
        for r in rows[:limit]
    ]
    return items, len(rows) > limit


@router.get(BASES, dependencies=[Reader])
def base_list(
    request: Request,
    rt: RuntimeDep,
    after: str = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    with rt.db.read() as s:
        items, more = base_page(s, after=after or None, limit=limit)
    keep = {"limit": limit if limit != 50 else None}
    return render(
        request,
        "bases.html",
        {
            "bases": items,
            "next_url": with_query(BASES, {**keep, "after": items[-1].name})
            if more and items
            else None,
            "first_url": with_query(BASES, keep) if after else None,
        },
    )


@router.get(BASES + "/{name:path}", dependencies=[Reader])
def base_detail(request: Request, rt: RuntimeDep, name: str) -> HTMLResponse:
    doc = get_base(rt.db, name)
    arch = dict(doc.get("architecture") or {})
    created = doc.get("created_at")
    return render(
        request,
        "base_model.html",
        {
            "b": doc,
            "created_at": datetime.fromisoformat(created) if created else None,
            "headline": [(k, arch[k]) for k in HEADLINE_KEYS if k in arch],
            "architecture": sorted(arch.items()),
            "tensors": doc.get("tensor_list", []),
        },
    )
