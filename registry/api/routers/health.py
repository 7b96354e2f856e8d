"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from registry.api.deps import RuntimeDep
from registry.errors import LoraregError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# HEAD too: load balancers (AWS ALB, HAProxy's option httpchk HEAD) probe with it. Kept
# out of the schema: one operation per path and method, the GET documents both.
@router.head("/healthz", include_in_schema=False)
def healthz_head() -> Response:
    return Response(status_code=200)


@router.head("/readyz", include_in_schema=False)
async def readyz_head(rt: RuntimeDep, request: Request) -> Response:
    return Response(status_code=(await readyz(rt, request)).status_code)


@router.get("/readyz")
async def readyz(rt: RuntimeDep, request: Request) -> JSONResponse:
    """200 when the database and the primary store answer; 503 naming what does not.

    With regions, each regional store is probed too: one that does not answer makes the
    status ``degraded`` (still 200: its readers fall back to other regions) and is named
    under ``regions``."""
    checks: dict[str, str] = {}
    for name, probe in (("database", rt.db.ping), ("storage", rt.store.check)):
        checks[name] = await _answer(probe)
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    router = getattr(request.app.state, "read_router", None)
    if router is not None and router.regions.enabled:
        regions = {
            region.name: await run_in_threadpool(router.health.status, region)
            for region in router.regions.replicas()
        }
        body["regions"] = regions
        if ok and any(v != "ok" for v in regions.values()):
            body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if ok else 503)


async def _answer(probe: Callable[[], None]) -> str:
    try:
        await run_in_threadpool(probe)
        return "ok"
    except LoraregError as exc:
        return exc.message
    except Exception as exc:  # readiness must answer, whatever broke
        return f"error: {type(exc).__name__}"
