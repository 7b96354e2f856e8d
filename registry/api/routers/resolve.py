"""``GET /api/v1/resolve/{namespace}/{name}``: the lookup serving systems call, with ETags.

The fast path: a repeated lookup is answered on the event loop from the per-process
caches of ``registry.api.version_cache`` (no threadpool hop, no database round trip), and
a change made through any replica reaches every replica within a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from threading import Lock
from typing import Annotated, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response

from registry.api.deps import allow, get_principal
from registry.api.experiment_resolve import resolve_with_experiment
from registry.api.version_cache import body_cache, cached_version
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve, resolve_document
from registry.domain import FileEntry, VersionInfo
from registry.lifecycle.access import Principal
from registry.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["resolve"])
# allow() is typed for Depends; called directly here (see resolve_route).
_READER = cast(Callable[[Request, Principal], Awaitable[Principal]], allow("reader"))


async def get_runtime(request: Request) -> Runtime:
    """The app's Runtime. Async on purpose: FastAPI runs a plain ``def`` dependency in the
    threadpool, a hop that costs more than the whole cached lookup."""
    return request.app.state.runtime  # type: ignore[no-any-return]


FastRuntime = Annotated[Runtime, Depends(get_runtime)]


class PresignCache:
    """Presigned URLs reused for half their lifetime: signing is cheap but not free, and a
    stable URL lets serving nodes' HTTP caches work."""

    def __init__(self) -> None:
        self._urls: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = Lock()

    def get(self, rt: Runtime, f: FileEntry) -> str | None:
        key = (f.sha256, f.path)
        now = time.monotonic()
        with self._lock:
            hit = self._urls.get(key)
            if hit and hit[1] > now:
                return hit[0]
        ttl = rt.settings.presign_ttl_s
        url = rt.store.presign_get(f.sha256, expires_s=ttl, filename=f.path)
        if url is not None:
            with self._lock:
                if len(self._urls) > 100_000:
                    self._urls.clear()
                self._urls[key] = (url, now + ttl / 2)
        return url


def file_url(request: Request, rt: Runtime, v: VersionInfo, f: FileEntry) -> str:
    presigned = request.app.state.presign_cache.get(rt, f)
    if presigned:
        return str(presigned)
    base = str(request.base_url).rstrip("/")
    return (
        f"{base}/api/v1/adapters/{v.namespace}/{v.name}/versions/{v.number}/files/{quote(f.path)}"
    )


def _render(request: Request, rt: Runtime, version: VersionInfo) -> bytes:
    bodies = body_cache(request.app)
    # The content id too: an erased adapter's name and numbers can be pushed again.
    key = (
        version.namespace,
        version.name,
        version.number,
        version.content_id,
        str(request.base_url),
    )
    body = bodies.get(key)
    if body is None:
        presigned = False

        def url_for(v: VersionInfo, f: FileEntry) -> str:
            nonlocal presigned
            url = file_url(request, rt, v, f)
            presigned = presigned or not url.startswith(str(request.base_url))
            return url

        doc = resolve_document(version, url_for=url_for)
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        max_age = min(60.0, rt.settings.presign_ttl_s / 4) if presigned else float("inf")
        bodies.put(key, body, max_age_s=max_age)
    return body


_RESOLVE_PARAMS = [
    {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "ref", "in": "query", "required": False,
     "schema": {"type": "string", "default": "latest"},
     "description": "latest, N or vN, a 40-hex content id, a stage or an alias"},
    {"name": "base", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the base model, where the adapter has versions for several"},
]  # fmt: skip


@router.get("/resolve/{namespace}/{name}", openapi_extra={"parameters": _RESOLVE_PARAMS})
async def resolve_route(request: Request) -> Response:
    """The version ``ref`` names (``latest``, ``3``/``v3``, a content id, a stage or alias),
    with its content id, config summary and download URLs. ``If-None-Match`` gives 304.

    The hot path of every serving system: parameters and the reader check are taken
    straight from the request (documented above through ``openapi_extra``), because
    FastAPI's per-request dependency solving costs more than the cached lookup itself.
    """
    await _READER(request, await get_principal(request))
    if "experiment" in request.query_params:  # A/B experiments: the subject's variant
        return await resolve_with_experiment(request, render=_render)
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    ref = request.query_params.get("ref", "latest")
    base = request.query_params.get("base")
    rt: Runtime = request.app.state.runtime

    def resolver() -> VersionInfo:
        return resolve(rt.db, parse_repo(f"{namespace}/{name}"), ref=ref, base=base)

    version = await cached_version(request, ("v1", namespace, name, ref, base), resolver)
    etag = f'"{version.content_id}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    return Response(_render(request, rt, version), media_type="application/json", headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}
