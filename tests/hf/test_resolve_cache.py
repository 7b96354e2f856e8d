"""The resolve fast path: a per-process cache that every replica invalidates within a second.

Lives with the hub tests because both routes share the cache (registry/api/routers/resolve.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from registry.api.version_cache import VersionCache
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.config import Settings
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.runtime import Runtime, open_runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.hf.conftest import REPO

URL = f"/api/v1/resolve/{REPO}"


def _seen_within(deadline_s: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` held; fails after ``deadline_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline_s, "the other replica never saw the change"
        time.sleep(0.02)
    return time.monotonic() - start


def test_changes_through_one_replica_reach_the_other_within_a_second(
    settings: Settings, runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], REPO)
    # Replica B has its own engine and caches, as a second `lorareg serve` process would.
    other = open_runtime(settings)
    try:
        with (
            LiveServer(create_app(runtime, background=False)) as a,
            LiveServer(create_app(other, background=False)) as b,
            httpx.Client(base_url=b.url, timeout=30) as replica_b,
        ):

            def version_at_b(ref: str = "latest") -> int | None:
                r = replica_b.get(URL, params={"ref": ref})
                return int(r.json()["version"]) if r.status_code == 200 else None

            for _ in range(3):  # warm B's cache
                assert version_at_b() == 1 and version_at_b("production") is None
            through_a = RemoteClient(a.url, actor="tester", cache_dir=tmp_path / "cache")
            try:
                through_a.push(adapter_library["v2"], REPO)
                pushed = _seen_within(1.0, lambda: version_at_b() == 2)
                through_a.promote(f"{REPO}:1", to="production")
                promoted = _seen_within(1.0, lambda: version_at_b("production") == 1)
                through_a.set_alias(REPO, "champion", 2)
                aliased = _seen_within(1.0, lambda: version_at_b("champion") == 2)
            finally:
                through_a.close()
            assert max(pushed, promoted, aliased) < 1.0
    finally:
        other.close()


def test_own_writes_are_seen_at_once_and_etags_still_work(
    runtime: Runtime, server_url: str, adapter_library: dict[str, Path]
) -> None:
    client = LocalClient(runtime)
    v1 = client.push(adapter_library["v1"], REPO).version
    with httpx.Client(base_url=server_url, timeout=30) as http:
        first = http.get(URL)
        assert first.json()["version"] == 1 and first.headers["etag"] == f'"{v1.content_id}"'
        cached = http.get(URL, headers={"If-None-Match": first.headers["etag"]})
        assert cached.status_code == 304
        # A commit in this process (same Database) is seen by the very next request.
        v2 = client.push(adapter_library["v2"], REPO).version
        fresh = http.get(URL, headers={"If-None-Match": first.headers["etag"]})
        assert fresh.status_code == 200 and fresh.json()["content_id"] == v2.content_id
        client.promote(f"{REPO}:1", to="production")
        assert http.get(URL, params={"ref": "production"}).json()["version"] == 1


def test_cache_answers_from_memory_until_the_catalog_moves(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    client = LocalClient(runtime)
    client.push(adapter_library["v1"], REPO)
    db = Database(runtime.settings.effective_database_url)  # no commit hook from `client`
    try:
        cache = VersionCache(db, check_interval_s=60, max_stale_s=120)
        calls: list[int] = []

        def resolver() -> VersionInfo:
            calls.append(1)
            return resolve(db, parse_repo(REPO))

        key = ("test", REPO)
        assert cache.peek(key) == (None, False)  # never checked: not known to be fresh
        assert cache.load(key, resolver).number == 1
        assert cache.load(key, resolver).number == 1 and len(calls) == 1
        client.push(adapter_library["v2"], REPO)
        hit, refresh = cache.peek(key)  # within the interval: answered without I/O
        assert hit is not None and hit.number == 1 and not refresh
        cache.mark_changed()  # what a local commit triggers
        assert cache.peek(key) == (None, False)
        assert cache.load(key, resolver).number == 2 and len(calls) == 2
    finally:
        db.dispose()


def test_a_due_check_runs_once_while_hits_are_served(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    client = LocalClient(runtime)
    client.push(adapter_library["v1"], REPO)
    db = Database(runtime.settings.effective_database_url)
    try:
        cache = VersionCache(db, check_interval_s=0.05, max_stale_s=60)
        key = ("test", REPO)
        cache.load(key, lambda: resolve(db, parse_repo(REPO)))
        client.push(adapter_library["v2"], REPO)
        time.sleep(0.06)
        first, second = cache.peek(key), cache.peek(key)
        assert first[0] is not None and first[1]  # served stale, and told to re-check
        assert second[0] is not None and not second[1]  # one re-check at a time
        cache.refresh()
        # The catalog moved: the entry is dropped. (Whether another check is already due
        # depends on how long this machine took since refresh(), so it is not asserted.)
        assert cache.peek(key)[0] is None
    finally:
        db.dispose()
