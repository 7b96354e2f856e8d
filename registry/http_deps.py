"""FastAPI dependencies of both HTTP edges, the API and the dashboard: the runtime, the
caller, and per-route role checks. They sit below both edges so that neither imports the
other (``registry.api.deps`` re-exports them for the routers).

``allow(role)`` is attached to every route. It authenticates the bearer token (or, on a
server running open, treats the caller as the local admin), hides namespaces outside the
token's scope as 404, then requires the role (403 with code ``forbidden``).

It sees only a ``{namespace}`` path parameter. Routes that name their target another way
(a token, webhook or job id, a body, a query) check the scope themselves through the
services (``Principal.covers``, ``require_covers``, ``require_unscoped``, ``visible_jobs``);
``tests/api/test_tenancy_matrix.py`` aims every route at another tenant to keep it so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool

from registry.access import OPEN_ACCESS, Principal, authenticate
from registry.errors import AdapterNotFound, Unauthorized
from registry.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the token as 'Authorization: Bearer <token>'")
    return token.strip()


async def get_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = bearer_token(request)
    if token is not None:
        rt: Runtime = request.app.state.runtime
        try:
            principal = await run_in_threadpool(authenticate, rt.db, token)
        except Unauthorized:
            foreign_ok = getattr(request.state, "foreign_token_ok", False)
            if request.app.state.auth_required or not foreign_ok:
                raise
            # huggingface_hub sends the user's HF_TOKEN (a huggingface.co token) to any
            # endpoint on its own. On an open server a read through the hub routes with a
            # token we never issued is served as anonymous, as it would be without one.
            principal = _open_principal(request)
    elif request.app.state.auth_required:
        raise Unauthorized(
            "this server needs a token: set LORAREG_TOKEN (or send 'Authorization: Bearer"
            " <token>'); an admin creates one with `lorareg token create`"
        )
    else:
        principal = _open_principal(request)
    request.state.principal = principal
    return principal


def _open_principal(request: Request) -> Principal:
    # Open server: the client's declared name goes into the audit log.
    declared = request.headers.get("x-lorareg-actor", "")[:200]
    return Principal(name=declared or OPEN_ACCESS.name, role=OPEN_ACCESS.role)


def accept_foreign_tokens(request: Request) -> None:
    """A router dependency of the hub routes (all reads, paths-info's POST included):
    on an open server an unknown token is not refused. Listed before the role check,
    which reads the mark."""
    request.state.foreign_token_ok = True


CurrentUser = Annotated[Principal, Depends(get_principal)]


def allow(role: str) -> Callable[..., object]:
    """A route dependency: the caller sees the path's namespace and holds ``role``."""

    async def check(request: Request, principal: CurrentUser) -> Principal:
        ns = request.path_params.get("namespace")
        if ns is not None and not principal.sees(ns):
            name = request.path_params.get("name", "")
            raise AdapterNotFound(f"adapter {ns}/{name} does not exist")
        principal.require(role)
        return principal

    return check


Reader = Depends(allow("reader"))
Writer = Depends(allow("writer"))
Maintainer = Depends(allow("maintainer"))
Admin = Depends(allow("admin"))


# Path integers bounded to what the database stores, so a huge number is a 422, not a
# driver overflow.
MAX_ID = 2**62
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
NumberPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
