"""Registered base models: ``/ui/-/bases`` (by name, keyset pages) and one base's page,
``/ui/-/bases/{name}`` (names are Hugging Face repo ids, so the name may hold a slash)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from registry.http_deps import Reader, RuntimeDep
from registry.services import compat as compat_service
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

BASES = f"{PREFIX}/-/bases"
# Architecture keys worth a column: what tells two bases apart at a glance.
HEADLINE_KEYS = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads")


@router.get(BASES, dependencies=[Reader])
def base_list(
    request: Request,
    rt: RuntimeDep,
    after: str = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    page = compat_service.base_page(rt.db, after=after or None, limit=limit)
    items = page.items
    keep = {"limit": limit if limit != 50 else None}
    return render(
        request,
        "bases.html",
        {
            "bases": items,
            "next_url": with_query(BASES, {**keep, "after": items[-1].name})
            if page.has_next and items
            else None,
            "first_url": with_query(BASES, keep) if after else None,
        },
    )


@router.get(BASES + "/{name:path}", dependencies=[Reader])
def base_detail(request: Request, rt: RuntimeDep, name: str) -> HTMLResponse:
    doc = compat_service.get_base(rt.db, name)
    arch = dict(doc.architecture)
    return render(
        request,
        "base_model.html",
        {
            "b": doc,
            "created_at": datetime.fromisoformat(doc.created_at) if doc.created_at else None,
            "headline": [(k, arch[k]) for k in HEADLINE_KEYS if k in arch],
            "architecture": sorted(arch.items()),
            "tensors": doc.tensor_list,
        },
    )
