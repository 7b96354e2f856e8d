"""``GET /api/v1/resolve/{namespace}/{name}``: the lookup serving systems call, with ETags."""

from __future__ import annotations

import time
from threading import Lock
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from registry.api.deps import RuntimeDep
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve, resolve_document
from registry.domain import FileEntry, VersionInfo
from registry.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["resolve"])


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


@router.get("/resolve/{namespace}/{name}")
def resolve_route(
    rt: RuntimeDep,
    request: Request,
    namespace: str,
    name: str,
    ref: str = "latest",
    base: str | None = None,
) -> Response:
    """The version ``ref`` names (``latest``, ``3``/``v3``, a content id, a stage or alias),
    with its content id, config summary and download URLs. ``If-None-Match`` gives 304."""
    version = resolve(rt.db, parse_repo(f"{namespace}/{name}"), ref=ref, base=base)
    etag = f'"{version.content_id}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    doc: dict[str, Any] = resolve_document(
        version, url_for=lambda v, f: file_url(request, rt, v, f)
    )
    return JSONResponse(doc, headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}
