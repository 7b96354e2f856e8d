"""``GET /api/v1/resolve/{namespace}/{name}``: the lookup serving systems call, with ETags.

Two paths, one answer. The route resolves and renders a reference, then keeps the encoded
response in the per-process ``registry.api.version_cache`` (dropped whenever the catalog
changes, so a change made through any replica reaches every replica within a second).
``ResolveFastPath``, an ASGI middleware in front of the router, answers a repeated lookup
from those bytes without routing, validation or a threadpool hop; anything it is not
sure of (a token not yet authenticated, an unknown parameter, a miss) goes on to the route.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry.access.tokens import authenticate, token_digest
from registry.api.deps import allow, bearer_token, get_principal
from registry.api.experiment_resolve import resolve_with_experiment
from registry.api.regions import choose, read_router, request_region
from registry.api.responses import ERRORS
from registry.api.version_cache import (
    VersionCache,
    cached_version,
    start_refresh,
    version_cache,
)
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve, resolve_document
from registry.domain import FileEntry, VersionInfo
from registry.errors import LoraregError
from registry.observability.metrics import RESOLVE_CACHE
from registry.principal import OPEN_ACCESS, Principal
from registry.regions.router import ReadChoice
from registry.runtime import Runtime
from registry.services.models import ResolveDocument
from registry.storage.base import BlobStore

router = APIRouter(prefix="/api/v1", tags=["resolve"], responses=ERRORS)
# allow() is typed for Depends; called directly here (see resolve_route).
_READER = cast(Callable[[Request, Principal], Awaitable[Principal]], allow("reader"))


async def get_runtime(request: Request) -> Runtime:
    """The app's Runtime. Async on purpose: FastAPI runs a plain ``def`` dependency in the
    threadpool, a hop that costs more than the whole cached lookup."""
    return request.app.state.runtime  # type: ignore[no-any-return]


FastRuntime = Annotated[Runtime, Depends(get_runtime)]


class PresignCache:
    """Presigned URLs reused for half their lifetime: signing is cheap but not free, and a
    stable URL lets serving nodes' HTTP caches work. Kept per region: ``store`` is the
    region's (default: the primary)."""

    def __init__(self) -> None:
        self._urls: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = Lock()

    def get(
        self, rt: Runtime, f: FileEntry, *, store: BlobStore | None = None, region: str = ""
    ) -> str | None:
        key = (region, f.sha256, f.path)
        now = time.monotonic()
        with self._lock:
            hit = self._urls.get(key)
            if hit and hit[1] > now:
                return hit[0]
        ttl = rt.settings.presign_ttl_s
        url = (store or rt.store).presign_get(f.sha256, expires_s=ttl, filename=f.path)
        if url is not None:
            with self._lock:
                if len(self._urls) > 100_000:
                    self._urls.clear()
                self._urls[key] = (url, now + ttl / 2)
        return url


def file_url(
    request: Request, rt: Runtime, v: VersionInfo, f: FileEntry, choice: ReadChoice | None = None
) -> str:
    """Where a reader downloads ``f``: a presigned URL of the chosen region's store, or
    this server's download route (naming the region when it is not the primary)."""
    region = choice.region if choice is not None and not choice.region.is_primary else None
    cache = request.app.state.presign_cache
    presigned = (
        cache.get(rt, f)
        if region is None
        else cache.get(rt, f, store=region.store, region=region.name)
    )
    if presigned:
        return str(presigned)
    base = str(request.base_url).rstrip("/")
    url = f"{base}/api/v1/adapters/{v.namespace}/{v.name}/versions/{v.number}/files/{quote(f.path)}"
    return url if region is None else f"{url}?region={region.name}"


PREFIX = "/api/v1/resolve/"


@dataclass(frozen=True)
class _FastRoute:
    """Stands in the scope for the route a fast answer skipped: /metrics labels requests by
    ``scope["route"].path``, and a resolve is a resolve whichever path answered it."""

    path: str = PREFIX + "{namespace}/{name}"


