"""``GET /api/v1/resolve/{namespace}/{name}``: the lookup serving systems call, with ETags.

The fast path: answers come from a per-process ``VersionCache`` without touching the
event loop's threadpool or the database. Every change to the catalog appends a row to
``events``, so the newest event id is a catalog-wide version number; the cache compares
it at most every ``check_interval_s`` (200 ms), and right after this process commits,
so a promotion made through any replica is seen by every replica within a second.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import event

from registry.api.deps import Reader, RuntimeDep
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve, resolve_document
from registry.db.database import Database
from registry.domain import FileEntry, VersionInfo
from registry.lifecycle.events import last_event_id
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


class VersionCache:
    """Resolved versions by key, valid while the newest event id stays the same.

    ``lookup`` never does I/O: it answers only while the last check is recent, so the
    event loop serves hits directly. ``load`` (blocking, for a worker thread) re-checks
    the newest event id when due, drops everything if it moved, and resolves misses.
    """

    def __init__(
        self, db: Database, *, check_interval_s: float = 0.2, max_entries: int = 100_000
    ) -> None:
        self._db = db
        self._interval = check_interval_s
        self._max = max_entries
        self._entries: dict[Hashable, VersionInfo] = {}
        self._stamp: int | None = None
        self._checked_at = float("-inf")
        self._dirty_until = 0.0
        self._generation = 0
        self._lock = Lock()
        self._check_lock = Lock()
        self._watch_commits(db)

    def _watch_commits(self, db: Database) -> None:
        # This process's own writes (HTTP or an in-process client on the same Database)
        # force a check on the next lookup instead of waiting for the interval.
        ref = weakref.ref(self)

        def on_commit(_conn: Any) -> None:
            cache = ref()
            if cache is not None:
                cache.mark_changed()

        event.listen(db.engine, "commit", on_commit)
        # SQLite writes go through a second engine; Database has no public name for it.
        writer = getattr(db, "_write_engine", db.engine)
        if writer is not db.engine:
            event.listen(writer, "commit", on_commit)

    def mark_changed(self) -> None:
        """Check the catalog before the next answer (a commit may be landing now)."""
        # The commit event fires just before the commit lands: keep checking for a moment.
        self._checked_at = float("-inf")
        self._dirty_until = time.monotonic() + 0.1

    def _fresh(self, now: float) -> bool:
        return now - self._checked_at <= self._interval and now > self._dirty_until

    def lookup(self, key: Hashable) -> VersionInfo | None:
        """The cached version when the cache is known to be fresh; None means call ``load``."""
        if not self._fresh(time.monotonic()):
            return None
        return self._entries.get(key)

    def load(self, key: Hashable, resolver: Callable[[], VersionInfo]) -> VersionInfo:
        """Blocking: check freshness if due, then the cached version or ``resolver()``'s."""
        self._refresh_if_due()
        hit = self._entries.get(key)
        if hit is not None:
            return hit
        generation = self._generation
        version = resolver()
        with self._lock:
            # A version resolved across an invalidation may predate the change: not kept.
            if generation == self._generation:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[key] = version
        return version

    def _refresh_if_due(self) -> None:
        if self._fresh(time.monotonic()):
            return
        with self._check_lock:
            started = time.monotonic()
            if self._fresh(started):
                return  # another thread checked while this one waited
            stamp = last_event_id(self._db)  # max(id): one primary-key index lookup
            with self._lock:
                if stamp != self._stamp:
                    self._entries.clear()
                    self._generation += 1
                    self._stamp = stamp
                # Fresh as of when the query started, not when it returned.
                self._checked_at = started


def version_cache(app: FastAPI, rt: Runtime) -> VersionCache:
    """The app's VersionCache, made on first use (the app factory stays unchanged)."""
    cache: VersionCache | None = getattr(app.state, "version_cache", None)
    if cache is None:
        with _CREATE_LOCK:
            cache = getattr(app.state, "version_cache", None)
            if cache is None:
                cache = VersionCache(rt.db)
                app.state.version_cache = cache
    return cache


_CREATE_LOCK = Lock()


async def cached_version(
    request: Request, key: Hashable, resolver: Callable[[], VersionInfo]
) -> VersionInfo:
    """The version for ``key``: from the cache on the event loop, else resolved in a thread."""
    cache = version_cache(request.app, request.app.state.runtime)
    hit = cache.lookup(key)
    if hit is not None:
        return hit
    return await run_in_threadpool(cache.load, key, resolver)


def file_url(request: Request, rt: Runtime, v: VersionInfo, f: FileEntry) -> str:
    presigned = request.app.state.presign_cache.get(rt, f)
    if presigned:
        return str(presigned)
    base = str(request.base_url).rstrip("/")
    return (
        f"{base}/api/v1/adapters/{v.namespace}/{v.name}/versions/{v.number}/files/{quote(f.path)}"
    )


@router.get("/resolve/{namespace}/{name}", dependencies=[Reader])
async def resolve_route(
    rt: RuntimeDep,
    request: Request,
    namespace: str,
    name: str,
    ref: str = "latest",
    base: str | None = None,
) -> Response:
    """The version ``ref`` names (``latest``, ``3``/``v3``, a content id, a stage or alias),
    with its content id, config summary and download URLs. ``If-None-Match`` gives 304."""

    def resolver() -> VersionInfo:
        return resolve(rt.db, parse_repo(f"{namespace}/{name}"), ref=ref, base=base)

    version = await cached_version(request, ("v1", namespace, name, ref, base), resolver)
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
