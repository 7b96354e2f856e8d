"""The library heatmap: ``/ui/-/library?base=NAME``: every pair of adapters on a base, coloured
by the cosine of their deltas, the worst module on hover, and the pairs above a threshold
listed (each cell links to its row). Numbers come from ``registry.library.library_map`` and
its cache; a scoped viewer sees only its namespaces' adapters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from registry.http_deps import CurrentUser, Reader, RuntimeDep
from registry.services import compat as compat_service
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

LIBRARY = f"{PREFIX}/-/library"


def heat_class(cosine: float) -> str:
    """A CSS class per tenth of |cosine| and its sign (the CSP allows no inline styles)."""
    step = min(10, int(abs(cosine) * 10 + 0.5))
    return f"heat heat-{step} {'neg' if cosine < 0 else 'pos'}"


@router.get(LIBRARY, dependencies=[Reader])
def library_page(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    base: Annotated[str | None, Query(max_length=200)] = None,
    namespace: Annotated[str | None, Query(max_length=64)] = None,
    threshold: Annotated[float, Query(ge=0, le=1)] = 0.3,
) -> HTMLResponse:
    # Bases are shared; the ones only adapters name are listed from the viewer's own.
    bases = compat_service.named_bases(rt.db, visible=user.namespaces, limit=200)
    ctx: dict[str, Any] = {
        "bases": bases,
        "base": base,
        "namespace": namespace or "",
        "threshold": threshold,
        "map": None,
        "grid": [],
        "above": [],
    }
    if base:
        from registry.merge.service import require_torch

        require_torch()
        from registry.library.library_map import library_map

        if namespace:
            user.require_namespace(namespace, what="namespace")
        lib = library_map(rt, base=base, namespace=namespace or None, visible=user.namespaces)
        index = {(p.x, p.y): p for p in lib.pairs} | {(p.y, p.x): p for p in lib.pairs}
        ctx["map"] = lib
        ctx["grid"] = [[(y, index.get((x, y))) for y in lib.adapters] for x in lib.adapters]
        ctx["above"] = sorted(
            (p for p in lib.pairs if p.max_abs_cosine > threshold),
            key=lambda p: -p.max_abs_cosine,
        )
        ctx["pair_id"] = {(p.x, p.y): f"pair-{i}" for i, p in enumerate(lib.pairs)} | {
            (p.y, p.x): f"pair-{i}" for i, p in enumerate(lib.pairs)
        }
    ctx["heat_class"] = heat_class
    return render(request, "library.html", ctx)
