"""``GET /api/v1/resolve/{namespace}/{name}``: the lookup serving systems call, with ETags.

The fast path: answers come from a per-process ``VersionCache`` without touching the
event loop's threadpool or the database. Every change to the catalog appends a row to
``events``, so the newest event id is a catalog-wide version number; the cache compares
it at most every ``check_interval_s`` (200 ms), and right after this process commits,
so a promotion made through any replica is seen by every replica within a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event

from registry.api.deps import Reader
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve, resolve_document
from registry.db.database import Database
from registry.domain import FileEntry, VersionInfo
from registry.lifecycle.events import last_event_id
from registry.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["resolve"])
_COMMITTED = "lorareg.version_cache.committed"
log = logging.getLogger("lorareg.api")


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


class VersionCache:
    """Resolved versions by key, valid while the newest event id stays the same.

    ``peek`` never does I/O, so the event loop serves hits itself. Within
    ``check_interval_s`` of the last check a hit is fresh; after that the first caller is
    told to re-check (``refresh``, in a worker thread) while hits keep being served for
    at most ``max_stale_s``, so requests never queue behind the check. ``load`` (blocking)
    checks when due, drops everything if the newest event id moved, and resolves misses.
    A commit through this process's Database forces a check before the next answer.
    """

    def __init__(
        self,
        db: Database,
        *,
        check_interval_s: float = 0.2,
        max_stale_s: float = 0.5,
        max_entries: int = 100_000,
    ) -> None:
        self._db = db
        self._interval = check_interval_s
        self._max_stale = max_stale_s
        self._max = max_entries
        self._entries: dict[Hashable, VersionInfo] = {}
        self._stamp: int | None = None
        self._checked_at = float("-inf")
        self._checking = False
        self._changes = 0  # local commits seen; a check that overlaps one does not count
        self._generation = 0
        self._lock = Lock()
        self._check_lock = Lock()
        self._watch_commits(db)

    def _watch_commits(self, db: Database) -> None:
        # The "commit" event fires before the commit lands, so it only marks the
        # connection; the pool's "checkin" (after the commit, when the session lets go)
        # acts on it.
        ref = weakref.ref(self)

        def on_commit(conn: Any) -> None:
            conn.info[_COMMITTED] = True

        def on_checkin(_dbapi_conn: Any, record: Any) -> None:
            cache = ref()
            if record is not None and record.info.pop(_COMMITTED, False) and cache is not None:
                cache.mark_changed()

        engines = [db.engine]
        # SQLite writes go through a second engine; Database has no public name for it.
        writer = getattr(db, "_write_engine", db.engine)
        if writer is not db.engine:
            engines.append(writer)
        for engine in engines:
            event.listen(engine, "commit", on_commit)
            event.listen(engine, "checkin", on_checkin)

    def mark_changed(self) -> None:
        """Check the catalog before the next answer."""
        with self._lock:
            self._changes += 1
            self._checked_at = float("-inf")

    def peek(self, key: Hashable) -> tuple[VersionInfo | None, bool]:
        """(the cached version if it may be served, whether the caller should ``refresh``)."""
        age = time.monotonic() - self._checked_at
        if age <= self._interval:
            return self._entries.get(key), False
        if age > self._max_stale:
            return None, False  # too old to serve: ``load`` checks first
        with self._lock:
            start, self._checking = not self._checking, True
        return self._entries.get(key), start

    def refresh(self) -> None:
        """Check the newest event id now (the background half of ``peek``)."""
        try:
            self._check(force=True)
        finally:
            self._checking = False

    def load(self, key: Hashable, resolver: Callable[[], VersionInfo]) -> VersionInfo:
        """Blocking: check when due, then the cached version or ``resolver()``'s."""
        self._check(force=False)
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

    def _check(self, *, force: bool) -> None:
        if not force and time.monotonic() - self._checked_at <= self._interval:
            return
        with self._check_lock:
            started = time.monotonic()
            if started - self._checked_at <= (0.0 if force else self._interval):
                return  # another thread checked while this one waited
            changes = self._changes
            stamp = last_event_id(self._db)  # max(id): one primary-key index lookup
            with self._lock:
                if stamp != self._stamp:
                    self._entries.clear()
                    self._generation += 1
                    self._stamp = stamp
                # Fresh as of when the query started, unless a local commit landed since.
                if changes == self._changes:
                    self._checked_at = started


T = TypeVar("T")
_CREATE_LOCK = Lock()


def _app_singleton(app: FastAPI, name: str, factory: Callable[[], T]) -> T:
    """``app.state.<name>``, made on first use (the app factory stays unchanged)."""
    value: T | None = getattr(app.state, name, None)
    if value is None:
        with _CREATE_LOCK:
            value = getattr(app.state, name, None)
            if value is None:
                value = factory()
                setattr(app.state, name, value)
    return value


def version_cache(app: FastAPI) -> VersionCache:
    """The app's VersionCache."""
    rt: Runtime = app.state.runtime
    return _app_singleton(app, "version_cache", lambda: VersionCache(rt.db))


async def cached_version(
    request: Request, key: Hashable, resolver: Callable[[], VersionInfo]
) -> VersionInfo:
    """The version for ``key``: from the cache on the event loop, else resolved in a thread."""
    cache = version_cache(request.app)
    hit, refresh = cache.peek(key)
    if refresh:
        # Re-check in the background; this and concurrent requests are answered meanwhile.
        asyncio.get_running_loop().run_in_executor(None, _quietly, cache.refresh)
    if hit is not None:
        return hit
    return await run_in_threadpool(cache.load, key, resolver)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # a failed check leaves the cache stale-but-bounded; log, not raise
        log.warning("version cache check failed", exc_info=True)


def file_url(request: Request, rt: Runtime, v: VersionInfo, f: FileEntry) -> str:
    presigned = request.app.state.presign_cache.get(rt, f)
    if presigned:
        return str(presigned)
    base = str(request.base_url).rstrip("/")
    return (
        f"{base}/api/v1/adapters/{v.namespace}/{v.name}/versions/{v.number}/files/{quote(f.path)}"
    )


class BodyCache:
    """Rendered resolve documents by (version, base URL). A version never changes, so only
    the presigned URLs inside a body age: such bodies are re-rendered after ``max_age_s``,
    long before the URLs (reused for at most half their lifetime) expire."""

    def __init__(self, *, max_entries: int = 50_000) -> None:
        self._bodies: dict[Hashable, tuple[bytes, float]] = {}
        self._max = max_entries

    def get(self, key: Hashable) -> bytes | None:
        hit = self._bodies.get(key)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, key: Hashable, body: bytes, *, max_age_s: float) -> None:
        if len(self._bodies) >= self._max:
            self._bodies.clear()
        self._bodies[key] = (body, time.monotonic() + max_age_s)


def _render(request: Request, rt: Runtime, version: VersionInfo) -> bytes:
    bodies: BodyCache = _app_singleton(request.app, "resolve_bodies", BodyCache)
    key = (version.namespace, version.name, version.number, str(request.base_url))
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


@router.get("/resolve/{namespace}/{name}", dependencies=[Reader])
async def resolve_route(
    request: Request,
    namespace: str,
    name: str,
    ref: str = "latest",
    base: str | None = None,
) -> Response:
    """The version ``ref`` names (``latest``, ``3``/``v3``, a content id, a stage or alias),
    with its content id, config summary and download URLs. ``If-None-Match`` gives 304."""
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
