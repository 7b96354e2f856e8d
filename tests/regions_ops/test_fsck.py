"""``fsck --regions``: every regional copy read and hashed; a corrupt or vanished copy is
reported, no longer counted present (so never served from there), and copied again."""

from __future__ import annotations

from pathlib import Path

from registry.client.local import LocalClient
from registry.db import models as m
from registry.runtime import Runtime
from registry.services.region_upkeep import fsck_regions
from registry.services.regions import regional_stores
from tests.regions_ops.conftest import RegionBuckets, replicate


def _state(rt: Runtime, sha: str, region: str) -> str:
    with rt.db.read() as s:
        row = s.get(m.BlobReplica, (sha, region))
        assert row is not None
        return row.state


def test_fsck_regions_finds_and_repairs_bad_copies(
    region_runtime: Runtime, region_buckets: RegionBuckets, adapter_library: dict[str, Path]
) -> None:
    pushed = LocalClient(region_runtime).push(adapter_library["v1"], "acme/voice")
    replicate(region_runtime, region_buckets)
    stores = regional_stores(region_runtime)
    clean = fsck_regions(region_runtime.db, stores)
    n = len({f.sha256 for f in pushed.version.files})
    assert clean.ok and clean.regions == {"eu": n, "us": n}

    weights = next(f for f in pushed.version.files if f.path.endswith(".safetensors"))
    config = next(f for f in pushed.version.files if f.path == "adapter_config.json")
    eu = region_buckets.clients["eu"]
    key = region_buckets.key_of(weights.sha256)
    body = eu.get_object(Bucket=region_buckets.buckets["eu"], Key=key)["Body"].read()
    flipped = bytes([body[0] ^ 1]) + body[1:]  # same size, other bytes
    eu.put_object(Bucket=region_buckets.buckets["eu"], Key=key, Body=flipped)
    us = region_buckets.clients["us"]
    us.delete_object(Bucket=region_buckets.buckets["us"], Key=region_buckets.key_of(config.sha256))

    report = fsck_regions(region_runtime.db, stores)
    assert not report.ok
    found = {(p.region, p.sha256, p.problem) for p in report.problems}
    assert found == {("eu", weights.sha256, "corrupt"), ("us", config.sha256, "missing")}
    assert _state(region_runtime, weights.sha256, "eu") == "missing"
    assert _state(region_runtime, config.sha256, "us") == "missing"
    assert weights.sha256 not in region_buckets.keys("eu")  # the bad copy is gone

    replicate(region_runtime, region_buckets)  # eu: the worker; us: the storage, then the check
    assert _state(region_runtime, weights.sha256, "eu") == "present"
    assert _state(region_runtime, config.sha256, "us") == "present"
    again = eu.get_object(Bucket=region_buckets.buckets["eu"], Key=key)["Body"].read()
    assert again == body
    assert fsck_regions(region_runtime.db, stores).ok
