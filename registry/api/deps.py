"""FastAPI dependencies: the runtime and the acting user, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from registry.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_actor(request: Request) -> str:
    """Who is acting. Until tokens carry identities, the client's declared author."""
    return request.headers.get("x-lorareg-actor", "anonymous")[:200]


ActorDep = Annotated[str, Depends(get_actor)]
