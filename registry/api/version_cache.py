"""Per-process caches of the lookups serving systems repeat: resolved versions and the
responses rendered from them.

Every change to the catalog appends a row to ``events``, so the newest event id is a
catalog-wide version number. ``VersionCache`` compares it at most every 200 ms while
traffic flows (in the background, without holding requests), and right after this
process commits, so a promotion made through any replica is seen by every replica well
within a second. Rendered responses (pre-encoded bytes) live in the same cache and are
dropped with the versions they were rendered from; the presigned URLs inside one also
age it out (``max_age_s``). Authenticated tokens are kept the same way (by digest), so a
serving node's repeated lookups skip the token query: creating or revoking a token appends
an event too, so a revocation reaches every replica's cache as a promotion does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from registry.db.commit_hooks import after_commits
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.lifecycle.events import last_event_id
from registry.observability.metrics import RESOLVE_CACHE
from registry.principal import Principal
from registry.runtime import Runtime

log = logging.getLogger("lorareg.api")


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
        max_entries: int = 10_000,
    ) -> None:
        self._db = db
        self._interval = check_interval_s
        self._max_stale = max_stale_s
        self._max = max_entries
        self._entries: dict[Hashable, VersionInfo] = {}
        self._rendered: dict[Hashable, tuple[Any, float]] = {}
        self._principals: dict[str, Principal] = {}
        self._stamp: int | None = None
        self._checked_at = float("-inf")
        self._checking = False
        self._changes = 0  # local commits seen; a check that overlaps one does not count
        self._generation = 0
        self._lock = Lock()
        self._check_lock = Lock()
        after_commits(db, self, VersionCache.mark_changed)

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

    @property
    def generation(self) -> int:
        """Bumped whenever the cache is dropped; read it before resolving what you render."""
        return self._generation

    def peek_rendered(self, key: Hashable) -> tuple[Any | None, bool]:
        """``peek`` for rendered responses: (the response if it may be served, whether the
        caller should ``refresh``). No I/O, no lock on a fresh hit."""
        age = time.monotonic() - self._checked_at
        if age > self._max_stale:
            return None, False
        hit = self._rendered.get(key)
        value = hit[0] if hit is not None and hit[1] > time.monotonic() else None
        if age <= self._interval:
            return value, False
        with self._lock:
            start, self._checking = not self._checking, True
        return value, start

    def keep_rendered(
        self, key: Hashable, value: Any, *, generation: int, max_age_s: float = float("inf")
    ) -> None:
        """Keep a response rendered from versions resolved at ``generation``; dropped (not
        kept) when the cache was invalidated since."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._rendered) >= self._max:  # oldest first out
                del self._rendered[next(iter(self._rendered))]
            self._rendered[key] = (value, time.monotonic() + max_age_s)

    def peek_principal(self, digest: str) -> Principal | None:
        """The principal authenticated earlier for the token with ``digest``, while the
        catalog's newest event is the one it was authenticated under and the token has not
        expired; else None (authenticate it again). No I/O; the route's ``peek`` starts the
        background check, so a hit here is at most ``max_stale_s`` behind the catalog."""
        if time.monotonic() - self._checked_at > self._max_stale:
            return None
        principal = self._principals.get(digest)
        if principal is None:
            return None
        expires = principal.expires_at
        if expires is not None and expires.timestamp() <= time.time():
            return None
        return principal

    def keep_principal(self, digest: str, principal: Principal, *, generation: int) -> None:
        """Keep a token's principal authenticated at ``generation`` (read before the query:
        a token revoked meanwhile bumps it and the principal is not kept)."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._principals) >= self._max:
                del self._principals[next(iter(self._principals))]
            self._principals[digest] = principal

    def load_principal(self, digest: str, authenticate: Callable[[], Principal]) -> Principal:
        """Blocking: check the catalog when due (one query, shared), then the kept principal
        or ``authenticate()``'s (kept). A burst of requests after the cache went stale waits
        on one check instead of each querying its token."""
        self._check(force=False)
        hit = self.peek_principal(digest)
        if hit is not None:
            return hit
        generation = self._generation
        principal = authenticate()
        self.keep_principal(digest, principal, generation=generation)
        return principal

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
                if len(self._entries) >= self._max:  # oldest first out: dicts keep order
                    del self._entries[next(iter(self._entries))]
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
                    self._rendered.clear()
                    self._principals.clear()
                    self._generation += 1
                    self._stamp = stamp
                # Fresh as of when the query started, unless a local commit landed since.
                if changes == self._changes:
                    self._checked_at = started


T = TypeVar("T")
_CREATE_LOCK = Lock()


def app_singleton(app: FastAPI, name: str, factory: Callable[[], T]) -> T:
    """``app.state.<name>``, made on first use, so routers keep their state without the
    app factory knowing about it."""
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
    return app_singleton(app, "version_cache", lambda: VersionCache(rt.db))


async def cached_version(
    request: Request, key: Hashable, resolver: Callable[[], VersionInfo]
) -> VersionInfo:
    """The version for ``key``: from the cache on the event loop, else resolved in a thread."""
    cache = version_cache(request.app)
    hit, refresh = cache.peek(key)
    if refresh:
        start_refresh(cache)
    RESOLVE_CACHE.labels("hit" if hit is not None else "miss").inc()
    if hit is not None:
        return hit
    return await run_in_threadpool(cache.load, key, resolver)


def start_refresh(cache: VersionCache) -> None:
    """Re-check in the background; this and concurrent requests are answered meanwhile."""
    asyncio.get_running_loop().run_in_executor(None, _quietly, cache.refresh)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # a failed check leaves the cache stale-but-bounded; log, not raise
        log.warning("version cache check failed", exc_info=True)
