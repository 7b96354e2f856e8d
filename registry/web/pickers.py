"""Suggestions for the dashboard's pickers: ``/ui/-/namespaces?prefix=te`` answers the
first namespaces whose name starts with what was typed, as JSON, for ``app.js`` to put in
the namespace field's ``<datalist>``. The index page renders the same bounded list, so the
field works without JavaScript too, and neither grows with the number of namespaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from registry.catalog.refs import check_name
from registry.http_deps import CurrentUser, Reader, RuntimeDep
from registry.services import catalog as catalog_service
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get(f"{PREFIX}/-/namespaces", dependencies=[Reader])
def namespace_suggestions(
    rt: RuntimeDep,
    user: CurrentUser,
    prefix: Annotated[str, Query(max_length=64)] = "",
) -> JSONResponse:
    prefix = prefix.strip()
    if prefix:
        check_name(prefix, what="namespace prefix")  # a name's start is a name
    names = catalog_service.namespace_names(rt.db, prefix=prefix, visible=user.namespaces)
    # Private: suggestions follow the caller's token, so no shared cache may keep them.
    return JSONResponse({"namespaces": names}, headers={"Cache-Control": "private, no-store"})
