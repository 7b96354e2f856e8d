"""Regions: ``/api/v1/regions`` (every reader) and ``/api/v1/regions/status`` (unscoped
admins: the figures span every namespace). A version's presence per region is also at
``/api/v1/adapters/{namespace}/{name}/versions/{number}/regions`` for whoever sees it."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from registry.api.deps import Admin, CurrentUser, NumberPath, Reader, RuntimeDep
from registry.api.responses import ERRORS
from registry.api.version_cache import app_singleton
from registry.services import regions as regions_service
from registry.services.region_models import RegionStatusReport, RegionView, VersionPresence

router = APIRouter(prefix="/api/v1", tags=["regions"], responses=ERRORS)

RefQuery = Annotated[str | None, Query(max_length=300, description="ns/name:N, ns/name@label")]


# A listing probes every region's store; any reader may ask, as often as it likes, so the
# probes run at most this often per server (readyz's probes are as old, at most).
LISTING_MAX_AGE_S = 5.0


class _Listing:
    """The last listing and when it was made; one probe at a time (others wait for it)."""

    def __init__(self) -> None:
        self.views: list[RegionView] | None = None
        self.made_at = float("-inf")
        self.lock = asyncio.Lock()


@router.get("/regions", response_model=list[RegionView], dependencies=[Reader])
async def list_regions(request: Request, rt: RuntimeDep) -> list[RegionView]:
    """Every region, the primary first, with whether its store answered (a probe at most
    five seconds old)."""
    regions = getattr(request.app.state, "regions", None)
    listing = app_singleton(request.app, "region_listing", _Listing)
    async with listing.lock:
        if listing.views is None or time.monotonic() - listing.made_at > LISTING_MAX_AGE_S:
            listing.views = await run_in_threadpool(
                lambda: regions_service.list_regions(rt, regions=regions)
            )
            listing.made_at = time.monotonic()
        return listing.views


@router.get("/regions/status", response_model=RegionStatusReport, dependencies=[Admin])
def region_status(
    request: Request, rt: RuntimeDep, user: CurrentUser, ref: RefQuery = None
) -> RegionStatusReport:
    """Backlog, replication lag and failures per region; with ``ref``, which regions hold
    every file of that version and which files each other region misses."""
    regions = getattr(request.app.state, "regions", None)
    return regions_service.region_status(rt, principal=user, ref=ref, regions=regions)


@router.get(
    "/adapters/{namespace}/{name}/versions/{number}/regions",
    response_model=VersionPresence,
    dependencies=[Reader],
)
def version_regions(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, number: NumberPath
) -> VersionPresence:
    """Which regions hold every file of one version."""
    return regions_service.version_presence(rt, f"{namespace}/{name}:{number}", principal=user)
