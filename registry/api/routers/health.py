"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from registry.api.deps import RuntimeDep
from registry.api.responses import ERRORS
from registry.errors import LoraregError

router = APIRouter(tags=["health"], responses=ERRORS)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """``ok`` when every dependency answers; ``checks`` names each (``ok`` or what failed)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]  # database, storage


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


# HEAD too: load balancers (AWS ALB, HAProxy's option httpchk HEAD) probe with it. Kept
# out of the schema: one operation per path and method, the GET documents both.
@router.head("/healthz", include_in_schema=False)
def healthz_head() -> Response:
    return Response(status_code=200)


@router.head("/readyz", include_in_schema=False)
async def readyz_head(rt: RuntimeDep) -> Response:
    return Response(status_code=(await readyz(rt)).status_code)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency does not answer"}},
)
async def readyz(rt: RuntimeDep) -> JSONResponse:
    """200 when the database and the store answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    for name, probe in (("database", rt.db.ping), ("storage", rt.store.check)):
        try:
            await run_in_threadpool(probe)
            checks[name] = "ok"
        except LoraregError as exc:
            checks[name] = exc.message
        except Exception as exc:  # readiness must answer, whatever broke
            checks[name] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