FAST_ROUTE = _FastRoute()
# The query parameters the fast path understands; any other goes to the route.
_PARAMS = frozenset({"ref", "base", "region"})
# A document that sends a reader to another region than its own is kept this long at
# most, so the reader switches to its own region soon after the copy lands.
FALLBACK_MAX_AGE_S = 5.0


@dataclass(frozen=True)
class Rendered:
    """A resolve answer, encoded once: its ETag and its 200 response's body."""

    etag: str
    body: bytes

    def headers(self, *, with_body: bool) -> list[tuple[bytes, bytes]]:
        """The response headers, exactly as the route's ``Response`` writes them."""
        common = [(b"etag", self.etag.encode()), (b"cache-control", b"no-cache")]
        if not with_body:
            return common
        length = (b"content-length", str(len(self.body)).encode())
        return [length, (b"content-type", b"application/json"), *common]


def lookup_key(namespace: str, name: str, ref: str, base: str | None) -> Hashable:
    """The version cache's key for a reference."""
    return ("v1", namespace, name, ref, base)


def _origin(scope: Mapping[str, Any]) -> Hashable:
    """What the download URLs in a body depend on (``request.base_url``'s inputs)."""
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    server = scope.get("server")  # a tuple from uvicorn, a list from some ASGI clients
    return (
        scope.get("scheme"),
        host,
        tuple(server) if server else None,
        scope.get("root_path", ""),
    )


def _render(
    request: Request,
    rt: Runtime,
    version: VersionInfo,
    choices: Mapping[str, ReadChoice] | None = None,
) -> tuple[bytes, float]:
    """The document's bytes, and for how long they may be served (presigned URLs age;
    a regional reader's fallbacks end when the copies land). ``choices``: each blob's
    region (default: the primary)."""
    presigned = False

    def url_for(v: VersionInfo, f: FileEntry) -> str:
        nonlocal presigned
        url = file_url(request, rt, v, f, choices.get(f.sha256) if choices else None)
        presigned = presigned or not url.startswith(str(request.base_url))
        return url

    doc = resolve_document(version, url_for=url_for)
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    max_age = min(60.0, rt.settings.presign_ttl_s / 4) if presigned else float("inf")
    if choices and any(c.fallback for c in choices.values()):
        max_age = min(max_age, FALLBACK_MAX_AGE_S)
    return body, max_age


_RESOLVE_PARAMS = [
    {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "ref", "in": "query", "required": False,
     "schema": {"type": "string", "default": "latest"},
     "description": "latest, N or vN, a 40-hex content id, a stage or an alias"},
    {"name": "base", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the base model, where the adapter has versions for several"},
    {"name": "region", "in": "query", "required": False,
     "schema": {"type": "string", "maxLength": 32},
     "description": "the reader's region: download URLs point at its copies where present"},
]  # fmt: skip


_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `If-None-Match` ETag is the version's"}
}


