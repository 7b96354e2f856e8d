"""Regions at the HTTP edge: the reader's region of a request and the store each of its
blobs is read from (``registry.regions.router``).

A request reads from ``?region=`` when it names one (UnknownRegion, 422, when that is
not configured), else from its token's default region, else from the server's
``LORAREG_REGION``, else from the primary. Without regions configured every request
reads from the primary, as before, and only ``?region=<primary name>`` is accepted.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from registry.errors import BlobNotFound, StorageUnavailable
from registry.principal import Principal
from registry.regions.router import ReadChoice, ReadRouter
from registry.regions.stores import Region

MAX_REGION_PARAM = 32


def read_router(app: FastAPI) -> ReadRouter:
    return app.state.read_router  # type: ignore[no-any-return]


def region_param(request: Request) -> str | None:
    """The ``region`` query parameter (bounded: a longer value is no region's name)."""
    value = request.query_params.get("region")
    if value is None or value == "":
        return None
    return value[: MAX_REGION_PARAM + 1]


def request_region(request: Request, principal: Principal | None) -> str:
    """The region this request reads from (see the module docstring)."""
    return read_router(request.app).reader_region(
        region_param(request),
        token_default=principal.default_region if principal is not None else None,
    )


def principal_of(request: Request) -> Principal | None:
    """The principal an earlier dependency authenticated, if any."""
    return getattr(request.state, "principal", None)


async def choose(request: Request, reader: str, shas: list[str]) -> dict[str, ReadChoice]:
    """The store of each blob for ``reader``; no thread hop when it reads the primary."""
    router = read_router(request.app)
    if reader == router.regions.primary.name:
        return router.choose(reader, shas)
    return await run_in_threadpool(router.choose, reader, shas)


def streaming_store(router: ReadRouter, reader: str, sha256: str) -> Region:
    """Blocking: the region (and so the store) to read ``sha256`` from. A regional copy
    the catalog lists is looked at first (a cheap HEAD); if its store fails or lost it,
    the reader falls back (counted) instead of getting an error."""
    choice = router.store_for(reader, sha256)
    while not choice.region.is_primary:
        try:
            choice.region.store.size(sha256)
            return choice.region
        except (StorageUnavailable, BlobNotFound):
            choice = router.next_after(reader, sha256, choice.region.name)
    return choice.region
