"""``lorareg regions [status]`` and ``/api/v1/regions[/status]`` through both clients: the
regions and their state, backlog before and after replication, lag, and which regions hold
a version; the figures are for unscoped admins only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.regions_ops.conftest import RegionBuckets, replicate


@pytest.fixture(params=["local", "remote"])
def rclient(request: pytest.FixtureRequest, region_runtime: Runtime) -> Any:
    if request.param == "local":
        yield LocalClient(region_runtime)
        return
    with LiveServer(create_app(region_runtime, background=False)) as srv:
        c = RemoteClient(srv.url, actor="tester")
        yield c
        c.close()


def test_regions_listed_with_modes_and_state(rclient: Any) -> None:
    views = rclient.regions()
    assert [(v.name, v.mode, v.primary, v.state) for v in views] == [
        ("primary", "primary", True, "ok"),
        ("eu", "replicate", False, "ok"),
        ("us", "external", False, "ok"),
    ]


def test_status_backlog_lag_and_version_presence(
    rclient: Any,
    region_runtime: Runtime,
    region_buckets: RegionBuckets,
    adapter_library: dict[str, Path],
) -> None:
    pushed = LocalClient(region_runtime).push(adapter_library["v1"], "acme/voice")
    files = {f.path for f in pushed.version.files}
    size = sum(f.size for f in pushed.version.files)
    before = rclient.region_status(ref="acme/voice:1")
    by = {r.name: r for r in before.regions}
    assert by["primary"].primary and by["primary"].backlog_blobs == 0
    assert by["eu"].backlog_blobs == len(files) and by["eu"].backlog_bytes == size
    assert by["eu"].lag_p50_s is None and by["eu"].oldest_missing_since is not None
    assert before.version is not None
    assert before.version.complete_in == ["primary"]
    assert set(before.version.missing()["eu"]) == files

    replicate(region_runtime, region_buckets)
    after = rclient.region_status(ref="acme/voice:1")
    by = {r.name: r for r in after.regions}
    for region in ("eu", "us"):
        assert by[region].backlog_blobs == 0 and by[region].present_blobs == len(files)
        assert by[region].lag_p50_s is not None and by[region].lag_p99_s is not None
    assert after.version is not None and after.version.complete_in == ["primary", "eu", "us"]
    assert after.version.missing() == {}


def test_status_is_for_unscoped_admins(
    region_runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    LocalClient(region_runtime).push(adapter_library["v1"], "acme/voice")
    LocalClient(region_runtime).push(adapter_library["v2"], "beta/other")
    tokens = {
        "reader": create_token(region_runtime.db, name="r", role="reader", actor="t")[0],
        "admin": create_token(region_runtime.db, name="a", role="admin", actor="t")[0],
        "beta-admin": create_token(
            region_runtime.db, name="b", role="admin", actor="t", namespaces=["beta"]
        )[0],
    }
    with LiveServer(create_app(region_runtime, require_auth=True, background=False)) as srv:

        def get(path: str, who: str, **params: str) -> httpx.Response:
            h = {"Authorization": f"Bearer {tokens[who]}"}
            return httpx.get(srv.url + path, headers=h, params=params, timeout=30)

        assert get("/api/v1/regions", "reader").status_code == 200
        assert get("/api/v1/regions/status", "reader").status_code == 403
        r = get("/api/v1/regions/status", "beta-admin", ref="acme/voice:1")
        assert r.status_code == 403 and "acme" not in r.text
        assert get("/api/v1/regions/status", "admin", ref="acme/voice:1").status_code == 200
        # A version's presence: whoever sees the version, and nobody else.
        assert get("/api/v1/adapters/acme/voice/versions/1/regions", "reader").status_code == 200
        r = get("/api/v1/adapters/acme/voice/versions/1/regions", "beta-admin")
        assert r.status_code == 404 and "sha256" not in r.text  # as for no such adapter
        r = get("/api/v1/regions/status", "admin", ref="acme/voice:9")
        assert r.status_code == 404
        r = get("/api/v1/regions/status", "admin", ref="not a ref")
        assert r.status_code == 422


def test_listing_probes_the_stores_at_most_every_few_seconds(
    region_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any reader may list the regions as often as it likes: a burst costs one probe of
    each store, not one per request."""
    from registry.api.routers import regions as regions_route
    from registry.storage.s3 import S3BlobStore

    probes: list[str] = []
    real = S3BlobStore.check

    def counting(store: S3BlobStore) -> None:
        probes.append(store.url)
        real(store)

    monkeypatch.setattr(S3BlobStore, "check", counting)
    with LiveServer(create_app(region_runtime, background=False)) as srv:
        burst = [httpx.get(f"{srv.url}/api/v1/regions", timeout=30) for _ in range(5)]
        assert {r.status_code for r in burst} == {200}
        assert len({r.content for r in burst}) == 1
        assert len(probes) == 3  # the primary, eu and us, once
        monkeypatch.setattr(regions_route, "LISTING_MAX_AGE_S", 0.0)
        assert httpx.get(f"{srv.url}/api/v1/regions", timeout=30).status_code == 200
        assert len(probes) == 6  # older than the limit: probed again
