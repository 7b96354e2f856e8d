"""Deleting a version, a namespace (offboarding) and gc remove unreferenced blobs from
every region's store: the bytes are gone from each S3 server, and their rows with them."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from registry.client.local import LocalClient
from registry.db import models as m
from registry.runtime import Runtime
from registry.services.region_upkeep import gc_regions
from registry.services.regions import regional_stores
from tests.regions_ops.conftest import RegionBuckets, replicate

REGIONS = ("primary", "eu", "us")


def _replica_rows(rt: Runtime) -> int:
    with rt.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(m.BlobReplica)) or 0)


def test_erasure_deletes_from_every_region(
    region_runtime: Runtime, region_buckets: RegionBuckets, adapter_library: dict[str, Path]
) -> None:
    c = LocalClient(region_runtime)
    v1 = c.push(adapter_library["v1"], "acme/voice")
    c.push(adapter_library["v2"], "acme/voice")
    other = c.push(adapter_library["r8"], "beta/kept")
    replicate(region_runtime, region_buckets)
    only_v1 = {f.sha256 for f in v1.version.files} - {
        f.sha256 for f in c.show("acme/voice:2").files
    }
    assert only_v1
    for region in REGIONS:
        assert only_v1 <= region_buckets.keys(region)

    report = c.delete("acme/voice:1", reason="bad data")
    assert report.regional_deleted == 2 * len(only_v1) and report.regional_pending == 0
    for region in REGIONS:
        assert not only_v1 & region_buckets.keys(region), region
    with region_runtime.db.read() as s:
        left = set(s.scalars(select(m.BlobReplica.sha256)))
    assert not only_v1 & left

    c.delete_namespace("acme", reason="contract ended")
    kept = {f.sha256 for f in other.version.files}
    for region in REGIONS:
        assert region_buckets.keys(region) == kept, region
    assert _replica_rows(region_runtime) == 2 * len(kept)


def test_gc_removes_unreferenced_regional_copies(
    region_runtime: Runtime, region_buckets: RegionBuckets, adapter_library: dict[str, Path]
) -> None:
    c = LocalClient(region_runtime)
    pushed = c.push(adapter_library["v1"], "acme/voice")
    replicate(region_runtime, region_buckets)
    stray = b"left behind by an interrupted copy"
    sha = hashlib.sha256(stray).hexdigest()
    stores = regional_stores(region_runtime)
    stores["eu"].put_stream(sha, __import__("io").BytesIO(stray), size=len(stray))
    assert sha in region_buckets.keys("eu")
    kept = gc_regions(region_runtime.db, stores, grace=timedelta(hours=1))
    assert kept.deleted == {} and kept.kept_recent == 1
    done = gc_regions(region_runtime.db, stores, grace=timedelta(0))
    assert done.deleted == {"eu": [sha]}
    assert region_buckets.keys("eu") == {f.sha256 for f in pushed.version.files}
