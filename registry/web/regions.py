"""The Regions page, ``/ui/-/regions``: every region, whether its store answers, and its
replication backlog, lag and failures (unscoped admins: the figures span every tenant).
A version's own page shows which regions hold it (``version_regions``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from registry.http_deps import Admin, CurrentUser, RuntimeDep
from registry.principal import Principal
from registry.runtime import Runtime
from registry.services import regions as regions_service
from registry.services.region_models import VersionPresence
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

REGIONS = f"{PREFIX}/-/regions"


@router.get(REGIONS, dependencies=[Admin])
def regions_page(request: Request, rt: RuntimeDep, user: CurrentUser) -> HTMLResponse:
    regions = getattr(request.app.state, "regions", None)
    report = regions_service.region_status(rt, principal=user, regions=regions)
    reachable = {v.name: v for v in regions_service.list_regions(rt, regions=regions)}
    return render(
        request,
        "regions.html",
        {"report": report, "reachable": reachable, "configured": bool(rt.settings.regions)},
    )


def version_regions(rt: Runtime, ref: str, principal: Principal) -> VersionPresence | None:
    """The version's presence per region (None: no regions configured)."""
    if not rt.settings.regions:
        return None
    return regions_service.version_presence(rt, ref, principal=principal)