# The body is rendered by ``_render`` (bytes the fast path reuses); the model documents it.
@router.get(
    "/resolve/{namespace}/{name}",
    response_model=ResolveDocument,
    responses=_NOT_MODIFIED,
    openapi_extra={"parameters": _RESOLVE_PARAMS},
)
async def resolve_route(request: Request) -> Response:
    """The version ``ref`` names (``latest``, ``3``/``v3``, a content id, a stage or alias),
    with its content id, config summary and download URLs. ``If-None-Match`` gives 304.

    The hot path of every serving system: parameters and the reader check are taken
    straight from the request (documented above through ``openapi_extra``), because
    FastAPI's per-request dependency solving costs more than the cached lookup itself.
    """
    cache = version_cache(request.app)
    # Before resolving: a change meanwhile drops what we keep.
    generation = cache.generation
    principal = await _READER(request, await _caller(request, cache))
    reader = request_region(request, principal)
    if "experiment" in request.query_params:  # A/B experiments: the subject's variant
        return await resolve_with_experiment(request, reader=reader, render=_render)
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    ref = request.query_params.get("ref", "latest")
    base = request.query_params.get("base")
    rt: Runtime = request.app.state.runtime

    def resolver() -> VersionInfo:
        return resolve(rt.db, parse_repo(f"{namespace}/{name}"), ref=ref, base=base)

    key = lookup_key(namespace, name, ref, base)
    version = await cached_version(request, key, resolver)
    epoch = read_router(request.app).health.epoch  # before choosing: a change misses
    if reader == read_router(request.app).regions.primary.name:
        body, max_age = _render(request, rt, version)
    else:
        choices = await choose(request, reader, [f.sha256 for f in version.files])
        body, max_age = _render(request, rt, version, choices)
    rendered = Rendered(etag=f'"{version.content_id}"', body=body)
    # What the fast path will look up. The body depends on no caller, only on the
    # reader's region (in the key): one rendering serves every token that sees it.
    if set(request.query_params) <= _PARAMS:
        cache.keep_rendered(
            (key, _origin(request.scope), reader, epoch),
            rendered,
            generation=generation,
            max_age_s=max_age,
        )
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if rendered.etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def _caller(request: Request, cache: VersionCache) -> Principal:
    """``get_principal``, with tokens authenticated through the version cache: the fast
    path then knows them, and a burst that finds the cache stale shares one catalog check
    instead of querying its token each."""
    token = bearer_token(request)
    if token is None or getattr(request.state, "principal", None) is not None:
        return await get_principal(request)
    digest = token_digest(token)
    principal = cache.peek_principal(digest)
    if principal is None:
        db = request.app.state.runtime.db
        principal = await run_in_threadpool(
            cache.load_principal, digest, lambda: authenticate(db, token)
        )
    request.state.principal = principal
    return principal


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


class ResolveFastPath:
    """ASGI middleware: a repeated ``GET /api/v1/resolve/...`` answered from the bytes the
    route rendered, before routing, for an open server's callers and for tokens the route
    authenticated (kept in the version cache, dropped with it). Goes on to the app (the route)
    whenever it cannot answer exactly as the route would."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
            or not await self._answer(scope, send)
        ):
            await self.app(scope, receive, send)

    async def _answer(self, scope: dict[str, Any], send: Any) -> bool:
        app = scope["app"]
        if "principal" in scope.get("state", {}):
            return False  # dashboard sessions: the route checks them
        namespace, _, name = scope["path"][len(PREFIX) :].partition("/")
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if not params.keys() <= _PARAMS or "/" in name:
            return False
        if_none_match = authorization = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                authorization = v.decode("latin-1")
            elif k == b"if-none-match":
                if_none_match = v.decode("latin-1")
        cache = version_cache(app)
        principal = self._principal(app, cache, authorization)
        if principal is None or not principal.sees(namespace) or not principal.can("reader"):
            return False  # the route authenticates, and says what is wrong
        router = read_router(app)
        try:  # the reader's region exactly as the route names it
            reader = router.reader_region(
                params.get("region") or None, token_default=principal.default_region
            )
        except LoraregError:
            return False
        key = lookup_key(namespace, name, params.get("ref", "latest"), params.get("base"))
        rendered, refresh = cache.peek_rendered((key, _origin(scope), reader, router.health.epoch))
        if refresh:
            start_refresh(cache)
        if rendered is None:
            return False
        scope["route"] = FAST_ROUTE
        RESOLVE_CACHE.labels("hit").inc()
        fresh = rendered.etag in _etags(if_none_match)
        await send(
            {
                "type": "http.response.start",
                "status": 304 if fresh else 200,
                "headers": rendered.headers(with_body=not fresh),
            }
        )
        await send({"type": "http.response.body", "body": b"" if fresh else rendered.body})
        return True

    @staticmethod
    def _principal(app: Any, cache: VersionCache, authorization: str | None) -> Principal | None:
        """Who asks, when it is known without I/O: a token the route authenticated since
        the catalog last changed, or anyone on an open server; else None (the route)."""
        if authorization is None:
            return None if app.state.auth_required else OPEN_ACCESS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return cache.peek_principal(token_digest(token.strip()))
