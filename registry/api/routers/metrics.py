"""``GET /metrics``: Prometheus text exposition of the server's metrics.

Who may read it: a peer on a loopback address without proxy headers (a Prometheus agent
on the same host) always; anyone else needs an unscoped token (any role), as the figures
cover every namespace. A server running open (loopback only) answers everyone it answers.
Behind a reverse proxy on the same host the proxy's ``Forwarded``/``X-Forwarded-For``
headers make the request count as remote, so the proxy cannot open it to the world.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from registry.api.deps import RuntimeDep, get_principal
from registry.observability.exposition import CONTENT_TYPE, JobQueueCollector, render

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, rt: RuntimeDep) -> Response:
    if not loopback_peer(request):
        principal = await get_principal(request)
        principal.require_unscoped("/metrics")
    body = await run_in_threadpool(render, [JobQueueCollector(rt.db)])
    return Response(body, media_type=CONTENT_TYPE)


def loopback_peer(request: Request) -> bool:
    """The request came straight from this host: a loopback peer and no proxy headers."""
    if "forwarded" in request.headers or "x-forwarded-for" in request.headers:
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
